"""nbgrader plumbing: load the course config, make an ``NbGraderAPI``, open the gradebook.

nbgrader runs ``alembic`` as a subprocess found on ``PATH`` when it creates a gradebook, so the
directory of this interpreter goes on ``PATH`` first (calling ``.venv/bin/cnn-course`` without
activating the venv would otherwise fail with ``FileNotFoundError: 'alembic'``).
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .course import ROOT


class CourseError(Exception):
    """A problem with the instructor's input: reported as one line, with a non-zero exit, no traceback."""


def ensure_path() -> None:
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        os.environ["PATH"] = os.pathsep.join([bindir] + parts)


def sqlite_url(path: Path | str) -> str:
    # timeout: how long a writer waits for another process's lock (parallel autograde).
    return f"sqlite:///{Path(path).resolve()}?timeout=60"


def load_config(root: Path | str | None = None, db_url: str | None = None, config_file: Path | str | None = None,
                overrides: dict | None = None):
    """The traitlets Config of the course: ``nbgrader_config.py`` plus the given overrides."""
    from traitlets.config import Config
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    root = Path(root or ROOT).resolve()
    cfg_path = Path(config_file) if config_file else (root / "nbgrader_config.py")
    if not cfg_path.exists():
        cfg_path = ROOT / "nbgrader_config.py"
    try:
        config = PyFileConfigLoader(cfg_path.name, path=str(cfg_path.parent)).load_config()
    except ConfigFileNotFound:
        raise CourseError(f"cannot read the nbgrader config {cfg_path}") from None
    except Exception as exc:  # a syntax error or a failing statement in the config file
        raise CourseError(f"cannot read the nbgrader config {cfg_path}: {type(exc).__name__}: {exc}") from None
    config.CourseDirectory.root = str(root)
    if db_url:
        config.CourseDirectory.db_url = db_url
    elif "db_url" not in config.CourseDirectory:
        config.CourseDirectory.db_url = sqlite_url(root / "gradebook.db")
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            setattr(config[section], key, value)
    extra = Config()
    extra.merge(config)
    return extra


def make_api(config):
    ensure_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


@contextmanager
def gradebook(config):
    ensure_path()
    from nbgrader.api import Gradebook

    gb = Gradebook(config.CourseDirectory.db_url, course_id=config.CourseDirectory.get("course_id", "default_course"))
    try:
        yield gb
    finally:
        gb.close()
