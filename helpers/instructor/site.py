"""The course as a static web site: a student edition and an instructor edition of every lesson.

Each source notebook (``notebooks/<id>/<name>.ipynb``) runs once, with the reference solutions, so
that its figures and demonstrations show real outputs. Two editions are made from that one run:

- **instructor**: the notebook as it ran, solutions and hidden tests included;
- **student**: what a student receives, with nbgrader's own preprocessors (``ClearSolutions``,
  ``ClearHiddenTests``, ``ClearMarkScheme``, configured from ``nbgrader_config.py``, so the stub is the
  one in the release). Then the outputs of solution and hidden-test cells are dropped, and any other
  output that shows a line of a solution (a traceback, a printed repr) is dropped too.

Solution and hidden-test regions are found by :mod:`helpers.instructor.regions` with the course's own
nbgrader delimiters; an output "shows" a secret line by the one rule documented there.

The HTML is in jinja2 templates shipped with the package (``helpers/instructor/templates/``):

- ``site/``: the site's pages and the pieces every page shares, rendered with autoescape on:
  ``base.html.j2`` (layout), ``index.html.j2`` (an edition's lessons), ``root.html.j2`` (front page),
  ``chrome.html.j2`` (style, MathJax, banner, lesson links, cell labels), ``site.css``,
  ``mathjax-config.js``;
- ``nbconvert/course_lesson/``: an nbconvert template on top of nbconvert's ``lab`` template for a
  lesson page. It loads nothing from the internet: no require.js, no widgets manager, no mermaid,
  and MathJax 2 from a trimmed copy of the ``jupyter-server-mathjax`` package placed in
  ``<out>/_static/mathjax/``; it places the pieces of ``chrome.html.j2``, rendered beforehand.

Figures are embedded as base64. The pages work from ``file://`` and from any static web server.

Layout of the output::

    <out>/index.html                 links to both editions
    <out>/_static/mathjax/...        MathJax 2.7 (TeX input, HTML-CSS output, STIX-Web fonts)
    <out>/student/index.html         the lessons in order
    <out>/student/<assignment>.html
    <out>/instructor/...             the same, with solutions and hidden tests

Use :func:`build_site` from Python, or ``cnn-course [--root DIR] [--config FILE] site`` (``cli.py``).
"""
from __future__ import annotations

import html
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from nbformat import NotebookNode

from .course import ASSIGNMENTS, ROOT, Assignment, get
from .nbapi import CourseError
from .regions import (
    ANSI,
    MIN_LENGTH,
    Regions,
    is_answer_cell,
    is_locked,
    is_test_cell,
    leaks,
)

EDITIONS = ("student", "instructor")
COURSE_TITLE = "CNN building blocks from scratch, in NumPy"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"
MATHJAX_DIR = "_static/mathjax"
CELL_TIMEOUT = 300  # seconds, per cell
TEMPLATES = Path(__file__).resolve().parent / "templates"

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


# --------------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------------


def _lesson_number(a: Assignment) -> str:
    return a.id.split("_", 1)[0]


@lru_cache(maxsize=1)
def templates():
    """The jinja2 environment of the site's own templates (``templates/site/``), autoescape on."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      keep_trailing_newline=True)
    env.globals["course_title"] = COURSE_TITLE
    env.filters["number"] = _lesson_number
    return env


def _chrome():
    return templates().get_template("site/chrome.html.j2").module


# --------------------------------------------------------------------------------------------------
# Solutions and hidden tests in a source notebook
# --------------------------------------------------------------------------------------------------


def secret_lines(nb: NotebookNode, min_length: int = MIN_LENGTH, config=None) -> list[str]:
    """Lines of solutions and hidden tests that a student must not see, whitespace-squashed.

    A line that the student edition shows anyway (in the lesson text, or in a cell outside any
    secret region, e.g. ``return Z`` after the solution region) is not a secret.
    """
    return Regions(config).secret_lines(nb, min_length)


def _output_text(output: NotebookNode) -> str:
    """All the text an output shows: streams, reprs, HTML (as source and as text), LaTeX and tracebacks."""
    parts = []
    if output.get("output_type") == "stream":
        parts.append(output.get("text", ""))
    elif output.get("output_type") == "error":
        parts += [output.get("ename", ""), output.get("evalue", "")]
        parts += output.get("traceback", [])
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("json") or mime.endswith("+xml"):
            parts.append(value if isinstance(value, str) else str(value))
    text = ANSI.sub("", "\n".join(parts))
    return text + "\n" + html.unescape(re.sub(r"<[^>]+>", " ", text))


# --------------------------------------------------------------------------------------------------
# Running a notebook, and the two editions
# --------------------------------------------------------------------------------------------------


def execute_notebook(path: Path, timeout: int = CELL_TIMEOUT) -> NotebookNode:
    """Run a notebook top to bottom with this Python's kernel, in the notebook's own folder."""
    from .runner import execute_notebook as run

    # Figures must come out as inline PNGs, whatever MPLBACKEND the caller's environment has.
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    nb, _ = run(path, timeout=timeout, env=env)
    return nb


def course_config(root: Path | str | None = None, config_file: Path | str | None = None):
    """The course's nbgrader configuration (stubs, delimiters, source folder), as students get them."""
    from .nbapi import load_config

    return load_config(root or ROOT, config_file=config_file)


def student_edition(nb: NotebookNode, config=None) -> tuple[NotebookNode, list[str]]:
    """The student's view of an executed source notebook, and a list of what was removed.

    Solutions become nbgrader's stub, hidden tests and mark schemes go, and no output keeps a line
    of a solution or of a hidden test. ``config`` is the course's nbgrader config (default: this
    repository's).
    """
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearSolutions

    config = course_config() if config is None else config
    regions = Regions(config)
    secrets = regions.secret_lines(nb)
    nb = deepcopy(nb)
    hidden = {i for i, cell in enumerate(nb.cells) if regions.has_hidden(cell)}
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
        if (is_answer_cell(cell) or i in hidden) and cell.outputs:
            removed.append(f"{label}: all {len(cell.outputs)} outputs (solution or hidden-test cell)")
            cell.outputs = []
            continue
        kept = []
        for output in cell.outputs:
            leaked = leaks(_output_text(output), secrets)
            if leaked:
                removed.append(f"{label}: a {output.get('output_type')} output showing {leaked[0]!r}")
            else:
                kept.append(output)
        cell.outputs = kept
    return nb, removed


def _label_cells(nb: NotebookNode, edition: str, regions: Regions) -> None:
    """Say in the metadata what label goes above exercise, test and setup cells (chrome.cell_label)."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if cell.cell_type != "code" or not meta:
            continue
        points = meta.get("points")
        pts = f" · {points:g} point{'s' if points != 1 else ''}" if isinstance(points, (int, float)) else ""
        if is_answer_cell(cell):
            if edition == "instructor":
                label, kind = f"Solution ({meta.get('grade_id', '')}) · instructor only", "solution"
            else:
                label, kind = "Exercise · your code goes here", "exercise"
        elif is_test_cell(cell):
            if edition == "instructor" and regions.has_hidden(cell):
                label, kind = f"Hidden tests{pts} · instructor only", "hidden"
            elif edition == "student" and cell.metadata.get("course_hidden"):
                label, kind = f"Hidden tests{pts} · they run when your work is graded", "hidden"
            else:
                label, kind = f"Check{pts}", "tests"
        elif is_locked(cell):
            label, kind = "Setup · locked", "setup"
        else:
            continue
        cell.metadata["course_label"] = label
        cell.metadata["course_label_class"] = kind


# --------------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------------


def _exporter():
    """nbconvert's HTML exporter with the course's template (``templates/nbconvert/course_lesson``)."""
    from nbconvert import HTMLExporter

    return HTMLExporter(extra_template_basedirs=[str(TEMPLATES / "nbconvert")], template_name="course_lesson",
                        embed_images=True, theme="light")


def _cell_label(cell) -> str:
    text = cell.metadata.get("course_label")
    return _chrome().cell_label(text, cell.metadata.get("course_label_class", "")) if text else ""


def render_lesson(nb: NotebookNode, a: Assignment, edition: str, prev: Assignment | None,
                  nxt: Assignment | None, exporter=None, regions: Regions | None = None) -> str:
    """One lesson page as HTML."""
    nb = deepcopy(nb)
    nb.metadata["title"] = f"{_lesson_number(a)} · {a.title} ({edition} edition)"
    _label_cells(nb, edition, regions or Regions(course_config()))
    exporter = exporter or _exporter()
    chrome = _chrome()
    resources = {"course": {
        "mathjax": chrome.mathjax(f"../{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"),
        "style": chrome.style(),
        "header": chrome.banner(edition) + chrome.lesson_nav(prev, nxt, "top"),
        "footer": chrome.lesson_nav(prev, nxt, "bottom"),
        "label": _cell_label,
    }}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


def render_index(assignments: Sequence[Assignment], edition: str) -> str:
    """The list of lessons of one edition."""
    return templates().get_template("site/index.html.j2").render(lessons=list(assignments), edition=edition)


def render_root(editions: Iterable[str], assignments: Sequence[Assignment]) -> str:
    """The site's front page: what each edition is, and every lesson with a link into each edition."""
    return templates().get_template("site/root.html.j2").render(editions=list(editions), lessons=list(assignments))


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


def build_site(out_dir: Path | str | None = None, editions: Sequence[str] = EDITIONS,
               assignments: Sequence[Assignment | str] | None = None, workers: int | None = None,
               root: Path | str | None = None, config=None) -> dict:
    """Execute the lessons of the course in ``root`` and write the site's editions under ``out_dir``.

    ``root`` is the course directory (default: this repository); the source notebooks are in its
    nbgrader source folder (``CourseDirectory.source_directory`` of ``config``, ``notebooks`` here),
    ``out_dir`` defaults to ``<root>/site``. ``config`` is the course's nbgrader config (default:
    ``<root>/nbgrader_config.py``); its delimiters and stubs make the student edition.
    ``assignments`` are :class:`~helpers.instructor.course.Assignment` objects or ids; ``None`` means
    all of them, in course order (a missing source notebook is then an error). Returns a summary:
    ``{"out_dir", "pages": {edition: [paths]}, "mathjax_bytes", "removed": {id: [...]}, "seconds"}``.
    """
    start = time.perf_counter()
    root = Path(root or ROOT).resolve()
    out_dir = Path(out_dir) if out_dir is not None else root / "site"
    config = course_config(root) if config is None else config
    source_dir = config.CourseDirectory.get("source_directory", "source")
    editions = tuple(editions)
    for e in editions:
        if e not in EDITIONS:
            raise CourseError(f"unknown edition {e!r}; known: {', '.join(EDITIONS)}")
    chosen = list(ASSIGNMENTS) if assignments is None else [get(a) if isinstance(a, str) else a for a in assignments]
    chosen.sort(key=lambda a: [x.id for x in ASSIGNMENTS].index(a.id))
    sources = {a.id: a.source_at(root, source_dir) for a in chosen}
    missing = [str(p) for p in sources.values() if not p.exists()]
    if missing:
        raise CourseError("source notebooks missing: " + ", ".join(missing))

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        executed = dict(zip(sources, pool.map(execute_notebook, sources.values())))
    t_exec = time.perf_counter() - start

    out_dir.mkdir(parents=True, exist_ok=True)
    mathjax_bytes = copy_mathjax(out_dir / MATHJAX_DIR)
    regions = Regions(config)
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
            path.write_text(render_lesson(nb, a, edition, prev, nxt, exporter, regions), encoding="utf-8")
            pages[edition].append(str(path))
        (folder / "index.html").write_text(render_index(chosen, edition), encoding="utf-8")
    (out_dir / "index.html").write_text(render_root(editions, chosen), encoding="utf-8")
    return {"out_dir": str(out_dir), "pages": pages, "mathjax_bytes": mathjax_bytes, "removed": removed,
            "assignments": [a.id for a in chosen], "sources": {k: str(v) for k, v in sources.items()},
            "execute_seconds": round(t_exec, 2), "seconds": round(time.perf_counter() - start, 2)}
