"""The course's table of contents, read from the source notebooks themselves.

An assignment is a folder ``notebooks/<id>/`` holding one notebook. Its title is the notebook's
first heading (``# 03 · Convolution forward``, without the number); its graded functions are the
functions defined in its solution cells that its test cells check (``check_function(fn, "fn")``).
Adding a notebook therefore needs no edit here.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK_CALL = re.compile(r"check_(?:function|case|accuracy)\(\s*\w+\s*,\s*['\"](\w+)['\"]")


@dataclass(frozen=True)
class Assignment:
    id: str          # folder under notebooks/, and nbgrader's assignment id
    notebook: str    # notebook name without .ipynb
    title: str
    functions: tuple[str, ...]
    root: Path = ROOT
    # test cell grade_id -> seconds: a longer timeout that the source notebook declares for one of its own test
    # cells (cell metadata {"cnn_course": {"timeout": s}}), honoured by the grader in the kernel and out of it
    timeouts: tuple[tuple[str, int], ...] = ()

    @property
    def source(self) -> Path:
        return self.source_at(self.root)

    def source_at(self, root: Path | str, source_directory: str = "notebooks") -> Path:
        """The source notebook in the course directory ``root``."""
        return Path(root) / source_directory / self.id / f"{self.notebook}.ipynb"


def _read_assignment(folder: Path, root: Path) -> Assignment | None:
    notebooks = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if len(notebooks) != 1:
        return None
    nb = json.loads(notebooks[0].read_text(encoding="utf-8"))
    title, defined, checked, timeouts = folder.name, [], set(), []
    for cell in nb.get("cells", []):
        source = "".join(cell.get("source", []))
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "markdown" and title == folder.name:
            first = source.strip().splitlines()[0] if source.strip() else ""
            if first.startswith("# "):
                title = re.sub(r"^#\s*\d+\s*·\s*", "", first).strip()
        if cell.get("cell_type") != "code":
            continue
        if meta.get("solution"):
            try:
                defined += [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
            except SyntaxError:
                pass
        elif meta.get("grade"):
            checked |= set(CHECK_CALL.findall(source))
            declared = (cell.get("metadata", {}).get("cnn_course") or {}).get("timeout")
            if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0 and meta.get("grade_id"):
                timeouts.append((meta["grade_id"], declared))
    functions = tuple(dict.fromkeys(f for f in defined if f in checked))
    return Assignment(folder.name, notebooks[0].stem, title, functions, root, tuple(timeouts))


@lru_cache(maxsize=8)
def read_course(root: Path = ROOT) -> tuple[Assignment, ...]:
    """Every assignment under ``root/notebooks``, in folder order."""
    base = Path(root) / "notebooks"
    found = (_read_assignment(d, Path(root)) for d in sorted(base.iterdir()) if d.is_dir() and d.name[:1].isdigit())
    return tuple(a for a in found if a is not None)


ASSIGNMENTS: tuple[Assignment, ...] = read_course(ROOT)
BY_ID = {a.id: a for a in ASSIGNMENTS}
GRADED_FUNCTIONS = {f: a for a in ASSIGNMENTS for f in a.functions}


def get(assignment_id: str) -> Assignment:
    """The assignment with this id, or a CourseError (an input problem) that lists the known ids."""
    from .nbapi import CourseError

    try:
        return BY_ID[assignment_id]
    except KeyError:
        raise CourseError(f"unknown assignment {assignment_id!r}; known: {', '.join(BY_ID)}") from None
