"""Score every graded function again, outside the kernel, before the notebook runs.

The answer cells run in a fresh sandboxed process on fresh random inputs shaped like each test
cell's own cases (:mod:`helpers.instructor.outofkernel`); the verdicts go into the result record,
and :mod:`.apply_verdicts` lets them lower a score. Functions that hung or crashed here are
remembered, so that the kernel does not spend a timeout on each of their test cells.
"""
import time

from nbgrader.preprocessors import NbGraderPreprocessor

from ... import outofkernel
from . import UsesContext


class CheckOutOfKernel(UsesContext, NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        ctx = self.ctx()
        if not ctx.options.out_of_kernel or not ctx.functions:
            return nb, resources
        t0 = time.monotonic()
        plan = outofkernel.Plan.from_notebook(nb, ctx.functions)
        verdicts = outofkernel.evaluate(plan, ctx.box, ctx.reference, cell_timeout=ctx.options.cell_timeout,
                                        deadline=ctx.deadline, seed=ctx.seed, timeouts=ctx.timeouts)
        ctx.box.end_processes()   # nothing the check left behind may count against the kernel
        ctx.result.verdicts = {gid: v.__dict__ for gid, v in verdicts.items()}
        ctx.dangerous = {v.function for v in verdicts.values() if v.status in ("timeout", "crashed")}
        for v in verdicts.values():
            if v.status == "infra":
                ctx.result.note(f"the out-of-kernel check of {v.function} could not run: {v.message[:120]}")
        ctx.result.add_time("out_of_kernel", time.monotonic() - t0)
        return nb, resources
