"""The instructor's side of a distributed run: connect, submit every submission, write each once.

:func:`connect` opens a ``distributed.Client`` with a short timeout (an unreachable scheduler is
one line, not a hang), TLS required for ``tls://`` and results routed through the scheduler
(``direct_to_workers=False``: the instructor's machine needs to reach the scheduler only).
:func:`announce` registers the course bundle as a worker plugin (before the host stages the class:
the workers build their course meanwhile); :func:`run` submits one task per submission
(:func:`.remote.grade_remote`, ``pure=False``, a key that names the submission), and takes each
finished future exactly once: the answer is checked and written by :func:`.receive.accept`, in one
of the host's writer processes (:mod:`.writers`), while the next tasks run; a
``KilledWorker`` (the submission killed every worker it ran on, ``allowed-failures + 1`` of them)
and any other error are that submission's ``failed`` outcome, by name, and the rest of the class
goes on. If no submission finishes for a whole per-submission budget (plus a margin), the rest are
cancelled and reported failed: a host-side bound on top of the workers' own deadlines (it counts
only while the same workers are connected: a worker that is restarting is not a stuck one).
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from ..grading.discover import staging_root
from ..grading.outcome import Outcome, Task
from ..nbapi import CourseError
from .bundle import BundlePlugin, pack_submission, plugin_name
from .remote import grade_remote, report
from .security import TLSFiles, check_address, security

CONNECT_TIMEOUT = 10     # seconds to reach the scheduler
WORKER_WAIT = 60         # seconds to wait for the first worker
COLD_START = 180         # seconds a fresh worker process may take to build its course (unpack, release, references)
QUIET = ("distributed", "tornado", "asyncio")
STATS: dict = {}         # the last run's host-side figures (make bench): accepted, accept_seconds, writers


def _quiet() -> None:
    """distributed logs its connection attempts and closing; the run's output is ours alone."""
    for name in list(logging.root.manager.loggerDict) + list(QUIET):
        if name.split(".")[0] in QUIET:
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


def announce(client, config, config_file, assignments: list[str]):
    """Build the course bundle and register it with the cluster, before the host stages the class:
    each worker builds its course and releases ``assignments`` meanwhile. Returns the bundle."""
    from .bundle import build_bundle

    bundle = build_bundle(config, config_file)
    name = plugin_name(bundle.digest)
    # An earlier version of the course: its workers drop its bundle, and new workers never build it.
    # (A lambda travels by value, so a plain `dask scheduler` without this package can run it.)
    prefix = plugin_name("")
    try:
        registered = client.run_on_scheduler(lambda dask_scheduler=None: list(dask_scheduler.worker_plugins))
    except Exception:   # a scheduler that runs no client code: the old bundles stay, harmless
        registered = []
    for stale in registered:
        if stale.startswith(prefix) and stale != name:
            try:
                client.unregister_worker_plugin(stale)
            except Exception:   # gone meanwhile (another run of the same course), or a worker's teardown
                pass
    client.register_plugin(BundlePlugin(bundle.digest, bundle.data, assignments), name=name)
    return bundle


def _job(root, task: Task, options: dict) -> dict:
    files = pack_submission(staging_root(root) / task.student / task.assignment)
    return {"assignment": task.assignment, "student": task.student, "files": files, "digest": task.digest,
            "timestamp": task.timestamp, "notes": list(task.notes), "options": options}


def task_key(task: Task) -> str:
    return f"cnn-course-grade-{task.assignment}-{task.student}-{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Keeps at most as many submissions on the cluster as it has worker threads, one per thread.

    Dask places each task on the least busy worker, so a task starts at once on a free thread and
    never waits on a worker behind another one: when a worker dies (a poison submission kills it),
    only the task it was running counts a failure against itself (Dask's ``suspicious`` count), not
    an innocent one queued beside it. A new task is sent only while fewer are on the cluster than
    it has threads, counted again at every look (a dead worker's threads no longer count).
    """

    def __init__(self, client):
        self.client = client
        self.workers: set = set()   # the workers seen at the last look

    def free_slots(self, in_flight: int) -> int:
        nthreads = self.client.nthreads()
        self.workers = set(nthreads)
        return max(0, sum(nthreads.values()) - in_flight)


def _fetch(future) -> tuple:
    """(result, None) or (None, the exception) of a finished future."""
    try:
        return future.result(), None
    except Exception as exc:   # KilledWorker, CancelledError, an error in the task: that submission's
        return None, exc


def run(client, bundle, tasks: list[Task], root, config, options: dict, progress) -> list[Outcome]:
    from distributed import wait
    from distributed.scheduler import KilledWorker

    from .writers import Writers, default_count

    STATS.clear()
    queue = list(tasks)
    dispatcher = Dispatcher(client)
    writers = Writers(default_count(int(options.get("host_writers", 0))), root, config, options)
    backlog = 4 * writers.count   # answers waiting for a writer before no new task is sent (host memory)
    futures: dict = {}
    stall = options["budget"] + max(30, 2 * options["cell_timeout"]) + COLD_START
    outcomes: list[Outcome] = []
    started: dict = {}
    last_done = time.monotonic()

    def dispatch() -> None:
        room = min(dispatcher.free_slots(sum(not f.done() for f in futures)), max(0, backlog - writers.pending))
        for _ in range(room):
            if not queue:
                break
            t = queue.pop(0)
            f = client.submit(grade_remote, bundle.digest, _job(root, t, options), key=task_key(t), pure=False,
                              retries=0)
            futures[f], started[f] = t, time.monotonic()

    def finish(o: Outcome) -> None:
        outcomes.append(o)
        progress.line(o)

    def written(block: float = 0.0) -> None:
        """Report every write that has finished (waiting up to ``block`` s for one)."""
        for o, seconds in sorted(writers.finished(block), key=lambda w: (w[0].assignment, w[0].student)):
            STATS["accepted"] = STATS.get("accepted", 0) + 1
            STATS["accept_seconds"] = STATS.get("accept_seconds", 0.0) + seconds
            finish(o)

    try:
        dispatch()
        while futures or queue or writers.pending:
            if not futures:
                if writers.pending:
                    written(block=1.0)
                else:
                    time.sleep(0.5)   # every worker is gone for now: wait for one to (re)join
                done = set()
            else:
                try:
                    with client.as_current():
                        done, _ = wait(list(futures), timeout=1.0 if not writers.pending else 0.2,
                                       return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
            answers = {f: _fetch(f) for f in done}   # off the worker before it takes another submission
            for f in done:
                f.release()
            for f in sorted(done, key=lambda f: (futures[f].assignment, futures[f].student)):
                t = futures.pop(f)
                res, exc = answers[f]
                if isinstance(exc, KilledWorker):
                    finish(Outcome(t.assignment, t.student, "failed",
                                   f"the grading worker died each time it graded this submission "
                                   f"({exc.allowed_failures + 1} workers): not graded; look at it by hand",
                                   time.monotonic() - started[f]))
                elif exc is not None:
                    finish(Outcome(t.assignment, t.student, "failed",
                                   f"the cluster task failed: {type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())[:200]}", time.monotonic() - started[f]))
                else:
                    writers.submit(res, t)
            written()
            seen = set(dispatcher.workers)
            dispatch()            # the workers that just finished (or joined) get the next ones first
            if done or dispatcher.workers != seen or not dispatcher.workers or not futures:
                last_done = time.monotonic()   # progress, or workers (re)starting: the bound counts from here
            elif time.monotonic() - last_done > stall:
                for f in futures:
                    f.cancel()
                for t in sorted([futures[f] for f in futures] + queue, key=lambda t: (t.assignment, t.student)):
                    finish(Outcome(t.assignment, t.student, "failed", f"no result from the cluster within {stall} s "
                                   f"(no submission finished in that time); cancelled"))
                futures.clear()
                queue.clear()
        STATS["writers"] = writers.count
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        writers.close()
    return outcomes
