"""nbgrader plumbing: load the course config, make an ``NbGraderAPI``, open the gradebook.

The gradebook is any SQLAlchemy URL nbgrader accepts: SQLite (``sqlite:///PATH``, the default,
``<root>/gradebook.db``) or PostgreSQL with the psycopg 3 driver
(``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE``; a bare ``postgresql://`` gets that
driver). A URL is shown to people only through :func:`display_url`, with its password masked;
:func:`check_gradebook` connects once with a short timeout and turns a malformed URL, an
unreachable server or a refused login into one :class:`CourseError` line.

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


SUPPORTED_URLS = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
CONNECT_TIMEOUT = 5   # seconds for check_gradebook's connection


def display_url(url) -> str:
    """The gradebook URL for people (output, logs, errors): its password replaced by ``***``."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(str(url).strip()).render_as_string(hide_password=True)
    except Exception:   # unparsable: where a password would be cannot be told, so show only the scheme
        scheme, sep, _ = str(url).strip().partition("://")
        return f"{scheme}://..." if sep and scheme.replace("+", "").isalnum() else "(not shown)"


def normalize_db_url(url: str) -> str:
    """The URL nbgrader is given: checked, and with the psycopg 3 driver for a bare ``postgresql://``."""
    from sqlalchemy.engine import make_url

    text = str(url).strip()
    try:
        parsed = make_url(text)
    except Exception:
        raise CourseError(f"malformed gradebook URL {display_url(text)!r}: expected {SUPPORTED_URLS}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    return text


def error_line(exc: BaseException, password: str | None) -> str:
    """A database error as one line: the driver's message (not SQLAlchemy's SQL and parameters),
    with the password masked should the driver ever echo it."""
    from urllib.parse import quote, quote_plus

    inner = getattr(exc, "orig", None) or exc
    text = " ".join(str(inner).split()) or type(inner).__name__
    if password:
        for form in {password, quote(password, safe=""), quote_plus(password)}:
            text = text.replace(form, "***")
    return text[:300]


def check_gradebook(config_or_url, timeout: int = CONNECT_TIMEOUT) -> str:
    """Connect to the gradebook once (``timeout`` seconds at most); return its masked URL.

    Raises a :class:`CourseError` of one line, never showing the password, when the URL is
    malformed, names a database system or driver that is not installed, or the server cannot be
    reached or refuses the login. A SQLite file that does not exist yet needs only its folder.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = config_or_url if isinstance(config_or_url, str) else config_or_url.CourseDirectory.db_url
    shown = display_url(url)
    url = normalize_db_url(url)
    parsed = make_url(url)
    password = parsed.password
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).exists():
            if not Path(db).resolve().parent.is_dir():
                raise CourseError(f"cannot create the gradebook {shown}: no folder {Path(db).resolve().parent}")
            return shown
    connect_args = {"connect_timeout": int(timeout)} if backend == "postgresql" else {}
    try:
        engine = create_engine(url, connect_args=connect_args)
    except Exception as exc:   # unknown dialect, driver not installed, bad query options
        raise CourseError(f"cannot use the gradebook URL {shown}: {error_line(exc, password)} "
                          f"(expected {SUPPORTED_URLS})") from None
    try:
        with engine.connect() as con:
            con.execute(text("SELECT 1"))
    except Exception as exc:
        raise CourseError(f"cannot open the gradebook {shown}: {error_line(exc, password)}") from None
    finally:
        engine.dispose()
    return shown


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
        config.CourseDirectory.db_url = normalize_db_url(db_url)
    elif "db_url" not in config.CourseDirectory:
        config.CourseDirectory.db_url = sqlite_url(root / "gradebook.db")
    else:
        config.CourseDirectory.db_url = normalize_db_url(config.CourseDirectory.db_url)
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
