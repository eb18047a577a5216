"""The pool: N worker processes, a queue of submissions, a time limit, and workers replaced.

The pool gives each submission to one worker (:mod:`.worker`), through a pipe that only the two
of them share, and answers each worker's "start" with the next submission to hold while it grades
(its kernel boots meanwhile). So the pool always knows what every worker holds, and no worker can
block another: a worker that dies at any moment, even between taking a submission and saying so,
or while writing to its pipe, loses nothing, and one that hangs before it starts what it was given
is replaced like one that dies. The pool shows a progress
line per submission, and kills a worker that overruns a submission's budget (with everything it
started: its process group, and every process of its sandbox user), records that submission as
failed, puts what it held but had not started back at the front of the queue, and starts a new
worker in its place. A worker that keeps dying stops the run with a clear error.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from ..nbapi import CourseError
from .discover import shown
from .outcome import Outcome, Task
from .worker import NO_HOLD, WorkerSpec, serve

MARKS = {"graded": "ok", "skipped": "--", "failed": "FAIL", "corrupt": "FAIL", "missing": "FAIL", "rejected": "REJ"}


def die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (say, kill -9 of the grader),
    so that no orphaned worker goes on writing the gradebook under a rerun."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() == 1:   # the parent died before prctl took effect
        os._exit(1)


class Progress:
    def __init__(self, total: int, stream=None):
        self.total, self.done, self.stream = total, 0, stream or sys.stdout

    def line(self, o: Outcome) -> None:
        self.done += 1
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        mark = MARKS.get(o.status, o.status)
        extra = f"  ({shown(o.reason)})" if o.reason else ""   # no terminal escapes from file names
        print(f"[{bar}] {self.done:>4}/{self.total}  {mark:<4} {shown(o.assignment)} / {shown(o.student)}  "
              f"{o.seconds:5.1f} s{extra}", file=self.stream, flush=True)


def kill_group(pid: int) -> None:
    """SIGKILL a worker's process group, and the worker itself: one stopped or hung before it ran
    ``setsid`` is still in the pool's group, where ``killpg(pid)`` does not reach it."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_slot(spec: WorkerSpec, slot: int) -> None:
    """Kill whatever a dead worker's sandbox user still runs (root only), unless another grading run
    has taken that slot in the meantime (its lock tells)."""
    if not spec.options.get("sandbox", True) or os.geteuid() != 0:
        return
    import pwd

    from ..sandbox import Policy, acquire_slot, release_slot
    from ..sandbox.users import kill_user_processes

    got, token = acquire_slot(slot)
    try:
        if got != slot:
            return
        try:
            uid = pwd.getpwnam(Policy(slot=slot).user_name).pw_uid
        except KeyError:
            return
        kill_user_processes(uid)
    finally:
        release_slot(token)


def run(spec: WorkerSpec, tasks: list[Task], jobs: int, progress: Progress) -> list[Outcome]:
    from multiprocessing.connection import wait as wait_for

    ctx = mp.get_context("spawn")
    waiting = list(tasks)        # not given to any worker yet
    jobs = max(1, min(jobs, len(tasks)))
    workers: dict = {}
    conns: dict = {}             # worker pid -> the pool's end of the pipe it alone shares with that worker
    given: dict[int, list[Task]] = {}   # worker pid -> what it was given and has not finished, in order
    since: dict[int, float] = {}        # worker pid -> when it was last given one it has not started
    slots: dict[int, int] = {}   # worker pid -> sandbox slot (one sandbox user per slot)
    running: dict[int, tuple[Task, float]] = {}
    outcomes: list[Outcome] = []
    budget, cell_timeout = spec.options["budget"], spec.options["cell_timeout"]
    hard_limit = budget + max(30, cell_timeout * 2)
    deaths = 0

    def start_worker(slot=None):
        if slot is None:
            used = set(slots.values())
            slot = next(i for i in range(jobs + len(used) + 1) if i not in used)
        ours, theirs = ctx.Pipe(duplex=True)
        p = ctx.Process(target=serve, args=(spec, theirs, slot), daemon=True)
        p.start()
        theirs.close()
        workers[p.pid], conns[p.pid], given[p.pid], slots[p.pid] = p, ours, [], slot

    def send(pid: int, item) -> None:
        try:
            conns[pid].send(item)
        except OSError:   # the worker is gone: its death is judged below, with what it was given
            pass

    def give(pid: int) -> None:
        task = waiting.pop(0)
        given[pid].append(task)
        if pid not in running:
            since.setdefault(pid, time.monotonic())
        send(pid, task)

    def forget(pid: int) -> None:
        """A dead worker: what it was given and did not start goes back to the front of the queue."""
        del workers[pid]
        conns.pop(pid).close()
        since.pop(pid, None)
        waiting[:0] = given.pop(pid)
        _kill_slot(spec, slots.pop(pid))

    def handle(pid: int, msg) -> None:
        if msg[0] == "slot":
            slots[pid] = msg[2]
        elif msg[0] == "start":
            running[pid] = (msg[1], time.monotonic())
            since.pop(pid, None)
            # the answer: the next one to hold (its kernel boots meanwhile), if enough are left for
            # the other workers too, so that no worker waits for one at the end of the run
            if len(waiting) >= len(workers):
                give(pid)
            else:
                send(pid, NO_HOLD)
        elif msg[0] == "done" and pid in running:
            o = msg[1]
            del running[pid]
            given[pid] = [g for g in given[pid] if (g.assignment, g.student) != (o.assignment, o.student)]
            if given[pid]:
                since[pid] = time.monotonic()   # it starts the one it holds at once
            outcomes.append(o)
            progress.line(o)

    def fail(pid: int, p, now: float, over: bool) -> None:
        task, t0 = running.pop(pid)
        kill_group(pid)
        p.join(5)
        given[pid] = [g for g in given[pid] if (g.assignment, g.student) != (task.assignment, task.student)]
        forget(pid)
        shutil.rmtree(Path(spec.root) / "autograded" / task.student / task.assignment, ignore_errors=True)
        reason = (f"over the time budget of {budget} s; grader stopped" if over
                  else f"the grading process died (exit code {p.exitcode})")
        o = Outcome(task.assignment, task.student, "failed", reason, now - t0)
        outcomes.append(o)
        progress.line(o)

    for _ in range(jobs):
        start_worker()
    try:
        while len(outcomes) < len(tasks):
            for pid in list(workers):    # an idle worker (first start, or after the last one it held)
                if not given[pid] and waiting:
                    give(pid)
            wait_for(list(conns.values()), timeout=0.5)
            # the dead, then every message already sent: what a worker said before it died is in its
            # pipe, read before its death is judged (a finished submission is never also "died")
            dead = {pid for pid, p in workers.items() if not p.is_alive()}
            for pid, conn in list(conns.items()):
                try:
                    while conn.poll(0):
                        handle(pid, conn.recv())
                except (EOFError, OSError):   # its end is closed: it has exited
                    dead.add(pid)
            now = time.monotonic()
            for pid, p in list(workers.items()):
                stuck = pid not in running and pid in since and now - since[pid] > hard_limit
                if stuck:   # given a submission, never started it (hung at start-up): as dead
                    kill_group(pid)
                    p.join(5)
                if (pid in dead or stuck) and pid not in running:   # between submissions, or at start-up
                    forget(pid)
                    deaths += 1
                    if deaths > 2 * jobs:
                        raise CourseError(f"grading workers keep dying (last exit code {p.exitcode}); "
                                          "run with --jobs 1 to see why")
                    if waiting:
                        start_worker()
                    continue
                over = pid in running and now - running[pid][1] > hard_limit
                if over or (pid in dead and pid in running):
                    fail(pid, p, now, over)
                    if waiting:
                        start_worker()
            if not workers and len(outcomes) < len(tasks):
                raise CourseError("every grading worker died; see the messages above")
    finally:
        for pid in workers:
            send(pid, None)
        for pid, p in workers.items():
            p.join(10)
            if p.is_alive():
                kill_group(pid)
                _kill_slot(spec, slots.get(pid, 0))
    return outcomes
