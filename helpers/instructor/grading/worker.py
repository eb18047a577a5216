"""One grading worker: a process that builds one ``NbGraderAPI`` and grades submissions from a queue.

For each submission it opens a sandbox (:class:`helpers.instructor.sandbox.Box`) on the staged
copy, hands the pipeline a :class:`~.context.SubmissionContext`, lets nbgrader autograde it, reads
the result record back from the autograded notebook, closes the sandbox, and records what was
graded (:mod:`.state`). Start-up (imports, the API, the reference solutions) is paid once per
worker, not once per submission.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..options import GradingOptions
from . import pipeline, result as result_mod, state
from .context import SubmissionContext
from .outcome import Outcome, Task


@dataclass
class WorkerSpec:
    """What a worker needs to know (picklable: it crosses into a spawned process)."""
    root: str
    db_url: str | None
    config_file: str | None
    options: dict


class Worker:
    def __init__(self, spec: WorkerSpec, slot: int = 0):
        from ..nbapi import load_config, make_api
        from ..refdata import reference_functions
        from .discover import staging_root

        self.spec = spec
        self.root = Path(spec.root)
        self.slot = slot
        self.options = GradingOptions.from_dict(spec.options)
        self.config = load_config(spec.root, spec.db_url, spec.config_file)
        pipeline.configure(self.config, self.options)
        # nbgrader grades the staged copy (regular files only, checked and copied by root), never
        # submitted/ itself: format_path joins this (relative to the root) with <student>/<assignment>
        self.config.CourseDirectory.submitted_directory = os.path.relpath(staging_root(self.root), self.root)
        self.api = make_api(self.config)
        self._ready: dict = {}   # (assignment, student) -> (box, kernel manager) opened ahead
        notebooks = self.root / "notebooks"
        self.reference = reference_functions(self.root if notebooks.is_dir() else None)

    def open_box(self, task: Task):
        """A new box for ``task`` and a kernel already booting in it; the submission's files go in
        after. Nothing in scratch takes part in starting a kernel (see ``sandbox/env.py``)."""
        from ..sandbox import Box, NullBox, Policy

        if not self.options.sandbox:
            box = NullBox()
        else:
            box = Box(Policy.from_options(self.options, self.slot), label=f"{task.student}-{task.assignment}")
        try:
            return box, box.start_kernel()
        except Exception:   # started again, with its error, by the execute step
            return box, None

    def prepare(self, task: Task) -> None:
        """Open the box of the submission graded next, so that its kernel boots while this one is
        graded (the two boxes share nothing but the slot's user; see the README's threat model)."""
        try:
            self._ready[(task.assignment, task.student)] = self.open_box(task)
        except Exception:   # made again when its turn comes, and reported then
            pass

    def close(self) -> None:
        """Close the boxes prepared for submissions this worker will not grade."""
        for box, _ in self._ready.values():
            box.close()
        self._ready.clear()

    def grade(self, task: Task, upcoming: Task | None = None) -> Outcome:
        from ..course import get
        from .discover import staging_root

        t0 = time.monotonic()
        a = get(task.assignment)
        box = None
        try:
            box, kernel = self._ready.pop((task.assignment, task.student), None) or self.open_box(task)
            box.add_files(staging_root(self.root) / task.student / task.assignment)
        except Exception as exc:   # the sandbox could not be set up for this submission
            if box is not None:
                box.close()
            return Outcome(task.assignment, task.student, "failed",
                           f"the sandbox did not start: {type(exc).__name__}: {str(exc)[:200]}",
                           time.monotonic() - t0)
        if upcoming is not None:
            self.prepare(upcoming)
        ctx = SubmissionContext(task.student, task.assignment, self.options, box, functions=a.functions,
                                reference=self.reference, deadline=t0 + self.options.budget, kernel=kernel,
                                timeouts=dict(a.timeouts))
        pipeline.set_context(self.api.config, ctx)
        before = grades_snapshot(self.config, task)
        try:
            res = self.api.autograde(task.assignment, task.student, force=True, create=True)
        except Exception as exc:   # nbgrader normally reports through the result dict
            res = {"success": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            pipeline.set_context(self.api.config, None)
            box.close()
        seconds = time.monotonic() - t0
        if not res.get("success"):
            restore_grades(self.config, task, before)   # a crash leaves the gradebook as it was
            return Outcome(task.assignment, task.student, "failed",
                           "; ".join(list(task.notes) + [failure_reason(res)]), seconds)
        record = read_result(self.root / "autograded" / task.student / task.assignment / f"{a.notebook}.ipynb")
        flags = [f"FLAG {f['cell']}: {f['reason']}" for f in record.flags]
        note = "; ".join(list(task.notes) + ([record.summary()] if record.summary() else []))
        state.write(self.root, task.assignment, task.student,
                    {"graded_at": time.time(), "seconds": seconds, "note": note, "flags": flags,
                     "digest": task.digest, "timestamp": task.timestamp, "timings": record.timings})
        return Outcome(task.assignment, task.student, "graded", note, seconds, flags=flags)


def grades_snapshot(config, task: Task) -> dict | None:
    """The submission's grades before grading: ``{(notebook, grade_id): (auto, manual, needs_manual)}``,
    or None when the gradebook has no such submission yet."""
    from nbgrader.api import MissingEntry

    from ..nbapi import gradebook

    with gradebook(config) as gb:
        try:
            sub = gb.find_submission(task.assignment, task.student)
        except MissingEntry:
            return None
        return {(nb.name, g.name): (g.auto_score, g.manual_score, g.needs_manual_grade)
                for nb in sub.notebooks for g in nb.grades}


def restore_grades(config, task: Task, before: dict | None) -> None:
    """Undo what a failed autograde wrote (nbgrader commits grades cell by cell, so a crash half-way
    leaves some): the grades of before, or no submission at all if there was none."""
    from nbgrader.api import MissingEntry

    from ..nbapi import gradebook

    with gradebook(config) as gb:
        try:
            sub = gb.find_submission(task.assignment, task.student)
        except MissingEntry:
            return
        if before is None:
            gb.remove_submission(task.assignment, task.student)
            return
        for nb in sub.notebooks:
            for g in nb.grades:
                g.auto_score, g.manual_score, g.needs_manual_grade = before.get(
                    (nb.name, g.name), (None, None, True))
        gb.db.commit()


def read_result(path: Path) -> result_mod.SubmissionResult:
    """The result record the pipeline wrote (an empty one if the notebook has none)."""
    try:
        nb = nbformat.read(str(path), as_version=4)
        return result_mod.read(nb) or result_mod.SubmissionResult()
    except (OSError, ValueError):
        return result_mod.SubmissionResult()


def failure_reason(res: dict) -> str:
    """What made nbgrader give up: the last line of its error that names an error."""
    text = (res.get("error") or "") + "\n" + (res.get("log") or "")
    for key, why in (("DeadKernelError", "the kernel died"), ("CellTimeoutError", "a cell timed out")):
        if key in text:
            return why
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "Please see the" not in ln
             and "There was an error" not in ln]
    named = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return ((named or lines or ["unknown error"])[-1])[:200]


NO_HOLD = "no-hold"   # the pool's answer to "start" when this worker is to hold nothing


def serve(spec: WorkerSpec, conn, slot: int = 0) -> None:
    """The worker process: grade what the pool gives it, through ``conn`` (a pipe only the two of
    them share), until a ``None``.

    The pool gives a worker one submission at a time, and answers each ``"start"`` with the next
    one to hold (or :data:`NO_HOLD`, when too few are left for the other workers): this worker
    boots the held one's kernel while it grades. Every submission is given by the pool to one
    worker, so a worker that dies at any moment loses nothing: the pool knows what it held."""
    import warnings

    from .pool import die_with_parent

    os.setsid()   # own process group: the parent can kill this worker together with what it started
    die_with_parent()
    warnings.filterwarnings("ignore", module="nbgrader")   # SQLAlchemy session warnings from nbgrader's api
    options = GradingOptions.from_dict(spec.options)
    if options.sandbox:
        from ..sandbox import acquire_slot

        slot, _token = acquire_slot(slot)   # this worker's sandbox user, for the worker's life
        conn.send(("slot", os.getpid(), slot))
    worker = Worker(spec, slot)
    try:
        task = conn.recv()
        while task is not None:
            conn.send(("start", task, os.getpid(), time.monotonic()))
            upcoming = conn.recv()
            if upcoming is None:          # the pool is stopping: grade nothing more
                break
            upcoming = None if upcoming == NO_HOLD else upcoming
            conn.send(("done", worker.grade(task, upcoming)))
            task = upcoming if upcoming is not None else conn.recv()
    except EOFError:   # the pool is gone
        pass
    finally:
        worker.close()
