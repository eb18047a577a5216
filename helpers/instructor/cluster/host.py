"""The instructor's side of a distributed run: connect, submit every submission, write each once.

:func:`connect` opens a ``distributed.Client`` with a short timeout (an unreachable scheduler is
one line, not a hang), TLS required for ``tls://`` and results routed through the scheduler
(``direct_to_workers=False``: the instructor's machine needs to reach the scheduler only).
:func:`run` registers the course bundle as a worker plugin, submits one task per submission
(:func:`.remote.grade_remote`, ``pure=False``, a key that names the submission), and takes each
finished future exactly once: the answer is checked and written by :func:`.receive.accept`; a
``KilledWorker`` (the submission killed every worker it ran on, ``allowed-failures + 1`` of them)
and any other error are that submission's ``failed`` outcome, by name, and the rest of the class
goes on. If no submission finishes for a whole per-submission budget (plus a margin), the rest are
cancelled and reported failed: a host-side bound on top of the workers' own deadlines.
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from ..grading.discover import staging_root
from ..grading.outcome import Outcome, Task
from ..nbapi import CourseError
from .bundle import BundlePlugin, pack_submission
from .remote import grade_remote, report
from .security import TLSFiles, check_address, security

CONNECT_TIMEOUT = 10     # seconds to reach the scheduler
WORKER_WAIT = 60         # seconds to wait for the first worker
QUIET = ("distributed", "tornado", "asyncio")


def _quiet() -> None:
    """distributed logs its connection attempts and closing; the run's output is ours alone."""
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(address: str, tls: TLSFiles | None = None, insecure: bool = False, timeout: float = CONNECT_TIMEOUT):
    """A Client of the scheduler at ``address``; :class:`CourseError` (one line) when it cannot be had."""
    import dask
    from distributed import Client

    scheme = check_address(address, insecure)
    tls = tls or TLSFiles()
    if scheme == "tcp" and tls.given:
        raise CourseError("--tls-* is for a tls:// scheduler; this one is tcp://")
    sec = security(tls, "client") if scheme == "tls" else None
    _quiet()
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": f"{int(timeout)}s"}):
            return Client(address, security=sec, timeout=timeout, direct_to_workers=False,
                          set_as_default=False, heartbeat_interval=2000)
    except Exception as exc:   # OSError, TimeoutError, ssl errors: all mean "not reached"
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CourseError(f"cannot reach the Dask scheduler {address} within {int(timeout)} s: {text}") from None


def workers_line(client, opts) -> str:
    """Wait for a worker, check every worker's sandbox, and say in one line what the cluster is."""
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except Exception:
        raise CourseError(f"no Dask worker joined the scheduler within {WORKER_WAIT} s: start some with "
                          f"`cnn-course worker SCHEDULER`") from None
    reports = client.run(report)
    unprepared = sorted(a for a, r in reports.items() if not r.get("prepared"))
    if unprepared:
        raise CourseError(f"worker(s) {', '.join(unprepared[:3])} were not started by `cnn-course worker` "
                          f"(or with --preload helpers.instructor.cluster.preload): they have no sandbox slot")
    bare = sorted(a for a, r in reports.items() if not r.get("sandbox"))
    if opts.sandbox and bare:
        raise CourseError(f"worker(s) {', '.join(bare[:3])} run without a sandbox (cnn-course worker "
                          f"--no-sandbox): restart them with a sandbox, or grade trusted code with --no-sandbox")
    probes = sorted({re.sub(r"user \S+ \(uid \d+\)", "a user of its own", r.get("probe", ""))
                     for r in reports.values()})
    hosts = sorted({r.get("host", "?") for r in reports.values()})
    return (f"cluster: {len(reports)} worker process(es) on {len(hosts)} machine(s); "
            + (probes[0] if len(probes) == 1 else f"{len(probes)} different sandbox reports; first: {probes[0]}"))


def _job(root, task: Task, options: dict) -> dict:
    files = pack_submission(staging_root(root) / task.student / task.assignment)
    return {"assignment": task.assignment, "student": task.student, "files": files, "digest": task.digest,
            "timestamp": task.timestamp, "notes": list(task.notes), "options": options}


def task_key(task: Task) -> str:
    return f"cnn-course-grade-{task.assignment}-{task.student}-{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Hands submissions to workers that have a free thread, one task per thread, pinned there.

    A worker never holds a task waiting behind the one it runs, so when a worker dies only the task
    it was running is counted against (Dask's ``suspicious`` count): a poison submission can never
    take an innocent one, queued on the same worker, down with it. A task whose worker dies moves
    on (``allow_other_workers``); a finished task frees its worker at once (no polling delay).
    """

    def __init__(self, client):
        self.client = client
        self.recent: dict = {}   # future -> (worker, time): submitted, not yet seen by the scheduler

    def free_slots(self) -> list[str]:
        processing = self.client.processing()
        nthreads = self.client.nthreads()
        now = time.monotonic()
        seen = {k for keys in processing.values() for k in keys}
        for f in list(self.recent):
            if f.key in seen or f.done() or now - self.recent[f][1] > 10:
                del self.recent[f]
        slots = []
        for w in sorted(nthreads):
            used = max(len(processing.get(w, ())), 0) + sum(1 for rw, _ in self.recent.values() if rw == w)
            slots += [w] * max(0, nthreads[w] - used)
        return slots

    def submit(self, worker: str, *args, **kw):
        f = self.client.submit(*args, workers=[worker], allow_other_workers=True, **kw)
        self.recent[f] = (worker, time.monotonic())
        return f


def run(client, bundle, tasks: list[Task], root, config, options: dict, progress) -> list[Outcome]:
    from distributed import wait
    from distributed.scheduler import KilledWorker

    from .receive import accept

    client.register_plugin(BundlePlugin(bundle.digest, bundle.data), name=f"cnn-course-bundle-{bundle.digest[:24]}")
    queue = list(tasks)
    dispatcher = Dispatcher(client)
    futures: dict = {}
    stall = options["budget"] + max(30, 2 * options["cell_timeout"]) + 60
    outcomes: list[Outcome] = []
    started: dict = {}
    last_done = time.monotonic()

    def dispatch() -> None:
        for worker in dispatcher.free_slots() if queue else []:
            if not queue:
                break
            t = queue.pop(0)
            f = dispatcher.submit(worker, grade_remote, bundle.digest, _job(root, t, options), key=task_key(t),
                                  pure=False, retries=0)
            futures[f], started[f] = t, time.monotonic()

    def finish(o: Outcome) -> None:
        outcomes.append(o)
        progress.line(o)

    try:
        dispatch()
        while futures or queue:
            if not futures:
                time.sleep(0.5)   # every worker is gone for now: wait for one to (re)join
                done = set()
            else:
                try:
                    with client.as_current():
                        done, _ = wait(list(futures), timeout=1.0, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
            dispatch()            # the workers that just finished (or joined) get the next ones first
            if done:
                last_done = time.monotonic()
            elif time.monotonic() - last_done > stall:
                for f in sorted(futures, key=lambda f: (futures[f].assignment, futures[f].student)):
                    f.cancel()
                for t in [futures[f] for f in futures] + queue:
                    finish(Outcome(t.assignment, t.student, "failed", f"no result from the cluster within {stall} s "
                                   f"(no submission finished in that time); cancelled"))
                futures.clear()
                queue.clear()
                break
            for f in sorted(done, key=lambda f: (futures[f].assignment, futures[f].student)):
                t = futures.pop(f)
                try:
                    res = f.result()
                except KilledWorker as exc:
                    o = Outcome(t.assignment, t.student, "failed",
                                f"the grading worker died each time it graded this submission "
                                f"({exc.allowed_failures + 1} workers): not graded; look at it by hand",
                                time.monotonic() - started[f])
                except Exception as exc:
                    o = Outcome(t.assignment, t.student, "failed",
                                f"the cluster task failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                                time.monotonic() - started[f])
                else:
                    o = accept(res, t, root, config, options)
                f.release()
                finish(o)
    except BaseException:
        client.cancel(list(futures))
        raise
    return outcomes
