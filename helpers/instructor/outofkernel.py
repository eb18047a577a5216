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
2. :func:`hidden_inputs` draws fresh random inputs at grading time (a new seed per submission:
   shapes, pads, strides, modes, exact zeros), never the stored HDF5 cases.
3. A fresh process in the sandbox (``python -I -m helpers.instructor.outofkernel --child FD``)
   runs those cells in notebook order and, where the first test cell of a function would run,
   calls the function on the inputs. It sends back, one JSON line per event on a pipe, only
   plain data: arrays as dtype, shape and raw bytes, numbers, strings, tuples, lists, dicts.
   Nothing is unpickled; the grader checks every size, dtype and depth while decoding.
4. The grader compares the results with the reference solutions (taken from the source
   notebooks, :func:`helpers.instructor.refdata.reference_functions`), run here on the same
   inputs, with the same checks the in-kernel tests use (:func:`helpers.checks.check_case`):
   return type, shape, dtype, values, the cache, inputs left unchanged.

Each answer cell has the cell timeout; each function, the cell timeout for all its inputs. An
answer cell that does not finish (a top-level ``while True`` after a correct ``def``) or that
kills its process fails the functions it defines; a function that hangs or kills its process
fails; either way the check goes on in a new process with the remaining functions.

The verdicts (:class:`Verdict`) go to :class:`helpers.instructor.safegrade.ApplyOutOfKernelVerdicts`,
which sets a test cell to 0 when the kernel said "passed" and this check did not.
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
def _shape(rng, lo, hi, n):
    return tuple(int(x) for x in rng.integers(lo, hi + 1, size=n))


def _with_zeros(rng, a):
    a = a.copy()
    flat = a.reshape(-1)
    k = max(1, flat.size // 6)
    flat[rng.choice(flat.size, size=min(k, flat.size), replace=False)] = 0.0
    return a


def _conv_config(rng, pad, stride, f):
    m, c, nc = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 5))
    lo = max(f, 1)
    h, w = int(rng.integers(lo, lo + 6)), int(rng.integers(lo, lo + 7))
    A = rng.standard_normal((m, h, w, c))
    W = rng.standard_normal((f, f, c, nc))
    b = rng.standard_normal((1, 1, 1, nc))
    return A, W, b, {"pad": pad, "stride": stride}


def _conv_out(A, W, hp):
    f, s, p = W.shape[0], hp["stride"], hp["pad"]
    return (A.shape[0], (A.shape[1] + 2 * p - f) // s + 1, (A.shape[2] + 2 * p - f) // s + 1, W.shape[3])


def _pool_config(rng, f, stride, mode):
    m, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    h, w = int(rng.integers(f, f + 6)), int(rng.integers(f, f + 7))
    return rng.standard_normal((m, h, w, c)), {"f": f, "stride": stride}, mode


def hidden_inputs(func: str, rng: np.random.Generator) -> list[tuple]:
    """Fresh argument tuples for ``func``, drawn now: shapes, pads, strides and modes vary."""
    if func == "zero_pad":
        return [(rng.standard_normal(_shape(rng, 1, 3, 1) + _shape(rng, 1, 5, 2) + _shape(rng, 1, 3, 1)), pad)
                for pad in (0, int(rng.integers(1, 4)), int(rng.integers(1, 4)))]
    if func == "conv_single_step":
        out = []
        for f in (1, int(rng.integers(2, 4)), int(rng.integers(2, 5))):
            c = int(rng.integers(1, 6))
            out.append((rng.standard_normal((f, f, c)), rng.standard_normal((f, f, c)), rng.standard_normal((1, 1, 1))))
        return out
    if func == "conv_forward":
        return [_conv_config(rng, p, s, f) for p, s, f in ((0, 1, 2), (1, 2, 3), (2, 3, int(rng.integers(1, 4))))]
    if func == "conv_backward":
        out = []
        for p, s, f in ((0, 1, 2), (1, 2, 3), (2, 3, int(rng.integers(1, 4)))):
            A, W, b, hp = _conv_config(rng, p, s, f)
            out.append((rng.standard_normal(_conv_out(A, W, hp)), (A, W, b, hp)))
        return out
    if func == "pool_forward":
        return [_pool_config(rng, f, s, mode) for f, s, mode in
                ((2, 2, "max"), (3, 1, "average"), (2, 3, "max"), (3, 2, "average"))]
    if func == "pool_backward":
        out = []
        for f, s, mode in ((2, 2, "max"), (3, 1, "average"), (2, 3, "max"), (3, 2, "average")):
            A, hp, mode = _pool_config(rng, f, s, mode)
            shape = (A.shape[0], (A.shape[1] - f) // s + 1, (A.shape[2] - f) // s + 1, A.shape[3])
            out.append((rng.standard_normal(shape), (A, hp), mode))
        return out
    if func == "create_mask_from_window":
        return [(rng.standard_normal(_shape(rng, 1, 4, 2)),) for _ in range(3)]
    if func == "distribute_value":
        return [(float(rng.standard_normal() * 3), _shape(rng, 1, 4, 2)) for _ in range(3)]
    if func == "relu":
        return [(_with_zeros(rng, rng.standard_normal(_shape(rng, 1, 4, 4))),) for _ in range(3)]
    if func == "relu_backward":
        out = []
        for _ in range(3):
            shape = _shape(rng, 1, 4, 4)
            out.append((rng.standard_normal(shape), _with_zeros(rng, rng.standard_normal(shape))))
        return out
    if func == "to_grayscale":
        h, w = _shape(rng, 2, 7, 2)
        return [(rng.integers(0, 256, size=(h, w, 3)).astype(np.uint8),),
                (rng.random((w, h, 3)),),
                (rng.integers(200, 256, size=(h, w, 3)).astype(np.uint8),)]
    if func == "sobel_kernels":
        return [()]
    if func == "filter2d":
        out = []
        for k in (1, 3, 5):
            h, w = int(rng.integers(k, k + 6)), int(rng.integers(k, k + 7))
            out.append((rng.standard_normal((h, w)), rng.standard_normal((k, k))))
        return out
    if func == "sobel_edges":
        return [(rng.standard_normal(_shape(rng, 3, 9, 2)),), (rng.random(_shape(rng, 3, 9, 2)) * 255,)]
    raise KeyError(f"no fresh inputs defined for {func}")


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


def functions_called(source: str, known) -> list[str]:
    """Graded functions that a test cell checks: the name passed to ``check_function(fn, "name")``."""
    known = set(known)
    found: list[str] = []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if name not in CHECK_CALLS:
                continue
            for arg in node.args[:2]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value in known:
                    found.append(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in known:
                    found.append(arg.id)
    else:
        for m in re.finditer(r"check_(?:function|case)\(\s*(\w+)\s*,\s*['\"](\w+)['\"]", source):
            found += [x for x in m.groups() if x in known]
    return list(dict.fromkeys(found))


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


@dataclass
class Plan:
    """What to run out of the kernel, in notebook order, and how test cells map to functions."""

    functions: list                                    # graded functions of the assignment
    steps: list = field(default_factory=list)          # dicts: kind setup|answer|free|eval
    test_functions: dict = field(default_factory=dict)  # grade_id -> [functions]
    defined_in: dict = field(default_factory=dict)     # function -> answer cell grade_id

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
                called = functions_called(cell.source, functions)
                plan.test_functions[gid] = called
                due = [f for f in called if f in pending]
                if due:
                    plan.steps.append({"kind": "eval", "id": gid, "index": index, "functions": due})
                    pending = [f for f in pending if f not in due]
            elif meta.get("locked"):
                plan.steps.append({"kind": "setup", "id": gid, "index": index, "source": cell.source})
            else:
                src = definitions_only(cell.source)
                if src.strip():
                    plan.steps.append({"kind": "free", "id": gid, "index": index, "source": src})
        if pending:
            plan.steps.append({"kind": "eval", "id": "end", "index": len(nb.cells), "functions": pending})
        return plan


@dataclass
class Verdict:
    function: str
    status: str              # ok | wrong | error | timeout | crashed | answer-timeout | answer-crashed
    #                          | undefined | infra
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self) -> str:
        f = self.function
        return {
            "wrong": f"{f} gave wrong results on fresh random inputs",
            "error": f"{f} raised an error on fresh random inputs",
            "timeout": f"{f} did not return in time on fresh random inputs",
            "crashed": f"{f} killed its process on fresh random inputs",
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

    ns = {"__name__": "__main__", "__builtins__": builtins}
    skip_cells = set(job.get("skip_cells", []))
    skip_funcs = set(job.get("skip_functions", []))
    send({"event": "ready"})
    for i, step in enumerate(job["steps"]):
        if step["kind"] in ("setup", "answer", "free"):
            if step["id"] in skip_cells:
                continue
            send({"event": "cell-start", "id": step["id"]})
            try:
                exec(compile(step["source"], f"<cell {step['id']}>", "exec"), ns)
                send({"event": "cell-done", "id": step["id"]})
            except BaseException as exc:  # the student's code may raise anything, SystemExit too
                send({"event": "cell-done", "id": step["id"], "error": describe(exc)})
        elif step["kind"] == "eval":
            for func in step["functions"]:
                if func in skip_funcs:
                    continue
                send({"event": "func-start", "function": func})
                fn = ns.get(func)
                if not callable(fn):
                    send({"event": "func-undefined", "function": func})
                    continue
                for k, args_enc in enumerate(job["inputs"].get(func, [])):
                    args = decode(args_enc)
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
        if box is not None:
            argv = box.argv(cmd, log=f"{name}.log", keep_fds=[w], env={**box.env(), "MPLBACKEND": "Agg"})
            cwd = str(box.home)
        else:
            argv, cwd = cmd, None
        self.log = f"{name}.log"
        err = open(os.path.join(str(box.base), f"{name}.err"), "wb") if box is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                         pass_fds=[w], cwd=cwd, start_new_session=True,
                                         env=None if box is not None and box.policy.enabled
                                         else {**os.environ, "MPLBACKEND": "Agg"})
        finally:
            os.close(w)
            if box is not None:
                err.close()
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
             seed: int | None = None, startup_timeout: float = 120, log=None) -> dict:
    """Run ``plan`` in ``box`` and return ``{function: Verdict}`` for every function of the plan."""
    rng = np.random.default_rng(seed)
    deadline = deadline or (time.monotonic() + 3600)
    inputs: dict = {}
    verdicts: dict = {}
    for f in plan.functions:
        try:
            inputs[f] = hidden_inputs(f, rng)
        except KeyError:
            verdicts[f] = Verdict(f, "infra", "no fresh inputs defined")
    job_inputs = {f: [encode(a) for a in v] for f, v in inputs.items()}
    skip_cells: set = set()
    cell_status: dict = {}
    results: dict = {f: {} for f in inputs}
    undefined: set = set()
    runs = 0
    max_runs = len(plan.steps) + len(plan.functions) + 2
    ready_once = False
    while runs < max_runs:
        todo = [f for f in inputs if f not in verdicts and f not in undefined and len(results[f]) < len(inputs[f])]
        if not todo:
            break
        runs += 1
        job = {"steps": plan.steps, "inputs": job_inputs, "skip_cells": sorted(skip_cells),
               "skip_functions": [f for f in inputs if f not in todo]}
        child = _Child(box, job, box.next_name("outofkernel") if box is not None else "outofkernel")
        current = None   # ("cell", id) or ("func", name)
        step_deadline = min(deadline, time.monotonic() + startup_timeout)
        try:
            while True:
                ev = child.next_event(step_deadline)
                if ev in ("timeout", "eof") or (isinstance(ev, dict) and ev.get("event") == "garbage"):
                    kind = ev if ev in ("timeout", "eof") else "garbage"
                    if current is None:
                        if not ready_once or time.monotonic() >= deadline:
                            # no student code has run yet (or the budget is gone): not the student's doing
                            why = "the time budget ran out" if time.monotonic() >= deadline else \
                                f"the checking process did not start ({kind})"
                            tail = box.log_tail(child.log) if box is not None else ""
                            for f in todo:
                                verdicts.setdefault(f, Verdict(f, "infra", f"{why} {tail}".strip()[:300]))
                        else:
                            # it died between two steps: code the answer cells left running (a thread,
                            # a signal handler) killed it; every function still to check fails
                            for f in todo:
                                if len(results[f]) < len(inputs[f]):
                                    verdicts.setdefault(f, Verdict(f, "crashed", "the checking process died "
                                                                   "between steps"))
                    elif current[0] == "cell":
                        skip_cells.add(current[1])
                        cell_status[current[1]] = "timeout" if kind == "timeout" else "crashed"
                    else:
                        f = current[1]
                        verdicts[f] = Verdict(f, "timeout" if kind == "timeout" else "crashed",
                                              "the checking process sent garbage" if kind == "garbage" else "")
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
                elif e == "func-start":
                    current = ("func", ev.get("function"))
                    step_deadline = min(deadline, now + cell_timeout)
                elif e == "func-undefined":
                    undefined.add(ev.get("function"))
                    current = None
                elif e == "result":
                    f, k = ev.get("function"), ev.get("case")
                    if f in results and isinstance(k, int) and 0 <= k < len(inputs[f]):
                        results[f][k] = ev
                elif e == "func-done":
                    current = None
                    step_deadline = min(deadline, now + cell_timeout)
                elif e == "finished":
                    break
        finally:
            child.stop()
        if time.monotonic() >= deadline:
            break
    # verdicts from results
    for f in inputs:
        if f in verdicts:
            continue
        gid = plan.defined_in.get(f)
        if gid is not None and cell_status.get(gid) in ("timeout", "crashed"):
            verdicts[f] = Verdict(f, "answer-" + cell_status[gid])
            continue
        if f in undefined:
            verdicts[f] = Verdict(f, "undefined")
            continue
        if len(results[f]) < len(inputs[f]):
            verdicts[f] = Verdict(f, "infra", "no result (the time budget ran out)")
            continue
        for k, args in enumerate(inputs[f]):
            ev = results[f][k]
            if "error" in ev:
                verdicts[f] = Verdict(f, "error", str(ev["error"])[:300])
                break
            try:
                got = decode(ev.get("value"))
                after = decode(ev.get("after"))
            except (DecodeError, ValueError, TypeError) as exc:
                verdicts[f] = Verdict(f, "wrong", f"the result could not be read: {exc}")
                break
            try:
                expected = _expected(reference, f, args)
            except Exception as exc:
                verdicts[f] = Verdict(f, "infra", f"the reference solution failed: {type(exc).__name__}: {exc}")
                break
            msg = compare(f, k, args, got, after, expected)
            if msg:
                verdicts[f] = Verdict(f, "wrong", msg)
                break
        else:
            verdicts[f] = Verdict(f, "ok")
    # an answer cell that never finished fails its functions even when they give the right values
    for f, gid in plan.defined_in.items():
        if f in verdicts and verdicts[f].status in ("ok", "wrong", "error") and \
                cell_status.get(gid) in ("timeout", "crashed"):
            verdicts[f] = Verdict(f, "answer-" + cell_status[gid])
    return verdicts


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child_main(int(sys.argv[2])))
    print("usage: python -I -m helpers.instructor.outofkernel --child FD", file=sys.stderr)
    sys.exit(2)
