"""Static checks on the source notebooks: clean, well-formed nbgrader metadata, messages on every assert."""
from __future__ import annotations

import ast
import json

import nbformat
import pytest

from helpers.instructor.course import ASSIGNMENTS

NOTEBOOKS = [a.source for a in ASSIGNMENTS]
IDS = [a.id for a in ASSIGNMENTS]


def nbg(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def test_every_assignment_has_its_notebook():
    missing = [str(p) for p in NOTEBOOKS if not p.exists()]
    assert not missing, f"missing source notebooks: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_outputs_or_execution_counts(path):
    raw = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(raw["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; commit notebooks clean"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_valid_nbformat(path):
    nbformat.validate(nbformat.read(str(path), as_version=4))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_grade_ids_unique(path):
    ids = [nbg(c)["grade_id"] for c in nbformat.read(str(path), as_version=4).cells if nbg(c)]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    assert not dups, f"{path.name}: duplicate grade_id {dups}: nbgrader's autograde breaks on a copied cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_setup_cell_first_and_locked(path):
    code = [c for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code"]
    assert nbg(code[0]).get("locked") and "from helpers import" in code[0].source, \
        f"{path.name}: the first code cell must be the locked setup cell importing from helpers"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_test_cells_locked_with_points_and_docstring(path):
    tests = [c for c in nbformat.read(str(path), as_version=4).cells if nbg(c).get("grade") and c.cell_type == "code"]
    assert len(tests) >= 2, f"{path.name}: expected a visible and a hidden test cell, found {len(tests)} test cells"
    for c in tests:
        m = nbg(c)
        assert m.get("locked"), f"{path.name}: test cell {m['grade_id']} is not locked"
        assert m.get("points", 0) > 0, f"{path.name}: test cell {m['grade_id']} has no points"
        tree = ast.parse(c.source)
        assert tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant) \
            and isinstance(tree.body[0].value.value, str), \
            f"{path.name}: test cell {m['grade_id']} must start with a one-line docstring saying what it checks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_assert_has_a_message(path):
    for c in nbformat.read(str(path), as_version=4).cells:
        if c.cell_type != "code" or not nbg(c).get("grade"):
            continue
        for node in ast.walk(ast.parse(c.source)):
            if isinstance(node, ast.Assert):
                assert node.msg is not None, f"{path.name}/{nbg(c)['grade_id']}: an assert without a message"


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_each_graded_function_has_a_solution_cell_and_a_hidden_test(a):
    cells = nbformat.read(str(a.source), as_version=4).cells
    solutions = "\n".join(c.source for c in cells if nbg(c).get("solution"))
    hidden = [c for c in cells if "### BEGIN HIDDEN TESTS" in c.source]
    for f in a.functions:
        assert f"def {f}(" in solutions, f"{a.id}: no solution cell defines {f}"
        assert any(f in c.source for c in hidden) or f == "sobel_kernels", f"{a.id}: no hidden test calls {f}"
    for c in hidden:
        assert nbg(c).get("grade") and nbg(c).get("locked"), f"{a.id}: hidden tests must sit in locked grade cells"


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_lesson_parts_present(a):
    text = "\n".join(c.source for c in nbformat.read(str(a.source), as_version=4).cells if c.cell_type == "markdown")
    for part in ("Expected output", "In the frameworks", "What to remember", "$$"):
        assert part in text, f"{a.id}: the lesson has no {part!r}"


def _demonstrations() -> set:
    """Names of the helpers that return at once while cnn-course grades (decorated @demonstration)."""
    import helpers
    from helpers import gradcheck, plots

    names = set()
    for module in (helpers, plots, gradcheck):
        for name in dir(module):
            if getattr(getattr(module, name), "__wrapped__", None) is not None and \
                    getattr(getattr(module, name), "__module__", "").startswith("helpers"):
                names.add(name)
    return names


def test_demonstrations_are_known():
    demos = _demonstrations()
    assert {"check_conv_gradients", "check_pool_gradients", "check_activation_gradient", "show_matrix"} <= demos


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_graded_test_calls_a_demonstration(path):
    """Demonstrations return None while the tool grades: a test cell that called one could pass on nothing."""
    demos = _demonstrations()
    bad = []
    for i, cell in enumerate(nbformat.read(str(path), as_version=4).cells):
        if cell.cell_type != "code" or not nbg(cell).get("grade"):
            continue
        used = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(ast.parse(cell.source))
                if isinstance(n, (ast.Name, ast.Attribute))}
        if used & demos:
            bad.append((i, sorted(used & demos)))
    assert not bad, f"{path.name}: graded cells call demonstrations: {bad}"


def test_demonstrations_return_at_once_while_grading(monkeypatch):
    import numpy as np

    from helpers import gradcheck, plots

    def relu(Z):
        return np.maximum(Z, 0)

    def relu_backward(dA, Z):
        return dA * (Z > 0)

    monkeypatch.setenv("CNN_COURSE_GRADING", "1")
    assert plots.show_matrix(np.eye(3)) is None
    assert gradcheck.check_activation_gradient(relu, relu_backward) is None
    monkeypatch.delenv("CNN_COURSE_GRADING")
    assert plots.show_matrix(np.eye(3)) is not None          # outside a notebook: the Figure
    assert gradcheck.check_activation_gradient(relu, relu_backward) < 1e-7


def _solution_defs(nb) -> dict:
    """{function name: its def, as written} of every solution cell of a notebook."""
    out = {}
    for c in nb.cells:
        if c.cell_type == "code" and nbg(c).get("solution"):
            out.update({n.name: ast.get_source_segment(c.source, n) for n in ast.parse(c.source).body
                        if isinstance(n, ast.FunctionDef)})
    return out


def _pasted_cells():
    """(notebook, grade id, source notebook number, cell) of every cell that a learner pastes into
    (grade id ``<what>_from_<NN>``)."""
    import re

    for a in ASSIGNMENTS:
        for c in nbformat.read(str(a.source), as_version=4).cells:
            m = re.fullmatch(r".+_from_(\d\d)", nbg(c).get("grade_id", ""))
            if m:
                yield a.id, nbg(c)["grade_id"], m.group(1), c


@pytest.mark.parametrize("where,grade_id,number,cell", list(_pasted_cells()),
                         ids=[f"{w}:{g}" for w, g, _, _ in _pasted_cells()])
def test_a_pasted_cell_is_its_notebooks_exercise_verbatim(where, grade_id, number, cell):
    """A cell the learner pastes an earlier notebook's answers into shows that notebook's skeleton,
    unchanged (docstring, placeholders, hints, solution regions), so that "the code you wrote in the
    same place" has one place; its reference answer is that notebook's."""
    source = next(a for a in ASSIGNMENTS if a.id.startswith(number))
    theirs = _solution_defs(nbformat.read(str(source.source), as_version=4))
    ours = {n.name: ast.get_source_segment(cell.source, n) for n in ast.parse(cell.source).body
            if isinstance(n, ast.FunctionDef)}
    assert ours, f"{where}:{grade_id} defines no function"
    for name, text in ours.items():
        assert name in theirs, f"{where}:{grade_id}: {name} is not an exercise of {source.id}"
        assert text == theirs[name], (f"{where}:{grade_id}: {name} differs from {source.id}'s exercise; copy its "
                                      f"cell verbatim")
