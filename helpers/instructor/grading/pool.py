"""The pool: N worker processes, a queue of submissions, a time limit, and workers replaced.

Each worker (:mod:`.worker`) takes submissions from one queue, and may hold the next one while it
grades (its kernel boots meanwhile). The pool shows a progress line per submission, and kills a
worker that overruns a submission's budget (with everything it started: its process group, and
every process of its sandbox user), records that submission as failed, puts the one it held back
in the queue, and starts a new worker in its place. A worker that keeps dying stops the run with
a clear error.
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
from .worker import WorkerSpec, serve

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
    task_q, result_q = ctx.Queue(), ctx.Queue()
    for t in tasks:
        task_q.put(t)
    jobs = max(1, min(jobs, len(tasks)))
    workers = {}
    slots: dict[int, int] = {}   # worker pid -> sandbox slot (one sandbox user per slot)

    def start_worker(slot=None):
        if slot is None:
            used = set(slots.values())
            slot = next(i for i in range(jobs + len(used) + 1) if i not in used)
        p = ctx.Process(target=serve, args=(spec, task_q, result_q, slot, jobs), daemon=True)
        p.start()
        workers[p.pid] = p
        slots[p.pid] = slot

    for _ in range(jobs):
        start_worker()
    running: dict[int, tuple[Task, float]] = {}
    held: dict[int, list[Task]] = {}   # worker pid -> submissions it holds for later (not started yet)

    def give_back(pid: int) -> None:
        """A dead worker's held submissions go back in the queue: nothing of them ran."""
        for task in held.pop(pid, []):
            task_q.put(task)
    outcomes: list[Outcome] = []
    budget, cell_timeout = spec.options["budget"], spec.options["cell_timeout"]
    hard_limit = budget + max(30, cell_timeout * 2)
    deaths = 0
    try:
        while len(outcomes) < len(tasks):
            try:
                msg = result_q.get(timeout=0.5)
            except queue.Empty:
                msg = None
            if msg and msg[0] == "slot":
                if msg[1] in slots:
                    slots[msg[1]] = msg[2]
            elif msg and msg[0] == "holds":
                held.setdefault(msg[1], []).append(msg[2])
            elif msg and msg[0] == "start":
                _, task, pid, t0 = msg
                running[pid] = (task, time.monotonic())
                held[pid] = [h for h in held.get(pid, []) if (h.assignment, h.student) != (task.assignment, task.student)]
            elif msg and msg[0] == "done":
                o = msg[1]
                running.pop(next((pid for pid, (t, _) in running.items()
                                  if (t.assignment, t.student) == (o.assignment, o.student)), None), None)
                outcomes.append(o)
                progress.line(o)
            now = time.monotonic()
            for pid, p in list(workers.items()):
                if not p.is_alive() and pid not in running:   # died between tasks, or at start-up
                    del workers[pid]
                    give_back(pid)
                    slot = slots.pop(pid)
                    _kill_slot(spec, slot)
                    deaths += 1
                    if deaths > 2 * jobs:
                        raise CourseError(f"grading workers keep dying (last exit code {p.exitcode}); "
                                          "run with --jobs 1 to see why")
                    if len(outcomes) + len(running) < len(tasks):
                        start_worker(slot)
                    continue
                over = pid in running and now - running[pid][1] > hard_limit
                if over or (not p.is_alive() and pid in running):
                    task, t0 = running.pop(pid)
                    kill_group(pid)
                    p.join(5)
                    del workers[pid]
                    give_back(pid)
                    slot = slots.pop(pid)
                    _kill_slot(spec, slot)
                    shutil.rmtree(Path(spec.root) / "autograded" / task.student / task.assignment,
                                  ignore_errors=True)
                    reason = (f"over the time budget of {budget} s; grader stopped" if over
                              else f"the grading process died (exit code {p.exitcode})")
                    o = Outcome(task.assignment, task.student, "failed", reason, now - t0)
                    outcomes.append(o)
                    progress.line(o)
                    if len(outcomes) + len(running) < len(tasks):
                        start_worker(slot)
            if not workers and len(outcomes) < len(tasks):
                raise CourseError("every grading worker died; see the messages above")
    finally:
        for _ in workers:
            task_q.put(None)
        for pid, p in workers.items():
            p.join(10)
            if p.is_alive():
                kill_group(pid)
                _kill_slot(spec, slots.get(pid, 0))
    return outcomes


