"""The web site (helpers.instructor.site): structure, no solutions in the student edition, no external resources.

Both editions are built once per session into a temporary folder (see tests/_browser.py); the
browser tests in test_browser.py use the same build.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from bs4 import BeautifulSoup

from _browser import BUILT, built_site, nbgrader_releases
from helpers.instructor.course import ASSIGNMENTS

MIN_LINE = 12  # solution lines shorter than this ("return A") are too common to be evidence
IDS = [a.id for a in BUILT]


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    if not BUILT:
        pytest.fail("no source notebook exists under notebooks/")
    out, summary = built_site(tmp_path_factory)
    print(f"\nsite built in {summary['test_build_seconds']:.1f} s "
          f"(running {len(BUILT)} notebooks: {summary['execute_seconds']:.1f} s)")
    return out


# --------------------------------------------------------------------------------------------------
# What a student must not see, read straight from the source notebooks
# --------------------------------------------------------------------------------------------------


def squash(text: str) -> str:
    return " ".join(text.split())


def regions(source: str, begin: str, end: str) -> list[list[str]]:
    out, cur = [], None
    for line in source.splitlines():
        if begin in line:
            cur = []
        elif end in line and cur is not None:
            out.append(cur)
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def outside_regions(nb) -> str:
    """What the lesson shows anyway: every cell with the solution and hidden-test regions cut out."""
    kept, inside = [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line or "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END SOLUTION" in line or "### END HIDDEN TESTS" in line:
                inside = False
            elif not inside:
                kept.append(squash(line))
    return "\n".join(kept)


def secret(nb, begin: str, end: str) -> list[str]:
    public = outside_regions(nb)
    lines = {squash(line) for cell in nb.cells for r in regions(cell.source, begin, end) for line in r}
    return sorted(s for s in lines if len(s) >= MIN_LINE and not s.startswith("#") and s not in public)


def source_nb(a):
    return nbformat.read(a.source, as_version=4)


@lru_cache(maxsize=None)
def page_text(path: Path) -> str:
    """The text a reader sees on a page (scripts and styles left out), whitespace-squashed."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return squash(soup.get_text())  # no separator: highlighted code is split into many spans


@lru_cache(maxsize=None)
def soup_of(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def code_inputs(path: Path) -> list[str]:
    """The source of every code cell on a page, as displayed."""
    return [el.get_text() for el in soup_of(path).select(".jp-CodeCell .jp-InputArea-editor")]


# --------------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------------


def test_build_writes_both_editions_and_a_front_page(site):
    assert (site / "index.html").exists()
    front = page_text(site / "index.html")
    assert "Student edition" in front and "Instructor edition" in front
    links = [a["href"] for a in soup_of(site / "index.html").select("ul.course-editions a[href]")]
    assert links == ["student/index.html", "instructor/index.html"]
    lessons = [a["href"] for a in soup_of(site / "index.html").select("ol.course-lessons a[href]")]
    assert lessons == [f"{e}/{a.id}.html" for a in BUILT for e in ("student", "instructor")]
    for edition in ("student", "instructor"):
        assert (site / edition / "index.html").exists()
        for a in BUILT:
            assert (site / edition / f"{a.id}.html").stat().st_size > 10_000, f"{edition}/{a.id}.html is too small"


def test_all_lessons_of_the_course_are_built_when_their_notebooks_exist(site):
    """Driven by ASSIGNMENTS: every lesson with a source notebook has a page; none is skipped."""
    assert [a.id for a in BUILT] == [a.id for a in ASSIGNMENTS if a.source.exists()]
    for edition in ("student", "instructor"):
        pages = sorted(p.stem for p in (site / edition).glob("*.html") if p.stem != "index")
        assert pages == sorted(IDS)


def test_mathjax_is_copied_small_and_complete(site):
    mj = site / "_static" / "mathjax"
    for needed in ("MathJax.js", "config/TeX-AMS-MML_HTMLorMML-full.js",
                   "jax/output/HTML-CSS/fonts/STIX-Web/fontdata.js",
                   "fonts/HTML-CSS/STIX-Web/woff/STIXMathJax_DoubleStruck-Regular.woff",
                   "extensions/TeX/AMSmath.js", "LICENSE"):
        assert (mj / needed).is_file(), f"MathJax copy lacks {needed}"
    size = sum(f.stat().st_size for f in mj.rglob("*") if f.is_file())
    print(f"\nMathJax copy: {size / 1e6:.2f} MB in {sum(1 for f in mj.rglob('*') if f.is_file())} files")
    assert size < 4_000_000, f"the MathJax copy is {size / 1e6:.1f} MB; keep it under 4 MB"
    # MathJax is copied once, beside the editions; every lesson loads it from there.
    for edition in ("student", "instructor"):
        for a in BUILT:
            srcs = [s["src"] for s in soup_of(site / edition / f"{a.id}.html").select("script[src]")]
            assert srcs == ["../_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"]


@pytest.mark.parametrize("edition", ["student", "instructor"])
def test_index_lists_the_lessons_in_course_order(site, edition):
    soup = soup_of(site / edition / "index.html")
    hrefs = [a["href"] for a in soup.select("ol.course-lessons a")]
    assert hrefs == [f"{a.id}.html" for a in BUILT]
    text = page_text(site / edition / "index.html")
    for a in BUILT:
        assert squash(a.title) in text
    assert soup.select_one("a[href='../index.html']"), "an index links back to the front page"


@pytest.mark.parametrize("edition", ["student", "instructor"])
def test_every_lesson_has_previous_next_and_index_links_at_top_and_bottom(site, edition):
    for k, a in enumerate(BUILT):
        soup = soup_of(site / edition / f"{a.id}.html")
        navs = soup.select("nav.course-nav")
        assert len(navs) == 2, f"{a.id}: expected a nav bar at the top and the bottom"
        for nav in navs:
            prev, up, nxt = nav.select_one("a[rel=prev]"), nav.select_one("a[rel=index]"), nav.select_one("a[rel=next]")
            assert up is not None and up["href"] == "index.html"
            if k == 0:
                assert prev is None
            else:
                assert prev is not None and prev["href"] == f"{BUILT[k - 1].id}.html"
            if k == len(BUILT) - 1:
                assert nxt is None
            else:
                assert nxt is not None and nxt["href"] == f"{BUILT[k + 1].id}.html"


def test_banners_say_which_edition(site):
    for a in BUILT:
        s = soup_of(site / "student" / f"{a.id}.html").select_one(".course-banner").get_text()
        i = soup_of(site / "instructor" / f"{a.id}.html").select_one(".course-banner").get_text()
        assert "Student edition" in s and "solutions" not in s
        assert "Instructor edition — contains solutions" in i
        title = soup_of(site / "student" / f"{a.id}.html").title.get_text()
        assert a.title in title


def test_no_page_loads_anything_from_another_host(site):
    """script/link/img/iframe/source/... point only at relative paths or data: URIs; CSS imports nothing."""
    attrs = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src", "video": "src",
             "audio": "src", "embed": "src", "object": "data", "track": "src", "input": "src"}
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 3 + 2 * len(BUILT)
    for page in pages:
        soup = soup_of(page)
        for tag, attr in attrs.items():
            for el in soup.find_all(tag):
                url = el.get(attr)
                if not url:
                    continue
                u = urlparse(url)
                assert u.scheme in ("", "data") and not url.startswith("//"), \
                    f"{page.relative_to(site)}: <{tag} {attr}={url[:80]!r}> loads from outside the site"
                if u.scheme == "":
                    assert (page.parent / u.path).resolve().exists(), f"{page.relative_to(site)}: {url} is missing"
        for el in soup.find_all(srcset=True):
            assert "://" not in el["srcset"], f"{page.relative_to(site)}: srcset {el['srcset'][:80]}"
        css = "\n".join(s.get_text() for s in soup.find_all("style"))
        assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", css), f"{page.relative_to(site)}: CSS url() to a host"
        assert "@import" not in css, f"{page.relative_to(site)}: CSS @import"
        # nbconvert's default page loads these from CDNs; ours must not mention them in code at all.
        for cdn in ("cdnjs", "unpkg", "jsdelivr", "require.js", "require.min.js"):
            assert not any(cdn in (s.get("src") or "") + s.get_text() for s in soup.find_all("script")), \
                f"{page.relative_to(site)} has a script that mentions {cdn}"


# --------------------------------------------------------------------------------------------------
# Solutions and hidden tests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a", BUILT, ids=IDS)
def test_student_edition_shows_no_line_of_a_solution(site, a):
    nb = source_nb(a)
    lines = secret(nb, "### BEGIN SOLUTION", "### END SOLUTION")
    assert lines, f"{a.id}: found no solution line to look for; are the ### BEGIN SOLUTION markers there?"
    text = page_text(site / "student" / f"{a.id}.html")
    leaked = [line for line in lines if line in text]
    assert not leaked, f"student/{a.id}.html shows solution lines: {leaked}"
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"student/{a.id}.html shows the marker {marker!r}"


@pytest.mark.parametrize("a", BUILT, ids=IDS)
def test_student_edition_shows_no_hidden_test(site, a):
    nb = source_nb(a)
    lines = secret(nb, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
    text = page_text(site / "student" / f"{a.id}.html")
    leaked = [line for line in lines if line in text]
    assert not leaked, f"student/{a.id}.html shows hidden tests: {leaked}"


@pytest.mark.parametrize("a", BUILT, ids=IDS)
def test_instructor_edition_shows_every_solution_and_hidden_test(site, a):
    nb = source_nb(a)
    text = page_text(site / "instructor" / f"{a.id}.html")
    lines = (secret(nb, "### BEGIN SOLUTION", "### END SOLUTION")
             + secret(nb, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
    missing = [line for line in lines if line not in text]
    assert not missing, f"instructor/{a.id}.html lacks {missing}"
    assert "BEGIN SOLUTION" in text


@pytest.mark.parametrize("a", BUILT, ids=IDS)
def test_student_exercises_show_the_nbgrader_stub(site, a):
    nb = source_nb(a)
    n_regions = sum(len(regions(c.source, "### BEGIN SOLUTION", "### END SOLUTION"))
                    for c in nb.cells if c.cell_type == "code")
    n_whole = sum(1 for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
                  and not regions(c.source, "### BEGIN SOLUTION", "### END SOLUTION"))
    stub = re.compile(r"# YOUR CODE HERE\n\s*raise NotImplementedError\(\)")
    shown = sum(len(stub.findall(src)) for src in code_inputs(site / "student" / f"{a.id}.html"))
    assert shown == n_regions + n_whole, f"student/{a.id}.html: {shown} stubs for {n_regions + n_whole} solutions"
    assert not any(stub.search(src) for src in code_inputs(site / "instructor" / f"{a.id}.html"))


@pytest.mark.parametrize("a", BUILT, ids=IDS)
def test_student_edition_keeps_the_figures_and_the_checks_output(site, a):
    """The lesson ran with the reference solutions: figures and ✔ lines are there for the student too."""
    student, instructor = (soup_of(site / e / f"{a.id}.html") for e in ("student", "instructor"))
    n_img = len(instructor.select(".jp-OutputArea-output img"))
    assert len(student.select(".jp-OutputArea-output img")) == n_img
    nb = source_nb(a)
    visible_checks = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
                      and "### BEGIN HIDDEN TESTS" not in c.source]
    outputs = " ".join(o.get_text() for o in student.select(".jp-OutputArea-output"))
    assert outputs.count("✔") >= len(visible_checks), f"student/{a.id}.html: fewer ✔ lines than visible checks"
    assert "Traceback" not in outputs and "NotImplementedError" not in outputs


@pytest.mark.parametrize("a", BUILT, ids=IDS)
def test_student_edition_sources_match_the_nbgrader_release(tmp_path_factory, a):
    """The site's student edition is what `nbgrader generate_assignment` gives students, cell by cell."""
    from helpers.instructor.site import student_edition

    release = nbformat.read(nbgrader_releases(tmp_path_factory)[a.id], as_version=4)
    ours, _ = student_edition(source_nb(a))
    assert [c.cell_type for c in ours.cells] == [c.cell_type for c in release.cells]
    for k, (mine, theirs) in enumerate(zip(ours.cells, release.cells)):
        assert mine.source == theirs.source, f"{a.id} cell {k} differs from the release"


def test_outputs_that_show_a_solution_line_are_removed():
    """A traceback (or any output) of a non-solution cell that quotes a solution line is dropped."""
    from helpers.instructor.site import student_edition

    solution = nbformat.v4.new_code_cell(
        "def f(x):\n    ### BEGIN SOLUTION\n    secret_value = x * 41 + x\n    ### END SOLUTION\n    return secret_value",
        metadata={"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": "f",
                               "schema_version": 3}})
    solution.outputs = [nbformat.v4.new_output("stream", name="stdout", text="defined\n")]
    caller = nbformat.v4.new_code_cell("f('a')")
    caller.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="before the error\n"),
        nbformat.v4.new_output("error", ename="TypeError", evalue="can't multiply",
                               traceback=["\x1b[0;31mTypeError\x1b[0m", "----> 3\x1b[0m     secret_value \x1b[38;5;241m=\x1b[39m x * 41 + x"]),
        nbformat.v4.new_output("execute_result", data={"text/plain": "'secret_value = x * 41 + x'"}, execution_count=1),
    ]
    hidden = nbformat.v4.new_code_cell(
        '"""Hidden tests."""\n### BEGIN HIDDEN TESTS\nassert f(1) == 42, "f(1) should be 42"\n### END HIDDEN TESTS',
        metadata={"nbgrader": {"solution": False, "grade": True, "locked": True, "grade_id": "t", "points": 1,
                               "schema_version": 3}})
    hidden.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hidden cases: 42\n")]
    nb = nbformat.v4.new_notebook(cells=[solution, caller, hidden])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}

    student, removed = student_edition(nb)
    assert student.cells[0].source == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n    return secret_value"
    assert student.cells[0].outputs == []
    assert [o.output_type for o in student.cells[1].outputs] == ["stream"]
    assert student.cells[2].source == '"""Hidden tests."""'
    assert student.cells[2].outputs == []
    assert len(removed) == 4
    assert nb.cells[1].outputs[1].output_type == "error", "the source notebook itself is left alone"


def test_a_solution_cell_without_markers_is_secret_as_a_whole():
    from helpers.instructor.site import secret_lines, student_edition

    answer = nbformat.v4.new_code_cell("def g(x):\n    return x ** 2 + 17 * x",
                                       metadata={"nbgrader": {"solution": True, "grade": False, "locked": False,
                                                              "grade_id": "g", "schema_version": 3}})
    caller = nbformat.v4.new_code_cell("g('a')")
    caller.outputs = [nbformat.v4.new_output("error", ename="TypeError", evalue="bad",
                                             traceback=["----> 2     return x ** 2 + 17 * x"])]
    nb = nbformat.v4.new_notebook(cells=[answer, caller])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    assert "return x ** 2 + 17 * x" in secret_lines(nb)
    student, _ = student_edition(nb)
    assert student.cells[0].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert student.cells[1].outputs == []
