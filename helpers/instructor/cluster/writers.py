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
(``autograde._ensure_students``), and each submission is one task, written by one writer at a
time. A writer that raises reports that submission ``failed`` by name, with the error on one line
and the password masked, and writes no state record (the next run grades it again).

A writer process that dies (killed, out of memory) breaks the whole ``ProcessPoolExecutor``: every
write it held fails, and the other writers are stopped mid-write. So the pool is started again and
every write of the broken pool is made again, once (a write is idempotent: nbgrader replaces a
submission's grades, ``autograded/`` and the state record are replaced whole); a write lost in a
second broken pool is that submission's failure, by name. A write that has not finished after
:data:`WRITE_DEADLINE` seconds counts as a broken pool too (its processes are killed), so a hung
database connection cannot hang the run; pools that keep breaking with no write finishing in
between stop the run with one line.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import time
import warnings
from pathlib import Path

from ..grading.outcome import Outcome, Task
from ..grading.state import state_file
from ..nbapi import CourseError

WRITE_DEADLINE = 120   # seconds one write may take before its pool counts as stuck

_STATE: dict = {}   # in a writer process: root, config, options


def default_count(setting: int) -> int:
    """``GradingOptions.host_writers``, or (0) the cores, at most 8."""
    return setting if setting > 0 else max(1, min(8, os.cpu_count() or 1))


def reuse_engines() -> None:
    """One SQLAlchemy engine per URL in this process, kept for the process's life.

    nbgrader's ``Gradebook`` calls ``create_engine(db_url, ...)`` in its constructor and
    ``engine.dispose()`` in ``close()``. Here ``nbgrader.api.create_engine`` returns the engine
    this process already made for that URL and those arguments, and that engine's ``dispose`` is a
    no-op, so its pooled connections and compiled statements outlive each ``Gradebook`` (the
    schema is still checked by each one). A pooled connection is tested before use
    (``pool_pre_ping``), so a database restarted during the run costs a reconnection, not a
    failed write. Called in writer processes only, which open nothing else."""
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
            engine = engines[key] = make(url, pool_pre_ping=True, **kwargs)
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
    from sqlalchemy.engine import make_url

    from .receive import accept

    t0 = time.perf_counter()
    config = _STATE["config"]
    try:
        outcome = accept(res, task, Path(_STATE["root"]), config, _STATE["options"])
    except Exception as exc:
        try:
            password = make_url(config.CourseDirectory.db_url).password
        except Exception:
            password = None
        outcome = Outcome(task.assignment, task.student, "failed",
                          f"the host could not write its grades: {error_line(exc, password)}", 0.0)
    if outcome.status == "graded":
        try:
            outcome.score, outcome.max_score = _score(config, task)
        except Exception:   # written and recorded: the run's end reads the score again
            pass
    return outcome, time.perf_counter() - t0


class Writers:
    """A pool of writer processes. :meth:`submit` a finished task's answer; :meth:`finished` gives
    back ``(Outcome, seconds)`` for each write done, every submitted one exactly once."""

    def __init__(self, count: int, root, config, options: dict):
        self.count = count
        self._args = (str(root), config, options)
        self._pool = None
        self._generation = 0
        self._items: dict = {}   # future -> [res, task, generation, tries, submitted at]
        self._breaks = 0         # pools broken since the last write that finished

    @property
    def pending(self) -> int:
        return len(self._items)

    def _start(self):
        self._pool = cf.ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init, initargs=self._args)
        return self._pool

    def _send(self, res, task: Task, tries: int) -> None:
        for _ in range(2):
            pool = self._pool or self._start()
            try:
                future = pool.submit(write_one, res, task)
                break
            except cf.process.BrokenProcessPool:
                self._restart()
        else:
            raise CourseError("the host's writer processes cannot be started; see the messages above")
        self._items[future] = [res, task, self._generation, tries, time.monotonic()]

    def submit(self, res, task: Task) -> None:
        self._send(res, task, 0)

    def _restart(self) -> None:
        """Kill the current pool's processes and forget it; the next write starts a new one."""
        old, self._pool = self._pool, None
        self._generation += 1
        self._breaks += 1
        if old is None:
            return
        for pid in self.pids(old):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        old.shutdown(wait=False, cancel_futures=True)
        if self._breaks > 3:
            raise CourseError("the host's writer processes keep dying (out of memory?): run autograde again; "
                              "it grades again what they did not finish")

    def finished(self, block: float = 0.0) -> list[tuple[Outcome, float]]:
        """The writes done (waiting up to ``block`` seconds for one), each once."""
        if not self._items:
            return []
        done, _ = cf.wait(list(self._items), timeout=block, return_when=cf.FIRST_COMPLETED)
        out, broken = [], False
        for future in done:
            res, task, generation, tries, _ = self._items[future]
            if generation < self._generation:
                continue   # of a pool already given up: made again below
            try:
                out.append(future.result())
            except cf.process.BrokenProcessPool:
                broken = True
                continue
            except Exception as exc:   # write_one catches its own errors; this would be a pickling error
                out.append((Outcome(task.assignment, task.student, "failed",
                                    f"the host could not write its grades: {type(exc).__name__}"), 0.0))
            del self._items[future]
            self._breaks = 0
        now = time.monotonic()
        if any(now - item[4] > WRITE_DEADLINE for item in self._items.values() if item[2] == self._generation):
            broken = True   # a write that hangs (a stuck database connection): as a broken pool
        if broken:
            self._restart()
        for future, (res, task, generation, tries, _) in list(self._items.items()):
            if generation == self._generation:
                continue
            del self._items[future]   # lost with its pool, finished or not
            if tries >= 1:
                # it may have got as far as its state record: remove it, so the next run grades it again
                state_file(Path(self._args[0]), task.assignment, task.student).unlink(missing_ok=True)
                out.append((Outcome(task.assignment, task.student, "failed",
                                    "the host's writer process died (or hung) twice while writing this "
                                    "submission; its state is not recorded, so the next run grades it "
                                    "again"), 0.0))
            else:
                self._send(res, task, tries + 1)
        return out

    def pids(self, pool=None) -> list[int]:
        """The writer processes' ids (for the tests that kill them)."""
        return list(getattr(pool or self._pool, "_processes", None) or {})

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
