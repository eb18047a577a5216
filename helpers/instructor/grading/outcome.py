"""The unit of work of autograde (``Task``) and what became of one submission (``Outcome``)."""
from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("graded", "skipped", "failed", "corrupt", "missing", "rejected")


@dataclass
class Task:
    assignment: str
    student: str
    force: bool = False
    notes: list = field(default_factory=list)       # what staging changed or found ("resubmitted: regraded", ...)
    digest: str = ""                                # content hash of the staged copy
    timestamp: str | None = None                    # the submission's timestamp.txt (as nbgrader reads it)


@dataclass
class Outcome:
    assignment: str
    student: str
    status: str            # graded | skipped | failed | corrupt | missing | rejected
    reason: str = ""
    seconds: float = 0.0
    score: float | None = None
    max_score: float | None = None
    flags: list = field(default_factory=list)   # "FLAG <test cell>: why": out-of-kernel check overrode a pass
