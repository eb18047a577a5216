"""``cnn-course autograde``: grade a class, in parallel, in the sandbox, with grades students cannot forge.

The steps, each in its own module of :mod:`helpers.instructor.grading`:

1. :mod:`~.grading.discover` finds the submissions, rejects unsafe student ids and folders that
   hold anything but regular files, stages a root-owned copy of each submission, and decides what
   needs grading (new, resubmitted or interrupted; unchanged ones are skipped);
2. the sandbox is probed and the first line of output says what is enforced
   (:func:`helpers.instructor.sandbox.probe`);
3. :mod:`~.grading.pool` runs N workers (:mod:`~.grading.worker`); each grades with nbgrader's
   ``Autograde`` and this tool's pipeline (:mod:`~.grading.pipeline`);
4. the scores are read from the gradebook into the outcomes, and a summary table is printed.

With ``scheduler`` (``--scheduler tls://HOST:PORT``), step 3 runs on a Dask cluster instead
(:mod:`helpers.instructor.cluster`): each submission is a task that carries its staged bytes, the
workers grade in private course directories and return data, and this machine writes
``autograded/`` and the central gradebook, which must then be PostgreSQL.

A corrupt or hostile submission is reported by name while the rest of the class is graded; a
crash leaves the gradebook as it was (nbgrader replaces a submission's grades, never adds).
Every setting and its default: :class:`helpers.instructor.options.GradingOptions`.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from .course import ASSIGNMENTS, get
from .grading.discover import discover, shown
from .grading.outcome import Outcome, Task
from .grading.pool import Progress, run
from .grading.stage import Limits
from .grading.state import STATE_DIR
from .grading.worker import WorkerSpec
from .nbapi import CourseError, gradebook, load_config, make_api
from .options import GradingOptions

__all__ = ["Outcome", "Task", "autograde", "discover", "summary_table", "outcomes_json", "STATE_DIR",
           "grading_options"]


def grading_options(config, **overrides) -> GradingOptions:
    """The course's GradingOptions (``c.GradingOptions`` in nbgrader_config.py), with ``overrides``."""
    return GradingOptions(config=config).override(**overrides)


def autograde(root: Path | str, assignments: list[str] | None = None, *, student: str | None = None,
              force: bool = False, db_url: str | None = None, config_file: str | None = None, stream=None,
              options: dict | None = None, scheduler: str | None = None, tls=None, insecure: bool = False,
              **settings) -> list[Outcome]:
    """Grade every submission (or one student's) of the given assignments.

    ``options`` and ``settings`` are :class:`GradingOptions` values (``jobs``, ``cell_timeout``,
    ``budget``, ``sandbox``, ``out_of_kernel``, ...); ``None`` keeps the course's setting.
    ``scheduler`` (with ``tls``, a :class:`~.cluster.security.TLSFiles`, and ``insecure``) grades on
    a Dask cluster; ``jobs`` is then the cluster's business.
    """
    root = Path(root).resolve()
    ids = [a.id for a in ASSIGNMENTS] if not assignments else list(assignments)
    for a in ids:
        get(a)
    config = load_config(root, db_url, config_file)   # fails early on an unreadable config
    opts = grading_options(config, **{**(options or {}), **settings})
    client = _connect(config, scheduler, tls, insecure) if scheduler else None
    try:
        bundle = None
        if client is not None:
            from .cluster.host import announce

            bundle = announce(client, config, config_file, ids)
        return _grade(root, ids, student, force, db_url, config_file, stream, config, opts, client, bundle)
    finally:
        if client is not None:
            client.close(timeout=10)


def _connect(config, scheduler: str, tls, insecure: bool):
    """The Dask client of a distributed run, after refusing a SQLite central gradebook."""
    from sqlalchemy.engine import make_url

    from .cluster.host import connect

    if make_url(config.CourseDirectory.db_url).get_backend_name() != "postgresql":
        raise CourseError("--scheduler needs a PostgreSQL gradebook (--db-url postgresql+psycopg://USER@HOST/DB): "
                          "the central gradebook of a distributed run is written by this machine into PostgreSQL, "
                          "not SQLite")
    return connect(scheduler, tls, insecure)


def _grade(root, ids, student, force, db_url, config_file, stream, config, opts, client, bundle) -> list[Outcome]:
    tasks, outcomes = discover(root, ids, student, force, Limits.from_options(opts))
    _neutralize_tampering(config, tasks, root)
    progress = Progress(len(tasks) + len(outcomes), stream)
    jobs = max(1, min(opts.jobs or os.cpu_count() or 1, len(tasks) or 1))
    if tasks:
        if client is not None:
            from .cluster.host import workers_line

            print(workers_line(client, opts), file=progress.stream, flush=True)
        else:
            print(check_sandbox(opts, jobs), file=progress.stream, flush=True)
    for o in outcomes:
        progress.line(o)
    _ensure_students(config, {t.student for t in tasks} | {o.student for o in outcomes if o.status != "rejected"})
    if tasks:
        _ensure_released(config, {t.assignment for t in tasks})
        if client is not None:
            from .cluster import host

            outcomes += host.run(client, bundle, tasks, root, config, opts.as_dict(), progress)
        else:
            spec = WorkerSpec(str(root), db_url, config_file, opts.as_dict())
            outcomes += run(spec, tasks, jobs, progress)
    _fill_scores(config, outcomes)
    return outcomes


def check_sandbox(opts: GradingOptions, jobs: int) -> str:
    """Create the sandbox users, run one probe, and say in one line what is and is not enforced."""
    from .sandbox import Policy, SandboxError, ensure_users, probe

    if not opts.sandbox:
        return ("sandbox: OFF (--no-sandbox): student code runs as the grading user, with its file access, "
                "the network and no limits")
    try:
        ensure_users(jobs)
        return probe(Policy.from_options(opts, 0)).summary()
    except SandboxError as exc:
        raise CourseError(f"the grading sandbox does not work here: {exc}. Fix it, or grade trusted "
                          f"submissions without it (--no-sandbox)") from None


def _ensure_students(config, students: set) -> None:
    """Every student row up front, in one process: two workers grading the same student's
    assignments at once would otherwise both try to create that student, and one would fail.
    Students whose notebook is missing or corrupt are in the gradebook too, with nothing earned."""
    with gradebook(config) as gb:
        known = {s.id for s in gb.students}
        for s in sorted(students - known):   # one query for the class, then one insert per new student
            gb.add_student(s)


def _ensure_released(config, assignment_ids: set) -> None:
    """nbgrader grades against the gradebook's copy of the source: make sure each assignment is there."""
    with gradebook(config) as gb:
        known = {a.name for a in gb.assignments}
    missing = sorted(assignment_ids - known)
    if missing:
        api = make_api(config)
        for a in missing:
            res = api.generate_assignment(a, force=True, create=True)
            if not res.get("success"):
                raise CourseError(f"could not generate {a} from the source notebooks: {res.get('error', '')[-300:]}")


def _neutralize_tampering(config, tasks: list[Task], root: Path) -> None:
    """Extra and duplicate graded cells of each staged notebook become plain cells (see
    :mod:`helpers.instructor.grading.tamper`); each change goes into the task's notes."""
    import nbformat

    from .grading.discover import staging_root
    from .grading.tamper import neutralize, source_cells

    known: dict = {}
    for t in tasks:
        notebook = get(t.assignment).notebook
        if t.assignment not in known:
            known[t.assignment] = source_cells(config, t.assignment, notebook)
        path = staging_root(root) / t.student / t.assignment / f"{notebook}.ipynb"
        nb = nbformat.read(str(path), as_version=4)
        changes = neutralize(nb, known[t.assignment])
        if changes:
            nbformat.write(nb, str(path))
            t.notes += changes


def _fill_scores(config, outcomes: list[Outcome]) -> None:
    with gradebook(config) as gb:
        for o in outcomes:
            if o.status == "rejected" or o.score is not None:   # a cluster run's writers read theirs already
                continue
            try:
                sub = gb.find_submission(o.assignment, o.student)
            except Exception:
                continue
            o.score, o.max_score = float(sub.score), float(sub.max_score)


def summary_table(outcomes: list[Outcome]) -> str:
    """A plain-text table: one row per submission, then counts."""
    rows = [("assignment", "student", "status", "score", "seconds", "note")]
    for o in sorted(outcomes, key=lambda o: (o.assignment, o.student)):
        score = "" if o.score is None else f"{o.score:g}/{o.max_score:g}"
        rows.append((shown(o.assignment), shown(o.student), o.status, score, f"{o.seconds:.1f}", shown(o.reason)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + ("  " + r[5] if r[5] else "") for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    statuses = ("graded", "skipped", "failed", "corrupt", "missing", "rejected")
    lines.append(", ".join(f"{sum(o.status == s for o in outcomes)} {s}" for s in statuses))
    return "\n".join(lines)


def outcomes_json(outcomes: list[Outcome]) -> str:
    return json.dumps([asdict(o) for o in outcomes], indent=1)
