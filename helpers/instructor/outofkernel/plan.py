"""The plan of the out-of-kernel check: which cells to run, in notebook order, and what each test cell checks.

A test cell belongs to the function(s) whose name its source passes to ``check_function`` or
``check_case``, and is judged on the cases it names (the visible cases by default). Answer cells
(``nbgrader.solution``) run whole; locked cells (setup) run whole, restored from the gradebook; of
the student's other code cells only the ``def``, ``class`` and ``import`` statements run. The
functions of a notebook are called where the first test cell that checks them would run.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from ..regions import nbgrader_meta

CHECK_CALLS = {"check_function", "check_case", "check_not_mutated", "check_accuracy"}


def visible_cases(func: str) -> list[str]:
    """The cases that ``check_function(fn, func)`` checks by default."""
    from ..cases import CASES

    return [name for name, spec in CASES.get(func, {}).items() if spec.visible]


def defined_names(source: str) -> list[str]:
    """Top-level ``def`` names of a cell (none if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return [m.group(1) for m in re.finditer(r"^def\s+([A-Za-z_]\w*)\s*\(", source, re.M)]
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def definitions_only(source: str) -> str:
    """The ``def``, ``class`` and ``import`` statements of a cell, in order (nothing else runs)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    keep = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                   ast.Import, ast.ImportFrom))]
    return "\n\n".join(ast.get_source_segment(source, n) or "" for n in keep)


def checks_in_cell(source: str, known) -> list[tuple[str, list[str] | None]]:
    """What a test cell checks: ``[(function, cases)]`` for each ``check_function(fn, "name", cases)``
    or ``check_case(fn, "name", case)``; ``cases`` is None for the default (the visible cases)."""
    known = set(known)
    found: list = []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        for m in re.finditer(r"check_(?:function|case)\(\s*(\w+)\s*,\s*['\"](\w+)['\"]", source):
            if m.group(2) in known:
                found.append((m.group(2), None))
        return found
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else \
            node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if name not in CHECK_CALLS:
            continue
        func = None
        for arg in node.args[:2]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value in known:
                func = arg.value
            elif func is None and isinstance(arg, ast.Name) and arg.id in known:
                func = arg.id
        if func is None:
            continue
        cases_node = node.args[2] if len(node.args) > 2 else \
            next((k.value for k in node.keywords if k.arg in ("cases", "case")), None)
        cases = None
        if cases_node is not None:
            try:
                value = ast.literal_eval(cases_node)
                cases = [value] if isinstance(value, str) else [str(c) for c in value] if value is not None else None
            except (ValueError, TypeError, SyntaxError):
                cases = None
        found.append((func, cases))
    return found


@dataclass
class Plan:
    """What to run out of the kernel, in notebook order, and what each test cell checks."""

    functions: list                                    # graded functions of the assignment
    steps: list = field(default_factory=list)          # dicts: kind setup|answer|free|eval
    test_cases: dict = field(default_factory=dict)     # test cell grade_id -> [(function, case)]
    defined_in: dict = field(default_factory=dict)     # function -> answer cell grade_id

    @property
    def test_functions(self) -> dict:
        return {gid: list(dict.fromkeys(f for f, _ in pairs)) for gid, pairs in self.test_cases.items()}

    def cases_of(self, func: str) -> list[str]:
        return list(dict.fromkeys(c for pairs in self.test_cases.values() for f, c in pairs if f == func))

    @classmethod
    def from_notebook(cls, nb, functions) -> "Plan":
        plan = cls(list(functions))
        pending = list(functions)
        for index, cell in enumerate(nb.cells):
            if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
                continue
            meta = nbgrader_meta(cell)
            gid = meta.get("grade_id", f"cell-{index}")
            if meta.get("solution"):
                plan.steps.append({"kind": "answer", "id": gid, "index": index, "source": cell.source})
                for name in defined_names(cell.source):
                    if name in functions:
                        plan.defined_in[name] = gid
            elif meta.get("grade"):
                pairs = []
                for func, cases in checks_in_cell(cell.source, functions):
                    for case in (cases if cases is not None else visible_cases(func)):
                        pairs.append((func, case))
                plan.test_cases[gid] = list(dict.fromkeys(pairs))
                due = [f for f, _ in pairs if f in pending]
                due = list(dict.fromkeys(due))
                if due:
                    plan.steps.append({"kind": "eval", "id": gid, "index": index, "functions": due})
                    pending = [f for f in pending if f not in due]
            elif meta.get("locked"):
                plan.steps.append({"kind": "setup", "id": gid, "index": index, "source": cell.source})
            else:
                src = definitions_only(cell.source)
                if src.strip():
                    plan.steps.append({"kind": "free", "id": gid, "index": index, "source": src})
        return plan
