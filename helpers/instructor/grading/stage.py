"""A submission is data: only regular files and folders, copied by root without following a link.

``stage(src, dest)`` walks a submission folder through directory file descriptors
(``os.scandir`` on an fd, ``O_NOFOLLOW | O_DIRECTORY`` for folders, ``O_NOFOLLOW`` for files, each
file checked with ``fstat`` after it is opened), and copies it into a fresh root-owned folder
(folders 0755, files 0644: the sandbox user copies them into its scratch folder; the staging
folders above them are 0700, root's alone). It rejects, naming the path and the reason:

- a symbolic link anywhere (the notebook itself included);
- a regular file with more than one hard link (it may be the same file as one of the instructor's);
- a device, socket or FIFO;
- a file a browser would run (``.html``, ``.svg``, ``.js``, ...: formgrader would serve it to the
  instructor's logged-in browser);
- more than ``LIMITS.max_files`` entries, ``LIMITS.max_bytes`` bytes in all, or folders nested
  deeper than ``LIMITS.max_depth``.

It returns the SHA-256 of the copied content (paths, sizes and bytes), so that a resubmission
can be told from a submission already graded. nbgrader then grades the staged copy only.
"""
from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from ..options import GradingOptions


_DEFAULT = GradingOptions()
MiB = 2 ** 20


@dataclass
class Limits:
    """What one submission folder may hold; the defaults are :class:`GradingOptions`' defaults."""
    max_bytes: int = _DEFAULT.submission_mib * MiB            # all files of one submission together
    max_files: int = _DEFAULT.submission_files                # files and folders of one submission
    max_depth: int = _DEFAULT.folder_depth                    # folders inside folders
    max_notebook_bytes: int = _DEFAULT.notebook_mib * MiB     # the graded notebook (checked before it is read)
    max_cells: int = _DEFAULT.max_cells                       # cells of the graded notebook

    @classmethod
    def from_options(cls, options: GradingOptions) -> "Limits":
        return cls(options.submission_mib * MiB, options.submission_files, options.folder_depth,
                   options.notebook_mib * MiB, options.max_cells)


# files a browser runs: formgrader serves a submission's files from the instructor's logged-in origin,
# with the Content-Type that Python's mimetypes gives their name (as Tornado does)
ACTIVE_SUFFIXES = (".html", ".htm", ".xhtml", ".xht", ".shtml", ".svg", ".svgz", ".xml", ".xsl", ".js", ".mjs",
                   ".mht", ".mhtml", ".swf")
ACTIVE_TYPES = ("html", "javascript", "ecmascript", "svg", "shockwave", "text/xml", "application/xml", "xsl")


def is_active(name: str) -> bool:
    """Would a browser run script in a file of this name, served with the type its name maps to?
    HTML, SVG, script, and every XML type (``text/xml``, ``application/xml``, ``*+xml``: Chromium
    renders XML and runs the script of an XHTML element in it), by suffix and by what
    :func:`mimetypes.guess_type` (the one Tornado uses) says, its non-standard types included."""
    if name.lower().endswith(ACTIVE_SUFFIXES):
        return True
    kind, _ = mimetypes.guess_type(name, strict=False)
    kind = (kind or "").lower()
    return kind.endswith("+xml") or any(k in kind for k in ACTIVE_TYPES)


LIMITS = Limits()
STAGED = "staged"                      # under <root>/.cnn-course-state/


class Rejected(Exception):
    """The submission folder holds something that is not a regular file or folder, or is too big."""


_KIND = {stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket"}


def _kind(mode: int) -> str:
    return _KIND.get(stat.S_IFMT(mode), "not a regular file or folder")


def private_dir(path: Path) -> Path:
    """Make ``path`` (and its parents) a real folder, not a link, owned by us, mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise Rejected(f"{path} is not a folder of the grading user (a link?): remove it")
    os.chmod(path, 0o700)
    return path


def _open_folder(src: Path, base: Path | None) -> int:
    """An fd of ``src``; from ``base`` on, no path component may be a link (opened one by one)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    if base is None:
        return os.open(src, flags)
    fd = os.open(base, flags)
    try:
        for part in Path(src).relative_to(base).parts:
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def stage(src: Path, dest: Path, limits: Limits = LIMITS, base: Path | None = None) -> str:
    """Copy the submission folder ``src`` into ``dest`` (replaced); return the content hash.
    With ``base`` (say ``submitted/``), no folder between ``base`` and ``src`` may be a link either."""
    if dest.exists() or dest.is_symlink():
        shutil.rmtree(dest) if dest.is_dir() and not dest.is_symlink() else dest.unlink()
    private_dir(dest.parent)
    try:
        fd = _open_folder(src, base)
    except OSError as exc:
        raise Rejected(f"the submission folder is not a folder, or a folder on its path is a link "
                       f"({exc.strerror})") from None
    counts = {"files": 0, "bytes": 0}
    manifest: list[tuple[str, int, str]] = []
    problems: list[str] = []
    try:
        os.mkdir(dest, 0o755)
        _copy_dir(fd, dest, "", 0, limits, counts, manifest, problems)
    except Rejected as exc:
        problems.append(str(exc))
    finally:
        os.close(fd)
    if problems:
        shutil.rmtree(dest, ignore_errors=True)
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise Rejected("; ".join(problems[:4]) + more)
    h = hashlib.sha256()
    for rel, size, digest in sorted(manifest):
        h.update(f"{rel}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _copy_dir(dfd: int, dest: Path, rel: str, depth: int, limits: Limits, counts: dict, manifest: list,
              problems: list) -> None:
    if depth > limits.max_depth:
        raise Rejected(f"{rel}: folders nested deeper than {limits.max_depth}")
    with os.scandir(dfd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = f"{rel}{entry.name}"
        counts["files"] += 1
        if counts["files"] > limits.max_files:
            raise Rejected(f"more than {limits.max_files} files and folders")
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            try:
                os.mkdir(dest / entry.name, 0o755)
                _copy_dir(sub, dest / entry.name, path + "/", depth + 1, limits, counts, manifest, problems)
            finally:
                os.close(sub)
        elif not stat.S_ISREG(st.st_mode):
            problems.append(f"{path} is {_kind(st.st_mode)}")
        elif st.st_nlink > 1:
            problems.append(f"{path} is a hard link ({st.st_nlink} names for one file)")
        elif is_active(entry.name):
            problems.append(f"{path} is a file a browser would run ({os.path.splitext(entry.name)[1]}): hand in "
                            f"data, not web pages")
        else:
            manifest.append(_copy_file(dfd, entry.name, dest / entry.name, path, st, limits, counts))


def _copy_file(dfd: int, name: str, dest: Path, path: str, st, limits: Limits, counts: dict):
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dfd)
    try:
        now = os.fstat(fd)
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev) or not stat.S_ISREG(now.st_mode) or now.st_nlink > 1:
            raise Rejected(f"{path} changed while it was read")
        h, size = hashlib.sha256(), 0
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            while chunk := os.read(fd, 1 << 20):
                size += len(chunk)
                counts["bytes"] += len(chunk)
                if counts["bytes"] > limits.max_bytes:
                    raise Rejected(f"more than {limits.max_bytes // 2 ** 20} MiB in all")
                h.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
        finally:
            os.close(out)
    finally:
        os.close(fd)
    return path, size, h.hexdigest()
