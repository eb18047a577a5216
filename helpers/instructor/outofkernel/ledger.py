"""What one evaluation knows: each case's fresh inputs and expected outputs, what is decided, which cells failed.

The inputs and the reference outputs are made here, in the grader, before any child starts: if that
fails, the case is ``infra`` (the grader's own failure). Cases are numbered per function, in the
order of :meth:`helpers.instructor.outofkernel.plan.Plan.cases_of`.
"""
from __future__ import annotations

import numpy as np

from .fresh import fresh_args
from .judge import expected_for
from .plan import Plan
from .verdict import Verdict


class Ledger:
    """One evaluation: the cases with their inputs and expected outputs, what is decided, which cells failed."""

    def __init__(self, plan: Plan, reference: dict, rng: np.random.Generator):
        self.plan = plan
        self.cases = {f: plan.cases_of(f) for f in plan.functions}
        self.inputs, self.want, self.done, self.failed_cells = {}, {}, {}, {}
        for f, names in self.cases.items():
            for k, c in enumerate(names):
                try:
                    self.inputs[(f, k)] = fresh_args(f, c, reference, rng)
                    self.want[(f, k)] = expected_for(reference, f, c, self.inputs[(f, k)])
                except Exception as exc:
                    self.done[(f, k)] = Verdict(f, "infra", f"the grader could not prepare case {c}: "
                                                            f"{type(exc).__name__}: {exc}"[:300], c)

    def todo(self, func: str | None = None) -> list:
        return [(f, k) for f, names in self.cases.items() if func in (None, f) for k in range(len(names))
                if (f, k) not in self.done]

    def decide(self, f: str, k: int, status: str, message: str = "", onward: bool = False) -> None:
        for j in range(k, len(self.cases[f])) if onward else (k,):
            self.done.setdefault((f, j), Verdict(f, status, message, self.cases[f][j]))

    def give_up(self, status: str, message: str) -> None:
        for f, k in self.todo():
            self.decide(f, k, status, message)

    def verdicts(self) -> dict:
        """``{test cell grade_id: Verdict}``: a cell's first failure (one the student caused, before infra)."""
        out = {}
        for gid, pairs in self.plan.test_cases.items():
            per = [self.done[(f, self.cases[f].index(c))] for f, c in pairs]
            if per:
                bad = [v for v in per if not v.ok]
                out[gid] = min(bad, key=lambda v: v.status == "infra") if bad else Verdict(per[0].function, "ok")
        return out
