"""The site's jinja2 templates: shipped as package data, autoescaped, and nothing else writes the pages' HTML."""
from __future__ import annotations

import fnmatch
import tomllib

import nbformat
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers.instructor import site
from helpers.instructor.course import ROOT, Assignment

EVIL = Assignment("01_zero_padding", "zero_padding", 'Pads <script>alert("x")</script> & co', ("f<i>",))
OTHER = Assignment("07_relu", "relu", "ReLU <b>bold</b>", ("relu",))


def test_every_template_file_is_package_data():
    """A non-editable install ships every file under helpers/instructor/templates/."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = conf["tool"]["setuptools"]["package-data"]["helpers.instructor"]
    base = ROOT / "helpers" / "instructor"
    files = [p.relative_to(base).as_posix() for p in (base / "templates").rglob("*") if p.is_file()
             and "__pycache__" not in p.parts]
    assert len(files) >= 8
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, g) and "/" not in f[len(g.rstrip("*")):]
                                             for g in globs)]
    assert not unshipped, f"not in [tool.setuptools.package-data]: {unshipped}"


def test_index_and_front_page_escape_what_they_show():
    for html in (site.render_index([EVIL, OTHER], "student"), site.render_root(["student", "instructor"], [EVIL, OTHER])):
        soup = BeautifulSoup(html, "html.parser")
        assert not soup.select("main script, body script, b, i"), "a title or function name became markup"
        assert 'Pads <script>alert("x")</script> & co' in soup.get_text()
        assert "&lt;script&gt;" in html
    assert "f&lt;i&gt;" in site.render_index([EVIL], "instructor")


def test_lesson_page_escapes_titles_and_labels_and_keeps_the_notebook_html():
    nb = new_notebook(cells=[
        new_markdown_cell("Some *markdown* and $x^2$."),
        new_code_cell("x = 1", metadata={"nbgrader": {"solution": True, "grade": False, "locked": False,
                                                      "grade_id": "<img src=x onerror=alert(1)>", "schema_version": 3}}),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={"text/html": "<table><tr><td>cell html</td></tr></table>"})]
    html = site.render_lesson(nb, OTHER, "instructor", EVIL, None)
    soup = BeautifulSoup(html, "html.parser")
    assert not soup.select("b, img[onerror]"), "a title or a grade id became markup"
    nav = soup.select("nav.course-nav")
    assert len(nav) == 2 and 'Pads <script>alert("x")</script> & co' in nav[0].get_text()
    assert soup.select_one(".course-label.solution").get_text() == "Solution (<img src=x onerror=alert(1)>) · instructor only"
    assert soup.select_one(".jp-OutputArea-output table td").get_text() == "cell html", "the notebook's own HTML is kept"
    assert soup.select_one(".jp-RenderedMarkdown em").get_text() == "markdown"
    assert [s["src"] for s in soup.select("script[src]")] == ["../_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"]
    assert "MathJax.Hub.Config" in soup.select_one('script[type="text/x-mathjax-config"]').get_text()
    assert ".course-nav" in "".join(s.get_text() for s in soup.select("style"))
