"""The out-of-kernel verdict on one test cell (or on one case of one function).

``infra`` means the check could not run for reasons no student code could cause: the sandbox did
not start (no valid hello before the first cell), the grader's own inputs or reference failed, or
the time budget was gone before anything ran. Every other status that is not ``ok`` makes
``ApplyOutOfKernelVerdicts`` score a test cell 0 when the kernel said it passed.
"""
from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("ok", "wrong", "error", "timeout", "crashed", "answer-timeout", "answer-crashed", "undefined", "infra")


@dataclass
class Verdict:
    """The out-of-kernel verdict on one test cell (or on one function's case)."""

    function: str
    status: str              # ok | wrong | error | timeout | crashed | answer-timeout | answer-crashed
    #                          | undefined | infra
    message: str = ""
    case: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self) -> str:
        f = self.function
        on = f"on fresh random inputs like case '{self.case}'" if self.case else "on fresh random inputs"
        return {
            "wrong": f"{f} gave wrong results {on}",
            "error": f"{f} raised an error {on}",
            "timeout": f"{f} did not return in time {on}",
            "crashed": f"{f} killed its process {on}",
            "answer-timeout": f"the answer cell that defines {f} did not finish (top-level code that never ends)",
            "answer-crashed": f"the answer cell that defines {f} killed its process",
            "undefined": f"{f} is not defined by the answer cells",
            "infra": f"the out-of-kernel check of {f} could not run",
        }.get(self.status, f"{f}: {self.status}")


