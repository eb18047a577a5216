"""A student's view in JupyterLab: the release of 01_zero_padding, opened in a real JupyterLab in Chromium.

- With the stub as released, Run All stops at the first exercise with NotImplementedError.
- With the reference solution filled in, every check prints its ✔ line, no cell fails, and nbgrader's
  Validate button (its server extension, POST /assignments/validate) reports success.

The server is the venv's `jupyter lab` on 127.0.0.1 and a free port, with a token, a temporary root,
and lab settings that turn off the news popup and attach every cell to the page. The release is made
by nbgrader itself, from the source notebook. Each test works on a fresh copy of the notebook.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from _browser import (ARTIFACTS, BUILT, VENV_BIN, NetworkGuard, free_port, nbgrader_releases, require_chromium, shared_browser,
                      stop, venv_env, wait_for_http)
from helpers.instructor.course import get

pytestmark = pytest.mark.browser

ASSIGNMENT = get("01_zero_padding")
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"

LAB_SETTINGS = {
    # No "Would you like to receive official Jupyter news?" popup, and no request for news.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    # Every cell attached to the page, so that the test can read all outputs.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path


@pytest.fixture(scope="session")
def browser(request):
    return shared_browser(request)


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> Path:
    if ASSIGNMENT not in BUILT:
        pytest.fail(f"{ASSIGNMENT.source} is missing")
    return nbgrader_releases(tmp_path_factory)[ASSIGNMENT.id]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    require_chromium()
    tmp = tmp_path_factory.mktemp("lab")
    root, settings = tmp / "root", tmp / "settings"
    root.mkdir()
    for name, value in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    env = venv_env(JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
                   JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    token, port = secrets.token_hex(24), free_port()
    cmd = [str(VENV_BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "jupyter-lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/status?token={token}", timeout=120, proc=proc)
    except Exception:
        stop(proc)
        raise RuntimeError(f"jupyter lab did not start:\n{log.read_text()[-3000:]}") from None
    yield Lab(url, token, root, log)
    stop(proc)


def fresh_copy(lab: Lab, nb: nbformat.NotebookNode, folder: str) -> str:
    """Write the notebook into a new folder of the lab's root; return its path relative to the root."""
    target = lab.root / folder
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    nbformat.write(nb, target / f"{ASSIGNMENT.notebook}.ipynb")
    return f"{folder}/{ASSIGNMENT.notebook}.ipynb"


def with_reference_solution(release: Path) -> nbformat.NotebookNode:
    """The release with each solution cell replaced by the source's solution cell of the same grade_id."""
    source = nbformat.read(ASSIGNMENT.source, as_version=4)
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(release, as_version=4)
    filled = 0
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in solutions:
            cell.source = solutions[grade_id]
            filled += 1
    assert filled == len(solutions) > 0, f"filled {filled} of {len(solutions)} solution cells"
    return nb


class Notebook:
    """A notebook open in JupyterLab, in its own browser context."""

    def __init__(self, browser, lab: Lab, path: str):
        self.lab, self.path = lab, path
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.guard = NetworkGuard().attach(self.context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.page.goto(f"{lab.url}/lab/tree/{path}?token={lab.token}&reset")
        try:
            self.wait_idle(timeout=120_000)
        except Exception as e:
            self.screenshot(f"{path.split('/')[0]}_not_idle")
            raise AssertionError(f"the kernel never showed Idle ({e}); server log:\n{lab.log.read_text()[-3000:]}")

    def wait_idle(self, timeout: float = 120_000):
        self.page.wait_for_function(
            "() => { const s = document.querySelector('#jp-main-statusbar');"
            "        return !!s && /\\bIdle\\b/.test(s.innerText); }", timeout=timeout)

    def run_all(self):
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()

    def cells(self) -> list[dict]:
        """Every cell on the page, in order: its prompt and the text of its outputs."""
        return self.page.evaluate("""() => Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell'))
          .map(c => ({
            prompt: (c.querySelector('.jp-InputPrompt') || {textContent: ''}).textContent.trim(),
            outputs: Array.from(c.querySelectorAll('.jp-OutputArea-output')).map(o => o.textContent).join('\\n'),
            stderr: Array.from(c.querySelectorAll("%s")).map(o => o.textContent).join('\\n'),
          }))""" % STDERR)

    def screenshot(self, name: str):
        shot = ARTIFACTS / "screenshots" / "lab" / f"{name}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(shot))

    def scroll_to(self, k: int):
        self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(k).scroll_into_view_if_needed()

    def close(self):
        self.context.close()

    def validate_button(self) -> str:
        """Click nbgrader's Validate button in the notebook toolbar; the text of the dialog it opens."""
        self.page.locator(".jp-NotebookPanel-toolbar .validate-button").first.click()
        dialog = self.page.locator(".jp-Dialog-body").first
        dialog.wait_for(state="visible", timeout=120_000)
        text = dialog.inner_text()
        self.screenshot("validate_dialog")
        self.page.locator(".jp-Dialog .jp-mod-accept").first.click()
        return text

    def validate_request(self) -> dict:
        """POST /assignments/validate (nbgrader's server extension) from the page, with the XSRF token."""
        return self.page.evaluate("""async (path) => {
            const m = document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]*)/);
            const xsrf = m ? decodeURIComponent(m[1]) : '';
            const r = await fetch('/assignments/validate?path=' + encodeURIComponent(path),
                                  {method: 'POST', headers: {'X-XSRFToken': xsrf}, credentials: 'same-origin'});
            return {status: r.status, hasXsrf: !!xsrf, body: await r.json()};
        }""", self.path)


def code_cell_indexes(nb, pred) -> list[int]:
    return [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and pred(c)]


def test_the_release_stops_at_the_first_exercise_with_not_implemented_error(browser, lab, release):
    nb = nbformat.read(release, as_version=4)
    first_exercise = code_cell_indexes(nb, lambda c: c.metadata.get("nbgrader", {}).get("solution"))[0]
    assert "raise NotImplementedError()" in nb.cells[first_exercise].source
    path = fresh_copy(lab, nb, "stub")
    notebook = Notebook(browser, lab, path)
    try:
        notebook.run_all()
        error = notebook.page.locator(STDERR, has_text="NotImplementedError").first
        error.wait_for(state="visible", timeout=120_000)
        notebook.wait_idle()
        cells = notebook.cells()
        assert len(cells) == len(nb.cells)
        failing = [k for k, c in enumerate(cells) if "Traceback" in c["stderr"] or "Error" in c["stderr"]]
        assert failing, "no cell shows an error"
        first = failing[0]
        assert first > first_exercise, f"cell {first} fails before the first exercise (cell {first_exercise})"
        assert "NotImplementedError" in cells[first]["stderr"]
        assert "zero_pad" in cells[first]["stderr"], "the traceback points at zero_pad"
        assert not any(c["stderr"] for c in cells[:first]), "a cell before the exercise failed"
        notebook.scroll_to(first)
        notebook.screenshot("release_run_all")
        # Control: nbgrader's validation fails on the stub.
        result = notebook.validate_request()
        assert result["status"] == 200 and result["hasXsrf"], result
        assert result["body"]["success"] is True and result["body"]["value"].get("failed"), result["body"]
        assert notebook.guard.blocked == [], f"requests left the machine: {notebook.guard.blocked[:5]}"
    finally:
        notebook.close()


def test_the_reference_solution_passes_every_check_and_validates(browser, lab, release):
    nb = with_reference_solution(release)
    path = fresh_copy(lab, nb, "solved")
    checks = code_cell_indexes(nb, lambda c: c.metadata.get("nbgrader", {}).get("grade")
                               and re.sub(r'^\s*""".*?"""', "", c.source, flags=re.S).strip())
    assert checks, "no visible check in the release"
    notebook = Notebook(browser, lab, path)
    try:
        notebook.run_all()
        notebook.page.wait_for_function(
            """() => { const ps = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt'))
                         .map(p => p.textContent.trim());
                       return ps.length > 0 && ps.every(t => /^\\[\\d+\\]:$/.test(t)); }""", timeout=180_000)
        notebook.wait_idle()
        cells = notebook.cells()
        assert len(cells) == len(nb.cells)
        for k in checks:
            assert "✔" in cells[k]["outputs"], f"check cell {k} printed no ✔ line:\n{cells[k]['outputs'][:1000]}"
        for k, c in enumerate(cells):
            bad = "Traceback" in c["stderr"] or re.search(r"^\w*(Error|Exception)\b", c["stderr"], re.M)
            assert not bad, f"cell {k} shows an error:\n{c['stderr'][:2000]}"
        assert notebook.page.locator(STDERR, has_text="Traceback").count() == 0

        notebook.scroll_to(checks[0])
        notebook.screenshot("reference_run_all")
        # nbgrader's Validate button: it saves the notebook, then POSTs to the server extension, which
        # runs the notebook again; "Success!" means no failed test and no changed locked cell. (The
        # stub test above calls the same endpoint directly and reads its JSON.)
        text = notebook.validate_button()
        assert "Success! Your notebook passes all the tests." in text, text
        assert notebook.guard.blocked == [], f"requests left the machine: {notebook.guard.blocked[:5]}"
    finally:
        notebook.close()
