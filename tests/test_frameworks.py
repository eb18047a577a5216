"""The "In the frameworks" cells: they agree with the learner's functions, skip cleanly without the extra, and
do nothing while cnn-course grades.

(a) With PyTorch, Keras and TensorFlow installed, every source notebook runs top to bottom and every framework
    cell prints only agreeing lines (✔). Under CI=true a framework cell that says the extra is missing fails.
(b) In a kernel where the three cannot be imported (a sitecustomize on PYTHONPATH refuses them), every
    notebook still runs to the end and each framework cell prints its one-line note.
(c) With CNN_COURSE_GRADING=1 each framework cell prints one line and returns, and no framework is imported.
"""
from __future__ import annotations

import os

import nbformat
import pytest

from helpers import frameworks
from helpers.instructor.course import ASSIGNMENTS
from helpers.instructor.runner import error_outputs, execute_notebook

pytestmark = pytest.mark.slow
IDS = [a.id for a in ASSIGNMENTS]
MARKER = "frameworks.ready()"

HIDE = frameworks.HIDE_SITECUSTOMIZE
PROBE = "import sys\nprint('frameworks imported:', sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"


def framework_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and MARKER in c.source]


def stdout_lines(cell) -> list[str]:
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return [line for line in text.splitlines() if line.strip()]


def stderr_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stderr")


def test_every_notebook_has_framework_cells_that_are_plain_lesson_cells(root):
    for a in ASSIGNMENTS:
        nb = nbformat.read(str(a.source), as_version=4)
        cells = framework_cells(nb)
        assert cells, f"{a.id}: no framework cell (a code cell calling {MARKER})"
        for c in cells:
            assert "nbgrader" not in c.metadata, f"{a.id}/{c.id}: a framework cell must be a lesson cell, not graded"
            assert c.source.lstrip().startswith("from helpers import frameworks"), f"{a.id}/{c.id}: import helpers.frameworks first"


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_framework_cells_agree_with_the_reference_solutions(a):
    nb, _ = execute_notebook(a.source, timeout=300)
    assert not error_outputs(nb), f"{a.id}: cells raised {error_outputs(nb)}"
    cells = framework_cells(nb)
    for c in cells:
        lines = stdout_lines(c)
        if any(line.startswith(frameworks.NOT_INSTALLED) for line in lines):
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{a.id}/{c.id}: CI must run every framework cell, but it printed {lines}")
            pytest.skip("the extra 'frameworks' is not installed: pip install -e '.[frameworks]'")
        verdicts = [line for line in lines if line.lstrip().startswith((frameworks.AGREE, frameworks.DISAGREE))]
        assert verdicts, f"{a.id}/{c.id}: no comparison line in {lines}"
        bad = [line for line in verdicts if not line.lstrip().startswith(frameworks.AGREE)]
        assert not bad, f"{a.id}/{c.id}: a framework disagrees with the reference solution: {bad}"
        assert not any(line.lstrip().startswith("- ") or "raised" in line for line in lines), f"{a.id}/{c.id}: {lines}"
        for noise in ("oneDNN", "cpu_feature_guard", "TF_ENABLE_ONEDNN_OPTS"):
            assert noise not in stderr_text(c), f"{a.id}/{c.id}: TensorFlow's start-up log reached the notebook"


def with_probe(nb):
    probe = nbformat.v4.new_code_cell(PROBE)
    probe.id = "probe"
    nb.cells.append(probe)
    return nb


def run(nb, path, tmp_path):
    nbformat.validate(nb)
    target = tmp_path / path.name
    nbformat.write(nb, str(target))
    out, _ = execute_notebook(target, timeout=300, cwd=path.parent)
    return out


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_without_the_extra_each_framework_cell_prints_one_line(a, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    nb = run(with_probe(nbformat.read(str(a.source), as_version=4)), a.source, tmp_path)
    assert not error_outputs(nb), f"{a.id}: cells raised {error_outputs(nb)}"
    for c in framework_cells(nb):
        lines = stdout_lines(c)
        assert len(lines) == 1 and lines[0].startswith(frameworks.NOT_INSTALLED), f"{a.id}/{c.id}: {lines}"
        assert "pip install -e '.[frameworks]'" in lines[0] and "make frameworks" in lines[0], lines[0]
    assert stdout_lines(nb.cells[-1]) == ["frameworks imported: []"], f"{a.id}: {stdout_lines(nb.cells[-1])}"


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_while_grading_each_framework_cell_prints_one_line_and_imports_nothing(a, tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_GRADING", "1")
    source = nbformat.read(str(a.source), as_version=4)
    # What grading runs is the setup, the answers and the tests; the framework cells are what matters here.
    source.cells = [c for c in source.cells if c.cell_type == "code"
                    and ("nbgrader" in c.metadata or MARKER in c.source)]
    nb = run(with_probe(source), a.source, tmp_path)
    assert not error_outputs(nb), f"{a.id}: cells raised {error_outputs(nb)}"
    for c in framework_cells(nb):
        lines = stdout_lines(c)
        assert len(lines) == 1 and lines[0].startswith(frameworks.GRADING), f"{a.id}/{c.id}: {lines}"
    assert stdout_lines(nb.cells[-1]) == ["frameworks imported: []"], f"{a.id}: {stdout_lines(nb.cells[-1])}"


def test_compare_says_agree_or_disagree(capsys):
    import numpy as np

    assert frameworks.compare("same", np.ones(3), np.ones(3)) == 0.0
    assert frameworks.compare("off", np.ones(3), np.ones(3) + 1e-6) == pytest.approx(1e-6)
    assert frameworks.compare("shape", np.ones(3), np.ones(4)) == float("inf")
    assert frameworks.compare("none", None, np.ones(3)) is None
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(frameworks.AGREE) and out[1].startswith(frameworks.DISAGREE)
    assert out[2].startswith(frameworks.DISAGREE) and out[3].startswith("- none")


def test_yours_turns_an_exception_into_one_line(capsys):
    def zero_pad(X, pad):
        raise NotImplementedError()

    assert frameworks.yours(zero_pad, 1, 2) is None
    assert capsys.readouterr().out.startswith("your zero_pad raised NotImplementedError")
