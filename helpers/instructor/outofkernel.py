"""Scoring that the kernel cannot fake: each graded function checked again, outside the kernel.

The in-kernel tests run in the same interpreter as the student's code, so an answer cell can
change what they see: redefine ``check_function`` (or put one into ``builtins``), patch
``np.abs`` or ``np.allclose``, blank the test cells with an IPython input transformer, or look
the expected outputs up in ``data/reference_outputs.h5``. This module does not trust the kernel:

1. :class:`Plan` takes, from the notebook being graded, the setup cells (locked, restored from
   the gradebook), the answer cells (``nbgrader.solution``), the ``def``, ``class`` and ``import``
   statements of the student's other code cells, and the position of each function's first test
   cell; a test cell belongs to the function(s) whose name its source passes to
   ``check_function``/``check_case``.
2. :func:`fresh_args` draws fresh random inputs at grading time, one set per case that a test
   cell checks: the case's shapes, pads, strides and modes (and its exact zeros), with new random
   values (a new seed per submission), never the stored HDF5 values. A test cell is judged on the
   fresh versions of its own cases, so a function that is right on the stride-1 cases and wrong
   on stride 3 keeps the points of the stride-1 cell, as in the kernel.
3. A fresh process in the sandbox (``python -I -m helpers.instructor.outofkernel --child FD``)
   runs those cells in notebook order and, where the first test cell of a function would run,
   calls the function on the inputs. It sends back, one JSON line per event on a pipe, only
   plain data: arrays as dtype, shape and raw bytes, numbers, strings, tuples, lists, dicts.
   Nothing is unpickled; the grader checks every size, dtype and depth while decoding.
4. The grader compares the results with the reference solutions (taken from the source
   notebooks, :func:`helpers.instructor.refdata.reference_functions`), run here on the same
   inputs, with the same checks the in-kernel tests use (:func:`helpers.checks.check_case`):
   return type, shape, dtype, values, the cache, inputs left unchanged.

Each answer cell and each call has the cell timeout. An answer cell that does not finish (a
top-level ``while True`` after a correct ``def``) or that kills its process fails every test cell of
the functions it defines; a call that hangs or kills its process fails its case and the function's
later cases (as in the kernel, where later test cells of a hanging function are not run); either
way the check goes on in a new process with what is left.

The verdicts (:class:`Verdict`, one per test cell) go to
:class:`helpers.instructor.safegrade.ApplyOutOfKernelVerdicts`, which sets a test cell to 0 when the
kernel said "passed" and this check did not.
"""
from __future__ import annotations

import ast
import base64
import copy
import json
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

MAX_LINE = 64 * 2 ** 20        # one event line from the child
MAX_DEPTH = 12
ALLOWED_DTYPES = {"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"}
CHECK_CALLS = {"check_function", "check_case", "check_not_mutated"}


# --------------------------------------------------------------------------- plain-data encoding
class Opaque:
    """A value the child could not send as plain data (only its type name crosses)."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self):
        return f"<{self.type_name}>"


def encode(value, depth: int = 0):
    if depth > MAX_DEPTH:
        return {"opaque": "too deeply nested"}
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        if arr.dtype.str not in ALLOWED_DTYPES:
            return {"opaque": f"ndarray of dtype {arr.dtype}"}
        return {"nd": arr.dtype.str, "shape": list(arr.shape), "b64": base64.b64encode(arr.tobytes()).decode()}
    if isinstance(value, np.generic):
        arr = np.asarray(value)
        if arr.dtype.str not in ALLOWED_DTYPES:
            return {"opaque": f"numpy scalar {type(value).__name__}"}
        return {"np": arr.dtype.str, "b64": base64.b64encode(arr.tobytes()).decode()}
    if isinstance(value, bool):
        return {"py": "bool", "v": bool(value)}
    if isinstance(value, int):
        return {"py": "int", "v": int(value)} if abs(value) < 2 ** 63 else {"opaque": "int"}
    if isinstance(value, float):
        return {"py": "float", "v": repr(float(value))}
    if isinstance(value, str):
        return {"py": "str", "v": value[:1000]}
    if value is None:
        return {"py": "none"}
    if isinstance(value, (tuple, list)):
        return {"seq": "tuple" if isinstance(value, tuple) else "list",
                "items": [encode(v, depth + 1) for v in list(value)[:64]]}
    if isinstance(value, dict):
        return {"map": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in list(value.items())[:64]]}
    return {"opaque": type(value).__name__[:80]}


class DecodeError(ValueError):
    pass


def decode(obj, depth: int = 0):
    """Inverse of :func:`encode`, for data from an untrusted process: checks every field."""
    if depth > MAX_DEPTH or not isinstance(obj, dict):
        raise DecodeError("malformed value")
    if "nd" in obj:
        dt, shape, raw = obj["nd"], obj.get("shape"), obj.get("b64")
        if dt not in ALLOWED_DTYPES or not isinstance(shape, list) or len(shape) > 8 or \
                not all(isinstance(s, int) and 0 <= s <= 2 ** 31 for s in shape) or not isinstance(raw, str):
            raise DecodeError("malformed array")
        data = base64.b64decode(raw.encode(), validate=True)
        dtype = np.dtype(dt)
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
            raise DecodeError("array size does not match its shape")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if "np" in obj:
        dt, raw = obj["np"], obj.get("b64")
        if dt not in ALLOWED_DTYPES or not isinstance(raw, str):
            raise DecodeError("malformed numpy scalar")
        data = base64.b64decode(raw.encode(), validate=True)
        if len(data) != np.dtype(dt).itemsize:
            raise DecodeError("malformed numpy scalar")
        return np.frombuffer(data, dtype=np.dtype(dt))[0]
    if "py" in obj:
        kind, v = obj["py"], obj.get("v")
        if kind == "bool" and isinstance(v, bool):
            return v
        if kind == "int" and isinstance(v, int) and not isinstance(v, bool):
            return v
        if kind == "float" and isinstance(v, str) and len(v) < 40:
            return float(v)
        if kind == "str" and isinstance(v, str):
            return v[:1000]
        if kind == "none":
            return None
        raise DecodeError("malformed scalar")
    if "seq" in obj:
        items = obj.get("items")
        if not isinstance(items, list) or len(items) > 64:
            raise DecodeError("malformed sequence")
        vals = [decode(v, depth + 1) for v in items]
        return tuple(vals) if obj["seq"] == "tuple" else vals
    if "map" in obj:
        pairs = obj.get("map")
        if not isinstance(pairs, list) or len(pairs) > 64:
            raise DecodeError("malformed mapping")
        out = {}
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2:
                raise DecodeError("malformed mapping")
            k = decode(pair[0], depth + 1)
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise DecodeError("malformed mapping key")
            out[k] = decode(pair[1], depth + 1)
        return out
    if "opaque" in obj:
        return Opaque(str(obj["opaque"])[:80])
    raise DecodeError("malformed value")


# --------------------------------------------------------------------------- fresh inputs
# Positional arguments that carry values although they are plain numbers (every other int is
# structure: a pad, a shape, a stride).
VALUE_ARGS = {"distribute_value": {0}}


def freshen(value, rng: np.random.Generator, is_value: bool = False):
    """The same structure with new random values: arrays keep their shape, dtype, sign range and
    exact zeros; integers (pads, shapes) and dicts (hyperparameters) and strings (modes) stay."""
    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            return rng.random(value.shape) < 0.5
        if value.size == 0:
            return value.copy()
        if value.dtype.kind in "iu":
            lo, hi = int(value.min()), int(value.max())
            if value.dtype == np.uint8:
                lo, hi = (200, 255) if lo >= 200 else (0, 255)
            elif hi - lo + 1 < value.size:
                lo, hi = lo - value.size, hi + value.size
            if hi - lo + 1 >= value.size:   # distinct values: a unique maximum stays unique
                vals = rng.permutation(np.arange(lo, hi + 1))[:value.size]
            else:
                vals = rng.integers(lo, hi + 1, size=value.size)
            return vals.reshape(value.shape).astype(value.dtype)
        if value.dtype.kind == "f":
            zeros = value == 0
            if float(np.min(value)) >= 0:
                new = rng.random(value.shape) * (float(np.max(value)) or 1.0)
            else:
                new = rng.standard_normal(value.shape) * max(1.0, float(np.std(value)))
            new[zeros] = 0.0
            return new.astype(value.dtype)
        return value.copy()
    if isinstance(value, tuple):
        return tuple(freshen(v, rng) for v in value)
    if isinstance(value, list):
        return [freshen(v, rng) for v in value]
    if isinstance(value, dict):
        return dict(value)
    if is_value and isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(rng.standard_normal() * max(1.0, abs(float(value))))
    return copy.deepcopy(value)


def fresh_args(func: str, case: str, reference: dict, rng: np.random.Generator) -> tuple:
    """Fresh random arguments shaped like the stored case ``case`` of ``func`` (same shapes, pads,
    strides, modes; new values), drawn now: what a test cell checks, on inputs nobody has seen."""
    from .cases import CASES

    state = np.random.get_state()
    try:
        args = CASES[func][case].build(reference)
    finally:
        np.random.set_state(state)
    values = VALUE_ARGS.get(func, set())
    return tuple(freshen(a, rng, i in values) for i, a in enumerate(args))


def visible_cases(func: str) -> list[str]:
    from .cases import CASES

    return [name for name, spec in CASES.get(func, {}).items() if spec.visible]


# --------------------------------------------------------------------------- the plan
def defined_names(source: str) -> list[str]:
    """Top-level ``def`` names of a cell (none if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return [m.group(1) for m in re.finditer(r"^def\s+([A-Za-z_]\w*)\s*\(", source, re.M)]
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def definitions_only(source: str) -> str:
    """The ``def``, ``class`` and ``import`` statements of a cell, in order (nothing else runs)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    keep = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                   ast.Import, ast.ImportFrom))]
    return "\n\n".join(ast.get_source_segment(source, n) or "" for n in keep)


def checks_in_cell(source: str, known) -> list[tuple[str, list[str] | None]]:
    """What a test cell checks: ``[(function, cases)]`` for each ``check_function(fn, "name", cases)``
    or ``check_case(fn, "name", case)``; ``cases`` is None for the default (the visible cases)."""
    known = set(known)
    found: list = []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        for m in re.finditer(r"check_(?:function|case)\(\s*(\w+)\s*,\s*['\"](\w+)['\"]", source):
            if m.group(2) in known:
                found.append((m.group(2), None))
        return found
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else \
            node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if name not in CHECK_CALLS:
            continue
        func = None
        for arg in node.args[:2]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value in known:
                func = arg.value
            elif func is None and isinstance(arg, ast.Name) and arg.id in known:
                func = arg.id
        if func is None:
            continue
        cases_node = node.args[2] if len(node.args) > 2 else \
            next((k.value for k in node.keywords if k.arg in ("cases", "case")), None)
        cases = None
        if cases_node is not None:
            try:
                value = ast.literal_eval(cases_node)
                cases = [value] if isinstance(value, str) else [str(c) for c in value] if value is not None else None
            except (ValueError, TypeError, SyntaxError):
                cases = None
        found.append((func, cases))
    return found


def functions_called(source: str, known) -> list[str]:
    """Graded functions that a test cell checks (the name passed to ``check_function(fn, "name")``)."""
    return list(dict.fromkeys(f for f, _ in checks_in_cell(source, known)))


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


@dataclass
class Plan:
    """What to run out of the kernel, in notebook order, and what each test cell checks."""

    functions: list                                    # graded functions of the assignment
    steps: list = field(default_factory=list)          # dicts: kind setup|answer|free|eval
    test_cases: dict = field(default_factory=dict)     # test cell grade_id -> [(function, case)]
    defined_in: dict = field(default_factory=dict)     # function -> answer cell grade_id

    @property
    def test_functions(self) -> dict:
        return {gid: list(dict.fromkeys(f for f, _ in pairs)) for gid, pairs in self.test_cases.items()}

    def cases_of(self, func: str) -> list[str]:
        return list(dict.fromkeys(c for pairs in self.test_cases.values() for f, c in pairs if f == func))

    @classmethod
    def from_notebook(cls, nb, functions) -> "Plan":
        plan = cls(list(functions))
        pending = list(functions)
        for index, cell in enumerate(nb.cells):
            if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
                continue
            meta = _meta(cell)
            gid = meta.get("grade_id", f"cell-{index}")
            if meta.get("solution"):
                plan.steps.append({"kind": "answer", "id": gid, "index": index, "source": cell.source})
                for name in defined_names(cell.source):
                    if name in functions:
                        plan.defined_in[name] = gid
            elif meta.get("grade"):
                pairs = []
                for func, cases in checks_in_cell(cell.source, functions):
                    for case in (cases if cases is not None else visible_cases(func)):
                        pairs.append((func, case))
                plan.test_cases[gid] = list(dict.fromkeys(pairs))
                due = [f for f, _ in pairs if f in pending]
                due = list(dict.fromkeys(due))
                if due:
                    plan.steps.append({"kind": "eval", "id": gid, "index": index, "functions": due})
                    pending = [f for f in pending if f not in due]
            elif meta.get("locked"):
                plan.steps.append({"kind": "setup", "id": gid, "index": index, "source": cell.source})
            else:
                src = definitions_only(cell.source)
                if src.strip():
                    plan.steps.append({"kind": "free", "id": gid, "index": index, "source": src})
        return plan


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


# --------------------------------------------------------------------------- the child (untrusted)
def _child_main(fd: int) -> int:  # pragma: no cover - runs inside the sandbox
    import builtins
    import traceback

    out = os.fdopen(fd, "w", buffering=1)
    write, dumps = out.write, json.dumps
    job = json.loads(sys.stdin.read())
    sys.stdin = open(os.devnull)
    home = os.environ.get("HOME")
    if home and home not in sys.path:
        sys.path.append(home)         # the student's own modules, after everything else

    def send(obj):
        try:
            write(dumps(obj) + "\n")
            out.flush()
        except Exception:
            pass

    def describe(exc):
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (line {tb[-1].lineno})" if tb else ""
        return f"{type(exc).__name__}: {str(exc)[:300]}{where}"

    class _Null:
        """Absorbs whatever IPython-only code does with it (``get_ipython().input_transformers...``)."""

        def __call__(self, *a, **k):
            return _Null()

        def __getattr__(self, name):
            return _Null()

        def __iter__(self):
            return iter(())

        def __bool__(self):
            return False

    class _Shell(_Null):
        """A stand-in for IPython's shell: answer cells may call ``get_ipython()`` or ``display``."""

        def __init__(self, ns):
            object.__setattr__(self, "user_ns", ns)
            ns.setdefault("In", [""])
            ns.setdefault("Out", {})

    ns = {"__name__": "__main__", "__builtins__": builtins}
    shell = _Shell(ns)
    ns["get_ipython"] = lambda: shell
    builtins.display = lambda *a, **k: None      # IPython puts display() into builtins

    def to_python(source):
        try:
            return compile(source, "<cell>", "exec") and source
        except SyntaxError:
            try:   # IPython syntax (%magics, !shell): turn it into get_ipython() calls (no-ops here)
                from IPython.core.inputtransformer2 import TransformerManager

                return TransformerManager().transform_cell(source)
            except Exception:
                return source

    skip_cells = set(job.get("skip_cells", []))
    skip = {(f, k) for f, k in job.get("skip", [])}
    send({"event": "ready"})
    for step in job["steps"]:
        if step["kind"] in ("setup", "answer", "free"):
            if step["id"] in skip_cells:
                continue
            send({"event": "cell-start", "id": step["id"]})
            try:
                exec(compile(to_python(step["source"]), f"<cell {step['id']}>", "exec"), ns)
                send({"event": "cell-done", "id": step["id"]})
            except BaseException as exc:  # the student's code may raise anything, SystemExit too
                send({"event": "cell-done", "id": step["id"], "error": describe(exc)})
        elif step["kind"] == "eval":
            for func in step["functions"]:
                todo = [k for k in range(len(job["inputs"].get(func, []))) if (func, k) not in skip]
                if not todo:
                    continue
                send({"event": "func-start", "function": func})
                fn = ns.get(func)
                if not callable(fn):
                    send({"event": "func-undefined", "function": func})
                    continue
                for k in todo:
                    args = decode(job["inputs"][func][k])
                    send({"event": "case-start", "function": func, "case": k})
                    try:
                        result = fn(*args)
                        send({"event": "result", "function": func, "case": k, "value": encode(result),
                              "after": encode(args)})
                    except BaseException as exc:
                        send({"event": "result", "function": func, "case": k, "error": describe(exc)})
                send({"event": "func-done", "function": func})
    send({"event": "finished"})
    out.close()
    return 0


# --------------------------------------------------------------------------- the grader's side
class _Child:
    """One run of the child in the sandbox, read event by event with deadlines."""

    def __init__(self, box, job: dict, name: str):
        r, w = os.pipe()
        self.r = r
        cmd = [sys.executable, "-I", "-m", "helpers.instructor.outofkernel", "--child", str(w)]
        self.log = f"{name}.log"
        err = box.open_log(self.log) if hasattr(box, "open_log") else subprocess.DEVNULL
        try:
            if box is not None:   # a new sandbox of the box (its own PID namespace), cwd its scratch folder
                self.proc = box.spawn(cmd, pass_fds=(w,), env={"MPLBACKEND": "Agg"}, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=err)
            else:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                             pass_fds=[w], start_new_session=True,
                                             env={**os.environ, "MPLBACKEND": "Agg"})
        finally:
            os.close(w)
            if isinstance(err, int) and err >= 0:
                os.close(err)
        try:
            self.proc.stdin.write(json.dumps(job).encode())
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.buf = b""
        self.eof = False

    def next_event(self, deadline: float):
        """The next event, ``"timeout"`` or ``"eof"``."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                try:
                    ev = json.loads(line)
                except ValueError:
                    return {"event": "garbage"}
                return ev if isinstance(ev, dict) else {"event": "garbage"}
            if self.eof:
                return "eof"
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([self.r], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                self.eof = True
                continue
            self.buf += chunk
            if len(self.buf) > MAX_LINE and b"\n" not in self.buf:
                return {"event": "garbage"}

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.close(self.r)
        except OSError:
            pass


def _expected(reference: dict, func: str, args: tuple):
    from ..checks import SPECS
    from .cases import NOT_STORED

    names = SPECS[func].returns
    result = reference[func](*copy.deepcopy(args))
    values = result if len(names) > 1 else (result,)
    return {n: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for n, v in zip(names, values) if n not in NOT_STORED}


def compare(func: str, k: int, args: tuple, got, after, expected: dict) -> str | None:
    """``None`` if ``got`` is right for ``args``; else what is wrong (the in-kernel checks' own message)."""
    from ..checks import SPECS, _check_not_mutated, check_case
    from ..data import Case

    case = Case(func, f"fresh-{k + 1}", "fresh random inputs drawn at grading time", False, args, expected)
    try:
        check_case(lambda *a: got, func, case, quiet=True)
    except AssertionError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return " ".join(lines[1:4])[:400] or "wrong result"
    except Exception as exc:
        return f"the result could not be checked: {type(exc).__name__}: {str(exc)[:200]}"
    msg = _check_not_mutated(func, SPECS[func], args, after) if isinstance(after, tuple) and len(after) == len(args) \
        else None
    return msg


def evaluate(plan: Plan, box, reference: dict, *, cell_timeout: float = 30, deadline: float | None = None,
             seed: int | None = None, startup_timeout: float = 120) -> dict:
    """Run ``plan`` in ``box``; return ``{test cell grade_id: Verdict}`` for every test cell that checks
    a graded function. Each test cell is judged on fresh inputs shaped like its own cases."""
    rng = np.random.default_rng(seed)
    deadline = deadline or (time.monotonic() + 3600)
    cases = {f: plan.cases_of(f) for f in plan.functions}
    inputs: dict = {}
    status: dict = {}          # (function, k) -> Verdict for cases that did not produce a result
    for f, names in cases.items():
        inputs[f] = []
        for k, c in enumerate(names):
            try:
                inputs[f].append(fresh_args(f, c, reference, rng))
            except Exception as exc:
                inputs[f].append(())
                status[(f, k)] = Verdict(f, "infra", f"no fresh inputs for case {c}: {type(exc).__name__}", c)
    job_inputs = {f: [encode(a) for a in v] for f, v in inputs.items()}
    results: dict = {}         # (function, k) -> "result" event
    skip_cells: set = set()
    cell_status: dict = {}
    undefined: set = set()
    ready_once = False

    def todo():
        return [(f, k) for f in inputs for k in range(len(inputs[f]))
                if (f, k) not in results and (f, k) not in status and f not in undefined]

    def fail_from(f, k, verdict_status, message=""):
        for j in range(k, len(inputs[f])):
            if (f, j) not in results and (f, j) not in status:
                status[(f, j)] = Verdict(f, verdict_status, message, cases[f][j])

    runs, max_runs = 0, len(plan.steps) + sum(len(v) for v in inputs.values()) + 2
    while todo() and runs < max_runs and time.monotonic() < deadline:
        runs += 1
        job = {"steps": plan.steps, "inputs": job_inputs, "skip_cells": sorted(skip_cells),
               "skip": [[f, k] for f in inputs for k in range(len(inputs[f])) if (f, k) not in todo()]}
        child = _Child(box, job, box.next_name("outofkernel") if box is not None else "outofkernel")
        current = None   # ("cell", id) | ("func", f) | ("case", f, k)
        step_deadline = min(deadline, time.monotonic() + startup_timeout)
        try:
            while True:
                ev = child.next_event(step_deadline)
                if ev in ("timeout", "eof") or (isinstance(ev, dict) and ev.get("event") == "garbage"):
                    kind = ev if ev in ("timeout", "eof") else "garbage"
                    verdict_status = "timeout" if kind == "timeout" else "crashed"
                    message = "the checking process sent garbage" if kind == "garbage" else ""
                    if current is None:
                        if not ready_once or time.monotonic() >= deadline:
                            # no student code has run yet (or the budget is gone): not the student's doing
                            why = "the time budget ran out" if time.monotonic() >= deadline else \
                                f"the checking process did not start ({kind})"
                            tail = box.log_tail(child.log) if box is not None else ""
                            for f, k in todo():
                                status[(f, k)] = Verdict(f, "infra", f"{why} {tail}".strip()[:300], cases[f][k])
                        else:
                            # it died between two steps: code the answer cells left running (a thread, a
                            # signal handler) killed it; whatever is still to check fails
                            for f, k in todo():
                                status[(f, k)] = Verdict(f, "crashed", "the checking process died between steps",
                                                         cases[f][k])
                    elif current[0] == "cell":
                        skip_cells.add(current[1])
                        cell_status[current[1]] = verdict_status
                    elif current[0] == "case":
                        fail_from(current[1], current[2], verdict_status, message)
                    else:
                        f = current[1]
                        nxt = next((k for k in range(len(inputs[f])) if (f, k) not in results), 0)
                        fail_from(f, nxt, verdict_status, message)
                    break
                e = ev.get("event")
                now = time.monotonic()
                if e == "ready":
                    ready_once = True
                    step_deadline = min(deadline, now + cell_timeout)
                elif e == "cell-start":
                    current = ("cell", ev.get("id"))
                    step_deadline = min(deadline, now + cell_timeout)
                elif e == "cell-done":
                    cell_status.setdefault(ev.get("id"), "error" if ev.get("error") else "ok")
                    current = None
                    step_deadline = min(deadline, now + cell_timeout)
                elif e == "func-start" and ev.get("function") in inputs:
                    current = ("func", ev["function"])
                    step_deadline = min(deadline, now + cell_timeout)
                elif e == "func-undefined":
                    undefined.add(ev.get("function"))
                    current = None
                elif e == "case-start" and ev.get("function") in inputs and isinstance(ev.get("case"), int):
                    current = ("case", ev["function"], ev["case"])
                    step_deadline = min(deadline, now + cell_timeout)
                elif e == "result":
                    f, k = ev.get("function"), ev.get("case")
                    if f in inputs and isinstance(k, int) and 0 <= k < len(inputs[f]):
                        results.setdefault((f, k), ev)
                    current = ("func", f) if f in inputs else None
                elif e == "func-done":
                    current = None
                    step_deadline = min(deadline, now + cell_timeout)
                elif e == "finished":
                    break
        finally:
            child.stop()
    # judge every case
    judged: dict = {}
    for f in inputs:
        gid = plan.defined_in.get(f)
        for k, case in enumerate(cases[f]):
            if gid is not None and cell_status.get(gid) in ("timeout", "crashed"):
                judged[(f, k)] = Verdict(f, "answer-" + cell_status[gid], "", case)
            elif f in undefined:
                judged[(f, k)] = Verdict(f, "undefined", "", case)
            elif (f, k) in status:
                judged[(f, k)] = status[(f, k)]
            elif (f, k) not in results:
                judged[(f, k)] = Verdict(f, "infra", "no result (the time budget ran out)", case)
            else:
                judged[(f, k)] = _judge(reference, f, k, case, inputs[f][k], results[(f, k)])
    verdicts = {}
    for gid, pairs in plan.test_cases.items():
        if not pairs:
            continue
        per = [judged[(f, cases[f].index(c))] for f, c in pairs]
        verdicts[gid] = next((v for v in per if not v.ok), Verdict(per[0].function, "ok"))
    return verdicts


def _judge(reference: dict, f: str, k: int, case: str, args: tuple, ev: dict) -> Verdict:
    if "error" in ev:
        return Verdict(f, "error", str(ev["error"])[:300], case)
    try:
        got = decode(ev.get("value"))
        after = decode(ev.get("after"))
    except (DecodeError, ValueError, TypeError) as exc:
        return Verdict(f, "wrong", f"the result could not be read: {exc}", case)
    try:
        expected = _expected(reference, f, args)
    except Exception as exc:
        return Verdict(f, "infra", f"the reference solution failed: {type(exc).__name__}: {exc}", case)
    msg = compare(f, k, args, got, after, expected)
    return Verdict(f, "wrong", msg, case) if msg else Verdict(f, "ok", "", case)


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child_main(int(sys.argv[2])))
    print("usage: python -I -m helpers.instructor.outofkernel --child FD", file=sys.stderr)
    sys.exit(2)
