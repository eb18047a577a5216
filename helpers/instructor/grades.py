"""Grades out of the gradebook: a per-question CSV export and an item analysis report.

nbgrader's own ``export`` gives one row per student and assignment with no per-question
columns (jupyter/nbgrader #797). ``export_csv`` writes one row per student and one column per
graded test cell, named ``<assignment>/<grade_id>``, then ``<assignment>/total`` for each
assignment and ``course_total``. The first data row, ``max_points``, holds the points
available. A submission that was never made, or never graded, scores 0. In both files (this one
and nbgrader's own export) no field starts with a formula character (:mod:`.grading.csvsafe`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import ASSIGNMENTS
from .grading import csvsafe
from .nbapi import gradebook


@dataclass
class GradeTable:
    columns: list[tuple[str, str]] = field(default_factory=list)        # (assignment, grade_id)
    max_points: dict = field(default_factory=dict)                      # (assignment, grade_id) -> points
    scores: dict = field(default_factory=dict)                          # student -> {(a, gid): score}
    submitted: dict = field(default_factory=dict)                       # student -> set of assignments
    flags: dict = field(default_factory=dict)                           # (student, a, gid) -> why it was flagged

    @property
    def assignments(self) -> list[str]:
        return list(dict.fromkeys(a for a, _ in self.columns))

    def total(self, student: str, assignment: str | None = None) -> float:
        return sum(v for (a, _), v in self.scores.get(student, {}).items() if assignment in (None, a))

    def max_total(self, assignment: str | None = None) -> float:
        return sum(v for (a, _), v in self.max_points.items() if assignment in (None, a))


def _grade_ids_in_order(config, assignment) -> list[str]:
    root = Path(config.CourseDirectory.root)
    src = root / config.CourseDirectory.get("source_directory", "source") / assignment.id / f"{assignment.notebook}.ipynb"
    if not src.exists():
        return []
    nb = nbformat.read(str(src), as_version=4)
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade") and "points" in c.metadata["nbgrader"]]


def collect(config) -> GradeTable:
    """Read every grade of every student from the gradebook."""
    table = GradeTable()
    with gradebook(config) as gb:
        known = {a.name: a for a in gb.assignments}
        for a in ASSIGNMENTS:
            if a.id not in known:
                continue
            cells = {}
            for nb in known[a.id].notebooks:
                for gc in nb.grade_cells:
                    cells[gc.name] = (nb.name, float(gc.max_score))
            order = [g for g in _grade_ids_in_order(config, a) if g in cells] + \
                sorted(g for g in cells if g not in _grade_ids_in_order(config, a))
            for gid in order:
                table.columns.append((a.id, gid))
                table.max_points[(a.id, gid)] = cells[gid][1]
        for student in gb.students:
            sid = student.id
            table.scores[sid] = {col: 0.0 for col in table.columns}
            table.submitted[sid] = set()
            for sub in student.submissions:
                a_id = sub.assignment.name
                table.submitted[sid].add(a_id)
                for snb in sub.notebooks:
                    for grade in snb.grades:
                        key = (a_id, grade.name)
                        if key in table.scores[sid]:
                            table.scores[sid][key] = float(grade.score or 0.0)
    table.flags = read_flags(Path(config.CourseDirectory.root))
    return table


def read_flags(root: Path) -> dict:
    """The out-of-kernel flags of every graded submission, from the result records that the grading
    pipeline wrote into the autograded notebooks: ``{(student, assignment, grade_id): reason}``."""
    from .grading.worker import read_result

    flags = {}
    for a in ASSIGNMENTS:
        for path in sorted((root / "autograded").glob(f"*/{a.id}/{a.notebook}.ipynb")):
            student = path.parent.parent.name
            for f in read_result(path).flags:
                flags[(student, a.id, f["cell"])] = f"FLAG: {f['reason']}"
    return flags


def export_csv(config, path: Path | str, nbgrader_csv: Path | str | None = None) -> Path:
    """Write the per-question CSV (and nbgrader's own export beside it, if asked)."""
    table = collect(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["student_id"] + [f"{a}/{g}" for a, g in table.columns] + \
        [f"{a}/total" for a in table.assignments] + ["course_total"]
    with path.open("w", newline="") as fh:
        w = csvsafe.writer(fh)   # no field is ever read as a formula (student ids, grade ids)
        w.writerow(header)
        w.writerow(["max_points"] + [f"{table.max_points[c]:g}" for c in table.columns] +
                   [f"{table.max_total(a):g}" for a in table.assignments] + [f"{table.max_total():g}"])
        for sid in sorted(table.scores):
            w.writerow([sid] + [f"{table.scores[sid][c]:g}" for c in table.columns] +
                       [f"{table.total(sid, a):g}" for a in table.assignments] + [f"{table.total(sid):g}"])
    if nbgrader_csv:
        from nbgrader.plugins import CsvExportPlugin

        with gradebook(config) as gb:
            CsvExportPlugin(to=str(nbgrader_csv)).export(gb)
        csvsafe.rewrite(nbgrader_csv)
    return path


def item_analysis(table: GradeTable) -> dict:
    """Pass rate per test cell (full points), mean fraction per assignment, and course totals."""
    students = sorted(table.scores)
    per_cell = {}
    for col in table.columns:
        takers = [s for s in students if col[0] in table.submitted.get(s, ())]
        full = [s for s in takers if table.scores[s][col] >= table.max_points[col] - 1e-9]
        per_cell[col] = (len(full) / len(takers) if takers else float("nan"), len(takers))
    per_assignment = {}
    for a in table.assignments:
        takers = [s for s in students if a in table.submitted.get(s, ())]
        mx = table.max_total(a)
        per_assignment[a] = (sum(table.total(s, a) for s in takers) / (mx * len(takers)) if takers and mx
                             else float("nan"), len(takers))
    totals = {s: table.total(s) for s in students}
    return {"per_cell": per_cell, "per_assignment": per_assignment, "totals": totals,
            "max_total": table.max_total()}


def report(config, out_dir: Path | str) -> tuple[str, list[Path]]:
    """Print-ready item analysis and PNG plots in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = collect(config)
    ia = item_analysis(table)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["Item analysis: share of students with full points on each test cell", ""]
    w = max([len(f"{a}/{g}") for a, g in table.columns] + [10])
    for (a, g), (rate, n) in ia["per_cell"].items():
        bar = "#" * int(round(20 * rate)) if rate == rate else ""
        lines.append(f"  {a + '/' + g:<{w}}  {rate:6.0%}  {bar:<20}  (n={n})")
    lines += ["", "Per assignment: mean share of points", ""]
    for a, (frac, n) in ia["per_assignment"].items():
        lines.append(f"  {a:<22} {frac:6.0%}  (n={n})")
    totals = sorted(ia["totals"].values())
    if totals:
        lines += ["", f"Course totals (out of {ia['max_total']:g}): min {totals[0]:g}, "
                      f"median {totals[len(totals) // 2]:g}, max {totals[-1]:g}, n={len(totals)}"]
    if table.flags:
        lines += ["", "Flagged by the out-of-kernel check (in-kernel tests passed, hidden inputs did not):"]
        lines += [f"  {s} {a}/{g}: {t}" for (s, a, g), t in sorted(table.flags.items())]
    pngs = []
    if table.columns:
        labels = [f"{a}/{g}" for a, g in table.columns]
        rates = [ia["per_cell"][c][0] for c in table.columns]
        fig, ax = plt.subplots(figsize=(8, 0.28 * len(labels) + 1.2))
        ax.barh(range(len(labels)), rates, color=["#e63946" if r < 0.5 else "#2a9d8f" for r in rates])
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of students with full points")
        ax.set_title("Item analysis: pass rate per test cell")
        fig.tight_layout()
        pngs.append(out_dir / "item_analysis.png")
        fig.savefig(pngs[-1], dpi=110)
        plt.close(fig)
    if totals:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(totals, bins=min(20, max(5, len(totals))), range=(0, ia["max_total"] or 1), color="#457b9d")
        ax.set_xlabel(f"course total (out of {ia['max_total']:g})")
        ax.set_ylabel("students")
        ax.set_title("Grade distribution")
        fig.tight_layout()
        pngs.append(out_dir / "grade_distribution.png")
        fig.savefig(pngs[-1], dpi=110)
        plt.close(fig)
    text = "\n".join(lines)
    (out_dir / "item_analysis.txt").write_text(text + "\n")
    return text, pngs
