"""Shared fixtures: the repository, the reference solutions, a released course in a temp folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def reference():
    """The reference solutions, executed from the source notebooks' solution cells."""
    from helpers.instructor.refdata import reference_functions

    return reference_functions()


def make_course(dest: Path) -> Path:
    """A course directory like the repository's: notebooks (linked) and nbgrader_config.py."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "notebooks").symlink_to(ROOT / "notebooks", target_is_directory=True)
    shutil.copy(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest


@pytest.fixture(scope="session")
def released_course(tmp_path_factory) -> Path:
    """Every assignment released with nbgrader into a fresh course directory."""
    from helpers.instructor.nbapi import load_config
    from helpers.instructor.release import release

    course = make_course(tmp_path_factory.mktemp("course"))
    release(load_config(course))
    return course


def require_root_sandbox() -> None:
    """Skip a test that needs root and bubblewrap when they are missing; under CI (CI=true) FAIL instead,
    so that a CI run can never pass by skipping the sandbox tests."""
    why = None
    if os.geteuid() != 0:
        why = "needs root (per-slot sandbox users, tmpfs mounts, cgroups)"
    elif not (os.path.exists("/usr/bin/bwrap") or shutil.which("bwrap")):
        why = "needs bubblewrap: apt-get install bubblewrap (make system-deps)"
    if why:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI: {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server (tests/postgres_server.py), stopped and removed after the session.

    Skipped when PostgreSQL is not installed or does not start; under CI=true that is a failure.
    """
    from postgres_server import PostgresServer, PostgresUnavailable

    server = None
    try:
        server = PostgresServer()
        server.start()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        if server is not None:
            server.stop()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no PostgreSQL server could be started: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """The SQLAlchemy URL (postgresql+psycopg, with the test role's password) of one empty database."""
    return postgres_server.create_database("cnn_session")


def variant(func: str, *changes: tuple[str, str]):
    """The reference solution of ``func`` with text changes (every change must apply): a realistic
    wrong answer, for the tests of the checks and their diagnoses."""
    import numpy as np

    from helpers.instructor.course import GRADED_FUNCTIONS
    from helpers.instructor.demo import strip_markers
    from helpers.instructor.refdata import solution_source

    src = strip_markers(solution_source(GRADED_FUNCTIONS[func].source))
    for old, new in changes:
        assert old in src, f"test setup: {old!r} not found in the solution of {func}"
        src = src.replace(old, new)
    import linecache

    ns = {"np": np}
    src = "import numpy as np\n" + src
    filename = f"<{func} variant>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)   # inspect finds it, as in a cell
    exec(compile(src, filename, "exec"), ns)
    return ns[func]
