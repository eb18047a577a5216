"""The host's writers: processes on the instructor's machine that check and write what workers return.

Checking a returned notebook and writing it with nbgrader's preprocessors costs the host a few
tenths of a second a submission, nearly all of it in SQLAlchemy: nbgrader opens a new
``Gradebook`` for each of ``OverwriteCells``, ``SaveAutoGrades`` and ``AssignLatePenalties``, and
each ``Gradebook`` creates a new engine (a new database connection, the schema checked again and an
empty compiled-statement cache). One process doing that after another would cap a distributed
run at about 10,000 submissions an hour, whatever the cluster's size.

So the host hands each finished task to a pool of writer processes (``spawn``: the host process
runs Dask's threads, which must not be forked), each of which:

- holds one engine per gradebook URL for its life (:func:`reuse_engines`), so a ``Gradebook``
  costs a pooled connection and cached statements instead of a new connection;
- runs :func:`.receive.accept` unchanged (the checks, the gradebook, ``autograded/``, the state
  record) and reads the submission's score back while it is connected.

Writers never share a row: every student row exists before the run starts
(``autograde._ensure_students``), and each submission is one task, written by one writer once.
A writer that raises reports that submission ``failed`` by name, with the error on one line and
the password masked, and writes no state record (the next run grades it again); a writer process
that dies (killed, out of memory) fails the submissions it held the same way, and the pool is
started again for the rest of the class.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
import warnings

from ..grading.outcome import Outcome, Task

_STATE: dict = {}   # in a writer process: root, config, options


def default_count(setting: int) -> int:
    """``GradingOptions.host_writers``, or (0) the cores, at most 8."""
    return setting if setting > 0 else max(1, min(8, os.cpu_count() or 1))


def reuse_engines() -> None:
    """One SQLAlchemy engine per URL in this process, kept for the process's life.

    nbgrader's ``Gradebook`` calls ``create_engine(db_url, ...)`` in its constructor and
    ``engine.dispose()`` in ``close()``. Here ``nbgrader.api.create_engine`` returns the engine
    this process already made for that URL and those arguments, and that engine's ``dispose`` is a
    no-op, so its pooled connections and compiled statements outlive each ``Gradebook``. Called in
    writer processes only, which open nothing else."""
    import nbgrader.api
    import sqlalchemy

    if getattr(nbgrader.api.create_engine, "_cnn_course_shared", False):
        return
    engines: dict = {}
    make = sqlalchemy.create_engine

    def shared_engine(url, **kwargs):
        key = (str(url), tuple(sorted(kwargs.items())))
        engine = engines.get(key)
        if engine is None:
            engine = engines[key] = make(url, **kwargs)
            engine.dispose = lambda *args, **kw: None
        return engine

    shared_engine._cnn_course_shared = True
    nbgrader.api.create_engine = shared_engine


def _init(root: str, config, options: dict) -> None:
    warnings.filterwarnings("ignore", module="nbgrader")   # SQLAlchemy session warnings from nbgrader's api
    reuse_engines()
    _STATE.update(root=root, config=config, options=options)


def _score(config, task: Task) -> tuple[float | None, float | None]:
    from ..nbapi import gradebook

    with gradebook(config) as gb:
        sub = gb.find_submission(task.assignment, task.student)
        return float(sub.score), float(sub.max_score)


def write_one(res, task: Task) -> tuple[Outcome, float]:
    """In a writer process: :func:`.receive.accept`, then the score. (outcome, seconds spent)."""
    from ..nbapi import error_line
    from .receive import accept

    from pathlib import Path
    from sqlalchemy.engine import make_url

    t0 = time.perf_counter()
    config = _STATE["config"]
    try:
        outcome = accept(res, task, Path(_STATE["root"]), config, _STATE["options"])
        if outcome.status == "graded":
            outcome.score, outcome.max_score = _score(config, task)
    except Exception as exc:
        try:
            password = make_url(config.CourseDirectory.db_url).password
        except Exception:
            password = None
        outcome = Outcome(task.assignment, task.student, "failed",
                          f"the host could not write its grades: {error_line(exc, password)}", 0.0)
    return outcome, time.perf_counter() - t0


class Writers:
    """A pool of writer processes; :meth:`submit` gives a concurrent future of ``(Outcome, seconds)``."""

    def __init__(self, count: int, root, config, options: dict):
        self.count = count
        self._args = (str(root), config, options)
        self._pool = None

    def _start(self):
        self._pool = cf.ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init, initargs=self._args)
        return self._pool

    def submit(self, res, task: Task) -> cf.Future:
        pool = self._pool or self._start()
        try:
            return pool.submit(write_one, res, task)
        except cf.process.BrokenProcessPool:   # a writer died: the futures it held have failed; start again
            pool.shutdown(wait=False, cancel_futures=True)
            return self._start().submit(write_one, res, task)

    @staticmethod
    def outcome(future: cf.Future, task: Task) -> tuple[Outcome, float]:
        """A finished write's (outcome, seconds); a writer process that died is that submission's failure."""
        try:
            return future.result()
        except Exception as exc:   # BrokenProcessPool: killed, out of memory
            return Outcome(task.assignment, task.student, "failed",
                           f"the host's writer process died while writing this submission "
                           f"({type(exc).__name__}); its state is not recorded, so the next run grades it "
                           f"again"), 0.0

    def pids(self) -> list[int]:
        """The writer processes' ids (for the tests that kill them)."""
        return list(getattr(self._pool, "_processes", None) or {})

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
