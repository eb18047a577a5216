"""Run the notebook in the submission's sandbox: nbgrader's ``Execute``, made hard to break.

It keeps nbclient's own cell loop and changes only public hooks:

- ``create_kernel_manager``: the kernel is the sandbox's (a kernel provisioner starts it under
  bubblewrap, see :mod:`helpers.instructor.sandbox`). The worker starts the first one when the
  submission's box is made, so that it boots while nbgrader and the out-of-kernel check work
  (nbclient connects to a kernel manager that already has a kernel instead of starting one);
- ``timeout_func``: each cell gets the cell timeout or what is left of the submission's budget;
- ``preprocess_cell``: a cell is skipped when the budget is spent, or when it tests a function
  that already hung (one timeout per function, not one per test cell) or that hung or crashed
  when checked out of the kernel. A cell during which the kernel dies or stops answering gets an
  error output (a test cell then scores 0), the kernel is restarted, the setup, answer and lesson
  cells that ran before are run again, and grading goes on: points already earned stay;
- ``output``: the output caps of :mod:`.output_cap`.
"""
from __future__ import annotations

import ast
import copy
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool

from ...outofkernel import Plan
from ...regions import is_test_cell as is_test
from . import UsesContext
from .output_cap import OutputCap


class UnresponsiveKernel(Exception):
    """The kernel did not answer after an interrupt."""


def error_output(ename: str, evalue: str):
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def names_used(source: str) -> set:
    """The names a cell's code reads (none if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def kind_of(cell) -> str:
    meta = cell.metadata.get("nbgrader", {})
    if is_test(cell):
        return "test"
    if meta.get("solution"):
        return "answer"
    if meta.get("locked"):
        return "setup"
    return "lesson"


class SandboxedExecute(OutputCap, UsesContext, Execute):
    # an output over ZeroMQ's message cap is dropped, and with it perhaps an "idle": not a failure
    raise_on_iopub_timeout = Bool(False).tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeout_func = lambda cell: self.ctx().cell_timeout(cell)

    # ---------------------------------------------------------------- the kernel
    def create_kernel_manager(self):
        ctx = self.ctx()
        self.km = ctx.take_kernel() or ctx.box.kernel_manager()
        return self.km

    def preprocess(self, nb, resources, km=None):
        ctx = self.ctx()
        self._plan = Plan.from_notebook(nb, ctx.functions)
        self._hung: set = set()
        self._status: dict = {}
        self._restarts = 0
        self._nb_bytes = 0
        self._cell_bytes = 0
        self._truncated = False
        self._t0 = time.monotonic()
        self._first_cell = True
        self._bound_startup()
        nb, resources = super().preprocess(nb, resources, km)
        self.cap_notebook(nb)
        return nb, resources

    # ---------------------------------------------------------------- one cell
    def _skip_reason(self, cell, gid: str) -> str | None:
        ctx = self.ctx()
        if self._restarts > ctx.options.max_restarts:
            return f"not run: the kernel died {self._restarts} times"
        if ctx.time_left() < 1:
            ctx.result.note("the time budget ran out")
            return "not run: the submission's time budget ran out"
        if is_test(cell):
            funcs = set(self._plan.test_functions.get(gid, []))
            if funcs & self._hung:
                return f"not run: {', '.join(sorted(funcs & self._hung))} already timed out or crashed in this notebook"
            calls = names_used(cell.source) & (self._hung | ctx.dangerous)
            if calls:
                return f"not run: it calls {', '.join(sorted(calls))}, which hung or killed its process when checked"
        return None

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        ctx = self.ctx()
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell-{index}")
        kind = kind_of(cell)
        if self._first_cell:   # the kernel has started and answered kernel_info
            self._first_cell = False
            ctx.result.add_time("kernel_start", time.monotonic() - self._t0)
        why = self._skip_reason(cell, gid)
        if why:
            cell.outputs = [error_output("NotRunByGrader", why)]
            self._status[index] = ctx.result.cells[gid] = "skipped"
            return cell, resources
        funcs = set(self._plan.test_functions.get(gid, [])) if kind == "test" else set()
        self._cell_bytes, self._truncated = 0, False
        t0 = time.monotonic()
        try:
            super().preprocess_cell(cell, resources, index)
            timed_out = any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError"
                            for o in cell.get("outputs", []))
            status = "timeout" if timed_out else "ran"
            if timed_out:
                self._hung |= funcs
                ctx.result.note(f"cell {gid} timed out")
                if not self._responsive():
                    raise UnresponsiveKernel()
            left = ctx.box.kill_strays(self.km)   # what the cell left running (a fork bomb's children)
            if left:
                ctx.result.note(f"killed {left} processes left behind by cell {gid}")
        except Exception as exc:   # a dead kernel, a stuck one, or garbage on the channels
            status = "crashed"
            self._hung |= funcs
            cell.outputs = ([self._truncation_note()] if self._truncated else []) + [self._crash_output(exc)]
            ctx.result.note(f"{cell.outputs[-1]['evalue'].replace('this cell', 'cell ' + gid)}; restarted")
            self._restart(index)
        ctx.result.add_time(kind, time.monotonic() - t0)
        self._status[index] = ctx.result.cells[gid] = status
        return cell, resources

    @staticmethod
    def _crash_output(exc):
        if isinstance(exc, DeadKernelError):
            return error_output("DeadKernelError", "the kernel died while running this cell")
        if isinstance(exc, (UnresponsiveKernel, CellTimeoutError)):
            return error_output("UnresponsiveKernelError", "the kernel did not respond to an interrupt after the "
                                                           "time limit of this cell")
        return error_output("KernelProtocolError", f"the kernel's messages could not be read "
                                                   f"({type(exc).__name__}) while running this cell")

    def _responsive(self, timeout: float = 5.0) -> bool:
        """Does the kernel answer after an interrupt? One that ignores SIGINT does not."""
        async def ask():
            await self.kc.kernel_info(reply=True, timeout=timeout)

        try:
            run_sync(ask)()
            return True
        except Exception:
            return False

    def _bound_startup(self) -> None:
        """A kernel may take what is left of the budget to start, at most nbclient's own 60 s: a
        kernel that hangs while starting (a start-up file the student's code wrote, say) cannot
        outlast the budget, at the first start or at any restart."""
        self.startup_timeout = max(1, int(min(60, self.ctx().time_left())))

    # ---------------------------------------------------------------- restart after a crash
    def _discard_kernel(self) -> None:
        for step in (lambda: self.kc.stop_channels() if self.kc is not None else None,
                     lambda: run_sync(self.km.shutdown_kernel)(now=True) if self.km is not None else None):
            try:
                step()
            except Exception:
                pass
        self.kc = None

    def _restart(self, upto: int) -> bool:
        """A new kernel (a new sandbox namespace, the same scratch), with the cells before ``upto``
        that ran before run again, test cells excepted."""
        ctx = self.ctx()
        while self._restarts < ctx.options.max_restarts:
            self._restarts += 1
            self._discard_kernel()
            self._bound_startup()
            try:
                self.create_kernel_manager()
                self.start_new_kernel()
                self.start_new_kernel_client()
            except Exception as exc:
                ctx.result.note(f"the kernel did not restart ({type(exc).__name__})")
                continue
            if self._replay(upto):
                return True
        self._restarts = ctx.options.max_restarts + 1
        if self.km is None:   # nbclient drops a manager whose kernel did not answer; its clean-up needs one
            self.km = ctx.box.kernel_manager()
        return False

    def _replay(self, upto: int) -> bool:
        for j in range(upto):
            cell = self.nb.cells[j]
            if cell.cell_type != "code" or is_test(cell) or self._status.get(j) != "ran":
                continue
            if self.ctx().time_left() < 1:
                return True
            try:
                self.execute_cell(copy.deepcopy(cell), j, store_history=False)
            except Exception:
                self._status[j] = "crashed-on-replay"
                return False
        return True
