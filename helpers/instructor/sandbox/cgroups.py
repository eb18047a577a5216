"""Cgroups of one box: its total memory and process count, its share of the CPU, and a way to kill
every process in it.

cgroup v1 (this project's CI machine): ``/sys/fs/cgroup/{memory,pids}/cnn-course/<box>`` with
``memory.limit_in_bytes`` and ``pids.max``, and ``/sys/fs/cgroup/cpu/cnn-course-<box>``, a CPU
group of its own at the top level: the scheduler shares the CPU between groups first, so a box
that runs a hundred busy processes weighs as much as one process (the grader's, or a classmate's
box graded beside it), never a hundred times more. cgroup v2 (a unified hierarchy with the ``memory`` and
``pids`` controllers): ``/sys/fs/cgroup/cnn-course/<box>`` with ``memory.max`` and ``pids.max``;
that path is written but NOT tested here (no such machine), and the probe says so.

A process joins before it runs anything of the student's: the launch command starts with
``/bin/sh -c 'echo $$ > .../cgroup.procs; exec "$@"'`` (no Python as root per start).
"""
from __future__ import annotations

import os
import signal
import time

ROOT = "/sys/fs/cgroup"
GROUP = "cnn-course"
_JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 121; shift; n=$((n-1)); done; exec "$@"'


def _writable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)


def detect() -> tuple[str | None, str]:
    """``("v1"|"v2"|None, why)``: which cgroup layout offers memory and pids to this (root) process."""
    if os.geteuid() != 0:
        return None, "cgroups (not root)"
    if _writable(f"{ROOT}/memory") and _writable(f"{ROOT}/pids"):
        return "v1", ""
    try:
        with open(f"{ROOT}/cgroup.controllers") as fh:
            ctrl = fh.read().split()
        if "memory" in ctrl and "pids" in ctrl and _writable(ROOT):
            return "v2", ""
    except OSError:
        pass
    return None, "cgroups (no writable memory and pids controllers under /sys/fs/cgroup)"


class Cgroups:
    """The cgroups of one box (``name``), created at once; :meth:`remove` kills what is left and removes them."""

    def __init__(self, name: str, memory_bytes: int, max_processes: int):
        self.kind, self.why = detect()
        self.dirs: list[str] = []
        if self.kind == "v1":
            pairs = [("memory", "memory.limit_in_bytes", memory_bytes), ("pids", "pids.max", max_processes)]
            for ctrl, knob, value in pairs:
                parent = f"{ROOT}/{ctrl}/{GROUP}"
                os.makedirs(parent, exist_ok=True)
                d = f"{parent}/{name}"
                os.mkdir(d, 0o755)
                self.dirs.append(d)
                self._set(d, knob, value)
            try:   # no swap either, where the kernel accounts it
                self._set(self.dirs[0], "memory.memsw.limit_in_bytes", memory_bytes)
            except OSError:
                pass
            if _writable(f"{ROOT}/cpu"):
                d = f"{ROOT}/cpu/{GROUP}-{name}"
                os.mkdir(d, 0o755)
                self.dirs.append(d)     # cpu.shares: the default 1024, as a single process at the top level
        elif self.kind == "v2":   # untested: see the module docstring
            parent = f"{ROOT}/{GROUP}"
            os.makedirs(parent, exist_ok=True)
            self._set(parent, "cgroup.subtree_control", "+memory +pids")
            d = f"{parent}/{name}"
            os.mkdir(d, 0o755)
            self.dirs.append(d)
            self._set(d, "memory.max", memory_bytes)
            self._set(d, "memory.swap.max", 0)
            self._set(d, "pids.max", max_processes)

    @staticmethod
    def _set(d: str, knob: str, value) -> None:
        with open(os.path.join(d, knob), "w") as fh:
            fh.write(str(value))

    def describe(self, memory_bytes: int, max_processes: int) -> str:
        cpu = any(d.startswith(f"{ROOT}/cpu/") for d in self.dirs)
        return (f"cgroups {self.kind}{' (untested layout)' if self.kind == 'v2' else ''} "
                f"memory {memory_bytes // 2 ** 20} MiB, pids {max_processes}" + (", a CPU share" if cpu else ""))

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv``, started inside the box's cgroups."""
        if not self.dirs:
            return list(argv)
        procs = [os.path.join(d, "cgroup.procs") for d in self.dirs]
        return ["/bin/sh", "-c", _JOIN, "cnn-box-join", str(len(procs)), *procs, *argv]

    def pids(self) -> list[int]:
        out: set[int] = set()
        for d in self.dirs:
            try:
                with open(os.path.join(d, "cgroup.procs")) as fh:
                    out.update(int(x) for x in fh.read().split())
            except (OSError, ValueError):
                pass
        return sorted(out)

    def kill_all(self, seconds: float = 5.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:   # EBUSY while the last killed processes are reaped
                    time.sleep(0.02)
        self.dirs = []


def remove_stale(prefix: str) -> None:
    """Cgroups of boxes whose names start with ``prefix``, left by a killed grading worker."""
    import glob

    for d in (glob.glob(f"{ROOT}/*/{GROUP}/{prefix}*") + glob.glob(f"{ROOT}/{GROUP}/{prefix}*")
              + glob.glob(f"{ROOT}/*/{GROUP}-{prefix}*")):
        c = Cgroups.__new__(Cgroups)
        c.kind, c.why, c.dirs = "stale", "", [d]
        c.remove()
