"""The scratch folder of a box: a tmpfs limited in size and in inodes, mounted by root.

The mount point lies in the box's root-owned 0700 folder; the tmpfs root is the slot user's
(``mode=0700,uid=U,gid=G``). Root never writes into it: the submission's files are copied in by
a first sandboxed ``cp`` running as the user. Without root, the scratch folder is an ordinary
folder of the user (no size or inode limit; the probe says so).
"""
from __future__ import annotations

import ctypes
import os
import subprocess

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8


def mount_tmpfs(path: str, size: int, inodes: int, uid: int, gid: int) -> None:
    from .policy import SandboxError

    opts = f"size={int(size)},nr_inodes={int(inodes)},mode=0700,uid={uid},gid={gid},nosuid,nodev"
    res = subprocess.run(["/usr/bin/mount", "-t", "tmpfs", "-o", opts, "cnn-scratch", path],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SandboxError(f"cannot mount the scratch tmpfs on {path}: {res.stderr.strip()}")


def unmount(path: str) -> bool:
    """Detach the tmpfs on ``path`` without following a symlink; True when nothing is mounted there any more."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    if libc.umount2(os.fsencode(path), MNT_DETACH | UMOUNT_NOFOLLOW) == 0:
        return True
    return not is_mounted(path)


def is_mounted(path: str) -> bool:
    import psutil

    path = os.path.abspath(path)
    return any(p.mountpoint == path for p in psutil.disk_partitions(all=True))
