"""One submission's sandbox (:class:`Box`); :class:`NullBox` (no isolation) is in :mod:`.nullbox`.

Layout (root mode): ``<tmp>/cnnsb-<slot>-XXXX/`` (root, 0700) holds ``scratch/`` (the mount point
of the box's tmpfs, bound read-write at :data:`SCRATCH` inside), ``run/`` (connection files and
listening sockets of the kernels, root's only) and ``kernels/`` (the box's kernelspec). Every
process of the box runs in a new bubblewrap sandbox (own PID namespace: when its first process
ends, everything in it ends). Kernels run in the box's kernel cgroup and every other process (the
out-of-kernel check's children) in its check cgroup, each with the policy's memory and process
limits: a kernel can boot while the check runs, and what the check leaves behind, or the memory
it takes, never reaches the kernel. :meth:`Box.close` kills what is left.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path

from . import bwrap, cgroups, scratch, seccomp, users
from .env import base_env
from .files import add_files, prepare_scratch
from .policy import Policy, SandboxError

_BOXES: "weakref.WeakValueDictionary[str, Box]" = weakref.WeakValueDictionary()
_IDS = itertools.count(1)
class Box:
    """The sandbox of one submission: scratch folder, slot user, cgroups, and the processes in it."""

    def __init__(self, policy: Policy, label: str = "sandbox", files_dir: Path | str | None = None):
        self.policy, self.label, self.closed = policy, label, False
        self.root_mode = users.is_root()
        self._token, self._procs, self._kernels, self._kms = None, [], [], 0
        self.cg = self.kernel_cg = None
        bwrap.bwrap_path()   # SandboxError when bubblewrap or namespaces are missing
        if self.root_mode:
            if policy.user is None:
                slot, self._token = users.acquire_slot(policy.slot)
                self.policy = policy = dataclasses.replace(policy, slot=slot)
            self.uid, self.gid = users.ensure_user(policy.user_name)
        else:
            self.uid = self.gid = None
        try:
            self._setup(Path(files_dir) if files_dir else None)
        except BaseException:
            self.close()
            raise

    def _setup(self, files_dir: Path | None) -> None:
        p = self.policy
        self.base = Path(tempfile.mkdtemp(prefix=f"cnnsb-{p.slot}-", dir=p.base_dir))   # 0700, ours
        self.id = f"{os.getpid()}-{next(_IDS)}"
        _BOXES[self.id] = self
        self.scratch_host = self.base / "scratch"
        self.run = self.base / "run"
        for d in (self.scratch_host, self.run, self.base / "kernels"):
            d.mkdir(mode=0o700)
        self.scratch = bwrap.SCRATCH
        self.exposed = bwrap.exposed_paths(p.expose)
        if self.root_mode:
            scratch.mount_tmpfs(str(self.scratch_host), p.scratch_bytes, p.scratch_inodes, self.uid, self.gid)
            self._mounted = True
            self.cg = cgroups.Cgroups(f"s{p.slot}-{self.base.name}", p.memory_bytes, p.max_processes)
            self.kernel_cg = cgroups.Cgroups(f"s{p.slot}-{self.base.name}-k", p.memory_bytes, p.max_processes)
        if self.cg is None or not self.cg.dirs or not self.kernel_cg.dirs:
            if p.strict:
                raise SandboxError(f"strict policy: {self.cg.why if self.cg else 'cgroups (not root)'} not available")
        prepare_scratch(self, files_dir)

    def add_files(self, files_dir: Path | str) -> None:
        """Copy a staged folder into scratch, as the box's user (see :func:`.files.add_files`)."""
        add_files(self, Path(files_dir))

    def env(self) -> dict:
        return base_env(self.scratch, self.policy.user_name if self.root_mode else os.environ.get("USER", "user"))

    def argv(self, cmd, data_files=(), ro_binds=(), kernel: bool = False, seccomp_fd: int | None = None) -> list[str]:
        """The command line that runs ``cmd`` in a new sandbox of this box (in its check cgroups, or
        in its kernel cgroups when ``kernel``), under the seccomp filter read from ``seccomp_fd``
        (see :meth:`seccomp_fd`; the caller passes it to the process and closes it)."""
        if self.closed:
            raise SandboxError("the box is closed")
        argv = bwrap.command(list(cmd), uid=self.uid, gid=self.gid, scratch_host=str(self.scratch_host),
                             exposed=self.exposed, rlimits=self.policy.rlimits(),
                             isolate_network=self.policy.isolate_network, data_files=data_files, ro_binds=ro_binds,
                             seccomp_fd=seccomp_fd)
        cg = self.kernel_cg if kernel else self.cg
        return cg.wrap(argv) if cg else argv

    def spawn(self, cmd, pass_fds=(), env=None, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
              stderr=None, ro_binds=(), data_files=()) -> subprocess.Popen:
        """Start ``cmd`` in a new sandbox (own PID namespace), cwd the scratch folder, env :meth:`env` (+ ``env``)."""
        full_env = {**self.env(), **(env or {})}
        filt = self.seccomp_fd()
        try:
            proc = subprocess.Popen(self.argv(cmd, data_files, ro_binds, seccomp_fd=filt),
                                    pass_fds=tuple(pass_fds) + ((filt,) if filt is not None else ()), env=full_env,
                                    stdin=stdin, stdout=stdout, stderr=stderr, cwd="/", start_new_session=True)
        finally:
            if filt is not None:
                os.close(filt)
        self._procs.append(proc)
        return proc

    def seccomp_fd(self) -> int | None:
        """A new descriptor of the seccomp filter (None when the policy or the host has none)."""
        if not self.policy.seccomp:
            return None
        fd = seccomp.open_filter()
        if fd is None and self.policy.strict:
            raise SandboxError(f"strict policy: {seccomp.filter_path()[1]}")
        return fd

    def open_log(self, name: str) -> int:
        """A new log file in the root-owned run folder (an fd to hand to a sandboxed process)."""
        return os.open(self.run / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

    def log_tail(self, name: str, lines: int = 5) -> str:
        try:
            fd = os.open(self.run / name, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                fh.seek(max(0, os.fstat(fd).st_size - 8192))
                text = fh.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def next_name(self, stem: str) -> str:
        """A fresh file name stem in this box (logs of out-of-kernel children)."""
        self._names = getattr(self, "_names", 0) + 1
        return f"{stem}{self._names}"

    def kernel_manager(self):
        """A new ``AsyncKernelManager`` whose kernel starts in this box (see :mod:`.provisioner`)."""
        from .provisioner import box_kernel_manager

        self._kms += 1
        return box_kernel_manager(self, f"k{self._kms}")

    def start_kernel(self):
        """A kernel manager whose kernel is already booting in this box. The launch returns at once;
        the kernel boots (Python, ipykernel) while the grader goes on with other work. Call it from a
        thread that outlives the kernel (a worker's main thread): bubblewrap's ``--die-with-parent``
        ends the sandbox when the thread that launched it ends."""
        from jupyter_core.utils import run_sync

        km = self.kernel_manager()
        run_sync(km.start_kernel)()
        return km

    def add_kernel(self, proc) -> None:
        """The provisioner registers the outer process of a kernel's sandbox here."""
        self._kernels.append(proc)

    def kill_strays(self, km) -> int:
        """Kill every process of ``km``'s kernel sandbox but the kernel (after a cell); how many."""
        import psutil

        prov = getattr(km, "provisioner", None)
        procs = prov.strays() if hasattr(prov, "strays") else []
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        return len(procs)

    def end_processes(self, seconds: float = 5.0) -> None:
        """Kill and reap every process of the box but its kernels (after the out-of-kernel check, so
        that nothing it left behind, a fork bomb's children say, runs beside the kernel)."""
        for proc in self._procs:
            try:
                proc.kill()
                proc.wait(seconds)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._procs = [p for p in self._procs if p.poll() is None]
        if self.cg is not None:
            self.cg.kill_all(seconds)

    def close(self) -> None:
        """End every process of the box, unmount the scratch tmpfs, remove cgroups and folders (idempotent)."""
        if self.closed:
            return
        self.closed = True
        procs = self._procs + self._kernels
        for proc in procs:
            try:
                proc.kill()     # the sandbox's outer bwrap: its PID namespace dies with it
            except OSError:
                pass
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for cg in (self.cg, self.kernel_cg):
            if cg is not None:
                cg.remove()
        if self.root_mode and self.uid is not None and self._token is not None and users.holders(self._token) <= 1:
            users.kill_user_processes(self.uid)   # the slot is ours alone: nothing of its user may outlive the box
        base = getattr(self, "base", None)
        if base is not None:
            if getattr(self, "_mounted", False) and not scratch.unmount(str(self.scratch_host)):
                base = None     # never walk a tmpfs the user could write into
            if base is not None:
                shutil.rmtree(base, ignore_errors=True)
        users.release_slot(self._token)
        self._token = None

    cleanup = close    # the old name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def lookup(box_id: str) -> Box:
    box = _BOXES.get(box_id)
    if box is None or box.closed:
        raise SandboxError(f"no open sandbox box {box_id!r} in this process")
    return box
