"""The task a Dask worker runs: grade one submission in a private course directory, return data.

A worker process keeps, per course bundle (by digest), one private course directory in its Dask
local directory: the bundle unpacked (``nbgrader_config.py``, the source notebooks), a **local
SQLite gradebook** that it fills itself (``generate_assignment`` of each assignment, the first time
one is graded), and one :class:`~..grading.worker.Worker` (one ``NbGraderAPI``). For each task it
unpacks the submission's bytes, stages them again (the host's checks, once more), grades with the
unchanged ``Worker.grade`` in the sandbox of the slot this process holds (:mod:`.preload`), and
returns only data: the :class:`~..grading.outcome.Outcome` as a dict and the autograded
notebook's bytes. It holds no credentials of the central gradebook and writes nothing anywhere but
its own local directory. One submission at a time per process (a lock), whatever ``--nthreads``.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from .bundle import BUNDLES, unpack

# what the preload found when this worker process started (see .preload)
WORKER: dict = {"prepared": False, "sandbox": False, "slot": 0, "probe": "", "pid": None}
_COURSES: dict[str, "LocalCourse"] = {}
_LOCK = threading.Lock()
BUNDLE_LIMIT = 512 * 2 ** 20


class LocalCourse:
    """A course directory of this worker process, built from one bundle."""

    def __init__(self, digest: str, data: bytes, base: Path):
        from ..nbapi import load_config, sqlite_url

        self.root = base / f"course-{digest[:16]}"
        shutil.rmtree(self.root, ignore_errors=True)
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(base, 0o700)   # the bundle holds the hidden tests and the solutions
        unpack(data, self.root, max_bytes=BUNDLE_LIMIT, max_files=100_000)
        self.db_url = sqlite_url(self.root / "gradebook.db")
        self.config = load_config(self.root, self.db_url)
        self.released: set[str] = set()
        self.workers: dict = {}

    def worker(self, options: dict):
        from ..grading.worker import Worker, WorkerSpec

        key = tuple(sorted(options.items()))
        if key not in self.workers:
            self.workers.clear()
            self.workers[key] = Worker(WorkerSpec(str(self.root), self.db_url, None, dict(options)), WORKER["slot"])
        return self.workers[key]

    def release(self, assignment: str) -> None:
        if assignment not in self.released:
            from ..autograde import _ensure_released

            _ensure_released(self.config, {assignment})
            self.released.add(assignment)


def _base() -> Path:
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory) / "cnn-course"
    except ValueError:   # not in a Dask worker (tests of this module)
        import tempfile

        return Path(tempfile.gettempdir()) / f"cnn-course-worker-{os.getpid()}"


def course_for(digest: str, base: Path | None = None) -> LocalCourse:
    if digest not in _COURSES:
        data = BUNDLES.get(digest)
        if data is None:
            raise RuntimeError(f"this worker has no course bundle {digest[:16]} (the host registers it as a "
                               f"worker plugin before it submits)")
        _COURSES.clear()
        _COURSES[digest] = LocalCourse(digest, data, base or _base())
    return _COURSES[digest]


def warm_up(digest: str, assignments, base: Path | None = None) -> None:
    """As soon as a bundle arrives (a thread of :class:`.bundle.BundlePlugin`): build this process's
    course from it and release ``assignments`` into its local gradebook, holding the grading lock,
    so that the first task finds them ready. Whatever fails here is left for the task to meet
    again, and report."""
    with _LOCK:
        if not WORKER["prepared"]:
            return
        try:
            course = course_for(digest, base)
            for a in assignments:
                course.release(a)
        except Exception as exc:   # the task that needs it fails with the real error, by name
            import logging

            logging.getLogger("cnn_course.worker").warning("warm-up of course %s: %s", digest[:16], exc)


def _failed(job: dict, reason: str, t0: float) -> dict:
    from ..grading.outcome import Outcome

    o = Outcome(job["assignment"], job["student"], "failed", reason, time.monotonic() - t0)
    return {"outcome": asdict(o), "notebook": None, "worker": _who()}


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def grade_remote(digest: str, job: dict) -> dict:
    """Grade one submission (``job``: assignment, student, files, digest, timestamp, notes, options)."""
    with _LOCK:
        return _grade(digest, job)


def _grade(digest: str, job: dict) -> dict:
    from ..course import get
    from ..grading.discover import check_id, staging_root
    from ..grading.outcome import Task
    from ..grading.stage import stage

    t0 = time.monotonic()
    if not WORKER["prepared"]:
        return _failed(job, "this Dask worker was not started by `cnn-course worker` (or with --preload "
                            "helpers.instructor.cluster.preload): no sandbox slot", t0)
    options = dict(job["options"])
    if options.get("sandbox", True) and not WORKER["sandbox"]:
        return _failed(job, f"worker {_who()} runs without a sandbox (cnn-course worker --no-sandbox); "
                            f"grade with --no-sandbox only trusted code", t0)
    a_id, student = job["assignment"], job["student"]
    for name, what in ((a_id, "assignment"), (student, "student id")):
        if check_id(name, what):
            return _failed(job, check_id(name, what), t0)
    a = get(a_id)
    course = course_for(digest)
    course.release(a_id)
    worker = course.worker(options)
    staged = staging_root(course.root) / student / a_id
    incoming = course.root / ".incoming" / uuid.uuid4().hex
    incoming.parent.mkdir(mode=0o700, exist_ok=True)
    try:
        unpack(job["files"], incoming)
        stage(incoming, staged)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    task = Task(a_id, student, force=True, notes=list(job.get("notes") or []), digest=job.get("digest", ""),
                timestamp=job.get("timestamp"))
    graded_dir = course.root / "autograded" / student / a_id
    shutil.rmtree(graded_dir, ignore_errors=True)
    try:
        outcome = worker.grade(task)
        nb_path = graded_dir / f"{a.notebook}.ipynb"
        data = nb_path.read_bytes() if outcome.status == "graded" and nb_path.is_file() else None
    finally:
        shutil.rmtree(graded_dir, ignore_errors=True)
        shutil.rmtree(staged, ignore_errors=True)
    return {"outcome": asdict(outcome), "notebook": data, "worker": _who()}


def report() -> dict:
    """What this worker process is (``client.run(report)``): prepared, sandbox, slot, probe line."""
    return dict(WORKER, host=socket.gethostname())
