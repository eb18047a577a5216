"""``cnn-course worker`` and ``cnn-course cluster scheduler|certs``: the command lines of a cluster.

``cnn-course worker SCHEDULER --nworkers N`` prepares a worker machine and becomes (``exec``) a
real ``dask worker`` with N worker processes, each under a nanny that restarts it when it dies,
each with one thread (one submission at a time) and one sandbox slot (:mod:`.preload`)::

    dask worker SCHEDULER --nthreads 1 --nworkers N --preload helpers.instructor.cluster.preload \\
        --no-dashboard [--tls-ca-file ca.pem --tls-cert worker.pem --tls-key worker-key.pem]

Before that it creates the N sandbox users and runs the sandbox probe: without a working sandbox
it refuses to start, unless ``--no-sandbox`` (then the workers grade only ``--no-sandbox`` runs).
Options after ``--`` go to ``dask worker`` as they are (``-- --memory-limit 6GiB``).

``cnn-course cluster scheduler`` becomes ``dask scheduler`` with the settings grading needs:
``distributed.scheduler.allowed-failures`` (how many workers a submission may kill before it is
reported as failed; 2 here: three tries), TLS required when certificates are given, no
dashboard (it would show every student id to anyone who reaches it), and a ``tcp://`` scheduler
only on a loopback address unless ``--insecure``.
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from ..nbapi import CourseError
from .security import TLSFiles, certs_howto, check_address, dask_tls_args, make_certs, _host_port

PRELOAD = "helpers.instructor.cluster.preload"
ALLOWED_FAILURES = 2


def _dask() -> str:
    exe = Path(sys.executable).parent / "dask"
    if not exe.exists():
        raise CourseError(f"no dask command next to {sys.executable}: pip install 'dask[distributed]'")
    return str(exe)


def _reachable(address: str, timeout: float = 5) -> None:
    _, host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise CourseError(f"cannot reach the Dask scheduler {address} within {int(timeout)} s: "
                          f"{exc.strerror or exc}") from None


def worker_argv(scheduler: str, nworkers: int, tls: TLSFiles | None, extra: list[str]) -> list[str]:
    argv = [_dask(), "worker", scheduler, "--nthreads", "1", "--nworkers", str(nworkers), "--preload", PRELOAD,
            "--no-dashboard"]
    if tls is not None and tls.given:
        argv += dask_tls_args(tls)
    return argv + list(extra)


def worker_env(no_sandbox: bool, tls: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CNN_COURSE_DB_URL"}   # no gradebook on a worker
    env["CNN_COURSE_WORKER_SANDBOX"] = "0" if no_sandbox else "1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if tls:
        env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] = "True"
    return env


def start_worker(scheduler: str, nworkers: int = 1, no_sandbox: bool = False, tls: TLSFiles | None = None,
                 insecure: bool = False, extra: list[str] = (), stream=None) -> None:
    """Check the machine, then ``exec`` the ``dask worker`` command (never returns on success)."""
    from ..options import GradingOptions
    from ..sandbox import Policy, SandboxError, ensure_users, probe

    out = stream or sys.stdout
    scheme = check_address(scheduler, insecure)
    tls = tls or TLSFiles()
    if scheme == "tls":
        tls.check()
    elif tls.given:
        raise CourseError("--tls-* is for a tls:// scheduler; this one is tcp://")
    if nworkers < 1:
        raise CourseError("--nworkers must be at least 1")
    if no_sandbox:
        print("sandbox: OFF (--no-sandbox): these workers grade only runs of trusted code (autograde --no-sandbox)",
              file=out, flush=True)
    else:
        try:
            ensure_users(nworkers)
            print(probe(Policy.from_options(GradingOptions(), 0)).summary(), file=out, flush=True)
        except SandboxError as exc:
            raise CourseError(f"the grading sandbox does not work on this machine: {exc}. Fix it (as root, with "
                              f"bubblewrap: make system-deps), or start workers for trusted code only with "
                              f"--no-sandbox") from None
    _reachable(scheduler)
    argv = worker_argv(scheduler, nworkers, tls if scheme == "tls" else None, list(extra))
    print("starting: " + " ".join(argv), file=out, flush=True)
    os.execve(argv[0], argv, worker_env(no_sandbox, scheme == "tls"))


def scheduler_argv(host: str, port: int, tls: TLSFiles | None, extra: list[str]) -> list[str]:
    argv = [_dask(), "scheduler", "--host", host, "--port", str(port), "--no-dashboard",
            "--protocol", "tls" if tls is not None and tls.given else "tcp"]
    if tls is not None and tls.given:
        argv += dask_tls_args(tls)
    return argv + list(extra)


def start_scheduler(host: str = "127.0.0.1", port: int = 8786, tls: TLSFiles | None = None, insecure: bool = False,
                    allowed_failures: int = ALLOWED_FAILURES, extra: list[str] = (), stream=None) -> None:
    out = stream or sys.stdout
    tls = tls or TLSFiles()
    scheme = "tls" if tls.given else "tcp"
    check_address(f"{scheme}://{host}:{port}", insecure)
    argv = scheduler_argv(host, port, tls if tls.given else None, list(extra))
    env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=str(int(allowed_failures)))
    env.pop("CNN_COURSE_DB_URL", None)
    if tls.given:
        env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] = "True"
    print(f"starting (allowed-failures {allowed_failures}): " + " ".join(argv), file=out, flush=True)
    os.execve(argv[0], argv, env)


def certs(out_dir: str, hosts: list[str], days: int, stream=None) -> dict:
    out = stream or sys.stdout
    written = make_certs(out_dir, hosts, days)
    print(certs_howto(out_dir, hosts[0] if hosts else "SCHEDULER_HOST"), file=out)
    return written
