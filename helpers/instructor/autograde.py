"""Parallel autograding on top of ``NbGraderAPI.autograde``.

N worker processes each build one ``NbGraderAPI`` and take submissions from a queue, so the
import and start-up cost is paid once per worker, not once per student. All workers write the
same gradebook (SQLite waits for the lock; any SQLAlchemy URL nbgrader accepts works).

Robustness:

- each cell has a timeout (``--cell-timeout``), and each submission a whole-notebook time
  budget (``--budget``): later cells get at most what is left of the budget, and a worker that
  overruns the budget by a margin is killed with its kernels and replaced;
- a corrupt notebook (unreadable JSON) is reported by student and reason and not executed;
  a missing notebook is reported and graded as zero; a dead kernel or a timeout is reported;
  the rest of the class is still graded;
- submissions are data, checked before anything runs (:mod:`helpers.instructor.grading`): student
  ids and assignment folder names must be safe ids (nbgrader reads ids as globs, CSV readers as
  formulas), or the folder is rejected by name; a submission may hold only regular files and
  folders (no link, hard link, device, FIFO or socket) within a size limit; root copies it into
  ``.cnn-course-state/staged/<student>/<assignment>/`` and nbgrader grades that copy
  (``CourseDirectory.submitted_directory``), where extra or duplicate graded cells have become plain
  cells (reported in the outcome's note) instead of crashing nbgrader;
- it is idempotent: a finished submission is recorded in ``.cnn-course-state/`` with its
  timestamp.txt and the content hash of its staged copy, and skipped on the next run while both are
  unchanged; a resubmission (newer timestamp or other content) is regraded without ``--force``
  ("resubmitted: regraded"), as nbgrader does; one that was interrupted (an autograded folder without
  the record) is graded again with ``force``; ``--force`` regrades everything. nbgrader replaces a
  submission's grades rather than adding to them, so nothing is doubled;
- the autograded notebook carries no student script (``StripActive``, before ``SaveAutoGrades``).

Grading that students cannot game or break (``sandbox=True``, the default; see
:mod:`helpers.instructor.safegrade`, :mod:`helpers.instructor.sandbox` and
:mod:`helpers.instructor.outofkernel`):

- each kernel runs sandboxed: as root, as the worker slot's own unprivileged user
  (``cnngrader0``, ``cnngrader1``, ... created on first use), with no network, a private root file
  system without the course directory, the sources, the gradebook or other submissions, and
  resource limits; not as root, whatever of that the system allows (a user namespace), and the
  first line of output says what could not be applied;
- every graded function is checked again outside the kernel on fresh random inputs; when the
  kernel's test passed and that check did not, the test cell scores 0 and is flagged (``FLAG``);
- a dead or stuck kernel is restarted and grading goes on, so points already earned stay;
- the time budget covers the whole submission, out-of-kernel check included.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from .course import ASSIGNMENTS, get
from .grading import state as grading_state
from .grading.discover import discover, staging_root
from .grading.outcome import Outcome, Task
from .grading.state import STATE_DIR
from .nbapi import CourseError, gradebook, load_config, make_api

__all__ = ["Outcome", "Task", "Settings", "autograde", "discover", "summary_table", "outcomes_json", "STATE_DIR"]


@dataclass
class Settings:
    root: str
    db_url: str | None = None
    cell_timeout: int = 30
    budget: int = 300
    max_output_lines: int = 200
    config_file: str | None = None
    sandbox: bool = True
    out_of_kernel: bool = True
    policy: dict | None = None       # sandbox.Policy fields (limits, ...); the slot is set per worker

    def overrides(self) -> dict:
        return {"Execute": {"timeout": int(self.cell_timeout), "interrupt_on_timeout": True},
                "OverwriteCells": {"add_missing_cells": True},
                "LimitOutput": {"max_lines": int(self.max_output_lines), "max_traceback": 50}}

    def config(self):
        return load_config(self.root, self.db_url, self.config_file, self.overrides())

    def make_policy(self, slot: int = 0):
        from .sandbox import Policy

        policy = Policy.from_dict(self.policy)
        policy.slot = slot
        policy.enabled = bool(self.sandbox)
        policy.limits.cpu_seconds = max(policy.limits.cpu_seconds, int(self.budget) + 30)
        return policy

    def worker_config(self, slot: int):
        """The config of a grading worker: the course's, with the safe pipeline of :mod:`.safegrade`."""
        from .safegrade import configure

        config = self.config()
        configure(config, policy=self.make_policy(slot), sandbox_enabled=self.sandbox,
                  out_of_kernel=self.out_of_kernel, deadline_func=lambda: _DEADLINE[0])
        # nbgrader grades the staged copy (regular files only, checked and copied by root), never
        # submitted/ itself: format_path joins this (relative to the root) with <student>/<assignment>
        config.CourseDirectory.submitted_directory = os.path.relpath(staging_root(Path(self.root)), self.root)
        return config


# --------------------------------------------------------------------------- discovery
def _state_file(root: Path, assignment: str, student: str) -> Path:
    return grading_state.state_file(root, assignment, student)


# --------------------------------------------------------------------------- worker
_DEADLINE = [float("inf")]


def _budget_timeout(settings: Settings):
    def timeout_for(cell) -> int:
        left = _DEADLINE[0] - time.monotonic()
        return max(1, int(min(settings.cell_timeout, left)))
    return timeout_for


def _failure_reason(log: str) -> str:
    """The error that made nbgrader give up: the last ``SomeError: message`` line before its own
    generic 'Please see the above traceback'."""
    import re

    found = [m.group(0).strip() for m in re.finditer(r"^\s*[\w.]*(?:Error|Exception|Exit)\b: .+$", log, re.M)
             if "Please see the" not in m.group(0) and "There was an error" not in m.group(0)]
    if found:
        return found[-1][:200]
    last = [ln for ln in log.strip().splitlines() if ln.strip()][-1:] or ["unknown error"]
    return last[0][:200]


def _reason_from_log(log: str) -> str:
    for key, text in (("CellTimeoutError", "a cell timed out"), ("DeadKernelError", "the kernel died"),
                      ("kernel died", "the kernel died"), ("UnresponsiveKernel", "the kernel stopped responding")):
        if key in log:
            return text
    return ""


def _worker(settings: Settings, tasks: mp.Queue, results: mp.Queue, slot: int = 0) -> None:
    os.setsid()  # own process group: the parent can kill this worker together with its kernels
    _die_with_parent()
    import warnings

    from . import safegrade, sandbox

    if settings.sandbox:
        # this worker's sandbox user, locked for the worker's life against other grading runs
        slot, _token = sandbox.acquire_slot(slot)
        results.put(("slot", os.getpid(), slot))
        if _token is not None:   # root: the slot is locked, so its old folders are nobody's
            sandbox.remove_stale_boxes(slot)
    warnings.filterwarnings("ignore", module="nbgrader")   # SQLAlchemy session warnings from nbgrader's api
    config = settings.worker_config(slot)
    config.Execute.timeout_func = _budget_timeout(settings)
    api = make_api(config)
    root = Path(settings.root)
    while True:
        task = tasks.get()
        if task is None:
            return
        results.put(("start", task, os.getpid(), time.monotonic()))
        _DEADLINE[0] = time.monotonic() + settings.budget
        safegrade.NOTES.clear()
        t0 = time.monotonic()
        try:
            res = api.autograde(task.assignment, task.student, force=task.force, create=True)
        except Exception as exc:  # nbgrader normally reports through the result dict
            res = {"success": False, "error": f"{type(exc).__name__}: {exc}"}
        seconds = time.monotonic() - t0
        log = (res.get("log") or "") + (res.get("error") or "")
        notes = list(safegrade.NOTES)
        flags = [n for n in notes if n.startswith("FLAG")]
        staged = list(task.notes)
        if res.get("success"):
            note = "; ".join(staged + flags + [n for n in notes if n not in flags]) or _reason_from_log(log)
            grading_state.write(root, task.assignment, task.student,
                                {"graded_at": time.time(), "seconds": seconds, "note": note, "flags": flags,
                                 "digest": task.digest, "timestamp": task.timestamp})
            results.put(("done", Outcome(task.assignment, task.student, "graded", note, seconds, flags=flags)))
        else:
            why = _reason_from_log(log) or _failure_reason(log)
            results.put(("done", Outcome(task.assignment, task.student, "failed", "; ".join(staged + [why]),
                                         seconds, flags=flags)))


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker when the grading process dies (say, kill -9), so
    that no orphaned worker goes on writing the gradebook under a rerun. Its kernels follow within a
    second (ipykernel polls JPY_PARENT_PID)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass
    if os.getppid() == 1:   # the parent died before prctl took effect
        os._exit(1)


# --------------------------------------------------------------------------- parent
class _Progress:
    def __init__(self, total: int, stream=None):
        self.total, self.done, self.stream = total, 0, stream or sys.stdout
        self.t0 = time.monotonic()

    def line(self, o: Outcome) -> None:
        self.done += 1
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        mark = {"graded": "ok", "skipped": "--", "failed": "FAIL", "corrupt": "FAIL", "missing": "FAIL",
                "rejected": "REJ"}[o.status]
        extra = f"  ({o.reason})" if o.reason else ""
        print(f"[{bar}] {self.done:>4}/{self.total}  {mark:<4} {o.assignment} / {o.student}  "
              f"{o.seconds:5.1f} s{extra}", file=self.stream, flush=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


SANDBOX_REPORT: list = []   # the last sandbox probe's SandboxReport (what was and was not applied)


def autograde(root: Path | str, assignments: list[str] | None = None, *, jobs: int | None = None,
              student: str | None = None, force: bool = False, db_url: str | None = None,
              cell_timeout: int = 30, budget: int = 300, stream=None, config_file: str | None = None,
              sandbox: bool = True, out_of_kernel: bool = True, limits: dict | None = None) -> list[Outcome]:
    """Grade every submission (or one student's) of the given assignments, ``jobs`` at a time.

    ``sandbox=False`` runs student code as the grading user, unconfined (only for trusted code);
    ``out_of_kernel=False`` skips the out-of-kernel check; ``limits`` overrides fields of
    :class:`helpers.instructor.sandbox.Limits` (``address_space``, ``cpu_seconds``, ``processes``,
    ``file_size``, ``open_files``).
    """
    root = Path(root).resolve()
    ids = [a.id for a in ASSIGNMENTS] if not assignments else list(assignments)
    for a in ids:
        get(a)  # unknown assignment -> CourseError-like ValueError
    settings = Settings(str(root), db_url, cell_timeout, budget, config_file=config_file, sandbox=sandbox,
                        out_of_kernel=out_of_kernel, policy={"limits": dict(limits)} if limits else None)
    config = settings.config()  # fail early on an unreadable config
    tasks, outcomes = discover(root, ids, student, force)
    progress = _Progress(len(tasks) + len(outcomes), stream)
    if tasks:
        jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
        _check_sandbox(settings, config, jobs, progress.stream)
    for o in outcomes:
        progress.line(o)
    _ensure_students(settings, {t.student for t in tasks} |
                     {o.student for o in outcomes if o.status != "rejected"})
    if tasks:
        _ensure_released(settings, {t.assignment for t in tasks})
        _neutralize_tampering(config, tasks, root)
        outcomes += _run_pool(settings, tasks, jobs, progress)
    _fill_scores(settings, outcomes)
    return outcomes


def _secret_paths(config) -> list[str]:
    cd = config.CourseDirectory
    root = cd.root
    paths = [root, os.path.realpath(os.path.join(root, cd.get("source_directory", "source")))]
    db = cd.get("db_url", "") or ""
    if db.startswith("sqlite:///"):
        paths.append(db[len("sqlite:///"):].split("?")[0])
    return paths


def _check_sandbox(settings: Settings, config, jobs: int, stream) -> None:
    """Create the sandbox users, start one probe, and say what is and is not enforced."""
    from .sandbox import SandboxError, ensure_users, probe

    SANDBOX_REPORT.clear()
    if not settings.sandbox:
        print("sandbox: OFF: student code runs as the grading user, with its file access, the network and "
              "no limits", file=stream, flush=True)
        return
    try:
        ensure_users(jobs)
        report, _ = probe(settings.make_policy(0), secret=_secret_paths(config))
    except SandboxError as exc:
        raise CourseError(f"the grading sandbox does not work here: {exc}. Fix it, or grade trusted "
                          f"submissions without it (sandbox=False)") from None
    SANDBOX_REPORT.append(report)
    print(report.summary(), file=stream, flush=True)


def _ensure_students(settings: Settings, students: set) -> None:
    """Create every student row up front, in one process: two workers grading the same student's
    assignments at once would otherwise both try to create that student, and one would fail.
    It also puts students whose notebook is missing or corrupt in the gradebook, with nothing earned."""
    with gradebook(settings.config()) as gb:
        for s in sorted(students):
            gb.update_or_create_student(s)


def _ensure_released(settings: Settings, assignment_ids: set) -> None:
    """nbgrader grades against the gradebook's copy of the source: make sure each assignment is there."""
    config = settings.config()
    with gradebook(config) as gb:
        known = {a.name for a in gb.assignments}
    missing = sorted(assignment_ids - known)
    if missing:
        api = make_api(config)
        for a in missing:
            res = api.generate_assignment(a, force=True, create=True)
            if not res.get("success"):
                raise CourseError(f"could not generate {a} from the source notebooks: {res.get('error', '')[-300:]}")


def _neutralize_tampering(config, tasks: list[Task], root: Path) -> None:
    """Extra and duplicate graded cells of each staged notebook become plain cells (see
    :mod:`helpers.instructor.grading.tamper`); each change goes into the task's notes."""
    from .grading.tamper import neutralize, source_cells

    known: dict = {}
    for t in tasks:
        notebook = get(t.assignment).notebook
        if t.assignment not in known:
            known[t.assignment] = source_cells(config, t.assignment, notebook)
        path = staging_root(root) / t.student / t.assignment / f"{notebook}.ipynb"
        nb = nbformat.read(str(path), as_version=4)
        changes = neutralize(nb, known[t.assignment])
        if changes:
            nbformat.write(nb, str(path))
            t.notes += changes


def _kill_slot(settings: Settings, slot: int) -> None:
    """Kill whatever a dead worker's sandbox user still runs (root only), unless another grading run
    has taken that slot in the meantime (its lock tells)."""
    if not settings.sandbox or os.geteuid() != 0:
        return
    import pwd

    from .sandbox import acquire_slot, kill_processes, release_slot

    got, token = acquire_slot(slot)
    try:
        if got != slot:
            return
        try:
            uid = pwd.getpwnam(settings.make_policy(slot).user_name).pw_uid
        except KeyError:
            return
        kill_processes(uid=uid)
    finally:
        release_slot(token)


def _run_pool(settings: Settings, tasks: list[Task], jobs: int, progress: _Progress) -> list[Outcome]:
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
        p = ctx.Process(target=_worker, args=(settings, task_q, result_q, slot), daemon=True)
        p.start()
        workers[p.pid] = p
        slots[p.pid] = slot

    for _ in range(jobs):
        start_worker()
    running: dict[int, tuple[Task, float]] = {}
    outcomes: list[Outcome] = []
    hard_limit = settings.budget + max(30, settings.cell_timeout * 2)
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
            elif msg and msg[0] == "start":
                _, task, pid, t0 = msg
                running[pid] = (task, time.monotonic())
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
                    slot = slots.pop(pid)
                    _kill_slot(settings, slot)
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
                    _kill_group(pid)
                    p.join(5)
                    del workers[pid]
                    slot = slots.pop(pid)
                    _kill_slot(settings, slot)
                    shutil.rmtree(Path(settings.root) / "autograded" / task.student / task.assignment,
                                  ignore_errors=True)
                    reason = (f"over the time budget of {settings.budget} s; grader stopped" if over
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
                _kill_group(pid)
                _kill_slot(settings, slots.get(pid, 0))
    return outcomes


def _fill_scores(settings: Settings, outcomes: list[Outcome]) -> None:
    with gradebook(settings.config()) as gb:
        for o in outcomes:
            if o.status == "rejected":
                continue
            try:
                sub = gb.find_submission(o.assignment, o.student)
            except Exception:
                continue
            o.score, o.max_score = float(sub.score), float(sub.max_score)
    root = Path(settings.root)
    for o in outcomes:
        if o.status == "graded" and not o.reason:
            o.reason = _execution_problems(root / "autograded" / o.student / o.assignment)


def _execution_problems(folder: Path) -> str:
    """What went wrong while the graded notebooks ran: cells that timed out, a kernel that died."""
    counts: dict[str, int] = {}
    for path in folder.glob("*.ipynb"):
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception:
            continue
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and out.get("ename") in ("CellTimeoutError", "DeadKernelError"):
                    counts[out["ename"]] = counts.get(out["ename"], 0) + 1
    words = {"CellTimeoutError": "cell(s) timed out", "DeadKernelError": "cell(s) hit a dead kernel"}
    return "; ".join(f"{n} {words[k]}" for k, n in counts.items())


def summary_table(outcomes: list[Outcome]) -> str:
    """A plain-text table: one row per submission, then counts."""
    rows = [("assignment", "student", "status", "score", "seconds", "note")]
    for o in sorted(outcomes, key=lambda o: (o.assignment, o.student)):
        score = "" if o.score is None else f"{o.score:g}/{o.max_score:g}"
        rows.append((o.assignment, o.student, o.status, score, f"{o.seconds:.1f}", o.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + ("  " + r[5] if r[5] else "") for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = {s: sum(o.status == s for o in outcomes) for s in ("graded", "skipped", "failed", "corrupt", "missing",
                                                                  "rejected")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def outcomes_json(outcomes: list[Outcome]) -> str:
    return json.dumps([asdict(o) for o in outcomes], indent=1)
