"""Shared helpers for the site and browser tests: the built site, Chromium, a loopback-only guard,
a static web server and an nbgrader release. Imported by test_site.py, test_browser.py and test_lab.py.

The browser is Debian's ``chromium`` (never a downloaded build). Without it, browser tests fail
under CI (``CI=true``) and are skipped elsewhere.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers.instructor.course import ASSIGNMENTS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
VENV_BIN = Path(sys.executable).parent
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

# The lessons whose source notebook exists, in course order.
BUILT = [a for a in ASSIGNMENTS if a.source.exists()]


def require_chromium() -> None:
    """Fail under CI, skip elsewhere, when Debian's chromium is not installed."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def venv_env(**extra: str) -> dict[str, str]:
    """The environment with the venv's bin first on PATH (nbgrader starts `alembic` from PATH)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"no answer from {url} in {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server we started, then kill it if it does not stop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


# --------------------------------------------------------------------------------------------------
# The site, built once per test session (both test_site.py and test_browser.py use it)
# --------------------------------------------------------------------------------------------------

_SITE: dict = {}


def built_site(tmp_path_factory) -> tuple[Path, dict]:
    """Build both editions of every existing lesson once, into a temporary folder."""
    if "dir" not in _SITE:
        from helpers.instructor.site import build_site

        out = tmp_path_factory.mktemp("site")
        start = time.perf_counter()
        summary = build_site(out, assignments=BUILT)
        summary["test_build_seconds"] = time.perf_counter() - start
        _SITE.update(dir=out, summary=summary)
    return _SITE["dir"], _SITE["summary"]


# --------------------------------------------------------------------------------------------------
# A student release made by nbgrader itself
# --------------------------------------------------------------------------------------------------

_RELEASES: dict = {}

_GENERATE = r"""
import sys
from traitlets.config.loader import PyFileConfigLoader
from nbgrader.apps import NbGraderAPI

root = sys.argv[1]
config = PyFileConfigLoader("nbgrader_config.py", path=root).load_config()
config.CourseDirectory.root = root
config.CourseDirectory.source_directory = "source"
config.CourseDirectory.release_directory = "release"
config.CourseDirectory.db_url = f"sqlite:///{root}/gb.db"
api = NbGraderAPI(config=config)
for assignment in sys.argv[2:]:
    result = api.generate_assignment(assignment, force=True)
    if not result["success"]:
        sys.exit(f"generate_assignment {assignment} failed:\n{result['error']}\n{result['log']}")
"""


def nbgrader_releases(tmp_path_factory) -> dict[str, Path]:
    """The student release of every existing lesson, made by nbgrader's own generate_assignment
    (through its Python API, in one process) in a temporary course with the course's nbgrader_config.py.
    Returns {assignment id: release notebook}."""
    if not _RELEASES:
        course = tmp_path_factory.mktemp("course")
        for a in BUILT:
            shutil.copytree(a.source.parent, course / "source" / a.id,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
        result = subprocess.run([sys.executable, "-c", _GENERATE, str(course), *[a.id for a in BUILT]],
                                cwd=course, env=venv_env(), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"nbgrader generate_assignment failed:\n{result.stdout}\n{result.stderr}"
        for a in BUILT:
            release = course / "release" / a.id / f"{a.notebook}.ipynb"
            assert release.exists(), f"nbgrader made no {release}"
            _RELEASES[a.id] = release
    return _RELEASES


# --------------------------------------------------------------------------------------------------
# Chromium, and a guard that lets nothing leave the machine
# --------------------------------------------------------------------------------------------------


class NetworkGuard:
    """Route every request of a browser context: loopback and local schemes pass, the rest is
    aborted and recorded. Failed local requests (a missing file, an HTTP error) are recorded too."""

    def __init__(self):
        self.blocked: list[str] = []
        self.failed: list[str] = []

    @staticmethod
    def allowed(url: str) -> bool:
        u = urlparse(url)
        if u.scheme in ("file", "data", "blob", "about"):
            return True
        if u.scheme in ("http", "https", "ws", "wss"):
            return (u.hostname or "") in LOOPBACK
        return False

    def route(self, route):
        url = route.request.url
        if self.allowed(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def attach(self, context) -> "NetworkGuard":
        context.route("**/*", self.route)

        def on_failed(request):
            # MathJax tests its fonts with url('about:blank'); that is no request for a resource.
            if request.url not in ("about:blank",) and request.url not in self.blocked:
                self.failed.append(f"{request.url}: {request.failure}")

        def on_response(response):
            if response.status >= 400:
                self.failed.append(f"{response.url}: HTTP {response.status}")

        context.on("requestfailed", on_failed)
        context.on("response", on_response)
        return self


def launch_chromium(playwright):
    """Debian's Chromium, headless, with a fresh profile (Playwright gives every launch its own)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


_PLAYWRIGHT: dict = {}


def shared_browser(request):
    """One Chromium for the whole session, shared by the site and the JupyterLab tests (Playwright's
    sync API cannot run two instances at once). Closed when the session ends."""
    require_chromium()
    if "browser" not in _PLAYWRIGHT:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        try:
            browser = launch_chromium(pw)
        except Exception:
            pw.stop()
            raise

        def close():
            try:
                browser.close()
            finally:
                pw.stop()
                _PLAYWRIGHT.clear()

        _PLAYWRIGHT.update(pw=pw, browser=browser)
        request.config.add_cleanup(close)
    return _PLAYWRIGHT["browser"]


class StaticServer:
    """``python -m http.server`` on 127.0.0.1 and a free port, serving one folder."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1", "--directory", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_http(self.url + "/index.html", timeout=30, proc=self.proc)
        except Exception:
            stop(self.proc)
            raise

    def close(self):
        stop(self.proc)
