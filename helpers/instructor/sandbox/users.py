"""Per-slot sandbox users (``cnngrader<N>``) and the slot locks that keep two grading runs apart.

A grading worker slot ``N`` has its own system user, so that the per-user process limit of one
submission cannot starve the one graded beside it and processes of two boxes can never signal
each other. A slot is locked (``flock`` on ``<tmp>/cnn-course-sandbox-cnngraderN.lock``) by the
worker that uses it: two grading runs on one machine never share a user.
"""
from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from .policy import USER_PREFIX, SandboxError


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_user(name: str, attempts: int = 5) -> tuple[int, int]:
    """The (uid, gid) of the system user ``name``, created with ``useradd --system`` (root only)."""
    for i in range(attempts):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
        if not is_root():
            raise SandboxError(f"no user {name!r}, and only root can create it")
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        if not os.path.exists(useradd):
            raise SandboxError("useradd is missing: install the 'passwd' package, or create the sandbox users")
        res = subprocess.run([useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
                              "--shell", "/usr/sbin/nologin", "--user-group", name], capture_output=True, text=True)
        if res.returncode not in (0, 9):   # 9: the name exists (created concurrently)
            if i == attempts - 1:
                raise SandboxError(f"useradd {name} failed: {res.stderr.strip()}")
            time.sleep(0.2 * (i + 1))      # /etc/passwd is locked by another useradd
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def ensure_users(n: int, prefix: str = USER_PREFIX) -> list[tuple[int, int]]:
    """Create the sandbox users of ``n`` worker slots (root only; a no-op otherwise)."""
    if not is_root():
        return []
    return [ensure_user(f"{prefix}{i}") for i in range(n)]


_HELD: dict[int, list] = {}   # slot -> [fd, count]: the slot locks this process holds


def acquire_slot(preferred: int = 0, max_slots: int = 64) -> tuple[int, int | None]:
    """Lock a sandbox slot for this process: ``(slot, token)``; release with :func:`release_slot`.

    A process that already holds ``preferred`` gets it again (counted). A slot newly locked is first
    cleared of what a killed worker's boxes left (:func:`remove_stale_boxes`). Without root there
    are no per-slot users: ``(preferred, None)``."""
    if not is_root():
        return preferred, None
    if preferred in _HELD:
        _HELD[preferred][1] += 1
        return preferred, preferred
    for i in [preferred] + [j for j in range(max_slots) if j != preferred]:
        if i in _HELD:
            continue
        fd = os.open(os.path.join(tempfile.gettempdir(), f"cnn-course-sandbox-{USER_PREFIX}{i}.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _HELD[i] = [fd, 1]
        remove_stale_boxes(i)   # nobody else can hold this slot now: what is left of it is stale
        return i, i
    raise SandboxError(f"all {max_slots} sandbox slots are in use by other grading runs")


def holders(slot: int) -> int:
    """How many boxes of this process hold ``slot`` (a worker's boxes reuse its slot)."""
    return _HELD.get(slot, [None, 0])[1]


def release_slot(token: int | None) -> None:
    held = _HELD.get(token) if token is not None else None
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[token]
        try:
            os.close(held[0])
        except OSError:
            pass


def kill_user_processes(uid: int, rounds: int = 50) -> int:
    """SIGKILL every process whose real uid is ``uid`` (psutil); the slot must be locked by the caller."""
    import psutil

    killed = 0
    for _ in range(rounds):
        procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]
        if not procs:
            break
        for p in procs:
            try:
                p.kill()
                killed += 1
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=0.5)
    return killed


def remove_stale_boxes(slot: int) -> None:
    """What boxes of ``slot`` left behind when their grading worker was killed: processes of the
    slot's user, scratch mounts, cgroups, root-owned folders (call with the slot locked)."""
    import glob

    from . import cgroups, scratch

    if is_root():
        try:
            kill_user_processes(pwd.getpwnam(f"{USER_PREFIX}{slot}").pw_uid)
        except KeyError:
            pass
        cgroups.remove_stale(f"s{slot}-cnnsb-{slot}-")
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"cnnsb-{slot}-*")):
        st = os.lstat(path)
        if st.st_uid != os.geteuid() or not os.path.isdir(path) or os.path.islink(path):
            continue
        mnt = os.path.join(path, "scratch")
        if scratch.is_mounted(mnt) and not scratch.unmount(mnt):
            continue
        shutil.rmtree(path, ignore_errors=True)
