"""No student script reaches the instructor: the autograded notebook and the feedback page.

A student hands in a correct 07_relu notebook that also prints ``<script>``, displays an
``<img onerror=...>``, a ``Javascript`` output, HTML with ``javascript:`` links and a script, an SVG
with script, markdown with a link to ``javascript:``, and has a markdown cell and a raw HTML cell
with script. Graded with the real ``autograde`` (sandbox on, as root). Every payload would set
``window.pwned`` and ``document.title``; Debian's Chromium opens the feedback page and checks that
none ran, after checking that the same payloads do run when the page is rendered without the
grader's sanitizing (so the check can fail).
"""
from __future__ import annotations

import io
import json
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_raw_cell

from conftest import make_course

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="session", autouse=True)
def _needs_root_sandbox():
    """Root and bubblewrap, or a skip; under CI=true their absence fails the test."""
    from conftest import require_root_sandbox

    require_root_sandbox()


A, NB = "07_relu", "relu.ipynb"
PAYLOAD_CODE = r'''
from IPython.display import display, HTML, Javascript, SVG, Markdown
print("<script>window.pwned='stream'</script>")
display(HTML('<img src=x onerror="window.pwned=\'img\';document.title=\'pwned\'">'))
display(Javascript("window.pwned='js'; document.title='pwned'"))
display(HTML('<a id="jl" href="javascript:window.pwned=\'href\'">click me</a><script>window.pwned=\'html-script\'</script>'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="window.pwned=\'svg\'">'
            '<script>window.pwned=\'svg-script\'</script></svg>'))
display(Markdown('[md link](javascript:window.pwned=\'md\') <img src=x onerror="window.pwned=\'md-img\'">'))
'''
PAYLOAD_MARKDOWN = ("## My notes\n<script>window.pwned='markdown'</script>\n"
                    "<img src=x onerror=\"window.pwned='markdown-img';document.title='pwned'\">\n\n"
                    "[a link](javascript:window.pwned='markdown-link')\n")
PAYLOAD_RAW = "<script>window.pwned='raw'</script>"
ACTIVE = re.compile(r"<\s*script|\bon(?:error|load)\s*=|javascript:", re.I)
ALLOWED = {"text/plain", "text/html", "text/markdown", "text/latex", "application/json", "image/png", "image/jpeg",
           "image/gif"}


@pytest.fixture(scope="session")
def active(tmp_path_factory):
    from helpers.instructor import autograde as ag
    from helpers.instructor.demo import filled_notebook
    from helpers.instructor.feedback import feedback_overrides
    from helpers.instructor.nbapi import load_config, make_api
    from helpers.instructor.release import release

    course = make_course(tmp_path_factory.mktemp("active"))
    release(load_config(course), [A], stream=io.StringIO())
    nb = filled_notebook(course / "release" / A / NB, course / "notebooks" / A / NB)
    nb.cells.append(new_code_cell(PAYLOAD_CODE))
    nb.cells.append(new_markdown_cell(PAYLOAD_MARKDOWN))
    nb.cells.append(new_raw_cell(PAYLOAD_RAW, metadata={"format": "text/html", "raw_mimetype": "text/html"}))
    folder = course / "submitted" / "mallory" / A
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / NB))
    (course / "submitted" / "control" / A).mkdir(parents=True)   # for the formgrader's control page
    nbformat.write(filled_notebook(course / "release" / A / NB, course / "notebooks" / A / NB),
                   str(course / "submitted" / "control" / A / NB))
    outcomes = ag.autograde(course, [A], jobs=1, cell_timeout=15, budget=90, out_of_kernel=False,
                            stream=io.StringIO())
    api = make_api(load_config(course, overrides=feedback_overrides()))
    feedback = api.generate_feedback(A, None, force=True)
    return {"course": course, "outcome": next(o for o in outcomes if o.student == "mallory"), "feedback": feedback, "submitted": folder / NB,
            "autograded": course / "autograded" / "mallory" / A / NB,
            "html": course / "feedback" / "mallory" / A / "relu.html"}


def _rendered_texts(nb):
    """Every text of the notebook that a renderer treats as markup (not streams and errors)."""
    for cell in nb.cells:
        if cell.cell_type in ("markdown", "raw"):
            yield f"{cell.cell_type} cell", cell.source
        for out in cell.get("outputs", []):
            for mime, value in (out.get("data") or {}).items():
                if mime != "text/plain":
                    yield mime, value if isinstance(value, str) else json.dumps(value)


def test_graded_normally(active):
    o = active["outcome"]
    assert o.status == "graded" and o.score == 10, o
    assert "active content removed" in o.reason, o.reason


def test_autograded_notebook_carries_no_script(active):
    nb = nbformat.read(str(active["autograded"]), as_version=4)
    kinds = {m for c in nb.cells for o in c.get("outputs", []) for m in (o.get("data") or {})}
    assert kinds <= ALLOWED, kinds - ALLOWED
    texts = list(_rendered_texts(nb))
    assert any("click me" in t for _, t in texts), "the payload cell's outputs are missing: did it run?"
    bad = [(where, t[:120]) for where, t in texts if ACTIVE.search(t)]
    assert not bad, bad
    assert "widgets" not in nb.metadata
    streams = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "<script>window.pwned='stream'</script>" in streams   # kept as text: every renderer escapes it


def test_feedback_html_carries_no_student_script(active):
    from bs4 import BeautifulSoup

    assert active["feedback"].get("success"), active["feedback"]
    html = active["html"].read_text()
    soup = BeautifulSoup(html, "html.parser")
    scripts = [s.get_text() for s in soup.find_all("script") if "pwned" in s.get_text()]
    assert not scripts, scripts
    handlers = [(t.name, k) for t in soup.find_all(True) for k, v in t.attrs.items()
                if k.lower().startswith("on") and "pwned" in str(v)]
    assert not handlers, handlers
    links = [t.get("href") or t.get("src") for t in soup.find_all(True)
             if re.match(r"\s*javascript:", str(t.get("href") or t.get("src") or ""), re.I)]
    assert not links, links
    assert "&lt;script&gt;window.pwned=&#39;stream&#39;" in html or "&lt;script&gt;window.pwned='stream'" in html


def _unsanitized(active):
    """The payload notebook as an unsanitized grader would leave it: script in markdown, a JS output."""
    raw = nbformat.read(str(active["submitted"]), as_version=4)
    raw.cells[-3].outputs = [nbformat.v4.new_output("display_data", data={
        "application/javascript": "window.pwned='js'; document.title='pwned'", "text/plain": "<js>"})]
    return raw


def _pwned(browser, page_path):
    from _browser import NetworkGuard

    context = browser.new_context()
    guard = NetworkGuard().attach(context)
    try:
        page = context.new_page()
        page.goto(page_path if isinstance(page_path, str) else page_path.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(1500)
        # (a javascript: link is not clicked: its result would replace the document)
        return page.evaluate("() => [window.pwned === undefined ? null : String(window.pwned), document.title, "
                             "[...document.querySelectorAll('[href],[src]')].map(e => e.getAttribute('href') || "
                             "e.getAttribute('src')).filter(u => /^\\s*javascript:/i.test(u)), "
                             "document.body.innerText.includes('My notes')]"), guard
    finally:
        context.close()


@pytest.mark.browser
def test_chromium_runs_no_student_script(active, request, tmp_path):
    from nbconvert import HTMLExporter

    from _browser import shared_browser

    browser = shared_browser(request)
    # the control: the graded notebook's payloads put back unsanitized, rendered by plain nbconvert
    raw = _unsanitized(active)
    control = tmp_path / "control.html"
    control.write_text(HTMLExporter().from_notebook_node(raw)[0])
    (pwned, title, links, shown), _ = _pwned(browser, control)
    assert pwned is not None and title == "pwned" and links, "the control page ran no payload: the check could not fail"
    (pwned, title, links, shown), guard = _pwned(browser, active["html"])
    assert shown, "the feedback page does not show the student's notebook"
    assert pwned is None, f"student script ran in the feedback page: window.pwned = {pwned!r}"
    assert title != "pwned" and not links, (title, links)
    assert not [u for u in guard.blocked if "pwned" in u]


@pytest.mark.browser
def test_formgrader_runs_no_student_script(active, request, tmp_path):
    """nbgrader's formgrader (its server extension in a real Jupyter server, the instructor logged in)
    shows the autograded notebook: no student script runs there. The control: a classmate's autograded
    notebook replaced by the unsanitized payloads, which do run."""
    import secrets
    import subprocess

    from _browser import VENV_BIN, free_port, shared_browser, stop, venv_env, wait_for_http
    from helpers.instructor.nbapi import gradebook, load_config

    browser = shared_browser(request)
    course = active["course"]
    nbformat.write(_unsanitized(active), str(course / "autograded" / "control" / A / NB))
    with gradebook(load_config(course)) as gb:
        ids = {s: gb.find_submission_notebook("relu", A, s).id for s in ("mallory", "control")}
    token, port = secrets.token_hex(24), free_port()
    env = venv_env(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    cmd = [str(VENV_BIN / "jupyter"), "server", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={course}", "--allow-root"]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/status?token={token}", timeout=120, proc=proc)
        got = {}
        for s, sid in ids.items():
            got[s], _ = _pwned(browser, f"{url}/formgrader/submissions/{sid}/?token={token}")
        assert got["control"][0] is not None, f"the control page ran no payload: {got}\n{log.read_text()[-2000:]}"
        pwned, title, links, shown = got["mallory"]
        assert shown, f"the formgrader does not show the submission: {log.read_text()[-2000:]}"
        assert pwned is None and title != "pwned" and not links, got["mallory"]
    finally:
        stop(proc)
