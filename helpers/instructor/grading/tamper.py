"""Neutralize tampered nbgrader metadata in a staged notebook, before nbgrader reads it.

nbgrader 0.9.6 crashes on two kinds of tampering, and the crash zeroes the whole notebook:

- a cell that claims a ``grade_id`` the assignment does not have (an extra graded cell):
  ``OverwriteCells`` deletes its ``grade_id`` and ``add_missing_cells`` then raises ``KeyError``;
- a ``grade_id`` that appears twice (a copied test cell): ``DeduplicateIds`` empties the metadata
  of the first and ``add_missing_task_cells`` raises ``KeyError`` on it.

:func:`neutralize` makes such cells plain cells (their nbgrader metadata removed): every cell whose
id the assignment lacks, or whose metadata has no id, and of the cells sharing an id all but one
(the first whose content matches the assignment's cell, else the first). It returns one note per
change, for the outcome. nbgrader then grades the remaining cells as usual: it restores locked
cells, fixes points, and adds back test cells that are gone.
"""
from __future__ import annotations

from pathlib import Path

import nbformat


def source_cells(config, assignment: str, notebook: str) -> dict[str, str]:
    """{grade_id: source} of the assignment's notebook: the gradebook's copy (what nbgrader grades
    against), else the notebook in the source folder."""
    from ..nbapi import gradebook

    try:
        with gradebook(config) as gb:
            nb = gb.find_notebook(notebook, assignment)
            return {c.name: c.source for c in nb.source_cells}
    except Exception:
        pass
    cd = config.CourseDirectory
    path = Path(cd.root) / cd.get("source_directory", "source") / assignment / f"{notebook}.ipynb"
    src = nbformat.read(str(path), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in src.cells
            if c.metadata.get("nbgrader", {}).get("grade_id")}


def _norm(text) -> str:
    text = "".join(text) if isinstance(text, list) else str(text or "")
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def neutralize(nb, known: dict[str, str]) -> list[str]:
    """Remove the nbgrader metadata of extra and duplicate graded cells in ``nb`` (in place)."""
    notes: list[str] = []
    by_id: dict[str, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        claims = isinstance(meta, dict) and any(meta.get(k) for k in ("grade", "solution", "locked", "task"))
        if not isinstance(gid, str) or not gid:
            del cell.metadata["nbgrader"]
            if claims:
                notes.append(f"cell {i + 1}: nbgrader metadata without a grade id: graded as a plain cell")
            continue
        if gid not in known:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {i + 1}: grade id {gid!r} is not in the assignment: graded as a plain cell")
            continue
        by_id.setdefault(gid, []).append(i)
    for gid, where in by_id.items():
        if len(where) < 2:
            continue
        keep = next((i for i in where if _norm(nb.cells[i].source) == _norm(known[gid])), where[0])
        for i in where:
            if i != keep:
                del nb.cells[i].metadata["nbgrader"]
        others = ", ".join(str(i + 1) for i in where if i != keep)
        notes.append(f"grade id {gid!r} appears {len(where)} times: cell {keep + 1} keeps it, "
                     f"cell(s) {others} graded as plain cells")
    return notes
