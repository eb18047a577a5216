"""Find the submissions under ``submitted/``, check them, and stage each one for grading.

A student id, and an assignment folder name, must be a safe id (:data:`SAFE_ID`): nbgrader uses
ids as glob patterns and writes them into CSV exports, so ``*``, ``[ab]``, ``=2+5`` or ``-rf`` are
rejected by name, with the rule, and never reach nbgrader. Folders are listed without following
links; a student or assignment folder that is a link is rejected. Each submission is copied by
:func:`.stage.stage` into ``<root>/.cnn-course-state/staged/<student>/<assignment>/`` (the folder
the grader reads) and compared with its state record (:mod:`.state`).
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import nbformat

from ..course import get
from ..nbapi import CourseError
from . import state
from .outcome import Outcome, Task
from .stage import LIMITS, STAGED, Limits, Rejected, private_dir, stage

SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
RULE = ("1 to 64 ASCII letters, digits, '_', '.' or '-', starting with a letter, digit or '_' "
        "(no spaces, glob characters such as * ? [ ], or leading = + - @ .)")


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]}


def shown(name: str) -> str:
    """A name as it may be printed: control characters and non-ASCII escaped."""
    return name.encode("ascii", "backslashreplace").decode().translate(_CONTROL)


def check_id(name: str, what: str = "student id") -> str | None:
    """None if ``name`` is a safe id, else why not and how to fix it."""
    if SAFE_ID.match(name):
        return None
    return f"{what} {shown(name)!r} is not allowed: use {RULE}; rename the folder"


def staging_root(root: Path) -> Path:
    return Path(root) / state.STATE_DIR / STAGED


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def discover(root: Path, assignments: list[str], student: str | None = None, force: bool = False,
             limits: Limits = LIMITS):
    """Split the submissions under ``submitted/`` into tasks to grade and outcomes already known;
    each folder is checked against ``limits`` (:meth:`Limits.from_options` of the grading options)."""
    root = Path(root)
    submitted = root / "submitted"
    if not submitted.is_dir() or submitted.is_symlink():
        raise CourseError(f"no submitted/ folder under {root}: put each submission in "
                          f"submitted/<student>/<assignment>/<notebook>.ipynb")
    if student is not None and check_id(student):
        raise CourseError(check_id(student))
    tasks, known, students = [], [], []
    for entry in _entries(submitted):
        if student is not None and entry.name != student:
            continue
        if not entry.is_dir(follow_symlinks=False):
            if entry.is_symlink():
                known.append(Outcome("-", shown(entry.name), "rejected",
                                     f"submitted/{shown(entry.name)} is a symbolic link: replace it by a folder"))
            continue
        why = check_id(entry.name)
        if why:
            inside = [a for a in assignments if os.path.lexists(Path(entry.path) / a)] or ["-"]
            known += [Outcome(a, shown(entry.name), "rejected", why) for a in inside]
            continue
        students.append(entry.name)
        for sub in _entries(Path(entry.path)):
            if sub.name not in assignments and check_id(sub.name, "assignment folder"):
                known.append(Outcome(shown(sub.name), entry.name, "rejected",
                                     check_id(sub.name, "assignment folder")))
    if student is not None and student not in students and not known:
        raise CourseError(f"no submissions from student {student!r} under {submitted}")
    staging = private_dir(staging_root(root))
    for a_id in assignments:
        a = get(a_id)
        for s in students:
            try:
                outcome_or_task = _one(root, submitted / s / a_id, staging / s / a_id, a_id, a.notebook, s, force,
                                       limits)
            except Exception as exc:   # one odd submission is one outcome, never the whole run
                outcome_or_task = Outcome(a_id, s, "rejected", f"submitted/{s}/{a_id} could not be read: "
                                                               f"{type(exc).__name__}: {str(exc)[:160]}")
            if isinstance(outcome_or_task, Task):
                tasks.append(outcome_or_task)
            elif outcome_or_task is not None:
                known.append(outcome_or_task)
    return tasks, known


def _one(root: Path, folder: Path, dest: Path, a_id: str, notebook: str, s: str, force: bool,
         limits: Limits):
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return None
    where = f"submitted/{s}/{a_id}"
    if not stat.S_ISDIR(st.st_mode):
        return Outcome(a_id, s, "rejected", f"{where} is not a folder (a link?): hand in a folder of regular files")
    try:
        digest = stage(folder, dest, limits, base=root / "submitted")
    except Rejected as exc:
        return Outcome(a_id, s, "rejected", f"{where}: {exc}; a submission may hold only regular files and "
                                            f"folders, within its size limits")
    nb_path = dest / f"{notebook}.ipynb"
    if not nb_path.exists():
        return Outcome(a_id, s, "missing", f"no {notebook}.ipynb in {where}; scored 0")
    if nb_path.stat().st_size > limits.max_notebook_bytes:
        return Outcome(a_id, s, "rejected", f"{nb_path.name} is larger than {limits.max_notebook_bytes // 2 ** 20} "
                                            f"MiB: clear its outputs and hand it in again")
    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except Exception as exc:
        return Outcome(a_id, s, "corrupt", f"{nb_path.name} is not a readable notebook: "
                                           f"{type(exc).__name__}: {str(exc)[:120]}")
    if len(nb.get("cells", [])) > limits.max_cells:
        return Outcome(a_id, s, "rejected", f"{nb_path.name} has more than {limits.max_cells} cells")
    task = Task(a_id, s, digest=digest)
    ts_file = dest / "timestamp.txt"
    if ts_file.exists():
        text = ts_file.read_text(errors="replace").strip()
        if text and state.parse_timestamp(text) is None:
            ts_file.unlink()
            task.notes.append(f"timestamp.txt {text[:40]!r} is not a time nbgrader can read: ignored")
        else:
            task.timestamp = text or None
    graded_dir = root / "autograded" / s / a_id
    if force:
        task.force = True
        return task
    graded_ts = graded_dir / "timestamp.txt"
    graded_text = graded_ts.read_text(errors="replace").strip() if graded_ts.is_file() else None
    action, note = state.decide(state.read(root, a_id, s), graded_dir.exists(), digest, task.timestamp, graded_text)
    if action == "skip":
        return Outcome(a_id, s, "skipped", note)
    task.force = action == "regrade"
    if note:
        task.notes.append(note)
    return task
