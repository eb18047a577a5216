"""The bubblewrap command line of a box, and what it shows read-only.

As root, ``bwrap`` itself runs as root (it must bind the Python installation and the venv by path,
and CI keeps them under ``/root``, mode 0700: bwrap 0.8 resolves ``--ro-bind-fd`` through
``realpath`` as the calling user, which then fails with EACCES; measured). It creates new PID,
network, IPC, UTS, mount (and cgroup) namespaces, but no user namespace, so that nothing it shows
is writable by the student; then ``setpriv`` drops to the slot's user (no groups, no capabilities,
empty bounding set, ``no_new_privs``) and ``prlimit`` sets the rlimits before ``exec`` of the
command. As an ordinary user bwrap also unshares a user namespace (``--unshare-all``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .policy import FIX_HINT, SandboxError

BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"
PRLIMIT = "/usr/bin/prlimit"
SCRATCH = "/scratch"      # the scratch folder, as seen inside
INPUT = "/cnn-input"      # read-only staged files, while they are copied into the scratch folder
_CHECKED: dict = {}


def bwrap_path() -> str:
    """The bubblewrap binary, checked once to create namespaces here; :class:`SandboxError` otherwise."""
    if "ok" in _CHECKED:
        return _CHECKED["ok"]
    path = BWRAP if os.path.exists(BWRAP) else shutil.which("bwrap")
    if not path:
        raise SandboxError(f"bubblewrap (bwrap) is not installed: {FIX_HINT}")
    for tool in ([SETPRIV, PRLIMIT] if os.geteuid() == 0 else [PRLIMIT]):
        if not os.path.exists(tool):
            raise SandboxError(f"{tool} is missing (Debian package util-linux); {FIX_HINT}")
    res = subprocess.run(base_args(path) + ["--ro-bind", "/usr", "/usr", *system_links(), "--", "/usr/bin/true"],
                         capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise SandboxError(f"bubblewrap cannot create namespaces here ({res.stderr.strip()[:300]}): "
                           f"as an ordinary user it needs unprivileged user namespaces "
                           f"(sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1); {FIX_HINT}")
    _CHECKED["ok"] = path
    return path


def base_args(bwrap: str, isolate_network: bool = True) -> list[str]:
    if os.geteuid() == 0:
        ns = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if isolate_network:
            ns.append("--unshare-net")
    else:
        ns = ["--unshare-all"] + ([] if isolate_network else ["--share-net"])
    return [bwrap, *ns, "--die-with-parent", "--new-session", "--hostname", "sandbox"]


def system_links() -> list[str]:
    """``/bin``, ``/lib``... as on the host: symlinks into /usr (merged /usr) or read-only binds."""
    out = []
    for p in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(p):
            out += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            out += ["--ro-bind", p, p]
    return out


def exposed_paths(extra=()) -> list[str]:
    """Read-only paths besides /usr and /etc: the Python installation, the venv and its
    site-packages, ``helpers/`` and ``data/`` of the course package (never the course root)."""
    import helpers
    from helpers import data

    paths = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)]
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    paths += [os.path.realpath(p) for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)]
    paths += [os.path.dirname(os.path.realpath(helpers.__file__)), os.path.realpath(data.DATA_DIR)]
    paths += [os.path.realpath(p) for p in extra]
    out: list[str] = []
    for p in sorted({p for p in paths if os.path.isdir(p)}, key=len):
        if p in ("/", "/usr", "/etc") or p.startswith(("/usr/", "/etc/")):
            continue
        if not any(p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


def _parents(path: str, made: set) -> list[str]:
    """``--dir`` (mode 0755, whatever the grader's umask) for each missing parent of ``path`` inside."""
    out, cur = [], ""
    for part in path.strip("/").split("/")[:-1]:
        cur += "/" + part
        if cur not in made and cur not in ("/usr", "/etc", "/proc", "/dev", SCRATCH):
            made.add(cur)
            out += ["--perms", "0755", "--dir", cur]
    return out


def command(cmd: list[str], *, uid: int | None, gid: int | None, scratch_host: str, exposed: list[str],
            rlimits: dict, isolate_network: bool = True, data_files=(), ro_binds=(), workdir: str = SCRATCH,
            seccomp_fd: int | None = None) -> list[str]:
    """The argv that runs ``cmd`` in a new sandbox. ``data_files``: (fd, inside path) copied read-only
    (``--ro-bind-data``); ``ro_binds``: (host path, inside path) of root-owned folders; ``seccomp_fd``:
    a compiled seccomp filter (:mod:`.seccomp`) that bwrap loads just before it runs the command."""
    args = base_args(bwrap_path(), isolate_network)
    args += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", *system_links()]
    made: set = set()
    for p in exposed:
        args += _parents(p, made) + ["--ro-bind", p, p]
    args += ["--proc", "/proc", "--dev", "/dev", "--bind", scratch_host, SCRATCH]   # no /tmp: TMPDIR is in scratch
    for src, dest in ro_binds:
        args += _parents(dest, made) + ["--ro-bind", src, dest]
    for fd, dest in data_files:
        args += _parents(dest, made) + ["--perms", "0444", "--ro-bind-data", str(fd), dest]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    args += ["--chdir", workdir, "--"]
    limits = [f"--{k}={v}" for k, v in rlimits.items()]
    args += [PRLIMIT, *limits, "--"]
    if uid is not None:
        args += [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs",
                 "--inh-caps=-all", "--bounding-set=-all", "--"]
    return args + list(cmd)
