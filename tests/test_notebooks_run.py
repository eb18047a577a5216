"""Every source notebook runs top to bottom with every check passing; every release raises only NotImplementedError;
long exercises reach the student as a skeleton whose blanks hold no solution line."""
from __future__ import annotations

import ast
import re

import nbformat
import pytest

from helpers.instructor.course import ASSIGNMENTS
from helpers.instructor.regions import Regions
from helpers.instructor.runner import error_outputs, execute_notebook, text_of

pytestmark = pytest.mark.slow
IDS = [a.id for a in ASSIGNMENTS]


def nbg(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_source_notebook_runs_and_every_check_passes(a):
    nb, seconds = execute_notebook(a.source)
    assert not error_outputs(nb), f"{a.id}: cells raised {error_outputs(nb)}"
    for cell in nb.cells:
        if nbg(cell).get("grade") and cell.cell_type == "code":
            out = text_of(cell)
            assert "\u2714" in out, f"{a.id}/{nbg(cell)['grade_id']}: the test cell printed no pass line: {out!r}"


def solution_lines(path) -> set[str]:
    """The non-trivial lines inside solution regions that the lesson does not show elsewhere."""
    nb = nbformat.read(str(path), as_version=4)
    inside, outside = set(), []
    for cell in nb.cells:
        flag = False
        for line in cell.source.split("\n"):
            s = line.strip()
            if "### BEGIN SOLUTION" in s:
                flag = True
            elif "### END SOLUTION" in s:
                flag = False
            elif flag and len(s) >= 10 and not s.startswith("#"):
                inside.add(s)
            elif not flag:
                outside.append(line)
    taught = "\n".join(outside)   # a line the lesson itself teaches (say, the slice corners) is no leak
    return {s for s in inside if s not in taught}


def hidden_lines(path) -> list[str]:
    nb = nbformat.read(str(path), as_version=4)
    return [s.strip() for cell in nb.cells for s in Regions().split_hidden(cell.source)[1] if len(s.strip()) >= 8]


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_release_has_no_solution_and_no_hidden_test(a, released_course):
    rel = released_course / "release" / a.id / f"{a.notebook}.ipynb"
    assert rel.exists(), f"nbgrader did not release {a.id}"
    raw = rel.read_text()
    sols, hidden = solution_lines(a.source), hidden_lines(a.source)
    assert sols and hidden, f"{a.id}: found no solution or hidden lines to look for"
    leaked = [s for s in sols if s in raw or s.replace('"', '\\"') in raw]
    assert not leaked, f"{a.id}: solution lines in the release: {leaked[:3]}"
    leaked = [s for s in hidden if s in raw or s.replace('"', '\\"') in raw]
    assert not leaked, f"{a.id}: hidden test lines in the release: {leaked[:3]}"
    assert "BEGIN HIDDEN TESTS" not in raw and "BEGIN SOLUTION" not in raw
    assert raw.count("raise NotImplementedError()") >= len(a.functions)


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_release_runs_with_only_not_implemented_errors(a, released_course):
    rel = released_course / "release" / a.id / f"{a.notebook}.ipynb"
    nb, _ = execute_notebook(rel, allow_errors=True)
    errors = error_outputs(nb)
    assert errors, f"{a.id}: the student edition ran without a single NotImplementedError"
    others = [e for e in errors if e[1] != "NotImplementedError"]
    assert not others, f"{a.id}: the student edition raised more than NotImplementedError: {others}"


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_long_exercises_reach_the_student_as_a_skeleton_with_no_solution_line(a, released_course):
    """An answer longer than five lines is split into several solution regions; in the release each region is
    exactly one stub, every skeleton line (loops, None placeholders, hints) is kept, no region line shows, and
    the cell is still valid Python."""
    r = Regions()
    src = nbformat.read(str(a.source), as_version=4)
    rel = nbformat.read(str(released_course / "release" / a.id / f"{a.notebook}.ipynb"), as_version=4)
    released = {nbg(c).get("grade_id"): c.source for c in rel.cells if nbg(c).get("solution")}
    for cell in src.cells:
        if not nbg(cell).get("solution"):
            continue
        gid = nbg(cell)["grade_id"]
        kept, regions = r._split(cell.source, r.begin_solution, r.end_solution)
        written = [ln for region in regions for ln in region if ln.strip()]
        if len(written) > 5:
            assert len(regions) >= 2, f"{a.id}/{gid}: an answer of {len(written)} lines shows the student no skeleton"
        out = released[gid]
        ast.parse(out)
        assert out.count("raise NotImplementedError()") == len(regions), f"{a.id}/{gid}: one stub per blank"
        assert "\n".join(ln for ln in out.split("\n") if ln.strip() not in ("# YOUR CODE HERE",
                                                                           "raise NotImplementedError()")) \
            == "\n".join(kept), f"{a.id}/{gid}: the release must keep every skeleton line, in order"
        shown = {ln.strip() for ln in out.split("\n")}
        leaked = [ln.strip() for ln in written if ln.strip() in shown and ln.strip() not in
                  ("else:", "# YOUR CODE HERE")]
        assert not leaked, f"{a.id}/{gid}: solution lines in the student's skeleton: {leaked}"
        if len(regions) >= 2 and not re.fullmatch(r".+_from_\d\d", gid):   # a paste: its notebook's exercise, verbatim
            assert "(\u2248 " in out and "= None" in out, f"{a.id}/{gid}: a skeleton without hints or placeholders"
