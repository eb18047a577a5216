"""``make bench``: figures, not timed tests. Everything compared is measured side by side in one run.

1. How long each source notebook takes to execute (fresh kernel, top to bottom).
2. Autograde throughput on one synthetic class (3 correct submissions of each of the eight
   notebooks): plain ``nbgrader autograde`` run serially (its own CLI, one process per
   assignment, on the course as it is: figures drawn), against ``cnn-course autograde`` with the
   sandbox and the out-of-kernel check on, at ``--jobs 1`` and ``--jobs 2``. Submissions per
   minute, the ratio to the serial run, and where the time of one submission goes (from the
   result records: kernel start, the setup cell's imports, lesson, answer and test cells, the
   out-of-kernel check, and nbgrader's own work, which is the rest).
3. ``--cluster`` (``make bench`` runs it too; ``python -m helpers.instructor.bench --cluster`` runs
   only it): the same class graded into PostgreSQL (a throwaway server, tests/postgres_server.py)
   by local ``--jobs 1`` and ``--jobs 2`` and through a Dask cluster on this machine (``cnn-course
   cluster scheduler``, ``cnn-course worker --nworkers 1`` and ``2``), side by side: the cluster's
   first run (cold workers: the course bundle unpacked, each assignment released into the
   worker's local gradebook, the reference solutions run) and a second run (warm workers).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .course import ROOT, get

from ..frameworks import HIDE_SITECUSTOMIZE as HIDE_FRAMEWORKS
from .course import ASSIGNMENTS

BENCH_ASSIGNMENTS = tuple(a.id for a in ASSIGNMENTS)


def notebook_times() -> dict[str, float]:
    """Each source notebook's wall time, with the frameworks extra (when installed) and without it."""
    from .runner import run_sources

    print("1. Source notebooks, executed top to bottom, each in a fresh kernel (kernel start included):")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sitecustomize.py").write_text(HIDE_FRAMEWORKS)
        runs = {"without the frameworks": {"PYTHONPATH": tmp}}
        if _frameworks_installed():
            runs["with the frameworks"] = {}
        results = {}
        for label, extra in runs.items():
            saved = {k: os.environ.get(k) for k in extra}
            os.environ.update(extra)
            try:
                t0 = time.perf_counter()
                results[label] = (run_sources(ROOT, None), time.perf_counter() - t0)
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    labels = list(results)
    print("  " + f"{'notebook':<24}" + "".join(f"{label:>26}" for label in labels))
    for a in ASSIGNMENTS:
        print("  " + f"{a.id:<24}" + "".join(f"{results[label][0][a.id]:24.2f} s" for label in labels))
    print("  " + f"{'all, one at a time':<24}" + "".join(f"{results[label][1]:24.2f} s" for label in labels))
    t0 = time.perf_counter()
    run_sources(ROOT, None, jobs=2)
    print(f"  all, two at a time (make run-notebooks, {labels[-1]}): {time.perf_counter() - t0:.2f} s wall")
    return results[labels[-1]][0]


def _bench_course(tmp: Path, students: int) -> Path:
    from .demo import filled_notebook, prepare_course
    from .nbapi import load_config
    from .release import release

    course = tmp / "course"
    prepare_course(course)
    release(load_config(course), list(BENCH_ASSIGNMENTS))
    for a_id in BENCH_ASSIGNMENTS:
        a = get(a_id)
        nb = filled_notebook(course / "release" / a_id / f"{a.notebook}.ipynb", a.source)
        for i in range(students):
            folder = course / "submitted" / f"student{i:02d}" / a_id
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(folder / f"{a.notebook}.ipynb"))
    return course




def _frameworks_installed() -> bool:
    from helpers import frameworks

    return frameworks.available()


def _reset(course: Path) -> None:
    from .autograde import STATE_DIR

    for name in ("autograded", STATE_DIR):
        shutil.rmtree(course / name, ignore_errors=True)


def autograde_throughput(students: int = 3) -> dict[str, float]:
    from .autograde import autograde

    n = students * len(BENCH_ASSIGNMENTS)
    print(f"\n2. Autograde throughput: {students} students x {len(BENCH_ASSIGNMENTS)} assignments = {n} submissions")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        course = _bench_course(Path(tmp), students)
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        # The baseline is plain nbgrader on the course as it was before the frameworks extra (figures
        # drawn, no framework imported: a sitecustomize hides them); the second line, the frameworks in.
        hide = Path(tmp) / "hide-frameworks"
        hide.mkdir()
        (hide / "sitecustomize.py").write_text(HIDE_FRAMEWORKS)
        plain = {"nbgrader autograde (serial)": dict(env, PYTHONPATH=str(hide))}
        if _frameworks_installed() and os.environ.get("BENCH_FRAMEWORKS") == "1":   # slow: about 8 s a kernel
            plain["nbgrader autograde (serial), frameworks in"] = env
        for name, run_env in plain.items():
            _reset(course)
            t0 = time.perf_counter()
            for a_id in BENCH_ASSIGNMENTS:
                subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", a_id, "--force",
                                f"--CourseDirectory.root={course}", "--CourseDirectory.source_directory=notebooks",
                                "--log-level=ERROR"], cwd=course, env=run_env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rates[name] = n / (time.perf_counter() - t0) * 60
        for jobs in (1, 2):
            _reset(course)
            t0 = time.perf_counter()
            out = autograde(course, list(BENCH_ASSIGNMENTS), jobs=jobs, force=True, stream=open(os.devnull, "w"))
            assert sum(o.status == "graded" for o in out) == n, f"bench: not every submission was graded: {out}"
            rates[f"cnn-course autograde --jobs {jobs}"] = n / (time.perf_counter() - t0) * 60
            if jobs == 1:
                breakdown = time_breakdown(course, out)
    base = rates["nbgrader autograde (serial)"]
    for name, rate in rates.items():
        print(f"  {name:<32} {rate:6.1f} submissions/min   {rate / base:4.2f}x serial")
    print("\n  where one submission's time goes at --jobs 1 (mean seconds):")
    for kind, seconds in breakdown.items():
        print(f"    {kind:<28} {seconds:6.3f}")
    return rates


def time_breakdown(course: Path, outcomes) -> dict[str, float]:
    """Mean seconds per submission by step, from the result records in the state folder."""

    from .grading.state import read

    kinds = ("kernel_start", "setup", "lesson", "answer", "test", "out_of_kernel")
    sums = dict.fromkeys(kinds + ("nbgrader and the rest",), 0.0)
    n = 0
    for o in outcomes:
        record = read(course, o.assignment, o.student) or {}
        timings = record.get("timings") or {}
        n += 1
        for k in kinds:
            sums[k] += float(timings.get(k, 0.0))
        accounted = sum(float(timings.get(k, 0.0)) for k in kinds)
        sums["nbgrader and the rest"] += max(0.0, float(record.get("seconds", o.seconds)) - accounted)
    names = {"kernel_start": "kernel start (sandbox)", "setup": "setup cell (imports)", "lesson": "lesson cells",
             "answer": "answer cells", "test": "test cells", "out_of_kernel": "out-of-kernel check"}
    return {names.get(k, k): v / max(n, 1) for k, v in sums.items()}


class _LocalCluster:
    """``cnn-course cluster scheduler`` and ``cnn-course worker --nworkers N`` on loopback."""

    def __init__(self, nworkers: int, logdir: Path):
        import socket

        from .cluster.host import connect

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{self.port}"
        cli = str(Path(sys.executable).parent / "cnn-course")
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        env.pop("CNN_COURSE_DB_URL", None)
        self.procs = [subprocess.Popen([cli, "cluster", "scheduler", "--port", str(self.port)], env=env,
                                       stdout=open(logdir / f"scheduler{nworkers}.log", "w"), stderr=subprocess.STDOUT,
                                       start_new_session=True)]
        time.sleep(3)
        self.procs.append(subprocess.Popen([cli, "worker", self.address, "--nworkers", str(nworkers)], env=env,
                                           stdout=open(logdir / f"workers{nworkers}.log", "w"),
                                           stderr=subprocess.STDOUT, start_new_session=True))
        self.client = connect(self.address, timeout=60)
        from .cluster.remote import report

        end = time.monotonic() + 300
        while time.monotonic() < end:
            try:
                got = self.client.run(report)
                if len(got) >= nworkers and all(r["prepared"] for r in got.values()):
                    return
            except Exception:
                pass
            time.sleep(1)
        raise RuntimeError(f"bench: {nworkers} Dask workers did not start (see {logdir})")

    def stop(self) -> None:
        import signal

        self.client.close()
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


def cluster_throughput(students: int = 3) -> dict[str, float]:
    """Local --jobs N against a Dask cluster of N workers, N = 1 and 2, PostgreSQL gradebook."""
    from .autograde import autograde

    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import PostgresServer

    n = students * len(BENCH_ASSIGNMENTS)
    print(f"\n3. Local processes against a Dask cluster on this machine, PostgreSQL gradebook: {n} submissions")
    rates: dict[str, float] = {}
    host_cost: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as pg:
        course = _bench_course(Path(tmp), students)
        for jobs in (1, 2):
            _reset(course)
            url = pg.create_database(f"local{jobs}")
            t0 = time.perf_counter()
            out = autograde(course, list(BENCH_ASSIGNMENTS), jobs=jobs, force=True, db_url=url,
                            stream=open(os.devnull, "w"))
            assert sum(o.status == "graded" for o in out) == n, f"bench: not every submission was graded: {out}"
            rates[f"local --jobs {jobs}"] = n / (time.perf_counter() - t0) * 60
            cluster = _LocalCluster(jobs, Path(tmp))
            try:
                for run in ("cold", "warm"):
                    _reset(course)
                    url = pg.create_database(f"cluster{jobs}{run}")
                    t0 = time.perf_counter()
                    out = autograde(course, list(BENCH_ASSIGNMENTS), force=True, db_url=url,
                                    scheduler=cluster.address, stream=open(os.devnull, "w"))
                    assert sum(o.status == "graded" for o in out) == n, f"bench: not every submission was graded: {out}"
                    rates[f"Dask, {jobs} worker{'s' if jobs > 1 else ''}, {run}"] = n / (time.perf_counter() - t0) * 60
                    from .cluster.host import STATS

                    host_cost.append(STATS.get("accept_seconds", 0.0) / max(STATS.get("accepted", 1), 1))
            finally:
                cluster.stop()
    for name, rate in rates.items():
        jobs = 2 if "2" in name else 1
        base = rates[f"local --jobs {jobs}"]
        print(f"  {name:<28} {rate:6.1f} submissions/min   {(base / rate - 1) * 100:+5.1f}% time vs local --jobs {jobs}")
    print(f"  the host's work per submission (check the answer, write PostgreSQL and autograded/): "
          f"{sum(host_cost) / max(len(host_cost), 1) * 1000:.0f} ms")
    return rates


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    print(f"cores: {os.cpu_count()}\n")
    if "--cluster" in argv:   # only part 3; --students N (default 3) per assignment
        n = int(argv[argv.index("--students") + 1]) if "--students" in argv else 3
        cluster_throughput(n)
        return
    notebook_times()
    autograde_throughput()
    cluster_throughput()


if __name__ == "__main__":
    main()
