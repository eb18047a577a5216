"""helpers.instructor.regions: regions found exactly where nbgrader's own preprocessors find them, with the
course's delimiters, and the one rule for scrubbing secrets."""
from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from traitlets.config import Config

from helpers.instructor.course import ASSIGNMENTS
from helpers.instructor.regions import Regions, is_answer_cell, is_test_cell, leaks, scrub

IDS = [a.id for a in ASSIGNMENTS]


def meta(**kw):
    return {"nbgrader": {"solution": False, "grade": False, "locked": False, "schema_version": 3, **kw}}


def custom_config() -> Config:
    c = Config()
    c.ClearSolutions.begin_solution_delimeter = "<<answer>>"
    c.ClearSolutions.end_solution_delimeter = "<</answer>>"
    c.ClearHiddenTests.begin_test_delimeter = "<<secret tests>>"
    c.ClearHiddenTests.end_test_delimeter = "<</secret tests>>"
    return c


def test_default_delimiters_are_nbgrader_defaults_and_config_overrides_them():
    r = Regions()
    assert (r.begin_solution, r.end_solution) == ("BEGIN SOLUTION", "END SOLUTION")
    assert (r.begin_hidden, r.end_hidden) == ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    c = Regions(custom_config())
    assert (c.begin_solution, c.end_hidden) == ("<<answer>>", "<</secret tests>>")
    src = "x = 1\n# <<answer>>\ny = secret_function(x)\n# <</answer>>\n### BEGIN SOLUTION\nz = 2\n### END SOLUTION"
    assert c.split_solution(src) == ("x = 1\n### BEGIN SOLUTION\nz = 2\n### END SOLUTION", ["y = secret_function(x)"])
    assert r.split_solution(src) == ("x = 1\n# <<answer>>\ny = secret_function(x)\n# <</answer>>", ["z = 2"])


def test_a_delimiter_anywhere_in_a_line_opens_and_closes_a_region_as_in_nbgrader():
    src = ('"""Doc."""\nfirst = 1  # BEGIN HIDDEN TESTS here\nassert f(3) == 9\nlast = 2  # END HIDDEN TESTS\n'
           "after = 3\n### BEGIN HIDDEN TESTS\nnever closed")
    visible, hidden = Regions().split_hidden(src)
    assert visible == '"""Doc."""\nafter = 3'
    assert hidden == ["assert f(3) == 9", "never closed"]


def test_cell_predicates_are_nbgrader_s():
    answer = new_code_cell("x", metadata=meta(solution=True, grade_id="a"))
    manual = new_markdown_cell("x", metadata=meta(solution=True, grade=True, grade_id="m", points=1))
    tests = new_code_cell("assert x", metadata=meta(grade=True, locked=True, grade_id="t", points=1))
    plain = new_code_cell("x")
    assert [is_answer_cell(c) for c in (answer, manual, tests, plain)] == [True, True, False, False]
    assert [is_test_cell(c) for c in (answer, manual, tests, plain)] == [False, False, True, False]


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=IDS)
def test_regions_match_what_nbgrader_removes_from_every_source_notebook(a):
    """split_hidden leaves exactly what ClearHiddenTests leaves; split_solution what ClearSolutions leaves
    apart from its stub; whole answer cells are solution regions."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb = nbformat.read(a.source, as_version=4)
    config = Config()
    config.ClearSolutions.code_stub = {"python": "@@STUB@@"}
    config.ClearSolutions.text_stub = "@@STUB@@"
    cleared, _ = ClearHiddenTests(config=config).preprocess(nbformat.from_dict(nb), {})
    solved, _ = ClearSolutions(config=config).preprocess(nbformat.from_dict(nb), {})
    r = Regions(config)
    n_hidden = n_solution = 0
    for cell, no_hidden, no_solution in zip(nb.cells, cleared.cells, solved.cells):
        visible, hidden = r.split_hidden(cell.source)
        assert visible == no_hidden.source
        n_hidden += bool(hidden)
        if is_answer_cell(cell) and not r.has_solution_region(cell):
            assert no_solution.source == "@@STUB@@"
            continue
        rest, solution = r.split_solution(cell.source)
        assert rest == "\n".join(ln for ln in no_solution.source.split("\n") if ln.strip() != "@@STUB@@")
        n_solution += bool(solution)
    assert n_hidden and n_solution, f"{a.id}: no region found at all"
    assert len(r.solution_regions(nb)) >= n_solution and len(r.hidden_regions(nb)) >= n_hidden


def test_secret_lines_leave_out_what_the_lesson_shows_anyway():
    nb = new_notebook(cells=[
        new_markdown_cell("Write `total = a + b` and return it."),
        new_code_cell("def f(a, b):\n    ### BEGIN SOLUTION\n    total = a + b\n    hidden_step = total * 3\n"
                      "    else:\n    ### END SOLUTION\n    return total", metadata=meta(solution=True, grade_id="f")),
        new_code_cell("def g():\n    return   42 + 1000", metadata=meta(solution=True, grade_id="g")),
    ])
    assert Regions().secret_lines(nb) == ["hidden_step = total * 3", "def g():", "return 42 + 1000"]


def test_scrub_one_rule_ansi_whitespace_html_and_minimum_length():
    lines = ["    assert  conv(x, 3) == \"seven\"", "else:", "   "]
    text = ('\x1b[0;31mAssertionError\x1b[0m\n----> 3\x1b[0m assert \x1b[38;5;241mconv(x,\x1b[39m 3)   == "seven"\n'
            "<pre>assert conv(x, 3) == &quot;seven&quot;</pre> <td>assert conv(x, 3) == &#34;seven&#34;</td> else:")
    clean = scrub(text, lines)
    assert "\x1b" not in clean and "seven" not in clean and clean.count("[hidden]") == 3
    assert clean.endswith(" else:"), "a line shorter than 8 characters is never scrubbed"
    assert leaks(text, lines) == ['assert conv(x, 3) == "seven"']
    assert leaks("nothing here", lines) == [] and scrub("plain", []) == "plain"


def test_custom_delimiters_reach_the_site_and_the_feedback():
    """With the course's own delimiters in the config, the student edition and the feedback both use them."""
    from helpers.instructor.feedback import HideHiddenTests
    from helpers.instructor.site import student_edition

    config = custom_config()
    answer = new_code_cell("def f(x):\n    # <<answer>>\n    value = x * 41 + x\n    # <</answer>>\n    return value",
                           metadata=meta(solution=True, grade_id="f"))
    tests = new_code_cell('"""Hidden."""\n# <<secret tests>>\nassert f(1) == 42, "f(1) should be 42"\n# <</secret tests>>',
                          metadata=meta(grade=True, locked=True, grade_id="test_f_hidden", points=1))
    tests.outputs = [new_output("error", ename="AssertionError", evalue="f(1) should be 42",
                                traceback=['----> 3 assert f(1) == 42, "f(1) should be 42"'])]
    caller = new_code_cell("f('a')")
    caller.outputs = [new_output("stream", name="stdout", text="value = x * 41 + x\n")]
    nb = new_notebook(cells=[answer, tests, caller])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}

    student, removed = student_edition(nb, config)
    assert student.cells[0].source == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n    return value"
    assert student.cells[1].source == '"""Hidden."""' and student.cells[1].outputs == []
    assert student.cells[2].outputs == [] and len(removed) == 2

    feedback, _ = HideHiddenTests(config=config).preprocess(nbformat.from_dict(nb), {})
    assert feedback.cells[1].source == '"""Hidden."""\n# A hidden test ran here; its code is not shown.'
    assert feedback.cells[1].outputs[0].text == "Hidden test failed: AssertionError: f(1) should be 42\n"
    assert feedback.cells[1].metadata.nbgrader.grade_id == "hidden-test-1"


def test_feedback_scrubs_hidden_lines_from_visible_cells_with_the_default_delimiters():
    """A student's cell that printed or displayed a hidden line (read from IPython's history) shows [hidden]."""
    from helpers.instructor.feedback import HideHiddenTests

    secret = 'assert relu(np.array([-3.0, 2.5])).tolist() == [0.0, 2.5], "negative entries"'
    tests = new_code_cell(f'"""Hidden tests."""\n### BEGIN HIDDEN TESTS\n{secret}\n### END HIDDEN TESTS',
                          metadata=meta(grade=True, locked=True, grade_id="test_relu_hidden", points=1))
    tests.outputs = []
    student = new_code_cell("show(In)")
    student.outputs = [
        new_output("stream", name="stdout", text=f"\x1b[1mhistory:\x1b[0m {secret}  and test_relu_hidden\n"),
        new_output("display_data", data={"text/html": f"<pre>{secret.replace(chr(34), '&quot;')}</pre>",
                                         "text/plain": "<IPython.core.display.HTML object>",
                                         "image/png": "iVBORw0KGgo="}),
        new_output("stream", name="stdout", text="nothing secret\n"),
    ]
    nb = new_notebook(cells=[student, tests])
    out, _ = HideHiddenTests().preprocess(nb, {})
    assert out.cells[0].outputs[0].text == "history: [hidden]  and hidden-test\n"
    assert out.cells[0].outputs[1].data == {"text/plain": "<IPython.core.display.HTML object>"}
    assert out.cells[0].outputs[2].text == "nothing secret\n"
    assert out.cells[1].outputs[0].text == "Hidden test passed.\n"
