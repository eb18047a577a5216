"""What the grading sandbox enforces (:class:`Policy`) and what it reports (:class:`SandboxReport`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

GiB = 2 ** 30
MiB = 2 ** 20
USER_PREFIX = "cnngrader"


class SandboxError(Exception):
    """The sandbox cannot be set up as asked."""


FIX_HINT = ("install bubblewrap (as root: apt-get install bubblewrap; the Makefile's system-deps target does it), "
            "or run trusted code only with --no-sandbox")


@dataclass
class Policy:
    """Every limit of a box, with its default. Serialisable (``to_dict``/``from_dict``) so that it can
    travel in a traitlets config to nbgrader's preprocessors."""

    enabled: bool = True
    slot: int = 0                       # grading worker slot: selects the sandbox user cnngrader<slot>
    user: str | None = None             # default: f"cnngrader{slot}" (root only)
    # the whole box (cgroups, where the host offers them)
    memory_bytes: int = 3 * GiB         # memory.limit_in_bytes / memory.max
    max_processes: int = 128            # pids.max (threads count: a kernel uses about 15)
    # each process (rlimits, always)
    address_space: int = 2 * GiB        # RLIMIT_AS: a memory bomb gets MemoryError
    cpu_seconds: int = 600              # RLIMIT_CPU
    processes: int = 256                # RLIMIT_NPROC (per user; the slot's user is this box's alone)
    file_size: int = 64 * MiB           # RLIMIT_FSIZE
    open_files: int = 256               # RLIMIT_NOFILE
    # the scratch folder (home and working directory): a tmpfs
    scratch_bytes: int = 64 * MiB
    scratch_inodes: int = 4096
    isolate_network: bool = True
    strict: bool = False                # a measure that cannot be applied is an error
    base_dir: str | None = None         # where the root-owned box folders go (default: the temp dir)
    expose: tuple = ()                  # extra read-only paths

    def to_dict(self) -> dict:
        d = asdict(self)
        d["expose"] = list(self.expose)
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> "Policy":
        d = dict(d or {})
        d.update(d.pop("limits", None) or {})   # the old nested form {"limits": {"address_space": ...}}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SandboxError(f"unknown sandbox policy field(s) {unknown}; expected some of {sorted(known)}")
        d["expose"] = tuple(d.get("expose", ()))
        return cls(**d)

    @property
    def user_name(self) -> str:
        return self.user or f"{USER_PREFIX}{self.slot}"

    def rlimits(self) -> dict:
        return {"as": self.address_space, "cpu": self.cpu_seconds, "nproc": self.processes,
                "fsize": self.file_size, "nofile": self.open_files, "core": 0}


@dataclass
class SandboxReport:
    applied: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line: what is applied and what is not."""
        text = "sandbox: " + (", ".join(self.applied) or "nothing applied")
        if self.missing:
            text += "; NOT applied: " + "; ".join(self.missing)
        return text.replace("\n", " ")
