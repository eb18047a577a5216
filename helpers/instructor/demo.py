"""A synthetic class built from the course itself, and the whole instructor pipeline run on it.

Every submission starts from the student edition in ``release/`` and fills the answer cells with
the reference solutions from the source notebooks, then applies one classic mistake:

=============  ==========================================================================
student        what they hand in
=============  ==========================================================================
alice          everything right, every notebook
ben            a forgotten stride in conv_forward (03) and in pool_forward (05)
cara           a forgotten bias in conv_single_step (02), conv_forward (03) and conv_param_count (03)
dev            conv_forward (03) slices the unpadded input
eve            distribute_value (06) that does not divide by the window size
finn           backward passes that ignore the stride: conv_backward (04), pool_backward (06)
gus            01 with its notebook missing, and 02 right
hana           01 as a corrupt (unreadable) file
ivan           07 with a relu that hangs forever
jack           10 with a sign error in the SGD step: the network does not train
jay            conv_forward_fast (09) without the stride: the windows view is not strided
=============  ==========================================================================
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import nbformat

from .course import ASSIGNMENTS, ROOT, get
from .regions import Regions, is_answer_cell

# student -> assignment -> list of (answer cell grade_id, old, new) replacements in the filled answer code.
MISTAKES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "ben": {"03_conv_forward": [("conv_forward", "vert_start = h * stride", "vert_start = h"),
                                ("conv_forward", "horiz_start = w * stride", "horiz_start = w")],
            "05_pool_forward": [("pool_forward", "vert_start = h * stride", "vert_start = h"),
                                ("pool_forward", "horiz_start = w * stride", "horiz_start = w")]},
    "cara": {"02_conv_single_step": [("conv_single_step", "Z = float(np.sum(s)) + b.item()", "Z = float(np.sum(s))")],
             "03_conv_forward": [("conv_forward", " + b[0, 0, 0, c]", ""),
                                 ("conv_param_count", "count = f * f * n_C_prev * n_C + n_C",
                                  "count = f * f * n_C_prev * n_C")]},
    "dev": {"03_conv_forward": [("conv_forward", "a_prev_pad = A_prev_pad[i]", "a_prev_pad = A_prev[i]")]},
    "eve": {"06_pool_backward": [("distribute_value", "average = dz / (f_H * f_W)", "average = dz")]},
    "finn": {"04_conv_backward": [("conv_backward", "vert_start = h * stride", "vert_start = h"),
                                  ("conv_backward", "horiz_start = w * stride", "horiz_start = w")],
             "06_pool_backward": [("pool_backward", "vert_start = h * stride", "vert_start = h"),
                                  ("pool_backward", "horiz_start = w * stride", "horiz_start = w")]},
    "ivan": {"07_relu": [("relu", "A = np.maximum(0.0, Z)", "while True:\n        pass")]},
    "jack": {"10_digits_cnn": [("sgd_momentum_step", "new_params[k] = params[k] - learning_rate * new_velocity[k]",
                                "new_params[k] = params[k] + learning_rate * new_velocity[k]")]},
    "jay": {"09_fast_layers": [("conv_forward_fast", "axis=(1, 2))[:, ::stride, ::stride]", "axis=(1, 2))")]},
}
CORRECT = {"alice": [a.id for a in ASSIGNMENTS], "gus": ["02_conv_single_step"]}
MISSING = {"gus": ["01_zero_padding"]}
CORRUPT = {"hana": ["01_zero_padding"]}


def strip_markers(source: str, config=None) -> str:
    """An answer cell's source as the reference answer: without the lines of the solution delimiters."""
    return Regions(config).without_solution_delimiters(source)


def filled_notebook(release_nb: Path, source_nb: Path, mistakes: list[tuple[str, str, str]] = ()):
    """The release notebook with every answer cell replaced by the reference answer (plus mistakes).

    A mistake ``(grade_id, old, new)`` replaces ``old`` by ``new`` in that answer cell.
    """
    nb = nbformat.read(str(release_nb), as_version=4)
    src = nbformat.read(str(source_nb), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: strip_markers(c.source) for c in src.cells
               if is_answer_cell(c)}
    for grade_id, old, _ in mistakes:
        if grade_id not in answers or old not in answers[grade_id]:
            raise RuntimeError(f"demo: mistake {old!r} found nothing to change in answer cell {grade_id!r} of "
                               f"{source_nb.name}; update MISTAKES in helpers/instructor/demo.py")
    for grade_id, old, new in mistakes:
        answers[grade_id] = answers[grade_id].replace(old, new)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in answers:
            cell.source = answers[meta["grade_id"]]
    return nb


def build_class(course_root: Path) -> dict:
    """Write ``submitted/`` for the synthetic class. Returns {student: [assignments]}."""
    submitted = course_root / "submitted"
    if submitted.exists():
        shutil.rmtree(submitted)
    roster: dict[str, list[str]] = {}
    plan: list[tuple[str, str, list]] = []
    for s, ids in CORRECT.items():
        plan += [(s, a, []) for a in ids]
    for s, per in MISTAKES.items():
        plan += [(s, a, m) for a, m in per.items()]
    for s, a_id, mistakes in plan:
        a = get(a_id)
        folder = submitted / s / a_id
        folder.mkdir(parents=True, exist_ok=True)
        nb = filled_notebook(course_root / "release" / a_id / f"{a.notebook}.ipynb",
                             course_root / "notebooks" / a_id / f"{a.notebook}.ipynb", mistakes)
        nbformat.write(nb, str(folder / f"{a.notebook}.ipynb"))
        roster.setdefault(s, []).append(a_id)
    for s, ids in MISSING.items():
        for a_id in ids:
            folder = submitted / s / a_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "notes.txt").write_text("I forgot to save my notebook here.\n")
            roster.setdefault(s, []).append(a_id)
    for s, ids in CORRUPT.items():
        for a_id in ids:
            folder = submitted / s / a_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{get(a_id).notebook}.ipynb").write_text('{"cells": [ {"cell_type": "code", "sou')
            roster.setdefault(s, []).append(a_id)
    return roster


def prepare_course(course_root: Path) -> None:
    """A course directory for the demo: the course's notebooks (linked) and nbgrader config."""
    course_root.mkdir(parents=True, exist_ok=True)
    link = course_root / "notebooks"
    if not link.exists():
        try:
            link.symlink_to(ROOT / "notebooks", target_is_directory=True)
        except OSError:
            shutil.copytree(ROOT / "notebooks", link)
    shutil.copy(ROOT / "nbgrader_config.py", course_root / "nbgrader_config.py")


def _refuse_a_real_class(db_url: str) -> None:
    """The demo writes its synthetic class into the gradebook: refuse a server gradebook that holds
    other students (it outlives the demo folder; a rerun of the demo on its own database is fine)."""
    from .gradebook import student_ids
    from .nbapi import CourseError, display_url

    if db_url.startswith("sqlite"):
        return   # the demo's own file in its folder, removed above when fresh
    demo_students = set(CORRECT) | set(MISTAKES) | set(MISSING) | set(CORRUPT)
    others = sorted(set(student_ids(db_url)) - demo_students)
    if others:
        raise CourseError(f"the gradebook {display_url(db_url)} holds students who are not the demo's "
                          f"({', '.join(others[:5])}{' ...' if len(others) > 5 else ''}): give the demo a "
                          f"database of its own")


def run_demo(course_root: Path | str | None = None, jobs: int | None = None, db_url: str | None = None,
             cell_timeout: int = 10, budget: int = 90, stream=None, fresh: bool = True) -> dict:
    """Release, build the class, autograde, feedback, export and report. Returns the paths written."""
    from . import autograde as ag
    from .feedback import feedback_overrides
    from .grades import export_csv, report
    from .nbapi import display_url, load_config, make_api
    from .release import release

    out = stream or sys.stdout
    course_root = Path(course_root or ROOT / "demo").resolve()
    if fresh and course_root.exists():
        for name in ("release", "submitted", "autograded", "feedback", "exports", "reports", ag.STATE_DIR,
                     "gradebook.db"):
            p = course_root / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    prepare_course(course_root)
    config = load_config(course_root, db_url)
    _refuse_a_real_class(config.CourseDirectory.db_url)
    t0 = time.monotonic()
    print(f"== release: the student edition of {len(ASSIGNMENTS)} notebooks", file=out)
    release(config, stream=out)
    roster = build_class(course_root)
    n = sum(len(v) for v in roster.values())
    print(f"== demo class: {len(roster)} students, {n} submissions in {course_root / 'submitted'}", file=out)
    print(f"== autograde ({jobs or os.cpu_count()} at a time)", file=out)
    outcomes = ag.autograde(course_root, jobs=jobs, db_url=db_url, cell_timeout=cell_timeout, budget=budget,
                            stream=out)
    print(ag.summary_table(outcomes), file=out)
    print("== feedback", file=out)
    fb_config = load_config(course_root, db_url, overrides=feedback_overrides())
    api = make_api(fb_config)
    graded = {(o.assignment, o.student) for o in outcomes if o.status in ("graded", "skipped")}
    for a_id in sorted({a for a, _ in graded}):
        res = api.generate_feedback(a_id, None, force=True)
        if not res.get("success"):
            print(f"feedback for {a_id} failed: {(res.get('error') or '')[-500:]}", file=out)
    print("== export and report", file=out)
    csv_path = export_csv(config, course_root / "exports" / "grades_per_question.csv",
                          course_root / "exports" / "grades_nbgrader.csv")
    text, pngs = report(config, course_root / "reports")
    print(text, file=out)
    paths = {
        "release": course_root / "release",
        "submitted": course_root / "submitted",
        "autograded": course_root / "autograded",
        "feedback": course_root / "feedback",
        "gradebook": display_url(config.CourseDirectory.db_url),
        "per-question CSV": csv_path,
        "nbgrader CSV": course_root / "exports" / "grades_nbgrader.csv",
        "report": course_root / "reports" / "item_analysis.txt",
        **{f"plot {p.stem}": p for p in pngs},
    }
    (course_root / "outcomes.json").write_text(ag.outcomes_json(outcomes))
    print(f"\n== demo finished in {time.monotonic() - t0:.0f} s. Outputs:", file=out)
    for k, v in paths.items():
        print(f"  {k:<22} {v}", file=out)
    return {"paths": paths, "outcomes": outcomes, "roster": roster}
