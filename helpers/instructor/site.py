"""The course as a static web site: a student edition and an instructor edition of every lesson.

Each source notebook (``notebooks/<id>/<name>.ipynb``) runs once, with the reference solutions, so
that its figures and demonstrations show real outputs. Two editions are made from that one run:

- **instructor**: the notebook as it ran, solutions and hidden tests included;
- **student**: what a student receives, with nbgrader's own preprocessors (``ClearSolutions``,
  ``ClearHiddenTests``, ``ClearMarkScheme``, configured from ``nbgrader_config.py``, so the stub is the
  one in the release). Then the outputs of solution and hidden-test cells are dropped, and any other
  output that shows a line of a solution (a traceback, a printed repr) is dropped too.

Every page is rendered by nbconvert's ``lab`` template through a small template of our own that
loads nothing from the internet: no require.js, no widgets manager, no mermaid, and MathJax 2
from a trimmed copy of the ``jupyter-server-mathjax`` package placed in ``<out>/_static/mathjax/``.
Figures are embedded as base64. The pages work from ``file://`` and from any static web server.

Layout of the output::

    <out>/index.html                 links to both editions
    <out>/_static/mathjax/...        MathJax 2.7 (TeX input, HTML-CSS output, STIX-Web fonts)
    <out>/student/index.html         the lessons in order
    <out>/student/<assignment>.html
    <out>/instructor/...             the same, with solutions and hidden tests

Use :func:`build_site` from Python, or :func:`main` as a command (``python -m helpers.instructor.site``).
"""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from pathlib import Path
from typing import Iterable, Sequence

import nbformat
from nbformat import NotebookNode

from .course import ASSIGNMENTS, ROOT, Assignment, get

EDITIONS = ("student", "instructor")
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"
MATHJAX_DIR = "_static/mathjax"
CELL_TIMEOUT = 300  # seconds, per cell
MIN_SECRET_LENGTH = 8  # shorter solution lines ("return A", "pass") are not worth scrubbing for

# What of jupyter-server-mathjax's MathJax 2 the pages need (measured in Chromium: about 3 MB of 12).
# The combined config holds the TeX and MathML input, the HTML-CSS output and the core extensions;
# the rest is loaded on demand from these folders.
_MATHJAX_KEEP = (
    "MathJax.js",
    "LICENSE",
    f"config/{MATHJAX_CONFIG}.js",
    "extensions/*.js",
    "extensions/TeX/**/*",
    "extensions/HTML-CSS/**/*",
    "jax/input/TeX/**/*",
    "jax/element/**/*",
    "jax/output/HTML-CSS/**/*",
    "fonts/HTML-CSS/STIX-Web/woff/**/*",
)

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"

# --------------------------------------------------------------------------------------------------
# Templates and style. Kept in this module so that the package needs no data files.
# --------------------------------------------------------------------------------------------------

_MATHJAX_CONFIG_JS = r"""
MathJax.Hub.Config({
  tex2jax: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    ignoreClass: "tex2jax_ignore|course-nav|course-banner"
  },
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  "HTML-CSS": {
    availableFonts: [],
    preferredFont: null,
    webFont: "STIX-Web",
    imageFont: null,
    linebreaks: {automatic: true}
  },
  displayAlign: "center",
  messageStyle: "none",
  showMathMenu: false,
  menuSettings: {zoom: "None"}
});
MathJax.Hub.Queue(function () { document.body.setAttribute("data-mathjax", "done"); });
"""

SITE_CSS = r"""
:root { --course-accent: #1f5f99; --course-solution: #8a4b00; --course-text: #1b1f24; }
html { background: #f4f5f7; }
body.jp-Notebook, body.course-index {
  max-width: 62rem; margin: 0 auto; padding: 0 1.25rem 2rem; background: #fff;
  box-shadow: 0 0 0 1px #e3e5e8; overflow: visible; height: auto; min-height: 100vh;
  color: var(--course-text);
}
body.course-index { font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
.course-banner {
  margin: 0 -1.25rem; padding: .55rem 1.25rem; font: 600 .95rem/1.4 system-ui, sans-serif;
  color: #fff; background: var(--course-accent); display: flex; justify-content: space-between;
  flex-wrap: wrap; gap: .5rem;
}
.course-banner a { color: #fff; }
.course-banner.instructor { background: var(--course-solution); }
.course-banner.site { background: #3b4652; }
.course-banner .course-name { font-weight: 400; opacity: .9; }
.course-nav {
  display: flex; justify-content: space-between; align-items: center; gap: 1rem;
  margin: .75rem 0; padding: .5rem 0; border-bottom: 1px solid #e3e5e8;
  font: .95rem/1.4 system-ui, sans-serif;
}
.course-nav.bottom { border-bottom: 0; border-top: 1px solid #e3e5e8; margin-top: 2rem; }
.course-nav a { color: var(--course-accent); text-decoration: none; }
.course-nav a:hover { text-decoration: underline; }
.course-nav .prev, .course-nav .next { flex: 1 1 0; }
.course-nav .next { text-align: right; }
.course-nav .up { flex: 0 0 auto; font-weight: 600; }
.course-nav .none { color: #8a9099; }
main { padding-top: .5rem; }
.jp-Cell { margin-top: .35rem; }
.course-label {
  font: 600 .78rem/1.3 system-ui, sans-serif; letter-spacing: .02em; padding: .2rem .6rem;
  margin: .9rem 0 0 calc(var(--jp-cell-prompt-width, 64px) + 4px); border-radius: 3px 3px 0 0;
  display: inline-block; color: #fff; background: var(--course-accent);
}
.course-label.solution { background: var(--course-solution); }
.course-label.tests { background: #2e7d32; }
.course-label.hidden { background: #6a1b9a; }
.course-label.setup { background: #5f6b7a; }
.jp-RenderedHTMLCommon table { margin-left: 0; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
.MathJax_Display { overflow-x: auto; overflow-y: hidden; }
/* The hidden MathML that MathJax adds for screen readers asks for TeX fonts that the package lacks. */
.MJX_Assistive_MathML, .MJX_Assistive_MathML * { font-family: serif !important; }
.jp-InputArea-editor .highlight pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.jp-RenderedMarkdown pre { background: #f6f8fa; padding: .6em .9em; border-radius: 4px; border: 1px solid #e3e5e8; }
.jp-RenderedMarkdown pre code { background: none; padding: 0; }
.course-lessons { list-style: none; padding: 0; margin: 1.5rem 0; }
.course-lessons li { padding: .8rem 1rem; margin: .6rem 0; border: 1px solid #e3e5e8; border-radius: 6px; }
.course-lessons.plain li { padding: .45rem 1rem; margin: .3rem 0; }
.course-lessons.plain .functions a { font-size: .95rem; font-weight: 400; }
.course-lessons a { font-size: 1.1rem; font-weight: 600; color: var(--course-accent); text-decoration: none; }
.course-lessons a:hover { text-decoration: underline; }
.course-lessons .num { color: #5f6b7a; font-variant-numeric: tabular-nums; margin-right: .4rem; }
.course-lessons .functions { display: block; margin-top: .25rem; color: #4a525c; font-size: .92rem; }
.course-lessons code, .course-index code { font: .9em/1 ui-monospace, "DejaVu Sans Mono", monospace; background: #f1f3f5; padding: .1em .3em; border-radius: 3px; }
.course-index h1 { margin-top: 1.2rem; }
.course-editions a { font-weight: 600; color: var(--course-accent); }
@media print { .course-nav { display: none; } html { background: #fff; } body.jp-Notebook { box-shadow: none; } }
"""

_PAGE_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{#- nbconvert's lab page without anything that loads from the internet. -#}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">{{ resources.course.mathjax_config }}</script>
<script src="{{ resources.course.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}
<style type="text/css">{{ resources.course.css }}</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.course.header }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.course.footer }}
{{ super() }}
{%- endblock body_footer -%}
{%- block codecell -%}
{%- if cell.metadata.get('course_label') -%}
<div class="course-label {{ cell.metadata.get('course_label_class', '') }}">{{ cell.metadata.course_label }}</div>
{%- endif -%}
{{ super() }}
{%- endblock codecell -%}
"""

# --------------------------------------------------------------------------------------------------
# Solutions and hidden tests in a source notebook
# --------------------------------------------------------------------------------------------------


def _regions(source: str, begin: str, end: str) -> list[list[str]]:
    """The lines strictly between each ``begin`` and ``end`` marker line of a cell's source."""
    regions, current = [], None
    for line in source.splitlines():
        if begin in line:
            current = []
        elif end in line and current is not None:
            regions.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return regions


def solution_regions(nb: NotebookNode) -> list[list[str]]:
    """Every ``### BEGIN SOLUTION`` region of the notebook, as lists of lines."""
    return [r for cell in nb.cells for r in _regions(cell.source, BEGIN_SOLUTION, END_SOLUTION)]


def hidden_test_regions(nb: NotebookNode) -> list[list[str]]:
    """Every ``### BEGIN HIDDEN TESTS`` region of the notebook, as lists of lines."""
    return [r for cell in nb.cells for r in _regions(cell.source, BEGIN_HIDDEN, END_HIDDEN)]


def _squash(text: str) -> str:
    return " ".join(text.split())


def secret_lines(nb: NotebookNode, min_length: int = MIN_SECRET_LENGTH) -> list[str]:
    """Lines of solutions and hidden tests that a student must not see, whitespace-squashed.

    A line that the student edition shows anyway (in the lesson text, or in a cell outside any
    secret region, e.g. ``return Z`` after the solution region) is not a secret.
    """
    public = "\n".join(_squash(line) for line in _public_text(nb).splitlines())
    # A solution cell without markers is a solution as a whole: nbgrader replaces all of it.
    whole = [cell.source.splitlines() for cell in nb.cells
             if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and BEGIN_SOLUTION not in cell.source]
    secrets = []
    for region in solution_regions(nb) + hidden_test_regions(nb) + whole:
        for line in region:
            line = _squash(line)
            if len(line) >= min_length and not line.startswith("#") and line not in public and line not in secrets:
                secrets.append(line)
    return secrets


def _public_text(nb: NotebookNode) -> str:
    """Every cell's source with the solution and hidden-test regions cut out."""
    kept = []
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and BEGIN_SOLUTION not in cell.source:
            continue  # nbgrader replaces the whole cell
        inside = False
        for line in cell.source.splitlines():
            if BEGIN_SOLUTION in line or BEGIN_HIDDEN in line:
                inside = True
            elif END_SOLUTION in line or END_HIDDEN in line:
                inside = False
            elif not inside:
                kept.append(line)
    return "\n".join(kept)


def _output_text(output: NotebookNode) -> str:
    """All the text an output shows: streams, reprs, HTML, LaTeX and tracebacks."""
    parts = []
    if output.get("output_type") == "stream":
        parts.append(output.get("text", ""))
    elif output.get("output_type") == "error":
        parts += [output.get("ename", ""), output.get("evalue", "")]
        parts += output.get("traceback", [])
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("json") or mime.endswith("+xml"):
            parts.append(value if isinstance(value, str) else str(value))
    text = "\n".join(parts)
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)  # ANSI colours of tracebacks
    return _squash(html.unescape(re.sub(r"<[^>]+>", " ", text)) + "\n" + text)


# --------------------------------------------------------------------------------------------------
# Running a notebook, and the two editions
# --------------------------------------------------------------------------------------------------


def execute_notebook(path: Path, timeout: int = CELL_TIMEOUT) -> NotebookNode:
    """Run a notebook top to bottom with this Python's kernel, in the notebook's own folder."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    # Figures must come out as inline PNGs, whatever MPLBACKEND the caller's environment has.
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    client.execute(env=env)
    return nb


def _nbgrader_config():
    """The course's nbgrader configuration (stubs and markers), as students get them."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (ROOT / "nbgrader_config.py").exists():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config())
    return config


def student_edition(nb: NotebookNode, config=None) -> tuple[NotebookNode, list[str]]:
    """The student's view of an executed source notebook, and a list of what was removed.

    Solutions become nbgrader's stub, hidden tests and mark schemes go, and no output keeps a line
    of a solution or of a hidden test.
    """
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearSolutions
    from nbgrader.utils import is_solution

    config = _nbgrader_config() if config is None else config
    secrets = secret_lines(nb)
    nb = deepcopy(nb)
    hidden = {i for i, cell in enumerate(nb.cells) if _regions(cell.source, BEGIN_HIDDEN, END_HIDDEN)}
    resources: dict = {}
    for pre in (ClearSolutions(config=config), ClearHiddenTests(config=config), ClearMarkScheme(config=config)):
        nb, resources = pre.preprocess(nb, resources)

    removed = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        label = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
        if i in hidden:
            cell.metadata["course_hidden"] = True  # for the page's label; HTML never shows metadata
        if (is_solution(cell) or i in hidden) and cell.outputs:
            removed.append(f"{label}: all {len(cell.outputs)} outputs (solution or hidden-test cell)")
            cell.outputs = []
            continue
        kept = []
        for output in cell.outputs:
            text = _output_text(output)
            leaked = [s for s in secrets if s in text]
            if leaked:
                removed.append(f"{label}: a {output.get('output_type')} output showing {leaked[0]!r}")
            else:
                kept.append(output)
        cell.outputs = kept
    return nb, removed


def _label_cells(nb: NotebookNode, edition: str) -> None:
    """Put a small label above exercise, test and setup cells."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if cell.cell_type != "code" or not meta:
            continue
        points = meta.get("points")
        pts = f" · {points:g} point{'s' if points != 1 else ''}" if isinstance(points, (int, float)) else ""
        hidden = BEGIN_HIDDEN in cell.source
        if meta.get("solution"):
            if edition == "instructor":
                label, cls = f"Solution ({meta.get('grade_id', '')}) · instructor only", "solution"
            else:
                label, cls = "Exercise · your code goes here", "exercise"
        elif meta.get("grade"):
            if edition == "instructor" and hidden:
                label, cls = f"Hidden tests{pts} · instructor only", "hidden"
            elif edition == "student" and cell.metadata.get("course_hidden"):
                label, cls = f"Hidden tests{pts} · they run when your work is graded", "hidden"
            else:
                label, cls = f"Check{pts}", "tests"
        elif meta.get("locked"):
            label, cls = "Setup · locked", "setup"
        else:
            continue
        cell.metadata["course_label"] = html.escape(label)
        cell.metadata["course_label_class"] = cls


# --------------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------------


def _lesson_number(a: Assignment) -> str:
    return a.id.split("_", 1)[0]


def _nav(prev: Assignment | None, nxt: Assignment | None, where: str) -> str:
    """The bar of links ← previous | index | next →, shown at the top and the bottom of a lesson."""
    def link(a: Assignment | None, rel: str) -> str:
        if a is None:
            return f'<span class="{rel} none">{"first lesson" if rel == "prev" else "last lesson"}</span>'
        title = html.escape(f"{_lesson_number(a)} · {a.title}")
        text = f"← {title}" if rel == "prev" else f"{title} →"
        return f'<a class="{rel}" rel="{rel}" href="{a.id}.html">{text}</a>'

    return (f'<nav class="course-nav {where} tex2jax_ignore" aria-label="lessons">'
            + link(prev, "prev") + '<a class="up" rel="index" href="index.html">Index of lessons</a>'
            + link(nxt, "next") + "</nav>")


def _banner(edition: str) -> str:
    text = ("Student edition" if edition == "student"
            else "Instructor edition — contains solutions and hidden tests")
    return (f'<div class="course-banner {edition} tex2jax_ignore" role="banner">'
            f'<span class="edition">{text}</span>'
            f'<span class="course-name">CNN building blocks from scratch, in NumPy · '
            f'<a href="../index.html">all editions</a></span></div>')


def _exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", template_file="course_page.html.j2", embed_images=True,
                        theme="light", extra_loaders=[DictLoader({"course_page.html.j2": _PAGE_TEMPLATE})])


def render_lesson(nb: NotebookNode, a: Assignment, edition: str, prev: Assignment | None,
                  nxt: Assignment | None, exporter=None) -> str:
    """One lesson page as HTML."""
    nb = deepcopy(nb)
    nb.metadata["title"] = f"{_lesson_number(a)} · {a.title} ({edition} edition)"
    _label_cells(nb, edition)
    exporter = exporter or _exporter()
    resources = {"course": {
        "mathjax_url": f"../{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}",
        "mathjax_config": _MATHJAX_CONFIG_JS,
        "css": SITE_CSS,
        "header": _banner(edition) + _nav(prev, nxt, "top"),
        "footer": _nav(prev, nxt, "bottom"),
    }}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


def _page(title: str, body: str, cls: str = "course-index") -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{SITE_CSS}</style>\n</head>\n"
            f"<body class=\"{cls}\">\n{body}\n</body>\n</html>\n")


def render_index(assignments: Sequence[Assignment], edition: str) -> str:
    """The list of lessons of one edition."""
    items = []
    for a in assignments:
        funcs = ", ".join(f"<code>{html.escape(f)}</code>" for f in a.functions)
        items.append(f'<li><span class="num">{_lesson_number(a)}</span>'
                     f'<a href="{a.id}.html">{html.escape(a.title)}</a>'
                     f'<span class="functions">you write {funcs}</span></li>')
    intro = ("Each lesson shows the exercise as you receive it: write your code where it says "
             "<code># YOUR CODE HERE</code>. The figures and demonstrations were made with the reference "
             "solutions, so you can see what your functions should produce."
             if edition == "student" else
             "Each lesson shows the reference solutions and the hidden tests. Do not share this edition "
             "with students.")
    body = (_banner(edition)
            + '<nav class="course-nav top"><span class="prev"></span>'
              '<a class="up" href="../index.html">All editions</a><span class="next"></span></nav>'
            + "<h1>CNN building blocks from scratch, in NumPy</h1>"
            + f"<p>{intro}</p>"
            + '<ol class="course-lessons">' + "".join(items) + "</ol>")
    return _page(f"CNN building blocks from scratch, in NumPy ({edition} edition)", body)


def render_root(editions: Iterable[str], assignments: Sequence[Assignment]) -> str:
    """The site's front page: what each edition is, and every lesson with a link into each edition."""
    editions = list(editions)
    what = {"student": ("Student edition", "the lessons and exercises as students get them, solutions removed."),
            "instructor": ("Instructor edition", "the same lessons with the reference solutions and hidden tests.")}
    items = "".join(f'<li><a href="{e}/index.html">{what[e][0]}</a>: {what[e][1]}</li>' for e in editions)
    rows = "".join(
        f'<li><span class="num">{_lesson_number(a)}</span>{html.escape(a.title)}<span class="functions">'
        + " · ".join(f'<a href="{e}/{a.id}.html">{e}</a>' for e in editions) + "</span></li>"
        for a in assignments)
    body = ('<div class="course-banner site" role="banner"><span class="edition">Open course</span>'
            '<span class="course-name">CNN building blocks from scratch, in NumPy</span></div>'
            "<h1>CNN building blocks from scratch, in NumPy</h1>"
            "<p>The parts of a convolutional network, built one at a time in plain NumPy: padding, "
            "convolution forward and backward, pooling forward and backward, ReLU, and a Sobel filter on a "
            "real photograph. Every lesson is a graded Jupyter notebook; these pages show them for reading.</p>"
            f'<ul class="course-editions">{items}</ul>'
            f'<h2>Lessons</h2><ol class="course-lessons plain">{rows}</ol>')
    return _page("CNN building blocks from scratch, in NumPy", body)


# --------------------------------------------------------------------------------------------------
# MathJax
# --------------------------------------------------------------------------------------------------


def mathjax_source() -> Path:
    """The MathJax 2 folder shipped by the ``jupyter-server-mathjax`` package."""
    import jupyter_server_mathjax

    path = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (path / "MathJax.js").exists():
        raise FileNotFoundError(f"no MathJax.js in {path}; is jupyter-server-mathjax installed?")
    return path


def copy_mathjax(dest: Path) -> int:
    """Copy the parts of MathJax that the pages use into ``dest``; return the bytes copied."""
    src = mathjax_source()
    if dest.exists():
        shutil.rmtree(dest)
    total = 0
    for pattern in _MATHJAX_KEEP:
        for f in sorted(src.glob(pattern)):
            if f.is_file():
                target = dest / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
                total += f.stat().st_size
    return total


# --------------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------------


def build_site(out_dir: Path = ROOT / "site", editions: Sequence[str] = EDITIONS,
               assignments: Sequence[Assignment | str] | None = None, workers: int | None = None) -> dict:
    """Execute the lessons and write the site's editions under ``out_dir``.

    ``assignments`` are :class:`~helpers.instructor.course.Assignment` objects or ids; ``None`` means
    all of them, in course order (a missing source notebook is then an error). Returns a summary:
    ``{"out_dir", "pages": {edition: [paths]}, "mathjax_bytes", "removed": {id: [...]}, "seconds"}``.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    editions = tuple(editions)
    for e in editions:
        if e not in EDITIONS:
            raise ValueError(f"unknown edition {e!r}; known: {', '.join(EDITIONS)}")
    chosen = list(ASSIGNMENTS) if assignments is None else [get(a) if isinstance(a, str) else a for a in assignments]
    chosen.sort(key=lambda a: [x.id for x in ASSIGNMENTS].index(a.id))
    missing = [str(a.source) for a in chosen if not a.source.exists()]
    if missing:
        raise FileNotFoundError("source notebooks missing: " + ", ".join(missing))

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        executed = dict(zip([a.id for a in chosen], pool.map(lambda a: execute_notebook(a.source), chosen)))
    t_exec = time.perf_counter() - start

    out_dir.mkdir(parents=True, exist_ok=True)
    mathjax_bytes = copy_mathjax(out_dir / MATHJAX_DIR)
    config = _nbgrader_config()
    exporter = _exporter()
    pages: dict[str, list[str]] = {}
    removed: dict[str, list[str]] = {}
    student = {}
    if "student" in editions:
        for a in chosen:
            student[a.id], removed[a.id] = student_edition(executed[a.id], config)
    for edition in editions:
        folder = out_dir / edition
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        pages[edition] = []
        for k, a in enumerate(chosen):
            nb = student[a.id] if edition == "student" else executed[a.id]
            prev = chosen[k - 1] if k > 0 else None
            nxt = chosen[k + 1] if k + 1 < len(chosen) else None
            path = folder / f"{a.id}.html"
            path.write_text(render_lesson(nb, a, edition, prev, nxt, exporter), encoding="utf-8")
            pages[edition].append(str(path))
        (folder / "index.html").write_text(render_index(chosen, edition), encoding="utf-8")
    (out_dir / "index.html").write_text(render_root(editions, chosen), encoding="utf-8")
    return {"out_dir": str(out_dir), "pages": pages, "mathjax_bytes": mathjax_bytes, "removed": removed,
            "assignments": [a.id for a in chosen], "execute_seconds": round(t_exec, 2),
            "seconds": round(time.perf_counter() - start, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    """``cnn-course site``: build the web site (both editions by default)."""
    parser = argparse.ArgumentParser(prog="cnn-course site", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="output folder (default: site/)")
    parser.add_argument("--edition", action="append", choices=EDITIONS,
                        help="build only this edition (repeatable; default: both)")
    parser.add_argument("assignments", nargs="*", help="assignment ids (default: all, in course order)")
    args = parser.parse_args(argv)
    result = build_site(args.out, editions=args.edition or EDITIONS, assignments=args.assignments or None)
    for edition, paths in result["pages"].items():
        print(f"{edition}: {len(paths)} lessons in {Path(result['out_dir']) / edition}")
    for aid, what in result["removed"].items():
        for w in what:
            print(f"  student edition, {aid}: removed {w}")
    print(f"MathJax copy: {result['mathjax_bytes'] / 1e6:.1f} MB; built in {result['seconds']:.1f} s "
          f"(running the notebooks: {result['execute_seconds']:.1f} s)")
    print(f"open {Path(result['out_dir']) / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
