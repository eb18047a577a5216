"""What the grading sandbox enforces (:class:`Policy`) and what it reports (:class:`SandboxReport`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..options import GradingOptions

GiB = 2 ** 30
MiB = 2 ** 20
USER_PREFIX = "cnngrader"
_DEFAULT = GradingOptions()    # every limit's default is the grading option's default


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
    memory_bytes: int = _DEFAULT.memory_mib * MiB        # memory.limit_in_bytes / memory.max
    max_processes: int = _DEFAULT.max_processes          # pids.max (threads count: a kernel uses about 15)
    # each process (rlimits, always)
    address_space: int = _DEFAULT.memory_mib * MiB       # RLIMIT_AS: a memory bomb gets MemoryError
    cpu_seconds: int = _DEFAULT.budget + 30              # RLIMIT_CPU
    processes: int = _DEFAULT.processes_per_user         # RLIMIT_NPROC (per user; the slot's user is this box's alone)
    file_size: int = _DEFAULT.file_mib * MiB             # RLIMIT_FSIZE
    open_files: int = _DEFAULT.open_files                # RLIMIT_NOFILE
    # the scratch folder (home and working directory): a tmpfs
    scratch_bytes: int = _DEFAULT.scratch_mib * MiB
    scratch_inodes: int = _DEFAULT.scratch_files
    isolate_network: bool = True
    seccomp: bool = True                # the seccomp filter of .seccomp (where python3-seccomp is installed)
    strict: bool = False                # a measure that cannot be applied is an error
    base_dir: str | None = None         # where the root-owned box folders go (default: the temp dir)
    expose: tuple = ()                  # extra read-only paths

    @classmethod
    def from_options(cls, options: GradingOptions, slot: int = 0) -> "Policy":
        """The policy of worker slot ``slot`` under these grading options."""
        return cls(enabled=options.sandbox, slot=slot, memory_bytes=options.memory_mib * MiB,
                   address_space=options.memory_mib * MiB, max_processes=options.max_processes,
                   cpu_seconds=options.budget + 30, processes=options.processes_per_user,
                   file_size=options.file_mib * MiB, open_files=options.open_files,
                   scratch_bytes=options.scratch_mib * MiB, scratch_inodes=options.scratch_files)

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
