"""What comes back from a worker is data: checked, then written by the trusted host alone.

A worker returns ``{"outcome": {...}, "notebook": bytes | None, "worker": str}``. The host
believes none of it beyond what it checks: the notebook's cells and outputs, and the outcome's
text, are shaped by the student code the worker ran, and must reach no one else's grades nor the
host's files. (These checks are not a wall against a worker *process* under an attacker's control,
which takes a sandbox escape: Dask unpickles what its peers send. The README's threat model says so.)

- the outcome must be about the task's own assignment and student, with status ``graded`` or
  ``failed``; its text fields are cut to a length and every other field is rebuilt here;
- the notebook must be at most :func:`max_notebook_bytes`, a valid nbformat 4 notebook, and a
  notebook *of this assignment*: its graded cells are exactly those of the assignment's source in
  the central gradebook, each once, and no cell claims a ``grade_id`` the source lacks;
- no path from it is ever followed: the host writes ``autograded/<student>/<assignment>/`` from its
  own staged copy of the submission, the source folder's files (as nbgrader does) and the notebook,
  under the name the host knows.

The central gradebook is written with nbgrader's own preprocessors, on the returned notebook:
``update_or_create_submission`` (with the submission's timestamp), ``OverwriteCells`` (points, cell
types and locked sources back from the gradebook's source, whatever the notebook says),
``SaveAutoGrades`` and ``AssignLatePenalties``. nbgrader replaces a submission's grades, so
writing once per finished task is exactly once.
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import time
from pathlib import Path

import nbformat

from ..grading import result as result_mod
from ..grading import state
from ..grading.discover import staging_root
from ..grading.outcome import Outcome, Task
from ..grading.stage import LIMITS


class Invalid(ValueError):
    """What a worker returned is not an answer to this task."""


def max_notebook_bytes(options: dict) -> int:
    """The largest autograded notebook accepted: the submission's limit plus the output caps."""
    return LIMITS.max_notebook_bytes + int(options.get("max_notebook_output_bytes", 32 * 2 ** 20)) + 2 ** 20


def _text(value, limit: int = 2000) -> str:
    return str(value if value is not None else "")[:limit]


def outcome_from(res, task: Task) -> Outcome:
    if not isinstance(res, dict) or not isinstance(res.get("outcome"), dict):
        raise Invalid("not a result record")
    o = res["outcome"]
    if o.get("assignment") != task.assignment or o.get("student") != task.student:
        raise Invalid("the outcome is about another submission")
    status = o.get("status")
    if status not in ("graded", "failed"):
        raise Invalid(f"status {_text(status, 20)!r}")
    try:
        seconds = float(o.get("seconds") or 0.0)
    except (TypeError, ValueError):
        seconds = 0.0
    flags = [_text(f, 500) for f in (o.get("flags") or [])[:200]] if isinstance(o.get("flags"), list) else []
    return Outcome(task.assignment, task.student, status, _text(o.get("reason")), seconds, flags=flags)


def source_grade_ids(config, assignment: str, notebook: str) -> tuple[set, set]:
    """(graded cell ids, every source cell id) of the assignment's notebook in the central gradebook."""
    from ..nbapi import gradebook

    with gradebook(config) as gb:
        nb = gb.find_notebook(notebook, assignment)
        return {c.name for c in nb.grade_cells}, {c.name for c in nb.source_cells}


def validated_notebook(data, task: Task, config, options: dict):
    from ..course import get

    if not isinstance(data, (bytes, bytearray)):
        raise Invalid("no autograded notebook")
    cap = max_notebook_bytes(options)
    if len(data) > cap:
        raise Invalid(f"the autograded notebook is larger than {cap // 2 ** 20} MiB")
    try:
        nb = nbformat.reads(bytes(data).decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:
        raise Invalid(f"the autograded notebook is not a valid notebook: {type(exc).__name__}") from None
    graded, known = source_grade_ids(config, task.assignment, get(task.assignment).notebook)
    seen: dict[str, int] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not isinstance(meta, dict) or "grade_id" not in meta:
            continue
        gid = meta.get("grade_id")
        if not isinstance(gid, str) or gid not in known:
            raise Invalid(f"a cell claims grade id {_text(gid, 60)!r}, which {task.assignment} does not have")
        if meta.get("grade"):
            seen[gid] = seen.get(gid, 0) + 1
    if set(seen) != graded or any(n != 1 for n in seen.values()):
        raise Invalid(f"its graded cells are not those of {task.assignment}")
    return nb


def write_gradebook(config, task: Task, nb) -> None:
    """The central gradebook: the submission, then nbgrader's own preprocessors on the notebook."""
    from nbgrader.preprocessors import AssignLatePenalties, OverwriteCells, SaveAutoGrades
    from traitlets.config import Config

    from ..course import get
    from ..nbapi import gradebook

    import warnings

    warnings.filterwarnings("ignore", module="nbgrader")   # SQLAlchemy session warnings from nbgrader's api
    ts = state.parse_timestamp(task.timestamp)
    with gradebook(config) as gb:
        gb.update_or_create_student(task.student)
        if ts is not None:
            gb.update_or_create_submission(task.assignment, task.student, timestamp=ts)
        else:
            gb.update_or_create_submission(task.assignment, task.student)
    cfg = Config()
    cfg.merge(config)
    cfg.OverwriteCells.add_missing_cells = False   # every graded cell is there: validated_notebook
    resources = {"nbgrader": {"notebook": get(task.assignment).notebook, "assignment": task.assignment,
                              "student": task.student, "db_url": config.CourseDirectory.db_url}}
    for pp in (OverwriteCells, SaveAutoGrades, AssignLatePenalties):
        nb, resources = pp(config=cfg).preprocess(nb, resources)


def write_autograded(config, root: Path, task: Task, nb) -> Path:
    """``autograded/<student>/<assignment>/`` as nbgrader writes it: the submission's other files,
    the source folder's files, the autograded notebook; files read-only (0444)."""
    from ..course import get

    a = get(task.assignment)
    cd = config.CourseDirectory
    ignore = list(cd.get("ignore", [])) + ["*.ipynb"]
    dest = Path(root) / cd.get("autograded_directory", "autograded") / task.student / task.assignment
    tmp = dest.with_name(f".{task.assignment}.incoming")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sources = [staging_root(root) / task.student / task.assignment,
               Path(root) / cd.get("source_directory", "source") / task.assignment]
    for base in sources:
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = [d for d in dirnames if not any(fnmatch.fnmatch(d, p) for p in ignore)]
            for f in filenames:
                src = Path(dirpath) / f
                if any(fnmatch.fnmatch(f, p) for p in ignore) or src.is_symlink() or not src.is_file():
                    continue
                out = tmp / os.path.relpath(src, base)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.unlink(missing_ok=True)
                shutil.copyfile(src, out)
    nbformat.write(nb, str(tmp / f"{a.notebook}.ipynb"))
    for dirpath, _, filenames in os.walk(tmp):
        for f in filenames:
            os.chmod(Path(dirpath) / f, 0o444)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def accept(res, task: Task, root: Path, config, options: dict) -> Outcome:
    """Check a worker's answer; write the gradebook, ``autograded/`` and the state record once."""
    try:
        outcome = outcome_from(res, task)
        if outcome.status != "graded":
            return outcome
        nb = validated_notebook(res.get("notebook"), task, config, options)
        try:
            record = result_mod.read(nb) or result_mod.SubmissionResult()
        except ValueError:
            record = result_mod.SubmissionResult()
    except Invalid as exc:
        return Outcome(task.assignment, task.student, "failed",
                       f"what the worker returned was refused: {exc}", 0.0)
    write_gradebook(config, task, nb)
    write_autograded(config, root, task, nb)
    timings = {k: float(v) for k, v in (record.timings or {}).items()
               if isinstance(k, str) and isinstance(v, (int, float))} if isinstance(record.timings, dict) else {}
    state.write(root, task.assignment, task.student,
                {"graded_at": time.time(), "seconds": outcome.seconds, "note": outcome.reason,
                 "flags": outcome.flags, "digest": task.digest, "timestamp": task.timestamp, "timings": timings,
                 "worker": _text(res.get("worker"), 200)})
    return outcome
