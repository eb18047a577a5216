"""``make bench``: figures, not timed tests. Everything compared is measured side by side in one run.

1. How long each source notebook takes to execute (fresh kernel, top to bottom).
2. Autograde throughput on one synthetic class (3 correct submissions of each of the eight
   notebooks): plain ``nbgrader autograde`` run serially (its own CLI, one process per
   assignment, on the course as it is: figures drawn), against ``cnn-course autograde`` with the
   sandbox and the out-of-kernel check on, at ``--jobs 1`` and ``--jobs 2``. Submissions per
   minute, the ratio to the serial run, and where the time of one submission goes (from the
   result records: kernel start, the setup cell's imports, lesson, answer and test cells, the
   out-of-kernel check, and nbgrader's own work, which is the rest).
3. Training notebook 10's network with the reference solutions and the graded settings
   (``helpers.network.TRAINING``): the time and the test accuracy, with NumPy's BLAS on one thread
   (as the grading sandbox runs it) and on the default threads, each in a fresh process.
4. The fast layers of notebook 09 (its reference solutions) against the loop versions of notebooks
   03 and 04 on the race layer (goals: 1,000x forward, 500x backward), and against PyTorch in float64
   on a large layer (goal: at least as fast), with one ``einsum`` on the strided view beside them.
   ``python -m helpers.instructor.bench fast`` runs this part alone.
5. ``--cluster`` (``make bench`` runs it too; ``python -m helpers.instructor.bench --cluster`` runs
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

#: The autograde workload: notebooks 01 to 08, as the throughput figures were first measured.
BENCH_ASSIGNMENTS = tuple(a.id for a in ASSIGNMENTS if a.id[:2] <= "08")


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


TRAIN_ONCE = """
import json, time
import numpy as np
from helpers.data import load_digits
from helpers.instructor.refdata import reference_functions
from helpers.network import training_args
ref = reference_functions()
args = training_args()
t0 = time.perf_counter()
params, losses = ref["train_cnn"](*args)
seconds = time.perf_counter() - t0
_, _, X_test, y_test = load_digits()
accuracy = float(np.mean(np.argmax(ref["cnn_forward"](X_test, params)[0], axis=1) == y_test))
print(json.dumps({"seconds": seconds, "accuracy": accuracy, "steps": len(losses)}))
"""


def training_time() -> dict[str, dict]:
    """Notebook 10's graded training run with the reference solutions, in a fresh process per setting."""
    import json

    from ..network import TRAINING

    print(f"\n3. Training notebook 10's network (reference solutions, {TRAINING}):")
    results = {}
    for label, env in (("one BLAS thread (as graded)", {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                                         "MKL_NUM_THREADS")}),
                       ("default BLAS threads", {})):
        out = subprocess.run([sys.executable, "-c", TRAIN_ONCE], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, **env}, check=True)
        results[label] = r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {label:<28} {r['steps']} steps in {r['seconds']:6.2f} s, test accuracy {r['accuracy']:.2%}")
    return results


RACE_LAYER = ((100, 31, 31, 3), (3, 3, 3, 25), {"pad": 1, "stride": 2})
LARGE_LAYER = ((64, 32, 32, 64), (3, 3, 64, 64), {"pad": 1, "stride": 1})


def _layer(shapes, seed=0):
    import numpy as np

    A_shape, W_shape, hp = shapes
    rng = np.random.default_rng(seed)
    return rng.standard_normal(A_shape), rng.standard_normal(W_shape), rng.standard_normal((1, 1, 1, W_shape[3])), hp


def _torch_contestant():
    """PyTorch in float64 with the course's contract (NHWC NumPy arrays in and out, views both ways);
    its backward pass is autograd through the graph its forward pass recorded."""
    import torch
    import torch.nn.functional as F

    def forward(A_prev, W, b, hp):
        x = torch.from_numpy(A_prev).permute(0, 3, 1, 2).requires_grad_(True)
        w = torch.from_numpy(W).permute(3, 2, 0, 1).requires_grad_(True)
        bias = torch.from_numpy(b.reshape(-1)).requires_grad_(True)
        Z = F.conv2d(x, w, bias, stride=hp["stride"], padding=hp["pad"])
        return Z.detach().permute(0, 2, 3, 1).numpy(), (A_prev, W, b, hp, (Z, x, w, bias))

    def backward(dZ, cache):
        Z, x, w, bias = cache[4]
        dx, dw, db = torch.autograd.grad(Z, (x, w, bias), torch.from_numpy(dZ).permute(0, 3, 1, 2), retain_graph=True)
        return dx.permute(0, 2, 3, 1).numpy(), dw.permute(2, 3, 1, 0).numpy(), db.reshape(1, 1, 1, -1).numpy()

    return forward, backward, f"PyTorch {torch.__version__} float64, {torch.get_num_threads()} threads"


def fast_layers() -> dict:
    """Section 3: the reference fast layers against the loop versions and PyTorch, side by side."""
    import numpy as np

    from ..speed import best_time, conv_flops, gemm_peak
    from .refdata import reference_functions

    ref = reference_functions()
    fast = (ref["conv_forward_fast"], ref["conv_backward_fast"])
    loops = (ref["conv_forward"], ref["conv_backward"])
    torch_fb = _torch_contestant() if _frameworks_installed() else None
    peak = gemm_peak()
    print(f"\n4. Fast layers (notebook 09's reference solutions); float64 GEMM peak here {peak:.1f} GFLOP/s; "
          "best of several runs (a loop version: one run)")

    def times(pair, layer, repeat):
        A, W, b, hp = layer
        Z, cache = pair[0](A, W, b, hp)
        dZ = np.random.default_rng(1).standard_normal(np.shape(Z))
        return (best_time(pair[0], A, W, b, hp, repeat=repeat, budget=20),
                best_time(pair[1], dZ, cache, repeat=repeat, budget=20))

    figures = {}
    race = _layer(RACE_LAYER)
    flops = conv_flops(race[0].shape, race[1].shape, race[3])
    t_loop, t_fast = times(loops, race, 1), times(fast, race, 20)
    print(f"  race layer A_prev {RACE_LAYER[0]}, W {RACE_LAYER[1]}, {RACE_LAYER[2]} ({flops / 1e6:.1f} MFLOP forward):")
    rows = [("loops (03, 04)", t_loop), ("fast (09)", t_fast)]
    if torch_fb:
        rows.append((torch_fb[2], times(torch_fb[:2], race, 20)))
    for name, (tf, tb) in rows:
        print(f"    {name:<40} forward {tf * 1e3:9.2f} ms ({flops / tf / 1e9:6.2f} GFLOP/s)   "
              f"backward {tb * 1e3:9.2f} ms ({2 * flops / tb / 1e9:6.2f} GFLOP/s)")
    ratio_f, ratio_b = t_loop[0] / t_fast[0], t_loop[1] / t_fast[1]
    print(f"    fast against loops: forward {ratio_f:,.0f}x (goal 1,000x: {'met' if ratio_f >= 1000 else 'NOT met'}), "
          f"backward {ratio_b:,.0f}x (goal 500x: {'met' if ratio_b >= 500 else 'NOT met'})")
    figures.update(race_forward_x=ratio_f, race_backward_x=ratio_b)

    large = _layer(LARGE_LAYER)
    flops = conv_flops(large[0].shape, large[1].shape, large[3])
    print(f"  large layer A_prev {LARGE_LAYER[0]}, W {LARGE_LAYER[1]}, {LARGE_LAYER[2]} "
          f"({flops / 1e9:.2f} GFLOP forward):")
    t_fast = times(fast, large, 3)
    A, W, b, hp = large
    P = np.pad(A, ((0, 0), (1, 1), (1, 1), (0, 0)))
    t_einsum = best_time(lambda: np.einsum("ihwkuv,uvkc->ihwc",
                                           np.lib.stride_tricks.sliding_window_view(P, (3, 3), axis=(1, 2)), W) + b,
                         repeat=1)
    rows = [("fast (09): view, columns, one GEMM", t_fast), ("one einsum on the view (forward only)", (t_einsum, None))]
    if torch_fb:
        t_torch = times(torch_fb[:2], large, 3)
        rows.append((torch_fb[2], t_torch))
    for name, (tf, tb) in rows:
        back = f"backward {tb * 1e3:9.1f} ms ({2 * flops / tb / 1e9:6.2f} GFLOP/s)" if tb else ""
        print(f"    {name:<40} forward {tf * 1e3:9.1f} ms ({flops / tf / 1e9:6.2f} GFLOP/s)   {back}")
    if torch_fb:
        print(f"    fast against PyTorch: forward {t_torch[0] / t_fast[0]:.2f}x, backward {t_torch[1] / t_fast[1]:.2f}x "
              f"(goal: at least 1x forward: {'met' if t_fast[0] <= t_torch[0] else 'NOT met'})")
        figures.update(large_forward_vs_torch=t_torch[0] / t_fast[0], large_backward_vs_torch=t_torch[1] / t_fast[1])
    else:
        print("    PyTorch: not installed (make frameworks), so no comparison")
    return figures


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
    print(f"\n5. Local processes against a Dask cluster on this machine, PostgreSQL gradebook: {n} submissions")
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

                    host_cost.append((STATS.get("accept_seconds", 0.0) / max(STATS.get("accepted", 1), 1),
                                      STATS.get("writers", 1)))
            finally:
                cluster.stop()
    for name, rate in rates.items():
        jobs = 2 if "2" in name else 1
        base = rates[f"local --jobs {jobs}"]
        print(f"  {name:<28} {rate:6.1f} submissions/min   {(base / rate - 1) * 100:+5.1f}% time vs local --jobs {jobs}")
    per = sum(c for c, _ in host_cost) / max(len(host_cost), 1)
    writers = max((w for _, w in host_cost), default=1)
    print(f"  the host's work per submission (check the answer, write PostgreSQL and autograded/, in one of its "
          f"{writers} writer processes): {per * 1000:.0f} ms, so about {3600 / max(per, 1e-9):,.0f} submissions "
          f"an hour per writer process")
    return rates


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    print(f"cores: {os.cpu_count()}\n")
    if argv == ["fast"]:
        fast_layers()
        return
    if "--cluster" in argv:   # only part 5; --students N (default 3) per assignment
        n = int(argv[argv.index("--students") + 1]) if "--students" in argv else 3
        cluster_throughput(n)
        return
    notebook_times()
    autograde_throughput()
    training_time()
    fast_layers()
    cluster_throughput()


if __name__ == "__main__":
    main()
