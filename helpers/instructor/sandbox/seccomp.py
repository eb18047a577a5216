"""A seccomp filter for every sandboxed process, built with libseccomp, loaded by bubblewrap.

bubblewrap loads a compiled BPF program from a file descriptor (``--seccomp FD``) just before it
runs the command. The program is built once per grading process by libseccomp's own Python
binding, Debian's ``python3-seccomp``, run by the system's ``/usr/bin/python3`` (a trusted
interpreter with no student input), into a root-owned private file.

The filter allows every system call except those below, which fail with ``EPERM``: the kernel
keyrings (shared by every process of a slot's user, so a channel from one student's code to a
later one's), new namespaces (a user namespace makes the student root in it and opens much of the
kernel to exploits), tracing and reading other processes' memory, kernel modules, mounts, BPF,
``perf_event_open``, ``userfaultfd`` and ``io_uring`` (common exploit primitives). ``clone3``
fails with ``ENOSYS``, its flags being out of a filter's reach, so that the C library falls back
to ``clone``, whose namespace flags the filter does see.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile

SYSTEM_PYTHON = "/usr/bin/python3"
DENIED = ("keyctl", "add_key", "request_key",
          "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
          "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
          "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
          "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
          "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
          "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot", "acct", "quotactl",
          "syslog", "iopl", "ioperm", "vhangup", "lookup_dcookie")
NAMESPACE_FLAGS = 0x10000000 | 0x20000000 | 0x40000000 | 0x04000000 | 0x08000000 | 0x00020000 | 0x02000000 | 0x00000080
#                 CLONE_NEWUSER, NEWPID,    NEWNET,     NEWUTS,     NEWIPC,     NEWNS,      NEWCGROUP,  NEWTIME
FIX = "install Debian's python3-seccomp (as root: apt-get install python3-seccomp; make system-deps does it)"

_BUILD = r"""
import errno, sys
import seccomp
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
for name in sys.argv[2].split(","):
    try:
        f.add_rule(seccomp.ERRNO(errno.EPERM), name)
    except (RuntimeError, ValueError, OSError):
        pass   # a call this architecture or libseccomp does not know
mask = int(sys.argv[3])
for bit in range(32):
    if mask & (1 << bit):
        f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, 1 << bit, 1 << bit))
f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
with open(sys.argv[1], "wb") as fh:
    f.export_bpf(fh)
"""

_BUILT: dict = {}


def filter_path() -> tuple[str | None, str]:
    """``(path, "")`` of the compiled filter, built once; ``(None, why)`` when it cannot be built."""
    if "path" in _BUILT:
        return _BUILT["path"], _BUILT["why"]
    path, why = None, ""
    if not os.path.exists(SYSTEM_PYTHON):
        why = f"no {SYSTEM_PYTHON} to run libseccomp's binding; {FIX}"
    else:
        folder = tempfile.mkdtemp(prefix="cnn-seccomp-")   # 0700, ours
        atexit.register(shutil.rmtree, folder, True)
        out = os.path.join(folder, "filter.bpf")
        res = subprocess.run([SYSTEM_PYTHON, "-I", "-c", _BUILD, out, ",".join(DENIED), str(NAMESPACE_FLAGS)],
                             capture_output=True, text=True, timeout=60, cwd=folder, env={"PATH": "/usr/bin:/bin"})
        if res.returncode == 0 and os.path.getsize(out) > 0:
            path = out
        elif "No module named 'seccomp'" in res.stderr:
            why = f"libseccomp's Python binding is missing; {FIX}"
        else:
            why = f"the seccomp filter could not be built: {res.stderr.strip()[-200:]}"
    _BUILT.update(path=path, why=why)
    return path, why


def open_filter() -> int | None:
    """A new descriptor of the compiled filter (bubblewrap reads it to the end), or None."""
    path, _ = filter_path()
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW) if path else None
