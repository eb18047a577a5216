"""``cnn-course gradebook``: look at the gradebook, and move it from SQLite to PostgreSQL.

    cnn-course gradebook check
    cnn-course gradebook migrate --to postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB [--from URL] [--replace]

``migrate`` copies every table of nbgrader's schema (``nbgrader.api.Base.metadata``, in
dependency order, plus ``alembic_version``) from the source gradebook (the course's, or
``--from``) into an empty target database, in one transaction, then checks the copy: the same
row count and the same content digest (SHA-256 over the rows, read back through nbgrader's
column types and sorted, so that the two databases' orderings and storage formats do not matter)
for every table. It refuses a target that already holds tables unless ``--replace`` is given,
and then drops nbgrader's tables there first. URLs are printed with the password masked.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .nbapi import CourseError, check_gradebook, display_url, normalize_db_url

ALEMBIC_TABLE = "alembic_version"
CHUNK = 1000


def nbgrader_metadata():
    from nbgrader.api import Base

    return Base.metadata


def _engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = normalize_db_url(url)
    args = {"connect_timeout": 10} if make_url(url).get_backend_name() == "postgresql" else {}
    return create_engine(url, connect_args=args)


def _normalized(value):
    """One cell as plain JSON, the same whichever database it was read from."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


@dataclass
class TableState:
    rows: int
    digest: str


def _rows(con, table) -> list[list]:
    from sqlalchemy import select

    cols = sorted(c.name for c in table.columns)
    out = [[_normalized(row._mapping[table.c[c]]) for c in cols] for row in con.execute(select(table))]
    out.sort(key=lambda r: json.dumps(r))
    return out


def _alembic_rows(con) -> list[list]:
    from sqlalchemy import text

    return sorted([[r[0]] for r in con.execute(text(f"SELECT version_num FROM {ALEMBIC_TABLE}"))])


def table_states(engine) -> dict[str, TableState]:
    """Row count and content digest of every nbgrader table (and alembic_version) in a gradebook."""
    from sqlalchemy import inspect

    present = set(inspect(engine).get_table_names())
    states = {}
    with engine.connect() as con:
        for table in nbgrader_metadata().sorted_tables:
            if table.name in present:
                rows = _rows(con, table)
                states[table.name] = TableState(len(rows), hashlib.sha256(json.dumps(rows).encode()).hexdigest())
        if ALEMBIC_TABLE in present:
            rows = _alembic_rows(con)
            states[ALEMBIC_TABLE] = TableState(len(rows), hashlib.sha256(json.dumps(rows).encode()).hexdigest())
    return states


def _check_source_schema(engine, shown: str) -> list[str]:
    """The source must have nbgrader's current schema; returns its tables outside that schema."""
    from sqlalchemy import inspect

    insp = inspect(engine)
    present = set(insp.get_table_names())
    meta = nbgrader_metadata()
    if not present:
        raise CourseError(f"the gradebook {shown} is empty: nothing to migrate")
    missing = [t.name for t in meta.sorted_tables if t.name not in present]
    if ALEMBIC_TABLE not in present:
        missing.append(ALEMBIC_TABLE)
    if missing:
        raise CourseError(f"the gradebook {shown} does not have nbgrader 0.9's schema (missing tables: "
                          f"{', '.join(missing)}); upgrade it first with `nbgrader db upgrade`")
    for table in meta.sorted_tables:
        have = {c["name"] for c in insp.get_columns(table.name)}
        want = {c.name for c in table.columns}
        if have != want:
            raise CourseError(f"the gradebook {shown}: table {table.name} has columns {sorted(have)}, "
                              f"nbgrader 0.9.6 expects {sorted(want)}; upgrade it first with `nbgrader db upgrade`")
    return sorted(present - {t.name for t in meta.sorted_tables} - {ALEMBIC_TABLE})


def _drop_nbgrader_tables(con) -> None:
    from sqlalchemy import text

    nbgrader_metadata().drop_all(bind=con, checkfirst=True)
    con.execute(text(f"DROP TABLE IF EXISTS {ALEMBIC_TABLE}"))


def migrate(source_url: str, target_url: str, replace: bool = False, stream=None) -> dict[str, TableState]:
    """Copy the gradebook at ``source_url`` into the empty database at ``target_url`` and verify it.

    Returns the verified state (rows, digest) of every table. Raises :class:`CourseError` for a
    bad or unreachable URL, a source without nbgrader's schema, a non-empty target (without
    ``replace``) or a copy that does not verify.
    """
    from sqlalchemy import inspect, text
    from sqlalchemy.engine import make_url

    out = stream or sys.stdout
    source_url, target_url = normalize_db_url(source_url), normalize_db_url(target_url)
    src_shown, dst_shown = display_url(source_url), display_url(target_url)
    if make_url(source_url) == make_url(target_url):
        raise CourseError(f"source and target are the same gradebook ({src_shown})")
    src_db = make_url(source_url)
    if src_db.get_backend_name() == "sqlite" and src_db.database and not Path(src_db.database).exists():
        raise CourseError(f"no gradebook to migrate at {src_shown} (no file {src_db.database})")
    check_gradebook(source_url)
    check_gradebook(target_url)
    src, dst = _engine(source_url), _engine(target_url)
    try:
        extra = _check_source_schema(src, src_shown)
        before = table_states(src)
        existing = sorted(inspect(dst).get_table_names())
        if existing and not replace:
            raise CourseError(f"the target {dst_shown} is not empty ({len(existing)} tables: "
                              f"{', '.join(existing[:6])}{' ...' if len(existing) > 6 else ''}); "
                              f"give an empty database, or --replace to overwrite its gradebook")
        print(f"migrating {src_shown} -> {dst_shown}", file=out, flush=True)
        if extra:
            print(f"  not nbgrader's, not copied: {', '.join(extra)}", file=out)
        meta = nbgrader_metadata()
        with src.connect() as scon, dst.begin() as dcon:
            if existing:
                _drop_nbgrader_tables(dcon)
            meta.create_all(bind=dcon)
            dcon.execute(text(f"CREATE TABLE {ALEMBIC_TABLE} (version_num VARCHAR(32) NOT NULL)"))
            for (version,) in _alembic_rows(scon):
                dcon.execute(text(f"INSERT INTO {ALEMBIC_TABLE} (version_num) VALUES (:v)"), {"v": version})
            for table in meta.sorted_tables:
                batch = []
                for row in scon.execute(table.select()):
                    batch.append(dict(row._mapping))
                    if len(batch) >= CHUNK:
                        dcon.execute(table.insert(), batch)
                        batch = []
                if batch:
                    dcon.execute(table.insert(), batch)
        after = table_states(dst)
    except CourseError:
        raise
    except Exception as exc:
        from .nbapi import error_line

        raise CourseError(f"migration to {dst_shown} failed, nothing was written there: "
                          f"{error_line(exc, make_url(target_url).password)}") from None
    finally:
        src.dispose()
        dst.dispose()
    bad = [name for name in before if after.get(name) != before[name]]
    width = max(len(n) for n in before)
    for name, st in before.items():
        got = after.get(name)
        mark = "ok" if got == st else f"MISMATCH (target: {got.rows if got else 0} rows)"
        print(f"  {name:<{width}}  {st.rows:>7} rows  sha256 {st.digest[:16]}  {mark}", file=out)
    if bad:
        raise CourseError(f"the copy in {dst_shown} differs from the source in tables: {', '.join(bad)}")
    print(f"done: {len(before)} tables, {sum(s.rows for s in before.values())} rows copied and verified.\n"
          f"Use it with: cnn-course --db-url '{dst_shown}' ... (with the real password), or "
          f"CNN_COURSE_DB_URL", file=out)
    return after


def counts(url: str) -> dict[str, int] | None:
    """Students, assignments and submissions in a gradebook (None when it has no nbgrader tables yet)."""
    from sqlalchemy import func, inspect, select

    engine = _engine(url)
    try:
        present = set(inspect(engine).get_table_names())
        meta = nbgrader_metadata()
        names = {"students": "student", "assignments": "assignment", "submissions": "submitted_assignment"}
        if not set(names.values()) <= present:
            return None
        with engine.connect() as con:
            return {k: con.execute(select(func.count()).select_from(meta.tables[t])).scalar_one()
                    for k, t in names.items()}
    finally:
        engine.dispose()


def student_ids(url: str) -> list[str]:
    """The ids of the students in a gradebook ([] when it has no nbgrader tables yet)."""
    from sqlalchemy import inspect, select

    engine = _engine(url)
    try:
        if "student" not in inspect(engine).get_table_names():
            return []
        table = nbgrader_metadata().tables["student"]
        with engine.connect() as con:
            return [r[0] for r in con.execute(select(table.c.id))]
    finally:
        engine.dispose()


def check(url: str, stream=None) -> dict[str, int] | None:
    """``cnn-course gradebook check``: connect, print the masked URL and what the gradebook holds."""
    from sqlalchemy.engine import make_url

    out = stream or sys.stdout
    url = normalize_db_url(url)
    shown = check_gradebook(url)
    print(f"gradebook: {shown}", file=out)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        print("empty: no gradebook file yet (the first release or autograde creates it)", file=out)
        return None
    try:
        found = counts(url)
    except Exception as exc:
        from .nbapi import error_line

        raise CourseError(f"cannot read the gradebook {shown}: {error_line(exc, make_url(url).password)}") from None
    if found is None:
        print("empty: no nbgrader tables yet (the first release or autograde creates them)", file=out)
    else:
        print(f"students: {found['students']}  assignments: {found['assignments']}  "
              f"submissions: {found['submissions']}", file=out)
    return found
