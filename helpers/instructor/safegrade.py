"""nbgrader preprocessors for grading that students cannot game or break.

:func:`configure` puts them into nbgrader's ``Autograde`` pipeline:

- ``RestoreLostMetadata`` (sanitize step, before ``OverwriteCells``): a notebook whose answer cells
  lost their nbgrader metadata (cells pasted into a fresh notebook) is rebuilt from the
  gradebook's copy of the assignment; each answer cell gets the student's cell that defines the
  same function. nbgrader alone fails such a notebook (``KeyError`` in ``add_missing_cells``).
- ``SandboxedExecute`` (instead of nbgrader's ``Execute``):

  * every kernel runs in a :class:`helpers.instructor.sandbox.Box` (own user, no network,
    private file system, resource limits) and talks to the grader over ``ipc`` sockets;
  * before the kernel starts, :func:`helpers.instructor.outofkernel.evaluate` checks every graded
    function outside the kernel on fresh random inputs;
  * **partial credit survives a crash.** A cell during which the kernel dies (``os._exit``, a
    signal, the memory limit) or stops answering (an interrupt that is ignored) gets an error
    output saying so, and scores 0 if it is a test cell. The kernel is restarted, the cells that
    ran before it are run again (setup, answer and other non-test cells, except those that
    timed out or killed the kernel), and execution goes on with the next cell; after
    ``max_restarts`` restarts the remaining cells are marked as not run. Points earned by cells
    that had already passed stay, and so do those of independent later cells;
  * a test cell that timed out marks its function as hanging: the function's later test cells
    are not run (one timeout per function, not one per test cell);
  * the whole submission has a time budget (``deadline_func``): once it is spent, remaining cells
    are marked as not run rather than each getting a timeout of its own;
  * processes left behind by a cell (a fork bomb) are killed after every cell;
  * a cell's output is capped (``max_output_bytes``), and so is one message (``max_message_bytes``,
    via ZeroMQ's ``MAXMSGSIZE``), so that a huge print cannot exhaust the grader's memory.
- ``ApplyOutOfKernelVerdicts`` (after ``SaveAutoGrades``): when a test cell passed in the kernel but
  its function failed out of the kernel, the out-of-kernel result wins: the grade's
  ``manual_score`` is set to 0 (nbgrader uses it instead of ``auto_score``), a comment starting
  with ``FLAG`` is attached to the test cell (``cnn-course report`` lists them), and the cell in
  the autograded notebook gets an error output that says why (the feedback shows it). A later
  regrade that no longer flags the cell removes both.

``NOTES`` collects one line per event for the caller (the autograde outcome's reason).
"""
from __future__ import annotations

import ast
import copy
import os
import time
import uuid
from queue import Empty

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_output
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Any, Bool, Dict, Integer

from . import outofkernel, sandbox

FLAG_PREFIX = "FLAG out-of-kernel:"
NOTES: list[str] = []
STATE: dict = {}

def note(text: str) -> None:
    if text not in NOTES:
        NOTES.append(text)


# --------------------------------------------------------------------------- kernel manager
class SandboxKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose clients refuse messages above ``max_message_bytes``."""

    max_message_bytes = Integer(32 * 2 ** 20)

    def client(self, **kwargs):
        import zmq

        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, int(self.max_message_bytes))
        return kc


def _reference(root: str | None) -> dict:
    key = ("ref", root)
    if key not in STATE:
        from pathlib import Path

        from .refdata import reference_functions

        r = Path(root) if root and (Path(root) / "notebooks").is_dir() else None
        STATE[key] = reference_functions(r)
    return STATE[key]


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _names_used(source: str) -> set:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _error(ename: str, evalue: str):
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class SandboxedExecute(Execute):
    """nbgrader's ``Execute`` with a sandboxed kernel, out-of-kernel checks and crash recovery."""

    sandbox_policy = Dict({}, help="helpers.instructor.sandbox.Policy.to_dict(); {} = the defaults").tag(config=True)
    sandbox_enabled = Bool(True, help="Run kernels in the sandbox").tag(config=True)
    out_of_kernel = Bool(True, help="Check the graded functions outside the kernel too").tag(config=True)
    max_restarts = Integer(3, help="Kernel restarts per notebook after a crash").tag(config=True)
    max_output_bytes = Integer(8 * 2 ** 20, help="Output kept per cell (bytes)").tag(config=True)
    max_notebook_output_bytes = Integer(32 * 2 ** 20, help="Output kept per notebook (bytes)").tag(config=True)
    max_message_bytes = Integer(32 * 2 ** 20, help="Largest message accepted from the kernel").tag(config=True)
    deadline_func = Any(None, help="() -> time.monotonic() deadline of the whole submission").tag(config=True)
    seed = Any(None, help="Seed of the fresh out-of-kernel inputs (None: a new one each time)").tag(config=True)
    # A lost "idle" message (an output over max_message_bytes is dropped by ZeroMQ) must not fail the
    # notebook; a kernel that ignores the interrupt is caught by _responsive() instead.
    raise_on_iopub_timeout = Bool(False).tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self._box = None

    # ---------------------------------------------------------------- kernel setup
    def create_kernel_manager(self):
        from jupyter_client.kernelspec import KernelSpec

        km = super().create_kernel_manager()
        if hasattr(km, "max_message_bytes"):
            km.max_message_bytes = self.max_message_bytes
        if self._box is not None and self._box.policy.enabled:
            name = self._box.next_name("kernel")
            km.transport = "ipc"
            km.ip = str(self._box.run / name)
            km.connection_file = str(self._box.run / f"{name}.json")
            km._kernel_spec = KernelSpec(argv=self._box.kernel_argv(log=f"{name}.log"),
                                         display_name="Python 3 (cnn-course sandbox)", language="python",
                                         interrupt_mode="signal", env={})
            self._kernel_log = f"{name}.log"
        return km

    def _course_paths(self, resources):
        from nbgrader.coursedir import CourseDirectory

        info = resources.get("nbgrader", {})
        try:
            cd = CourseDirectory(config=self.config)
            root = cd.root
            submitted = cd.format_path(cd.submitted_directory, info.get("student", "."), info.get("assignment", "."))
            source = cd.format_path(cd.source_directory, ".", info.get("assignment", "."))
            secret = [root, os.path.realpath(os.path.join(root, cd.source_directory)), source]
            db = cd.db_url or ""
            if db.startswith("sqlite:///"):
                secret.append(db[len("sqlite:///"):].split("?")[0])
            return root, [source, submitted], secret
        except Exception:
            return None, [], []

    def preprocess(self, nb, resources, km=None):
        from nbclient.client import NotebookClient
        from nbclient.util import run_sync

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        info = resources.get("nbgrader", {})
        assignment = info.get("assignment", "")
        root, files_from, secret = self._course_paths(resources)
        policy = sandbox.Policy.from_dict(self.sandbox_policy)
        policy.enabled = policy.enabled and self.sandbox_enabled
        self._box = sandbox.Box(policy, f"{info.get('student')}-{assignment}", files_from=files_from, secret=secret)
        self._kernel_log = None
        self._dangerous = set()
        grading = {"verdicts": {}, "test_functions": {}, "events": []}
        try:
            from .course import BY_ID

            functions = list(BY_ID[assignment].functions) if assignment in BY_ID else []
            plan = outofkernel.Plan.from_notebook(self.nb, functions)
            self._plan = plan
            grading["test_functions"] = plan.test_functions
            if self.out_of_kernel and functions:
                t0 = time.monotonic()
                verdicts = outofkernel.evaluate(plan, self._box, _reference(root), cell_timeout=self.timeout or 30,
                                                deadline=self._deadline(), seed=self.seed)
                grading["verdicts"] = {gid: v.__dict__ for gid, v in verdicts.items()}
                self._dangerous = {v.function for v in verdicts.values() if v.status in ("timeout", "crashed")}
                grading["out_of_kernel_seconds"] = time.monotonic() - t0
                self._box.kill_strays()   # whatever the check left behind must not count against the kernel
                for v in verdicts.values():
                    if v.status == "infra":
                        note(f"the out-of-kernel check of {v.function} could not run: {v.message[:120]}")
            run_sync(self._async_run)()
        finally:
            self._box.cleanup()
            self._box = None
        resources["cnn_grading"] = grading
        return self.nb, self.resources

    def _deadline(self) -> float:
        if self.deadline_func is not None:
            try:
                return float(self.deadline_func())
            except Exception:
                pass
        return time.monotonic() + 3600

    # ---------------------------------------------------------------- output cap
    def output(self, outs, msg, display_id, cell_index):
        """Keep at most ``max_output_bytes`` of a cell's output. What decides a grade is never
        dropped: errors, ``execute_result`` (partial credit) and stderr (nbgrader scores a test cell
        that wrote to stderr 0) are kept, shortened; stdout and displays beyond the cap go."""
        content = msg.get("content", {})
        size = len(content.get("text", "")) if isinstance(content.get("text"), str) else 0
        for v in (content.get("data") or {}).values():
            size += len(v) if isinstance(v, (str, bytes)) else 64
        size += sum(len(t) for t in content.get("traceback", []) if isinstance(t, str))
        self._cell_bytes = getattr(self, "_cell_bytes", 0) + size
        self._nb_bytes = getattr(self, "_nb_bytes", 0) + size
        if self._cell_bytes <= self.max_output_bytes and self._nb_bytes <= self.max_notebook_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if not getattr(self, "_cell_truncated", False):
            self._cell_truncated = True
            limit = self.max_output_bytes if self._cell_bytes > self.max_output_bytes else self.max_notebook_output_bytes
            where = "this cell" if self._cell_bytes > self.max_output_bytes else "the notebook"
            outs.append(new_output("stream", name="stdout",
                                   text=f"\n[output truncated by the grader: {where} wrote more than {limit} "
                                        f"bytes]\n"))
            note(f"cell {cell_index}: output truncated")
        msg_type = msg.get("msg_type", "")
        keep = msg_type in ("error", "execute_result") or (msg_type == "stream" and content.get("name") == "stderr")
        if not keep:
            return None
        short = copy.deepcopy(msg)
        c = short["content"]
        if isinstance(c.get("text"), str):
            c["text"] = c["text"][:2000]
        if isinstance(c.get("data"), dict):
            c["data"] = {k: (v[:2000] if isinstance(v, str) else v) for k, v in c["data"].items()
                         if k == "text/plain"}
        if isinstance(c.get("traceback"), list):
            c["traceback"] = [str(t)[:2000] for t in c["traceback"][-20:]]
        if isinstance(c.get("evalue"), str):
            c["evalue"] = c["evalue"][:2000]
        return super().output(outs, short, display_id, cell_index)

    # ---------------------------------------------------------------- the run
    def _kernel_pid(self):
        try:
            return self.km.provisioner.pid
        except Exception:
            return None

    def _is_test(self, cell) -> bool:
        m = _meta(cell)
        return bool(m.get("grade")) and not m.get("solution")

    async def _async_run(self):
        from nbclient.util import ensure_async

        cells = self.nb.cells
        self._status = {}
        self._nb_bytes = 0
        hung: set = set()
        restarts = 0
        self.km = self.create_kernel_manager()
        if not await self._start_kernel():
            tail = self._box.log_tail(self._kernel_log) if self._box is not None and self._kernel_log else ""
            raise RuntimeError(f"the kernel did not start{' in the sandbox' if self._box is not None else ''}: "
                               f"{tail[-400:] or 'no message'}")
        try:
            info_msg = await self.async_wait_for_reply(await ensure_async(self.kc.kernel_info()))
            if info_msg and "language_info" in info_msg.get("content", {}):
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            index = 0
            while index < len(cells):
                cell = cells[index]
                if cell.cell_type != "code" or not cell.source.strip():
                    index += 1
                    continue
                gid = _meta(cell).get("grade_id", f"#{index}")
                funcs = set(self._plan.test_functions.get(gid, [])) if self._is_test(cell) else set()
                if restarts > self.max_restarts:
                    cell.outputs = [_error("KernelDied", f"not run: the kernel died {restarts} times")]
                    index += 1
                    continue
                if self._deadline() - time.monotonic() < 1:
                    cell.outputs = [_error("BudgetExceeded", "not run: the submission's time budget ran out")]
                    note("the time budget ran out")
                    index += 1
                    continue
                if funcs and funcs & hung:
                    names = ", ".join(sorted(funcs & hung))
                    cell.outputs = [_error("CellTimeoutError", f"not run: {names} timed out or killed the kernel "
                                                               f"in an earlier test")]
                    index += 1
                    continue
                if not _meta(cell):
                    # a lesson or scratch cell (no points) that calls a function known to hang or to kill
                    # its process: skipping it saves a timeout or a kernel restart
                    calls = _names_used(cell.source) & (hung | self._dangerous)
                    if calls:
                        cell.outputs = [_error("NotRunByGrader", f"not run: it calls {', '.join(sorted(calls))}, "
                                                                 f"which hung or killed its process when checked")]
                        index += 1
                        continue
                self._cell_bytes, self._cell_truncated = 0, False
                try:
                    await self.async_execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
                    timed_out = any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError"
                                    for o in cell.get("outputs", []))
                    self._status[index] = "timeout" if timed_out else "ran"
                    if timed_out:
                        hung |= funcs
                        note(f"cell {gid} timed out")
                        if not await self._responsive():
                            raise CellTimeoutError("the kernel did not respond to an interrupt")
                    if self._box is not None:
                        n = self._box.kill_strays(keep={self._kernel_pid()}, pgid=self._kernel_pid())
                        if n:
                            note(f"killed {n} processes left behind by cell {gid}")
                except Exception as exc:   # a dead kernel, a stuck one, or garbage on the channels
                    dead = isinstance(exc, DeadKernelError)
                    self._status[index] = "crashed"
                    hung |= funcs
                    if dead:
                        ename, why = "DeadKernelError", "the kernel died while running this cell"
                    elif isinstance(exc, CellTimeoutError):
                        ename, why = "UnresponsiveKernelError", \
                            "the kernel did not respond to an interrupt after the time limit"
                    else:
                        ename, why = "KernelProtocolError", \
                            f"the kernel's messages could not be read ({type(exc).__name__}) while running this cell"
                    cell.outputs = [_error(ename, why)]
                    note(f"{why.replace('this cell', 'cell ' + gid)}; restarted")
                    restarts += 1
                    while restarts <= self.max_restarts and not await self._restart(index):
                        restarts += 1
                index += 1
            self.set_widgets_metadata()
        finally:
            try:
                if self.km is not None:
                    await self._async_cleanup_kernel()
            except Exception:
                pass
            self.km = self.kc = None
            if self._box is not None:
                self._box.kill_strays()

    async def _start_kernel(self, attempts: int = 3) -> bool:
        """Start ``self.km``'s kernel and a client; on failure kill what is left and try again."""
        import asyncio

        for attempt in range(attempts):
            try:
                if self._box is not None:
                    self._box.unseal_run()
                await self.async_start_new_kernel()
                await self.async_start_new_kernel_client()
                if self._box is not None:
                    self._box.seal_run()
                return True
            except Exception as exc:
                note(f"the kernel did not start ({type(exc).__name__}); trying again" if attempt + 1 < attempts
                     else f"the kernel did not start ({type(exc).__name__})")
                await self._discard_kernel()
                await asyncio.sleep(0.5 * (attempt + 1))
                self.km = self.create_kernel_manager()
        return False

    async def _discard_kernel(self) -> None:
        """Shut the current kernel down (if any) and kill what it left behind in the sandbox."""
        try:
            if self.km is not None:
                await self._async_cleanup_kernel()
        except Exception:
            pass
        self.kc = None
        if self._box is not None:
            self._box.kill_strays()

    async def _responsive(self, timeout: float = 5.0) -> bool:
        """Does the kernel answer (after an interrupt)? A kernel that ignores SIGINT does not."""
        from nbclient.util import ensure_async

        try:
            msg_id = await ensure_async(self.kc.kernel_info())
            return await self._wait_reply(msg_id, timeout) == "done"
        except Exception:
            return False

    async def _restart(self, upto: int) -> bool:
        """A new kernel, with the setup, answer and other cells before ``upto`` run again."""
        from nbclient.util import ensure_async

        await self._discard_kernel()
        self.km = self.create_kernel_manager()
        if not await self._start_kernel():
            return False
        for j in range(upto):
            cell = self.nb.cells[j]
            if cell.cell_type != "code" or self._is_test(cell) or self._status.get(j) != "ran":
                continue
            if self._deadline() - time.monotonic() < 1:
                return True
            msg_id = await ensure_async(self.kc.execute(cell.source, store_history=False, stop_on_error=False,
                                                        allow_stdin=False))
            state = await self._wait_reply(msg_id, min(self.timeout or 30, self._deadline() - time.monotonic()))
            if state != "done":
                self._status[j] = "crashed-on-replay"
                return False
        return True

    async def _wait_reply(self, msg_id: str, timeout: float) -> str:
        from nbclient.util import ensure_async

        end = time.monotonic() + max(1.0, timeout)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return "timeout"
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(1.0, left)))
            except Empty:
                if not await ensure_async(self.kc.is_alive()):
                    return "died"
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return "done"


# --------------------------------------------------------------------------- verdicts into the gradebook
class ApplyOutOfKernelVerdicts(NbGraderPreprocessor):
    """After ``SaveAutoGrades``: the out-of-kernel result wins over a test that passed in the kernel."""

    def preprocess(self, nb, resources):
        from nbgrader.api import Comment, Gradebook

        grading = resources.get("cnn_grading") or {}
        verdicts = grading.get("verdicts") or {}
        info = resources["nbgrader"]
        notebook, assignment, student = info["notebook"], info["assignment"], info["student"]
        with Gradebook(info["db_url"]) as gb:
            snb = gb.find_submission_notebook(notebook, assignment, student)
            for cell in nb.cells:
                meta = _meta(cell)
                if not (meta.get("grade") and not meta.get("solution") and cell.cell_type == "code"):
                    continue
                gid = meta["grade_id"]
                try:
                    grade_cell = gb.find_grade_cell(gid, notebook, assignment)
                    grade = gb.find_grade(gid, notebook, assignment, student)
                except Exception:
                    continue
                verdict = verdicts.get(gid)
                bad = [verdict] if verdict and verdict["status"] not in ("ok", "infra") else []
                existing = gb.db.query(Comment).filter(Comment.notebook_id == snb.id,
                                                       Comment.cell_id == grade_cell.id).one_or_none()
                ours = existing is not None and (existing.manual_comment or "").startswith(FLAG_PREFIX)
                if bad and (grade.auto_score or 0) > 0:
                    v = outofkernel.Verdict(**bad[0])
                    detail = f" ({v.message[:300]})" if v.message else ""
                    text = (f"{FLAG_PREFIX} the in-kernel test passed, but {v.reason()}{detail}. "
                            f"Scored 0 (was {grade.auto_score:g}).")
                    grade.manual_score = 0.0
                    grade.needs_manual_grade = False
                    if existing is None:
                        gb.db.add(Comment(notebook_id=snb.id, cell_id=grade_cell.id, manual_comment=text))
                    elif ours or not existing.manual_comment:
                        existing.manual_comment = text
                    cell.outputs = list(cell.get("outputs", [])) + [_error(
                        "OutOfKernelCheckFailed", f"this test passed in the notebook, but {v.reason()} when the "
                                                  f"grader ran your code again outside the notebook; scored 0")]
                    note(f"FLAG {gid}: {v.reason()}")
                elif ours:
                    gb.db.delete(existing)
                    if grade.manual_score == 0:
                        grade.manual_score = None
                    grade.needs_manual_grade = grade.auto_score is None
            gb.db.commit()
        return nb, resources


# --------------------------------------------------------------------------- lost metadata
class RestoreLostMetadata(NbGraderPreprocessor):
    """Rebuild a notebook whose answer cells lost their nbgrader metadata, from the gradebook's cells."""

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook
        from nbgrader.preprocessors import OverwriteCells

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            try:
                source_nb = gb.find_notebook(info["notebook"], info["assignment"])
            except Exception:
                return nb, resources
            source_cells = list(source_nb.source_cells)
            solution_ids = {c.name for c in source_nb.solution_cells}
            grade_cells = {c.name: c for c in source_nb.grade_cells}
            present = {_meta(c).get("grade_id") for c in nb.cells if _meta(c)}
            missing = [sid for sid in (c.name for c in source_cells) if sid in solution_ids and sid not in present]
            if not missing:
                return nb, resources
            # the student's code cells that carry no nbgrader metadata, with the functions they define
            free = [c for c in nb.cells if c.cell_type == "code" and not _meta(c) and c.source.strip()]
            defs = [set(outofkernel.defined_names(c.source)) for c in free]
            used: set = set()
            builder = OverwriteCells(parent=self)
            cells = []
            matched = []
            by_id = {_meta(c).get("grade_id"): c for c in nb.cells if _meta(c).get("grade_id")}
            for sc in source_cells:
                if sc.name in by_id:
                    cells.append(by_id[sc.name])
                    continue
                if sc.name in solution_ids:
                    wanted = set(outofkernel.defined_names(sc.source))
                    pick = next((i for i, d in enumerate(defs) if i not in used and d & wanted), None)
                    if pick is None:
                        src = sc.source
                    else:
                        used.add(pick)
                        src = free[pick].source
                        matched.append(sc.name)
                    cell = new_code_cell(src)
                    cell.metadata["nbgrader"] = NotebookNode({"grade": sc.name in grade_cells, "solution": True,
                                                             "locked": False, "grade_id": sc.name,
                                                             "schema_version": 3})
                    if sc.name in grade_cells:
                        cell.metadata["nbgrader"]["points"] = grade_cells[sc.name].max_score
                    cells.append(cell)
                elif sc.name in grade_cells:
                    restored = nbformat.from_dict(builder.missing_cell_transform(sc, grade_cells[sc.name].max_score))
                    restored.setdefault("id", uuid.uuid4().hex[:8])
                    cells.append(restored)
                else:  # a locked cell (setup): restored from the gradebook
                    cell = new_code_cell(sc.source) if sc.cell_type == "code" else None
                    if cell is None:
                        continue
                    cell.metadata["nbgrader"] = NotebookNode({"grade": False, "solution": False, "locked": True,
                                                             "grade_id": sc.name, "schema_version": 3})
                    cells.append(cell)
            # the student's other code (helpers they wrote) goes before the first answer cell
            extra = [copy.deepcopy(free[i]) for i in range(len(free)) if i not in used]
            first_answer = next((i for i, c in enumerate(cells) if _meta(c).get("solution")), len(cells))
            cells[first_answer:first_answer] = extra
            nb.cells = cells
            note(f"nbgrader metadata was missing for answer cell(s) {', '.join(missing)}: notebook rebuilt from "
                 f"the assignment; matched by function name: {', '.join(matched) or 'none'}")
        return nb, resources


# --------------------------------------------------------------------------- wiring
def configure(config, *, policy: sandbox.Policy | None = None, sandbox_enabled: bool = True,
              out_of_kernel: bool = True, deadline_func=None) -> None:
    """Put the preprocessors of this module into nbgrader's ``Autograde`` pipeline (in ``config``)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds,
                                        IgnorePattern, LimitOutput, OverwriteCells, OverwriteKernelspec,
                                        SaveAutoGrades)

    config.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                               RestoreLostMetadata, OverwriteCells, CheckCellMetadata]
    config.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, ApplyOutOfKernelVerdicts,
                                                AssignLatePenalties, CheckCellMetadata]
    from .grading.preprocessors.strip_active import configure_strip_active

    configure_strip_active(config)   # before SaveAutoGrades: no student script in the autograded notebook
    config.SandboxedExecute.sandbox_policy = (policy or sandbox.Policy()).to_dict()
    config.SandboxedExecute.sandbox_enabled = bool(sandbox_enabled)
    config.SandboxedExecute.out_of_kernel = bool(out_of_kernel)
    if deadline_func is not None:
        config.SandboxedExecute.deadline_func = deadline_func
