"""The bytes a task carries: the course bundle, and one staged submission.

**The course bundle** is what a worker needs of the course to grade it: ``nbgrader_config.py`` and
the source folder (``notebooks/``: every assignment's source notebook and the files beside it),
without what ``CourseDirectory.ignore`` names. It is a gzipped tar made deterministic (sorted
names, no times, owners or modes of the host), so that its SHA-256 names the course's content: the
same course gives the same digest on every run. The host registers it once as a worker plugin
(:class:`BundlePlugin`): the scheduler hands it to every worker when the plugin is registered and
to every worker that joins later (a worker restarted after a crash too), and each worker process
keeps it in memory under its digest. A task names only the digest.

**A submission** travels as the same kind of tar of its staged copy (root-made, checked and
tamper-neutralized by the host). :func:`unpack` accepts regular files and folders only, with
relative names inside the destination, within the submission size limits, through tarfile's
``data`` filter; the worker then stages the result again with :func:`..grading.stage.stage`.
"""
from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from distributed import WorkerPlugin

from ..grading.stage import LIMITS

BUNDLES: dict[str, bytes] = {}   # digest -> bundle bytes, in each worker process (filled by BundlePlugin)
CONFIG_NAME = "nbgrader_config.py"


@dataclass(frozen=True)
class Bundle:
    digest: str
    data: bytes
    source_directory: str


def _ignored(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def _add(tar: tarfile.TarFile, arcname: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(arcname)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def _files(folder: Path, ignore=()) -> list[tuple[str, Path | None]]:
    """(relative name, path or None for a folder) of every regular file and folder, sorted; links skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d, ignore)
                             and not os.path.islink(os.path.join(dirpath, d)))
        rel = os.path.relpath(dirpath, folder)
        if rel != ".":
            out.append((rel, None))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if _ignored(f, ignore) or not stat.S_ISREG(os.lstat(p).st_mode):
                continue
            out.append((f if rel == "." else f"{rel}/{f}", p))
    return sorted(out, key=lambda e: e[0])


def pack(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A deterministic .tar.gz of ``(name, bytes or None for a folder)``."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in entries:
                _add(tar, name, data)
    return buf.getvalue()


def pack_folder(folder: Path, prefix: str = "", ignore=()) -> list[tuple[str, bytes | None]]:
    pre = f"{prefix}/" if prefix else ""
    return [(pre + rel, None if p is None else p.read_bytes()) for rel, p in _files(Path(folder), ignore)]


def build_bundle(config, config_file: str | None = None) -> Bundle:
    """The course bundle of ``config`` (a loaded course config): its config file and source folder."""
    from ..course import ROOT

    cd = config.CourseDirectory
    root = Path(cd.root)
    source_dir = cd.get("source_directory", "source")
    cfg = Path(config_file) if config_file else root / CONFIG_NAME
    if not cfg.exists():
        cfg = ROOT / CONFIG_NAME     # load_config's fallback too
    ignore = list(cd.get("ignore", [".ipynb_checkpoints", "*.pyc", "__pycache__", ".*"]))
    source = (root / source_dir).resolve()
    entries = [(CONFIG_NAME, cfg.read_bytes()), (source_dir, None)] + pack_folder(source, source_dir, ignore)
    data = pack(entries)
    return Bundle(hashlib.sha256(data).hexdigest(), data, source_dir)


def pack_submission(staged: Path) -> bytes:
    """The staged copy of one submission as bytes (every file: the host checked them when staging)."""
    return pack(pack_folder(staged))


class UnsafeArchive(ValueError):
    """The archive holds something other than regular files and folders under relative names."""


def unpack(data: bytes, dest: Path, max_bytes: int = LIMITS.max_bytes, max_files: int = LIMITS.max_files) -> Path:
    """Extract a tar made by :func:`pack` into the new folder ``dest`` (regular files and folders only)."""
    dest = Path(dest)
    dest.mkdir(mode=0o700)
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        if len(members) > max_files + 2:
            raise UnsafeArchive(f"more than {max_files} entries")
        for m in members:
            parts = Path(m.name).parts
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in parts or not parts:
                raise UnsafeArchive(f"entry {m.name[:80]!r} is not a regular file or folder under a relative name")
            total += m.size
            if total > max_bytes:
                raise UnsafeArchive(f"more than {max_bytes // 2 ** 20} MiB")
        tar.extractall(dest, members=members, filter="data")
    return dest


class BundlePlugin(WorkerPlugin):
    """Hands the course bundle to a worker process: kept in memory under its digest (checked), and
    the worker starts building its course from it at once (:func:`.remote.warm_up`, in a thread),
    releasing the run's ``assignments``, while the host is still staging the class."""

    def __init__(self, digest: str, data: bytes, assignments=()):
        self.digest, self.data, self.assignments = digest, data, tuple(assignments)
        self.name = plugin_name(digest)

    def setup(self, worker=None):
        import threading

        from .remote import warm_up

        if hashlib.sha256(self.data).hexdigest() != self.digest:
            raise ValueError("the course bundle does not match its digest")
        BUNDLES[self.digest] = self.data
        base = Path(worker.local_directory) / "cnn-course" if worker is not None else None
        threading.Thread(target=warm_up, args=(self.digest, self.assignments, base), daemon=True,
                         name="cnn-course-warm-up").start()

    def teardown(self, worker=None):   # unregistered: a newer version of the course replaced it
        BUNDLES.pop(self.digest, None)


def plugin_name(digest: str) -> str:
    return f"cnn-course-bundle-{digest[:24]}"
