"""The pool: N worker processes, a queue of submissions, a time limit, and workers replaced.

The pool gives each submission to one worker (:mod:`.worker`), through that worker's own queue,
and answers each worker's "start" with the next submission to hold while it grades (its kernel
boots meanwhile). So the pool always knows what every worker holds: a worker that dies at any
moment, even between taking a submission and saying so, loses nothing. The pool shows a progress
line per submission, and kills a worker that overruns a submission's budget (with everything it
started: its process group, and every process of its sandbox user), records that submission as
failed, puts what it held but had not started back at the front of the queue, and starts a new
worker in its place. A worker that keeps dying stops the run with a clear error.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
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
    try:
        os.killpg(pid, signal.SIGKILL)
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
    ctx = mp.get_context("spawn")
    result_q = ctx.Queue()
    waiting = list(tasks)        # not given to any worker yet
    jobs = max(1, min(jobs, len(tasks)))
    workers: dict = {}
    inboxes: dict = {}           # worker pid -> its own queue: the pool gives each submission to one worker
    given: dict[int, list[Task]] = {}   # worker pid -> what it was given and has not finished, in order
    slots: dict[int, int] = {}   # worker pid -> sandbox slot (one sandbox user per slot)

    def start_worker(slot=None):
        if slot is None:
            used = set(slots.values())
            slot = next(i for i in range(jobs + len(used) + 1) if i not in used)
        inbox = ctx.Queue()
        p = ctx.Process(target=serve, args=(spec, inbox, result_q, slot), daemon=True)
        p.start()
        workers[p.pid], inboxes[p.pid], given[p.pid], slots[p.pid] = p, inbox, [], slot

    def give(pid: int) -> None:
        task = waiting.pop(0)
        given[pid].append(task)
        inboxes[pid].put(task)

    def forget(pid: int) -> None:
        """A dead worker: what it was given and did not start goes back to the front of the queue."""
        del workers[pid]
        inboxes.pop(pid).close()
        waiting[:0] = given.pop(pid)
        _kill_slot(spec, slots.pop(pid))

    for _ in range(jobs):
        start_worker()
    running: dict[int, tuple[Task, float]] = {}
    outcomes: list[Outcome] = []
    budget, cell_timeout = spec.options["budget"], spec.options["cell_timeout"]
    hard_limit = budget + max(30, cell_timeout * 2)
    deaths = 0

    def handle(msg) -> None:
        if msg[0] == "slot":
            if msg[1] in slots:
                slots[msg[1]] = msg[2]
        elif msg[0] == "start" and msg[2] in workers:
            _, task, pid, _t0 = msg
            running[pid] = (task, time.monotonic())
            # the answer: the next one to hold (its kernel boots meanwhile), if enough are left for
            # the other workers too, so that no worker waits for one at the end of the run
            if len(waiting) >= len(workers):
                give(pid)
            else:
                inboxes[pid].put(NO_HOLD)
        elif msg[0] == "done":
            o = msg[1]
            key = (o.assignment, o.student)
            pid = next((pid for pid, (t, _) in running.items() if (t.assignment, t.student) == key), None)
            if pid is None:   # from a worker already stopped over its budget, its failure recorded: once only
                return
            del running[pid]
            given[pid] = [g for g in given[pid] if (g.assignment, g.student) != key]
            outcomes.append(o)
            progress.line(o)

    try:
        while len(outcomes) < len(tasks):
            for pid in workers:          # an idle worker (first start, or after the last one it held)
                if not given[pid] and waiting:
                    give(pid)
            msgs = []
            try:
                msgs.append(result_q.get(timeout=0.5))
            except queue.Empty:
                pass
            # the dead, then every message already sent: what a worker said before it died is read
            # before its death is judged (a finished submission is never also "died")
            dead = {pid for pid, p in workers.items() if not p.is_alive()}
            while True:
                try:
                    msgs.append(result_q.get_nowait())
                except queue.Empty:
                    break
            for msg in msgs:
                handle(msg)
            now = time.monotonic()
            for pid, p in list(workers.items()):
                if pid in dead and pid not in running:   # died between submissions, or at start-up
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
                    task, t0 = running.pop(pid)
                    kill_group(pid)
                    p.join(5)
                    given[pid] = [g for g in given[pid] if (g.assignment, g.student) != (task.assignment, task.student)]
                    forget(pid)
                    shutil.rmtree(Path(spec.root) / "autograded" / task.student / task.assignment,
                                  ignore_errors=True)
                    reason = (f"over the time budget of {budget} s; grader stopped" if over
                              else f"the grading process died (exit code {p.exitcode})")
                    o = Outcome(task.assignment, task.student, "failed", reason, now - t0)
                    outcomes.append(o)
                    progress.line(o)
                    if waiting:
                        start_worker()
            if not workers and len(outcomes) < len(tasks):
                raise CourseError("every grading worker died; see the messages above")
    finally:
        for pid in workers:
            inboxes[pid].put(None)
        for pid, p in workers.items():
            p.join(10)
            if p.is_alive():
                kill_group(pid)
                _kill_slot(spec, slots.get(pid, 0))
    return outcomes
