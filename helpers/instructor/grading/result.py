"""The result object: one per graded submission, the only way grading reports back.

The preprocessors of the pipeline fill one :class:`SubmissionResult` (through the
:class:`~.context.SubmissionContext` they share); the last of them writes it into the autograded
notebook's metadata under ``cnn_course``; the worker reads it once, from there, and turns it into
the run's :class:`~.outcome.Outcome`. No module globals, no log parsing, no comment prefixes.

The student's own notebook may carry a forged ``cnn_course`` entry: the pipeline's first step
deletes it, and :func:`read` accepts only what the trusted side wrote last.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

METADATA_KEY = "cnn_course"
VERSION = 1


@dataclass
class Flag:
    """A test cell that passed in the kernel but not out of it: scored 0 for review."""
    cell: str
    function: str
    reason: str
    was: float


@dataclass
class SubmissionResult:
    version: int = VERSION
    events: list = field(default_factory=list)       # one line each, for the instructor (timeouts, restarts, ...)
    flags: list = field(default_factory=list)        # Flag dicts
    verdicts: dict = field(default_factory=dict)     # test cell grade_id -> out-of-kernel verdict (dict)
    timings: dict = field(default_factory=dict)      # seconds: kernel_start, setup, lesson, answer, test, out_of_kernel
    cells: dict = field(default_factory=dict)        # grade_id -> "ran" | "timeout" | "crashed" | "skipped: why"

    def note(self, text: str) -> None:
        if text not in self.events:
            self.events.append(text)

    def add_time(self, kind: str, seconds: float) -> None:
        self.timings[kind] = round(self.timings.get(kind, 0.0) + float(seconds), 4)

    def flag(self, cell: str, function: str, reason: str, was: float) -> None:
        self.flags = [f for f in self.flags if f["cell"] != cell] + [asdict(Flag(cell, function, reason, was))]

    def summary(self) -> str:
        """One line: the flags first, then the events."""
        parts = [f"FLAG {f['cell']}: {f['reason']}" for f in self.flags] + list(self.events)
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> "SubmissionResult":
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not a cnn-course result record")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def write(nb, result: SubmissionResult) -> None:
    nb.metadata[METADATA_KEY] = result.to_dict()


def discard(nb) -> None:
    nb.metadata.pop(METADATA_KEY, None)


def read(nb) -> SubmissionResult | None:
    data = nb.metadata.get(METADATA_KEY)
    if data is None:
        return None
    return SubmissionResult.from_dict(data)
