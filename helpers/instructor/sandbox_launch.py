"""Start one command inside the grading sandbox: ``python -I -m helpers.instructor.sandbox_launch SPEC -- CMD ...``.

This is the first process of every sandboxed kernel and of every out-of-kernel check. It is
started by the grader (``helpers.instructor.sandbox`` builds ``SPEC``, a base64 JSON document),
applies every measure it can, in this order, and then ``execve``s ``CMD``:

1. ``PR_SET_PDEATHSIG``: the sandbox dies with the grading worker that started it.
2. Namespaces (``unshare``): a new network namespace (only an unconfigured loopback, so no
   network at all; the kernel talks to the grader over ``ipc`` sockets, which are files), a new
   mount, IPC and UTS namespace. As root that is all; as an ordinary user a user namespace comes
   first (when the kernel allows unprivileged user namespaces), mapping the user to itself.
3. A new root file system: an empty, read-only tmpfs that holds read-only bind mounts of what
   a kernel needs (``/usr``, ``/etc``, the Python installation, the virtual environment, the
   ``helpers`` package and ``data/``), a minimal ``/dev``, a ``/proc`` that shows only the
   sandbox's own processes (root mode), and two writable folders: the submission's scratch
   folder (its home and working directory) and the run folder (connection file and ``ipc``
   sockets). Everything else (the course directory, the source notebooks, the gradebook,
   ``submitted/``, ``autograded/``, other students' scratch folders, ``/root``, ``/home``,
   ``/tmp``) does not exist inside. Then ``chroot``.
4. Resource limits (``setrlimit``): address space, CPU seconds, processes (counted per user:
   that is why each grading worker has its own sandbox user), file size, open files, no core
   files; and a lower scheduling priority.
5. As root: drop to the unprivileged sandbox user (no supplementary groups), then
   ``PR_SET_NO_NEW_PRIVS`` (set-user-ID programs gain nothing) and the parent-death signal again
   (a change of user clears it).
6. stdout and stderr go to a log file in the run folder (capped by the file size limit), the
   environment is replaced by a short, explicit one, every other file descriptor is closed, and
   ``SIGCHLD`` is ignored, so that children that die are reaped at once (a fork bomb's killed
   processes must not linger as zombies, which count against the process limit).

What was applied and what was not is passed to the command in ``CNN_SANDBOX_APPLIED`` and
``CNN_SANDBOX_MISSING``; with ``"strict": true`` in ``SPEC`` a measure that cannot be applied is
an error (exit status 121) instead. This module imports only the standard library: it runs as
root, before any student code, and must not import anything a student could have placed on
``sys.path`` (``-I``).
"""
from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

EXIT_SETUP_FAILED = 121

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class SetupError(Exception):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(e)} (errno {errno.errorcode.get(e, e)})")


def unshare(flags: int) -> None:
    if hasattr(os, "unshare"):  # Python 3.12+
        try:
            os.unshare(flags)
        except OSError as exc:
            raise SetupError(f"unshare({flags:#x}): {exc.strerror}") from None
        return
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: None if s is None else s.encode())
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {source} on {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the new root
def _mkdirs(root: str, path: str) -> str:
    """Create ``path`` (absolute, as seen inside) under ``root``; return the outside path."""
    target = root
    for part in [p for p in path.split("/") if p]:
        target = os.path.join(target, part)
        if not os.path.lexists(target):
            os.mkdir(target, 0o755)
    return target


def _bind(root: str, path: str, writable: bool, recursive: bool = False) -> None:
    """Bind ``path`` (a host path) to the same path inside ``root``; read-only unless ``writable``."""
    real = os.path.realpath(path)
    parent = os.path.dirname(path.rstrip("/")) or "/"
    inside_parent = _mkdirs(root, parent)
    target = os.path.join(inside_parent, os.path.basename(path.rstrip("/")))
    if os.path.isdir(real):
        if not os.path.lexists(target):
            os.mkdir(target, 0o755)
    else:
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    flags = MS_BIND | (MS_REC if recursive else 0)
    mount(real, target, None, flags)
    ro = 0 if writable else MS_RDONLY
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | ro)


def _expose(root: str, path: str, writable: bool = False) -> None:
    """Make ``path`` visible inside ``root``. A symlink (``/bin -> usr/bin``) is copied as a symlink and
    its target exposed; anything else is bound at its real location (callers pass real paths)."""
    path = os.path.abspath(path)
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        inside = _mkdirs(root, os.path.dirname(path))
        link = os.path.join(inside, os.path.basename(path))
        if not os.path.lexists(link):
            os.symlink(os.readlink(path), link)
        _expose(root, os.path.realpath(path), writable)
        return
    _bind(root, os.path.realpath(path), writable)


def build_root(spec: dict, applied: list, missing: list) -> str:
    root = spec["new_root"]
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m,nr_inodes=4096")
    for path in spec.get("expose_ro", []):
        _expose(root, path, writable=False)
    for path in spec.get("expose_rw", []):
        _expose(root, path, writable=True)
    # a minimal /dev
    dev = _mkdirs(root, "/dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64")
    for node in ("null", "zero", "full", "random", "urandom"):
        target = os.path.join(dev, node)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o666))
        mount(f"/dev/{node}", target, None, MS_BIND)
    for name, dest in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                       ("stderr", "/proc/self/fd/2")):
        os.symlink(dest, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "shm"), 0o755)
    mount(None, dev, None, MS_REMOUNT | MS_NOSUID | MS_NOEXEC | MS_RDONLY, "mode=0755,size=64k,nr_inodes=64")
    # /proc: a fresh instance that hides other users' processes (root), or the host's (user namespace)
    proc = _mkdirs(root, "/proc")
    try:
        mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
        applied.append("proc-hidepid")
    except SetupError:
        mount("/proc", proc, None, MS_BIND | MS_REC)
        missing.append("proc-hidepid (other processes are visible in /proc)")
    for d in ("/tmp", "/var/tmp"):
        _mkdirs(root, d)
    mount(None, root, None, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_RDONLY, "mode=0755,size=4m,nr_inodes=4096")
    return root


# --------------------------------------------------------------------------- steps
def set_limits(limits: dict, applied: list, missing: list) -> None:
    names = {"AS": "RLIMIT_AS", "CPU": "RLIMIT_CPU", "NPROC": "RLIMIT_NPROC", "FSIZE": "RLIMIT_FSIZE",
             "NOFILE": "RLIMIT_NOFILE", "CORE": "RLIMIT_CORE"}
    for key, value in limits.items():
        which = getattr(resource, names.get(key, ""), None)
        if which is None or value is None:
            continue
        try:
            soft, hard = resource.getrlimit(which)
            want = int(value)
            if hard != resource.RLIM_INFINITY and want > hard:
                want = hard
            # CPU: a soft limit sends SIGXCPU first; the hard limit a second later is SIGKILL
            new_hard = want + 2 if key == "CPU" and (hard == resource.RLIM_INFINITY or want + 2 <= hard) else want
            resource.setrlimit(which, (want, new_hard))
            applied.append(f"rlimit-{key.lower()}")
        except (ValueError, OSError) as exc:
            missing.append(f"rlimit-{key.lower()} ({exc})")


def drop_privileges(spec: dict, applied: list) -> None:
    uid, gid = int(spec["uid"]), int(spec["gid"])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != gid:
        raise SetupError("could not change to the sandbox user")
    applied.append(f"user-{spec.get('user') or uid}")


def _connection_file(cmd: list[str]) -> str | None:
    for i, arg in enumerate(cmd):
        if arg == "-f" and i + 1 < len(cmd):
            return cmd[i + 1]
        if arg.startswith("--f="):
            return arg[4:]
    return None


def main(argv: list[str]) -> int:
    if "--" not in argv or len(argv) < 3:
        print("usage: python -I -m helpers.instructor.sandbox_launch SPEC -- CMD ...", file=sys.stderr)
        return 2
    sep = argv.index("--")
    spec = json.loads(base64.b64decode(argv[sep - 1]).decode())
    cmd = argv[sep + 1:]
    strict = bool(spec.get("strict"))
    applied: list[str] = []
    missing: list[str] = []

    def failed(what: str, exc: Exception) -> None:
        if strict:
            raise SetupError(f"{what}: {exc}")
        missing.append(f"{what} ({exc})")

    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        is_root = os.geteuid() == 0
        mode = spec.get("mode", "root" if is_root else "userns")
        ns = 0
        if spec.get("isolate_network", True):
            ns |= CLONE_NEWNET
        if spec.get("new_root"):
            ns |= CLONE_NEWNS
        ns |= CLONE_NEWIPC | CLONE_NEWUTS
        in_ns = False
        if mode == "root" and is_root:
            try:
                unshare(ns)
                in_ns = True
            except SetupError as exc:
                failed("namespaces", exc)
        elif mode == "userns":
            uid, gid = os.geteuid(), os.getegid()
            try:
                unshare(CLONE_NEWUSER | ns)
                _write("/proc/self/setgroups", "deny")
                _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
                _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
                in_ns = True
                applied.append("user-namespace")
            except (SetupError, OSError) as exc:
                failed("user namespace (unprivileged user namespaces are not allowed here)", exc)
        if in_ns:
            if ns & CLONE_NEWNET:
                applied.append("no-network")
            applied.append("ipc-uts-namespaces")
        else:
            missing.append("no-network (the kernel can reach the network)")
        root = None
        if in_ns and spec.get("new_root"):
            try:
                mount(None, "/", None, MS_REC | MS_PRIVATE)
                root = build_root(spec, applied, missing)
                applied.append("private-root-fs")
            except (SetupError, OSError) as exc:
                failed("private root file system", exc)
                root = None
        elif spec.get("new_root"):
            missing.append("private-root-fs (file access is limited by permissions only)")
        set_limits(spec.get("limits", {}), applied, missing)
        # files the sandbox user must own: the connection file and the log. Never through a symlink
        # (O_NOFOLLOW, then fchown): root must not be tricked into handing some other file over.
        owner = (int(spec["uid"]), int(spec["gid"])) if is_root and mode == "root" and spec.get("uid") is not None \
            else None
        fd = -1
        if spec.get("log"):
            try:
                fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
                if owner:
                    os.fchown(fd, *owner)
            except OSError:
                fd = -1
        if fd < 0:
            fd = os.open("/dev/null", os.O_WRONLY)
        conn = _connection_file(cmd)
        if owner:
            for p in list(spec.get("chown", [])) + ([conn] if conn else []):
                try:
                    cfd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
                except OSError:
                    continue
                try:
                    import stat as _stat

                    if _stat.S_ISREG(os.fstat(cfd).st_mode):
                        os.fchown(cfd, *owner)
                finally:
                    os.close(cfd)
        if root is not None:
            os.chroot(root)
        # a kernel starts in "/" (no student file can shadow a module it imports at start-up) and
        # moves to its home afterwards; everything else starts at home
        os.chdir(spec.get("start_dir") or spec.get("home") or "/")
        if is_root and mode == "root" and spec.get("uid") is not None:
            drop_privileges(spec, applied)
        elif is_root:
            missing.append("unprivileged user (the sandbox runs as root)")
        else:
            missing.append("separate user (the sandbox runs as the grading user)")
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        applied.append("no-new-privileges")
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)   # a change of user clears it
        try:
            os.nice(int(spec.get("nice", 5)))
        except OSError:
            pass
        os.umask(0o077)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        if fd > 2:
            os.close(fd)
        keep = sorted(int(f) for f in spec.get("keep_fds", []))
        lo = 3
        for k in keep + [1 << 20]:
            if k > lo:
                os.closerange(lo, min(k, 65536))
            lo = k + 1
        for k in keep:
            os.set_inheritable(k, True)
        if spec.get("reap_children", True):
            # children that die are reaped at once: a fork bomb's killed processes leave no zombies
            # that would keep counting against the process limit of a kernel that never waits for them
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        env = {str(k): str(v) for k, v in spec.get("env", {}).items()}
        env["CNN_SANDBOX_APPLIED"] = ",".join(applied)
        env["CNN_SANDBOX_MISSING"] = "; ".join(missing)
        os.execve(cmd[0], cmd, env)
    except (SetupError, OSError) as exc:
        try:
            sys.stderr.write(f"cnn-course sandbox: cannot start {cmd[:1]}: {exc}\n")
        except Exception:
            pass
        return EXIT_SETUP_FAILED
    return EXIT_SETUP_FAILED  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
