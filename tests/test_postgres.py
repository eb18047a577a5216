"""PostgreSQL as the gradebook, on a throwaway server of the tests' own (tests/postgres_server.py).

- release and autograde a light subset against PostgreSQL: the same per-question export as the
  same flow on SQLite (the autograde call uses today's ``autograde(course, ids, jobs=, db_url=,
  sandbox=)``);
- ``cnn-course gradebook migrate`` from that graded SQLite gradebook into a fresh database: every
  table and row equal, and a byte-identical export;
- a wrong password, an unreachable port, a malformed URL: exit 2, one line, no traceback, and the
  password nowhere in the output; the demo prints the gradebook URL masked.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import make_course
from postgres_server import free_port

pytestmark = pytest.mark.postgres
CLI = str(Path(sys.executable).parent / "cnn-course")
SUBSET = ["01_zero_padding", "07_relu"]
# student -> assignment -> mistakes (answer cell grade_id, old, new) applied to the reference answer
PLAN = {
    "alice": {"01_zero_padding": [], "07_relu": []},
    "bob": {"07_relu": [("relu", "A = np.maximum(0.0, Z)", "A = np.abs(Z)")]},
    "cara": {"01_zero_padding": [], "07_relu": [("relu_backward", "np.where(Z > 0, dA, 0.0)", "dA")]},
}


def cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    full_env.pop("CNN_COURSE_DB_URL", None)
    full_env.update(env or {})
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def build_submissions(course: Path) -> None:
    """submitted/ for PLAN, from the student edition in release/, plus one corrupt notebook (dan)."""
    from helpers.instructor.course import get
    from helpers.instructor.demo import filled_notebook

    for student, per in PLAN.items():
        for a_id, mistakes in per.items():
            a = get(a_id)
            folder = course / "submitted" / student / a_id
            folder.mkdir(parents=True)
            nb = filled_notebook(course / "release" / a_id / f"{a.notebook}.ipynb",
                                 course / "notebooks" / a_id / f"{a.notebook}.ipynb", mistakes)
            nbformat.write(nb, str(folder / f"{a.notebook}.ipynb"))
    corrupt = course / "submitted" / "dan" / "01_zero_padding"
    corrupt.mkdir(parents=True)
    (corrupt / "zero_padding.ipynb").write_text('{"cells": [')


def grade(course: Path, db_url: str | None):
    """Today's grading engine, in process: keyword ``db_url=`` (None: the course's SQLite file)."""
    from helpers.instructor.autograde import autograde

    outcomes = autograde(course, SUBSET, jobs=2, db_url=db_url, sandbox=True, stream=io.StringIO())
    return {(o.assignment, o.student): o.status for o in outcomes}


def all_rows(url: str) -> dict[str, list]:
    """Every row of every nbgrader table (and alembic_version), as sorted JSON-able lists."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine, select, text

    def plain(v):
        return v.isoformat() if isinstance(v, (dt.datetime, dt.date)) else v

    engine = create_engine(url)
    out = {}
    with engine.connect() as con:
        for table in Base.metadata.sorted_tables:
            rows = [sorted((k, plain(v)) for k, v in r._mapping.items()) for r in con.execute(select(table))]
            out[table.name] = sorted(rows, key=json.dumps)
        out["alembic_version"] = sorted(r[0] for r in con.execute(text("SELECT version_num FROM alembic_version")))
    engine.dispose()
    return out


@pytest.fixture(scope="module")
def flows(tmp_path_factory, postgres_server):
    """The same release + submissions + autograde + export, once on SQLite and once on PostgreSQL."""
    out = {}
    for kind in ("sqlite", "postgres"):
        course = make_course(tmp_path_factory.mktemp(f"flow_{kind}"))
        url = postgres_server.create_database(f"flow_{kind}") if kind == "postgres" else None
        db = ["--db-url", url] if url else []
        ok(cli("--root", str(course), *db, "release", *SUBSET))
        build_submissions(course)
        statuses = grade(course, url)
        export = ok(cli("--root", str(course), *db, "export"))
        rep = ok(cli("--root", str(course), *db, "report"))
        fb = [ok(cli("--root", str(course), *db, "feedback", a)) for a in SUBSET] if url else []
        out[kind] = {"course": course, "url": url, "statuses": statuses, "export": export, "report": rep,
                     "feedback": fb, "csv": course / "exports" / "grades_per_question.csv"}
    return out


@pytest.mark.slow
def test_grading_on_postgres_matches_sqlite(flows, postgres_server):
    """Depends on today's autograde(course, ids, jobs=2, db_url=url, sandbox=True)."""
    pg, lite = flows["postgres"], flows["sqlite"]
    assert pg["statuses"] == lite["statuses"]
    assert pg["statuses"][("01_zero_padding", "dan")] == "corrupt"
    assert [s for k, s in pg["statuses"].items() if k[1] != "dan"] == ["graded"] * 5
    pg_csv = pg["csv"].read_bytes()
    assert pg_csv == lite["csv"].read_bytes()
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO(pg_csv.decode()))}
    assert set(rows) == {"max_points", "alice", "bob", "cara", "dan"}
    assert rows["alice"]["course_total"] == rows["max_points"]["course_total"] == "15"
    assert rows["bob"]["07_relu/test_relu_canonical"] == "0" and rows["bob"]["07_relu/test_relu_backward_hidden"] == "3"
    assert rows["cara"]["07_relu/test_relu_backward_canonical"] == "0" and rows["cara"]["07_relu/total"] == "5"
    assert rows["dan"]["course_total"] == "0"
    # nbgrader's own export: the same rows (its order among equal names is the database's)
    nb_pg = (pg["course"] / "exports" / "grades_nbgrader.csv").read_text().splitlines()
    nb_lite = (lite["course"] / "exports" / "grades_nbgrader.csv").read_text().splitlines()
    assert nb_pg[0] == nb_lite[0] and sorted(nb_pg) == sorted(nb_lite) and len(nb_pg) > 5
    # the report reads the same grades
    text = (pg["course"] / "reports" / "item_analysis.txt").read_text()
    assert text == (lite["course"] / "reports" / "item_analysis.txt").read_text()
    assert "07_relu/test_relu_canonical" in text and text.strip() in pg["report"].stdout
    # the tables are really in PostgreSQL, at nbgrader's alembic head (nbgrader's migration is a no-op)
    rows_pg = all_rows(pg["url"])
    assert len(rows_pg["grade"]) == len(all_rows(_sqlite(lite["course"]))["grade"]) > 10
    assert rows_pg["alembic_version"] == all_rows(_sqlite(lite["course"]))["alembic_version"]
    from helpers.instructor.nbapi import ensure_path
    from nbgrader.dbutil import upgrade

    ensure_path()
    upgrade(pg["url"])
    assert all_rows(pg["url"]) == rows_pg
    # feedback from the PostgreSQL gradebook: one page per graded submission
    pages = sorted(p.relative_to(pg["course"] / "feedback").as_posix()
                   for p in (pg["course"] / "feedback").rglob("*.html"))
    assert pages == ["alice/01_zero_padding/zero_padding.html", "alice/07_relu/relu.html", "bob/07_relu/relu.html",
                     "cara/01_zero_padding/zero_padding.html", "cara/07_relu/relu.html"]
    assert "feedback 07_relu: ok" in pg["feedback"][1].stdout
    # no password in anything the commands printed
    for res in (pg["export"], pg["report"], *pg["feedback"]):
        assert postgres_server.password not in res.stdout + res.stderr


def _sqlite(course: Path) -> str:
    return f"sqlite:///{course / 'gradebook.db'}"


@pytest.mark.slow
def test_migrate_sqlite_gradebook_to_postgres(flows, postgres_server, tmp_path):
    lite = flows["sqlite"]
    course = lite["course"]
    target = postgres_server.create_database()
    res = ok(cli("--root", str(course), "gradebook", "migrate", "--to", target))
    assert "done:" in res.stdout and "grade " in res.stdout and "ok" in res.stdout
    assert postgres_server.password not in res.stdout + res.stderr
    assert "cnncourse:***@" in res.stdout
    source_rows, target_rows = all_rows(_sqlite(course)), all_rows(target)
    assert set(source_rows) == set(target_rows)
    for name in source_rows:
        assert source_rows[name] == target_rows[name], f"table {name} differs after the migration"
    assert sum(len(v) for v in target_rows.values()) > 50 and target_rows["submitted_assignment"]
    # the export from PostgreSQL is byte-identical to the one from SQLite
    out = tmp_path / "from_pg.csv"
    ok(cli("--root", str(course), "--db-url", target, "export", "--out", str(out)))
    assert out.read_bytes() == lite["csv"].read_bytes()
    # check: masked URL and counts
    res = ok(cli("--root", str(course), "--db-url", target, "gradebook", "check"))
    assert "cnncourse:***@127.0.0.1" in res.stdout and postgres_server.password not in res.stdout
    assert "students: 4  assignments: 2  submissions: 5" in res.stdout
    # a second migration into the now non-empty database is refused, with --replace it is redone
    again = cli("--root", str(course), "gradebook", "migrate", "--to", target)
    assert again.returncode == 2 and "not empty" in again.stderr and "--replace" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and postgres_server.password not in again.stderr
    ok(cli("--root", str(course), "gradebook", "migrate", "--to", target, "--replace"))
    assert all_rows(target) == source_rows


def test_migrate_into_empty_target_refuses_missing_source(postgres_server, tmp_path):
    course = make_course(tmp_path / "course")
    res = cli("--root", str(course), "gradebook", "migrate", "--to", postgres_server.create_database())
    assert res.returncode == 2 and "no gradebook to migrate" in res.stderr and "Traceback" not in res.stderr


def _bad_urls(server) -> dict:
    wrong = "wrong-Secret-42x"
    return {
        "wrong password": (server.url("cnn_session", password=wrong), wrong, "password authentication failed"),
        "unreachable port": (server.url("cnn_session", port=free_port()), server.password, "Connection refused"),
        "malformed URL": (f"postgresql+psycopg://{server.role}:{server.password}@127.0.0.1:notaport/db",
                          server.password, "malformed gradebook URL"),
        "no such database": (server.url("no_such_db"), server.password, 'database "no_such_db" does not exist'),
        "unknown driver": (f"postgresql+nodriver://{server.role}:{server.password}@127.0.0.1/db",
                           server.password, "cannot use the gradebook URL"),
    }


@pytest.mark.parametrize("case", ["wrong password", "unreachable port", "malformed URL", "no such database",
                                  "unknown driver"])
@pytest.mark.parametrize("command", [["export"], ["gradebook", "check"], ["autograde", "--all"]])
def test_bad_gradebook_url_is_one_line_without_the_password(postgres_server, postgres_url, tmp_path, case, command):
    url, secret, needle = _bad_urls(postgres_server)[case]
    course = make_course(tmp_path / "course")
    (course / "submitted").mkdir()
    res = cli("--root", str(course), "--db-url", url, *command, timeout=120)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnn-course: error: ") and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert secret not in res.stdout + res.stderr and postgres_server.password not in res.stdout + res.stderr


@pytest.mark.parametrize("case", ["wrong password", "malformed URL"])
def test_bad_url_from_the_environment(postgres_server, postgres_url, tmp_path, case):
    url, secret, needle = _bad_urls(postgres_server)[case]
    course = make_course(tmp_path / "course")
    for args in (["release", "07_relu"], ["gradebook", "migrate", "--to", url]):
        res = cli("--root", str(course), *args, env={"CNN_COURSE_DB_URL": url}, timeout=120)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "Traceback" not in res.stderr and secret not in res.stdout + res.stderr


def test_display_url_masks_every_form():
    from helpers.instructor.nbapi import CourseError, display_url, normalize_db_url

    assert display_url("postgresql+psycopg://u:s3cr%40t@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert display_url("postgresql://u:pa/ss@h/db") == "postgresql://u:***@h/db"
    assert "s3cr" not in display_url("postgresql+psycopg://u:s3cr@h:port/db")
    assert display_url("sqlite:////tmp/x/gradebook.db?timeout=60") == "sqlite:////tmp/x/gradebook.db?timeout=60"
    assert normalize_db_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    with pytest.raises(CourseError, match="expected sqlite:///PATH or postgresql"):
        normalize_db_url("not a url")


@pytest.mark.slow
def test_demo_on_postgres_prints_no_password(postgres_server, tmp_path):
    url = postgres_server.create_database("demo")
    res = cli("--db-url", url, "demo", "--dir", str(tmp_path / "demo"), "--jobs", "2", timeout=1800)
    ok(res)
    assert postgres_server.password not in res.stdout + res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith("gradebook "))
    assert line.split()[-1] == f"postgresql+psycopg://{postgres_server.role}:***@127.0.0.1:{postgres_server.port}/demo"
    assert "alice" in res.stdout and "per-question CSV" in res.stdout
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "demo" / "exports" / "grades_per_question.csv"))}
    assert rows["alice"]["course_total"] == rows["max_points"]["course_total"]
    # the demo refuses a server gradebook that holds a real class
    real = postgres_server.create_database("real_class")
    from helpers.instructor.nbapi import gradebook, load_config

    with gradebook(load_config(tmp_path / "demo", real)) as gb:
        gb.update_or_create_student("student_of_2027")
    res = cli("--db-url", real, "demo", "--dir", str(tmp_path / "demo2"), timeout=300)
    assert res.returncode == 2 and "student_of_2027" in res.stderr and postgres_server.password not in res.stderr


def test_password_from_pgpassword_and_bare_postgresql_url(postgres_server, tmp_path):
    """The password can stay out of the URL (and out of `ps`): libpq reads PGPASSWORD or ~/.pgpass;
    a bare postgresql:// URL gets the psycopg 3 driver."""
    url = postgres_server.create_database("no_pw_in_url")
    bare = f"postgresql://{postgres_server.role}@127.0.0.1:{postgres_server.port}/no_pw_in_url"
    course = make_course(tmp_path / "course")
    res = ok(cli("--root", str(course), "--db-url", bare, "gradebook", "check",
                 env={"PGPASSWORD": postgres_server.password}))
    assert res.stdout.splitlines()[0] == f"gradebook: postgresql+psycopg://{postgres_server.role}@127.0.0.1:" \
                                         f"{postgres_server.port}/no_pw_in_url"
    assert "empty: no nbgrader tables yet" in res.stdout and url.endswith("/no_pw_in_url")
    res = cli("--root", str(course), "--db-url", bare, "gradebook", "check")
    assert res.returncode == 2 and "no password supplied" in res.stderr


@pytest.mark.slow
def test_parallel_serial_kill_rerun_and_resubmission_on_postgres(postgres_server, tmp_path):
    """The grading guarantees, on PostgreSQL as on SQLite: --jobs 2 gives the gradebook --jobs 1
    gives; a run SIGKILLed mid-way, then run again, ends with that same gradebook, nothing lost or
    doubled; a resubmission (fixed, newer timestamp.txt) is regraded once: one submission row, its
    grades replaced, not added."""
    import signal
    import time

    import psycopg

    from helpers.instructor.autograde import autograde
    from helpers.instructor.course import get
    from helpers.instructor.demo import filled_notebook
    from helpers.instructor.nbapi import load_config
    from test_instructor import gradebook_scores

    def course_with_class(name):
        course = make_course(tmp_path / name)
        url = postgres_server.create_database(name)
        ok(cli("--root", str(course), "--db-url", url, "release", *SUBSET))
        build_submissions(course)
        return course, url

    def counts(name):
        with psycopg.connect(postgres_server.dsn(name)) as con:
            doubled = con.execute("SELECT COUNT(*) FROM (SELECT notebook_id, cell_id, COUNT(*) c FROM grade "
                                  "GROUP BY notebook_id, cell_id HAVING COUNT(*) > 1) d").fetchone()[0]
            subs = con.execute("SELECT COUNT(*) FROM submitted_assignment").fetchone()[0]
        return doubled, subs

    runs = {}
    for jobs in (1, 2):
        course, url = course_with_class(f"guarantees_jobs{jobs}")
        autograde(course, SUBSET, jobs=jobs, db_url=url, stream=io.StringIO())
        runs[jobs] = gradebook_scores(load_config(course, url))
    assert runs[1] == runs[2] and len(runs[1]) >= 10

    course, url = course_with_class("guarantees_killed")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("CNN_COURSE_DB_URL", None)
    proc = subprocess.Popen([CLI, "--root", str(course), "--db-url", url, "autograde", "--all", "--jobs", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    for line in proc.stdout:
        if " ok " in line:   # one graded, others mid-way
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    partial = gradebook_scores(load_config(course, url))
    rerun = ok(cli("--root", str(course), "--db-url", url, "autograde", "--all", "--jobs", "2"))
    assert "already graded" in rerun.stdout, rerun.stdout
    assert len(partial) < len(runs[1]) and gradebook_scores(load_config(course, url)) == runs[1]
    assert counts("guarantees_killed") == (0, 5)

    # bob fixes relu and resubmits, with a newer timestamp
    a = get("07_relu")
    folder = course / "submitted" / "bob" / "07_relu"
    nbformat.write(filled_notebook(course / "release" / a.id / f"{a.notebook}.ipynb",
                                   course / "notebooks" / a.id / f"{a.notebook}.ipynb"),
                   str(folder / f"{a.notebook}.ipynb"))
    (folder / "timestamp.txt").write_text("2030-01-01 12:00:00.000000 UTC")
    again = ok(cli("--root", str(course), "--db-url", url, "autograde", "--all", "--jobs", "2"))
    assert "resubmitted: regraded" in next(ln for ln in again.stdout.splitlines() if "07_relu / bob" in ln)
    assert sum(" ok " in ln for ln in again.stdout.splitlines() if ln.startswith("[")) == 1, again.stdout
    after = gradebook_scores(load_config(course, url))
    assert after[("bob", "07_relu", "test_relu_canonical")] > runs[1][("bob", "07_relu", "test_relu_canonical")]
    assert {k: v for k, v in after.items() if k[0] != "bob"} == {k: v for k, v in runs[1].items() if k[0] != "bob"}
    assert counts("guarantees_killed") == (0, 5)
