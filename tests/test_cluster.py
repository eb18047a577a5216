"""Autograding on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes started
as the README says (``cnn-course cluster scheduler``, ``cnn-course worker``), on loopback, and a
PostgreSQL server of the tests' own.

- the demo class graded through the cluster: every cell's score as the local engine gives it (the
  exact table of tests/test_instructor.py), and a subset graded locally into PostgreSQL too: the same
  gradebook, the same statuses, the same files in ``autograded/``;
- a worker SIGKILLed mid-run: every submission graded exactly once, the same gradebook;
- a poison submission (the real worker process dies each time it starts grading it:
  tests/cluster_poison.py): reported by name after the bounded tries, the rest graded;
- TLS with certificates from ``cnn-course cluster certs``; clients without the course's
  certificates are refused;
- bad input: one line, exit 2, no traceback, no password.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, make_course
from postgres_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
BIN = Path(sys.executable).parent
CLI = str(BIN / "cnn-course")
SUBSET = ["01_zero_padding", "02_conv_single_step", "06_pool_backward"]
def _demo_settings() -> list[str]:
    """What `cnn-course demo` grades with (run_demo's defaults)."""
    import inspect

    from helpers.instructor.demo import run_demo

    params = inspect.signature(run_demo).parameters
    return ["--cell-timeout", str(params["cell_timeout"].default), "--budget", str(params["budget"].default)]


DEMO_SETTINGS = _demo_settings()
POISON = "poison-pill"


@pytest.fixture(scope="session", autouse=True)
def _needs_root_sandbox():
    """Root and bubblewrap, or a skip; under CI=true their absence fails the test."""
    from conftest import require_root_sandbox

    require_root_sandbox()


def _env(**extra) -> dict:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("CNN_COURSE_DB_URL", None)
    env.update(extra)
    return env


def cli(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=_env())


class Cluster:
    """A scheduler and one ``cnn-course worker`` command (N worker processes), each in its own session."""

    def __init__(self, tmp: Path, nworkers: int = 2, tls_dir: Path | None = None, extra=(), flags=()):
        self.port = free_port()
        scheme = "tls" if tls_dir else "tcp"
        self.address = f"{scheme}://127.0.0.1:{self.port}"
        self.tls_dir = tls_dir
        tls = ["--tls-dir", str(tls_dir)] if tls_dir else []
        self.logs = {name: open(tmp / f"{name}.log", "w+") for name in ("scheduler", "workers")}
        self.procs = [subprocess.Popen([CLI, "cluster", "scheduler", "--port", str(self.port), *tls],
                                       stdout=self.logs["scheduler"], stderr=subprocess.STDOUT, env=_env(),
                                       start_new_session=True)]
        self.nworkers = nworkers
        self.client = None
        try:
            self.wait_port()
            self.procs.append(subprocess.Popen([CLI, "worker", self.address, "--nworkers", str(nworkers), *tls,
                                                *flags, "--", *extra], stdout=self.logs["workers"],
                                               stderr=subprocess.STDOUT, env=_env(), start_new_session=True))
            self.client = self.connect()
            self.wait_workers()
        except BaseException:
            self.stop()   # never leave a scheduler or workers behind
            raise

    def wait_port(self, timeout=60):
        import socket

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.procs[0].poll() is None, self.log("scheduler")
                time.sleep(0.3)
        raise AssertionError("the scheduler did not listen:\n" + self.log("scheduler"))

    def connect(self):
        from helpers.instructor.cluster.host import connect
        from helpers.instructor.cluster.security import TLSFiles

        tls = TLSFiles.from_flags(self.tls_dir, role="client") if self.tls_dir else None
        return connect(self.address, tls, timeout=30)

    def wait_workers(self, n: int | None = None, timeout=180):
        n = n or self.nworkers
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.client.scheduler_info(n_workers=-1)["workers"]) >= n:
                try:
                    from helpers.instructor.cluster.remote import report

                    if all(r["prepared"] for r in self.client.run(report).values()):
                        return
                except Exception:
                    pass
            assert self.procs[1].poll() is None, self.log("workers")
            time.sleep(0.5)
        raise AssertionError(f"{n} workers did not join:\n" + self.log("workers")[-3000:])

    def worker_pids(self) -> dict:
        return self.client.run(os.getpid)

    def log(self, name) -> str:
        fh = self.logs[name]
        fh.flush()
        return Path(fh.name).read_text(errors="replace")

    def stop(self):
        try:
            if self.client is not None:
                self.client.close(timeout=10)
        except Exception:
            pass
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for fh in self.logs.values():
            fh.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A scheduler (tcp, loopback) and two worker processes; the workers carry the poison hook."""
    c = Cluster(tmp_path_factory.mktemp("cluster"), 2, extra=["--preload", str(ROOT / "tests" / "cluster_poison.py")])
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def demo_class(tmp_path_factory):
    """The demo's release and submissions, built once (helpers/instructor/demo.py)."""
    from helpers.instructor.demo import build_class
    from helpers.instructor.nbapi import load_config
    from helpers.instructor.release import release

    course = make_course(tmp_path_factory.mktemp("demo_class"))
    release(load_config(course))
    build_class(course)
    return course


def copy_class(src: Path, dest: Path, assignments=None, students=None) -> Path:
    course = make_course(dest)
    shutil.copytree(src / "release", course / "release")
    for student in sorted((src / "submitted").iterdir()):
        for a in sorted(p.name for p in student.iterdir()):
            if (assignments is None or a in assignments) and (students is None or student.name in students):
                shutil.copytree(student / a, course / "submitted" / student.name / a)
    return course


def scores(url: str) -> dict:
    from helpers.instructor.nbapi import load_config
    from test_instructor import gradebook_scores

    return gradebook_scores(load_config(ROOT, url))


LINE = re.compile(r"\[[#.]+\]\s+\d+/\d+\s+\S+\s+(\S+) / (\S+)\s")


def progress_lines(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines() if LINE.match(ln)]


@pytest.fixture(scope="session")
def cluster_demo(cluster, demo_class, postgres_server, tmp_path_factory):
    """The whole demo class graded through the cluster into PostgreSQL, by the real command."""
    course = copy_class(demo_class, tmp_path_factory.mktemp("cluster_demo"))
    url = postgres_server.create_database("cluster_demo")
    t0 = time.monotonic()
    res = cli("--root", str(course), "--db-url", url, "autograde", "--all", "--scheduler", cluster.address,
              *DEMO_SETTINGS)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return {"course": course, "url": url, "res": res, "seconds": time.monotonic() - t0}


def test_cluster_grades_the_demo_exactly(cluster_demo):
    from test_instructor import expected_scores

    got = scores(cluster_demo["url"])
    wrong = [f"{s} {a}/{g}: expected {points}, got {got.get((s, a, g), 0.0)}"
             for s, per in expected_scores().items() for a, cells in per.items() for g, points in cells.items()
             if got.get((s, a, g), 0.0) != points]
    assert not wrong, "cluster scores differ from the local engine's:\n" + "\n".join(wrong)


def test_cluster_equals_local_on_postgres(cluster_demo, demo_class, postgres_server, tmp_path):
    """The same subset graded by local worker processes into PostgreSQL: the same gradebook (every
    grade), the same statuses, and the same files in autograded/."""
    from helpers.instructor.autograde import autograde

    course = copy_class(demo_class, tmp_path / "local", SUBSET)
    url = postgres_server.create_database("local_subset")
    outcomes = autograde(course, SUBSET, jobs=2, db_url=url, cell_timeout=10, budget=40, stream=io.StringIO())
    local = scores(url)
    remote = {k: v for k, v in scores(cluster_demo["url"]).items() if k[1] in SUBSET}
    assert local == remote and len(local) >= 20
    rows = {(o.assignment, o.student): o.status for o in outcomes}
    table = cluster_demo["res"].stdout
    for (a, s), status in rows.items():
        assert any(ln.split()[:3] == [a, s, status] for ln in table.splitlines()), (a, s, status)

    def files(root):
        return sorted(str(p.relative_to(root)) for p in (root / "autograded").rglob("*")
                      if p.is_file() and p.relative_to(root / "autograded").parts[1] in SUBSET)

    assert files(course) == files(cluster_demo["course"]) and files(course)


def test_progress_and_summary_look_like_local(cluster_demo):
    from helpers.instructor.demo import CORRUPT, MISSING

    out = cluster_demo["res"].stdout
    lines = progress_lines(out)
    n = sum(1 for _ in (cluster_demo["course"] / "submitted").glob("*/*"))
    bad = sum(len(v) for v in CORRUPT.values()) + sum(len(v) for v in MISSING.values())
    assert len(lines) == n and lines[-1].startswith("[" + "#" * 24 + "]") and f"{n}/{n}" in lines[-1]
    assert out.splitlines()[0].startswith("cluster: 2 worker process(es) on 1 machine(s); sandbox: bubblewrap")
    assert f"{n - bad} graded, 0 skipped, 0 failed, 1 corrupt, 1 missing, 0 rejected" in out
    assert "timed out" in next(ln for ln in lines if "07_relu / ivan" in ln)
    auto = cluster_demo["course"] / "autograded" / "alice" / "07_relu" / "relu.ipynb"
    assert auto.is_file() and oct(auto.stat().st_mode & 0o777) == "0o444"


def test_a_killed_worker_loses_and_doubles_nothing(cluster, cluster_demo, demo_class, postgres_server, tmp_path):
    """SIGKILL of a real worker process while it grades: Dask gives its task to the other worker (the
    nanny restarts the dead one), and every submission is written once."""
    import psycopg

    course = copy_class(demo_class, tmp_path / "killed", SUBSET)
    url = postgres_server.create_database("killed")
    before = cluster.worker_pids()
    proc = subprocess.Popen([CLI, "--root", str(course), "--db-url", url, "autograde", "--all",
                             "--scheduler", cluster.address, *DEMO_SETTINGS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    killed = None
    end = time.monotonic() + 240
    while killed is None and time.monotonic() < end and proc.poll() is None:
        busy = {w: keys for w, keys in cluster.client.processing().items()
                if any("cnn-course-grade" in str(k) for k in keys)}
        if busy:
            time.sleep(1.5)   # inside the grading of that submission
            worker = sorted(busy)[0]
            killed = before.get(worker)
            if killed:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    out, err = proc.communicate(timeout=600)
    assert killed, "no worker was seen grading"
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    lines = progress_lines(out)
    names = [LINE.match(ln).groups() for ln in lines]
    assert len(names) == len(set(names)), "a submission was reported twice:\n" + "\n".join(lines)
    graded = [ln for ln in lines if " ok " in ln]
    assert len(graded) == 7 and not [ln for ln in lines if " FAIL " in ln and "died" in ln], out
    remote = {k: v for k, v in scores(cluster_demo["url"]).items() if k[1] in SUBSET}
    assert scores(url) == remote
    with psycopg.connect(postgres_server.dsn("killed")) as con:
        dup = con.execute("SELECT COUNT(*) FROM (SELECT notebook_id, cell_id, COUNT(*) c FROM grade "
                          "GROUP BY notebook_id, cell_id HAVING COUNT(*) > 1) d").fetchone()[0]
        subs = con.execute("SELECT COUNT(*) FROM submitted_assignment").fetchone()[0]
    assert dup == 0 and subs == 7
    cluster.wait_workers()
    assert killed not in cluster.worker_pids().values()


def test_a_poison_submission_is_reported_by_name(cluster, demo_class, postgres_server, tmp_path):
    """The worker process dies each time it starts grading poison-pill's submission: after
    allowed-failures + 1 = 3 dead workers it is failed by name; the others are graded."""
    course = copy_class(demo_class, tmp_path / "poison", ["02_conv_single_step"], ["alice", "cara"])
    shutil.copytree(course / "submitted" / "alice", course / "submitted" / POISON)
    url = postgres_server.create_database("poison")
    res = cli("--root", str(course), "--db-url", url, "autograde", "02_conv_single_step",
              "--scheduler", cluster.address, *DEMO_SETTINGS, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = progress_lines(res.stdout)
    poison = [ln for ln in lines if f"/ {POISON}" in ln]
    assert len(poison) == 1 and " FAIL " in poison[0] and "died each time it graded this submission (3 workers)" \
        in poison[0], res.stdout
    assert sum(" ok " in ln for ln in lines) == 2
    got = scores(url)
    assert got[("alice", "02_conv_single_step", "test_conv_single_step_hidden")] == 3
    assert not [k for k in got if k[0] == POISON and got[k]]
    cluster.wait_workers()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs") / "tls"
    res = cli("cluster", "certs", "--out", str(d))
    assert res.returncode == 0, res.stderr
    assert "dask scheduler --protocol tls" in res.stdout and "--tls-cert" in res.stdout
    assert oct((d / "client-key.pem").stat().st_mode & 0o777) == "0o600"
    return d


def test_tls_cluster_grades_and_refuses_strangers(certs, demo_class, postgres_server, tmp_path):
    c = Cluster(tmp_path, 1, tls_dir=certs)
    try:
        course = copy_class(demo_class, tmp_path / "tls", ["02_conv_single_step"], ["alice", "cara"])
        url = postgres_server.create_database("tls")
        res = cli("--root", str(course), "--db-url", url, "autograde", "02_conv_single_step",
                  "--scheduler", c.address, "--tls-dir", str(certs), *DEMO_SETTINGS)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert sum(" ok " in ln for ln in progress_lines(res.stdout)) == 2
        assert scores(url)[("cara", "02_conv_single_step", "test_conv_single_step_canonical")] == 0
        # no certificate at all: the tool says what it needs
        res = cli("--root", str(course), "--db-url", url, "autograde", "--all", "--scheduler", c.address)
        assert res.returncode == 2 and "needs a CA certificate, a certificate and its key" in res.stderr
        # certificates of another CA: the scheduler refuses the handshake
        other = tmp_path / "other"
        assert cli("cluster", "certs", "--out", str(other)).returncode == 0
        res = cli("--root", str(course), "--db-url", url, "autograde", "--all", "--scheduler", c.address,
                  "--tls-dir", str(other))
        assert res.returncode == 2 and "cannot reach the Dask scheduler" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        # the course's CA, but no client certificate: refused by the scheduler (Dask requires one)
        probe = subprocess.run([sys.executable, "-c", (
            "import ssl, sys, socket\n"
            f"ctx = ssl.create_default_context(cafile={str(certs / 'ca.pem')!r}); ctx.check_hostname = False\n"
            f"s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {c.port}), timeout=10))\n"
            "s.settimeout(10)\n"
            "try:\n    s.sendall(b'x' * 16); data = s.recv(16)\nexcept (ssl.SSLError, OSError) as e:\n"
            "    print('refused', type(e).__name__); sys.exit(0)\n"
            "print('accepted', data); sys.exit(1)\n")], capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0 and "refused" in probe.stdout, probe.stdout + probe.stderr
    finally:
        c.stop()


@pytest.mark.parametrize("case", ["unreachable", "password", "sqlite", "insecure", "worker-insecure"])
def test_bad_input_is_one_clear_line(case, postgres_server, tmp_path):
    course = make_course(tmp_path / "course")
    (course / "submitted").mkdir()
    url = postgres_server.create_database(f"bad_{case.replace('-', '_')}")
    port = free_port()
    args, needle = {
        "unreachable": (["--db-url", url, "autograde", "--all", "--scheduler", f"tcp://127.0.0.1:{port}"],
                        f"cannot reach the Dask scheduler tcp://127.0.0.1:{port}"),
        "password": (["--db-url", postgres_server.url(f"bad_{case}", password="wrong-secret-pw"), "autograde",
                      "--all", "--scheduler", f"tcp://127.0.0.1:{port}"], "password authentication failed"),
        "sqlite": (["autograde", "--all", "--scheduler", f"tcp://127.0.0.1:{port}"],
                   "--scheduler needs a PostgreSQL gradebook"),
        "insecure": (["--db-url", url, "autograde", "--all", "--scheduler", "tcp://10.11.12.13:8786"],
                     "refusing the unencrypted scheduler tcp://10.11.12.13:8786"),
        "worker-insecure": (["worker", "tcp://10.11.12.13:8786"], "refusing the unencrypted scheduler"),
    }[case]
    t0 = time.monotonic()
    res = cli("--root", str(course), *args, timeout=120)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert postgres_server.password not in res.stderr + res.stdout and "wrong-secret-pw" not in res.stderr
    assert time.monotonic() - t0 < 60


@pytest.fixture(scope="session")
def graded_notebooks(demo_class, tmp_path_factory) -> dict:
    """alice's autograded 02 and 07, from a local run: what a worker would return."""
    from helpers.instructor.autograde import autograde

    course = copy_class(demo_class, tmp_path_factory.mktemp("graded_nbs"), ["02_conv_single_step", "07_relu"],
                        ["alice"])
    autograde(course, ["02_conv_single_step", "07_relu"], jobs=1, stream=io.StringIO())
    auto = course / "autograded" / "alice"
    return {"02": (auto / "02_conv_single_step" / "conv_single_step.ipynb").read_bytes(),
            "07": (auto / "07_relu" / "relu.ipynb").read_bytes()}


def test_the_host_takes_what_returns_as_data(graded_notebooks, postgres_server, tmp_path):
    """receive.accept on forged answers: another assignment's notebook, a duplicated or unknown graded
    cell, too many bytes, an outcome about someone else: refused, nothing written; forged points: the
    gradebook's points win."""
    import nbformat

    from helpers.instructor.cluster.receive import accept, max_notebook_bytes
    from helpers.instructor.grading.outcome import Task
    from helpers.instructor.nbapi import load_config
    from helpers.instructor.release import release

    course = make_course(tmp_path / "host")
    url = postgres_server.create_database("host_checks")
    config = load_config(course, url)
    release(config, ["02_conv_single_step", "07_relu"])
    good, other = graded_notebooks["02"], graded_notebooks["07"]
    task = Task("02_conv_single_step", "mallory", digest="d")
    (course / ".cnn-course-state" / "staged" / "mallory" / "02_conv_single_step").mkdir(parents=True)
    options = {"max_notebook_output_bytes": 1000}

    def answer(nb_bytes, **outcome):
        o = {"assignment": task.assignment, "student": task.student, "status": "graded", "reason": "",
             "seconds": 1.0, "flags": []}
        return {"outcome": {**o, **outcome}, "notebook": nb_bytes, "worker": "w"}

    def edited(change):
        nb = nbformat.reads(good.decode(), as_version=4)
        change(nb)
        return nbformat.writes(nb).encode()

    def dup(nb):
        nb.cells.append(next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")))

    def unknown(nb):
        next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")).metadata.nbgrader["grade_id"] = "x"

    refused = {
        "another assignment": answer(other),
        "duplicate graded cell": answer(edited(dup)),
        "unknown grade id": answer(edited(unknown)),
        "too big": answer(good + b" " * max_notebook_bytes(options)),
        "another student": answer(good, student="alice"),
        "not a notebook": answer(b"{not json"),
    }
    for why, res in refused.items():
        o = accept(res, task, course, config, options)
        assert o.status == "failed" and "refused" in o.reason, (why, o)
    assert not (course / "autograded").exists() and not scores(url)

    def forge_points(nb):
        for c in nb.cells:
            if c.metadata.get("nbgrader", {}).get("grade"):
                c.metadata.nbgrader["points"] = 100

    o = accept(answer(edited(forge_points)), task, course, config, options)
    assert o.status == "graded", o
    got = scores(url)
    assert got == {("mallory", "02_conv_single_step", "test_conv_single_step_canonical"): 2.0,
                   ("mallory", "02_conv_single_step", "test_conv_single_step_hidden"): 3.0}
    assert (course / "autograded" / "mallory" / "02_conv_single_step" / "conv_single_step.ipynb").is_file()


def test_the_hosts_writers_write_each_once_and_fail_by_name(graded_notebooks, postgres_server, tmp_path):
    """The host's writer processes (cluster/writers.py), for real: two of them write as accept()
    alone would, score included. Writers SIGKILLed with writes in flight break the pool: every write
    it held is made again in a new pool, once, and reported once; writes lost in two broken pools in
    a row fail by name, with their state record removed. A gradebook that refuses the password
    fails the submission in one line without the password."""
    from helpers.instructor.cluster.receive import accept
    from helpers.instructor.cluster.writers import Writers
    from helpers.instructor.grading.outcome import Task
    from helpers.instructor.grading.state import state_file
    from helpers.instructor.nbapi import gradebook, load_config
    from helpers.instructor.release import release

    course = make_course(tmp_path / "writers")
    url = postgres_server.create_database("writers")
    config = load_config(course, url)
    release(config, ["02_conv_single_step"])
    students = [f"s{i:02d}" for i in range(16)]
    with gradebook(config) as gb:
        for s in students:
            gb.add_student(s)
    for s in students:
        (course / ".cnn-course-state" / "staged" / s / "02_conv_single_step").mkdir(parents=True)

    def answer(s):
        return {"outcome": {"assignment": "02_conv_single_step", "student": s, "status": "graded", "seconds": 1.0},
                "notebook": graded_notebooks["02"], "worker": "w"}

    def submit(writers, names):
        for s in names:
            writers.submit(answer(s), Task("02_conv_single_step", s))

    def drain(writers, n, timeout=180):
        got, end = [], time.monotonic() + timeout
        while len(got) < n and time.monotonic() < end:
            got += [o for o, _ in writers.finished(block=1.0)]
        assert len(got) == n and not writers.pending, (got, writers.pending)
        return {o.student: o for o in got}

    def kill(pids):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    writers = Writers(2, course, config, {})
    try:
        submit(writers, students[:4])
        first = drain(writers, 4)
        assert all(o.status == "graded" and (o.score, o.max_score) == (5.0, 5.0) for o in first.values()), first
        # the pool's processes die while eight writes are queued or running: all made again, once
        pids = writers.pids()
        assert len(pids) == 2, pids
        submit(writers, students[4:12])
        kill(pids)
        again = drain(writers, 8)
        assert sorted(again) == students[4:12] and all(o.status == "graded" for o in again.values()), again
        assert not set(writers.pids()) & set(pids)
        # two broken pools in a row: those writes fail by name, their state records removed
        submit(writers, students[12:])
        kill(writers.pids())
        end = time.monotonic() + 60
        old = set(pids) | set(writers.pids())
        while time.monotonic() < end:
            writers.finished(block=0.2)   # notices the break, starts a new pool, sends the four again
            fresh = [p for p in writers.pids() if p not in old]
            if fresh:
                kill(fresh)
                break
        lost = drain(writers, 4)
        assert sorted(lost) == students[12:], lost
        for s, o in lost.items():
            assert o.status == "failed" and "twice" in o.reason and o.student == s, o
            assert not state_file(course, "02_conv_single_step", s).exists()
        submit(writers, students[12:])
        assert all(o.status == "graded" for o in drain(writers, 4).values())
    finally:
        writers.close()
    got = scores(url)
    assert {k[0] for k in got} == set(students) and len(got) == 2 * len(students)
    assert all(v == {"test_conv_single_step_canonical": 2.0, "test_conv_single_step_hidden": 3.0}[k[2]]
               for k, v in got.items())

    # the same write by accept() alone, into its own database: the same gradebook
    url2 = postgres_server.create_database("writers_direct")
    config2 = load_config(course, url2)
    release(config2, ["02_conv_single_step"])
    with gradebook(config2) as gb:
        gb.add_student("s00")
    accept(answer("s00"), Task("02_conv_single_step", "s00"), course, config2, {})
    assert {k: v for k, v in got.items() if k[0] == "s00"} == scores(url2)

    # a gradebook that refuses the password
    bad = load_config(course, url.replace(postgres_server.password, "wrong-password-123"))
    writers = Writers(1, course, bad, {})
    try:
        submit(writers, ["s00"])
        o = drain(writers, 1)["s00"]
    finally:
        writers.close()
    assert o.status == "failed" and o.reason.startswith("the host could not write its grades"), o
    assert "wrong-password-123" not in o.reason and "\n" not in o.reason, o


def test_a_worker_without_sandbox_takes_only_no_sandbox_runs(demo_class, postgres_server, tmp_path):
    """`cnn-course worker --no-sandbox`: a sandboxed run is refused in one line before anything is
    sent; `autograde --no-sandbox` grades on it, to the same scores as a local --no-sandbox run."""
    from helpers.instructor.autograde import autograde

    c = Cluster(tmp_path, 1, flags=["--no-sandbox"])
    try:
        course = copy_class(demo_class, tmp_path / "bare", ["02_conv_single_step"], ["alice", "cara", "gus"])
        url = postgres_server.create_database("bare_worker")
        res = cli("--root", str(course), "--db-url", url, "autograde", "--all", "--scheduler", c.address,
                  timeout=300)
        assert res.returncode == 2 and "run without a sandbox" in res.stderr, res.stdout + res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
        assert not (course / "autograded").exists() and not scores(url)
        res = cli("--root", str(course), "--db-url", url, "autograde", "--all", "--scheduler", c.address,
                  "--no-sandbox", timeout=600)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert res.stdout.splitlines()[0].startswith("cluster: 1 worker process(es) on 1 machine(s); sandbox: OFF")
    finally:
        c.stop()
    local = copy_class(demo_class, tmp_path / "local", ["02_conv_single_step"], ["alice", "cara", "gus"])
    url2 = postgres_server.create_database("bare_local")
    autograde(local, ["02_conv_single_step"], jobs=1, db_url=url2, sandbox=False, stream=io.StringIO())
    assert scores(url) == scores(url2) and len(scores(url)) == 6


def test_a_new_version_of_the_course_replaces_the_old_bundle(cluster, demo_class, tmp_path):
    """announce() of a changed course unregisters the bundle of the version before it: the scheduler
    keeps only the new one (a worker that joins later builds only that), and every worker drops the
    old bundle's bytes."""
    import nbformat

    from helpers.instructor.cluster.bundle import plugin_name
    from helpers.instructor.cluster.host import announce
    from helpers.instructor.nbapi import load_config

    course = copy_class(demo_class, tmp_path / "versions", ["01_zero_padding"])
    old = announce(cluster.client, load_config(course), None, ["01_zero_padding"])
    path = course / "notebooks" / "01_zero_padding" / "zero_padding.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("An erratum, added after the first release."))
    nbformat.write(nb, str(path))
    new = announce(cluster.client, load_config(course), None, ["01_zero_padding"])
    assert new.digest != old.digest
    names = cluster.client.run_on_scheduler(lambda dask_scheduler=None: list(dask_scheduler.worker_plugins))
    assert plugin_name(new.digest) in names and plugin_name(old.digest) not in names, names

    def held():
        from helpers.instructor.cluster.bundle import BUNDLES

        return sorted(BUNDLES)

    end = time.monotonic() + 30
    while time.monotonic() < end:
        got = cluster.client.run(held)
        if all(old.digest not in v and new.digest in v for v in got.values()):
            break
        time.sleep(0.5)
    assert len(got) == 2 and all(old.digest not in v and new.digest in v for v in got.values()), got
