"""What the preprocessors of one submission share: its sandbox, its deadline, its result.

The worker builds one :class:`SubmissionContext` per submission and hands it to the pipeline's
preprocessors through their ``context`` setting (traitlets config, set for each submission).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..options import GradingOptions
from .result import SubmissionResult


@dataclass
class SubmissionContext:
    student: str
    assignment: str
    options: GradingOptions
    box: Any                                  # sandbox.Box or sandbox.NullBox
    functions: tuple = ()                     # the assignment's graded functions
    reference: dict = field(default_factory=dict)   # function name -> reference solution (trusted side)
    deadline: float = field(default_factory=lambda: time.monotonic() + 3600)
    result: SubmissionResult = field(default_factory=SubmissionResult)
    seed: int | None = None                   # of the out-of-kernel check's fresh inputs
    dangerous: set = field(default_factory=set)     # functions that hung or crashed out of the kernel
    # test cell grade_id -> seconds, declared by the source notebook (trusted: read by the grader, never from
    # the submission); such a cell may run longer than the cell timeout, within the budget
    timeouts: dict = field(default_factory=dict)
    kernel: Any = None                        # a kernel manager whose kernel is already booting

    def take_kernel(self):
        """The kernel started ahead (once; None after that, or if its process has ended since)."""
        km, self.kernel = self.kernel, None
        process = getattr(getattr(km, "provisioner", None), "process", None)
        return km if process is not None and process.poll() is None else None

    def __deepcopy__(self, memo):
        # traitlets copies a Config deeply; the preprocessors must all share this one object
        return self

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def cell_timeout(self, cell=None) -> int:
        """The timeout of the next cell: the cell timeout (or the longer one the source notebook declares for
        that test cell), or what is left of the budget."""
        limit = self.options.cell_timeout
        if cell is not None:
            gid = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
            limit = max(limit, self.timeouts.get(gid, 0))
        return max(1, int(min(limit, self.time_left())))
