"""The out-of-kernel check, piece by piece, against a box that runs the harness without isolation.

- the codec keeps every type, shape and dtype (0-d arrays, numpy scalars, floats, tuples, dict
  caches) and refuses malformed, oversized, wrong-dtype, too-deep and too-long input;
- the harness (``inside/child.py``) runs by file path and imports only the standard library and NumPy;
- fresh inputs that the reference solutions accept, a plan that maps every test cell to its cases;
- verdicts: every notebook's reference solutions are ok on every case (a 0-d conv_single_step too);
  wrong, raising, hanging, crashing and never-finishing answers fail their own functions only;
- forged events: whatever student code writes on the result channel, a wrong function is never
  ok and nothing is ``infra``; ``infra`` only when no student code could have run.

The real sandbox (bubblewrap) runs the same harness in tests/test_adversarial.py.
"""
from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from conftest import ROOT
from helpers.checks import _leaves
from helpers.instructor import outofkernel as ok
from helpers.instructor.cases import CASES
from helpers.instructor.course import ASSIGNMENTS
from helpers.instructor.inside import codec
from helpers.instructor.outofkernel import link


# what the sandbox's environment sets too (sandbox/env.py): NumPy's BLAS on one thread per process
ONE_THREAD = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


class DirectBox:
    """``box.spawn`` without isolation: the command runs here, in a scratch folder of its own."""

    def __init__(self, scratch: Path, fail_after: int | None = None, program: str | None = None):
        self.scratch, self.spawned, self.fail_after, self.program = Path(scratch), 0, fail_after, program

    def spawn(self, cmd, *, pass_fds=(), env=None, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
              stderr=subprocess.DEVNULL):
        self.spawned += 1
        if self.fail_after is not None and self.spawned > self.fail_after:
            raise OSError("the sandbox is gone")
        if self.program is not None:    # another program in the harness's place (it gets the same FD)
            cmd = [sys.executable, "-c", self.program, cmd[-1]]
        return subprocess.Popen(cmd, pass_fds=pass_fds, stdin=stdin, stdout=stdout, stderr=stderr,
                                env={**os.environ, **ONE_THREAD, "CNN_COURSE_GRADING": "1", **(env or {})}, cwd=self.scratch,
                                start_new_session=True)


@pytest.fixture
def box(tmp_path):
    return DirectBox(tmp_path)


# --------------------------------------------------------------------------- the codec
def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (float, np.floating)) and np.isnan(a):
        return bool(np.isnan(b)) and (not isinstance(a, np.generic) or a.dtype == b.dtype)
    return a == b and (not isinstance(a, np.generic) or a.dtype == b.dtype)


ROUND_TRIP = {
    "0-d float": np.array(-6.999089450680221), "0-d int": np.array(3, dtype=np.int32), "0-d bool": np.array(True),
    "float64 scalar": np.float64(2.5), "float32 scalar": np.float32(0.1), "int64 scalar": np.int64(-7),
    "bool scalar": np.bool_(False), "float": -6.999089450680221, "nan": float("nan"), "inf": float("-inf"),
    "-0.0": -0.0, "int": 3, "bool": True, "str": "average", "none": None, "empty": np.zeros((0, 3)),
    "matrix": np.arange(6.0).reshape(2, 3), "uint8 image": np.arange(24, dtype=np.uint8).reshape(2, 4, 3),
    "big-endian": np.arange(3, dtype=">f8"), "complex": np.array([1 + 2j]), "float16": np.ones(2, np.float16),
    "non-contiguous": np.arange(24.0).reshape(4, 6)[::2, ::3].T,
    "tuple of arrays": (np.zeros((2, 2)), np.ones(3), np.array(1.5)),
    "conv cache": (np.ones((2, 5, 7, 4)), np.ones((3, 3, 4, 8)), np.ones((1, 1, 1, 8)), {"pad": 1, "stride": 2}),
    "pool cache": (np.ones((2, 5, 5, 3)), {"f": 3, "stride": 1}), "list": [1, 2.0, "x"],
    "dict keys": {1: "a", "b": 2.0, None: True, 2.5: [np.int8(1)]},
}


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_codec_round_trip_keeps_type_shape_and_dtype(name):
    value = ROUND_TRIP[name]
    back = codec.decode(json.loads(json.dumps(codec.encode(value))))
    assert _same(back, value), (name, back, value)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")   # np.matrix
def test_codec_sends_what_is_not_plain_data_as_opaque():
    for value in (object(), np.array([object()]), np.array(["a"]), np.datetime64("2020-01-01"), np.matrix([[1.0]]),
                  {(1, 2): 3}, 2 ** 70, list(range(65)), "x" * (codec.MAX_STR + 1), {1, 2}, b"bytes"):
        assert isinstance(codec.decode(codec.encode(value)), codec.Opaque), value
    deep: list = []
    for _ in range(30):
        deep = [deep]
    back = codec.decode(json.loads(json.dumps(codec.encode(deep))))
    for _ in range(codec.MAX_DEPTH):
        back = back[0]
    assert isinstance(back, codec.Opaque)


class Liar(float):
    def __repr__(self):
        raise RuntimeError("student code")

    @property
    def __class__(self):
        return np.ndarray


def test_codec_is_not_fooled_by_a_lying_class():
    assert codec.decode(codec.encode(Liar(1.5))) == 1.5


def _deep(n):
    v: dict = {"py": "none"}
    for _ in range(n):
        v = {"seq": "list", "items": [v]}
    return v


B64_8 = "AAAAAAAAAAA="
HALF = (codec.MAX_BYTES // 6 + 1) * 3       # over half the budget, a multiple of 3 (no base64 padding)
BAD = {
    "size does not match": {"nd": "<f8", "shape": [3], "b64": B64_8},
    "object dtype": {"nd": "|O", "shape": [1], "b64": B64_8},
    "datetime dtype": {"nd": "<M8[s]", "shape": [1], "b64": B64_8},
    "string dtype": {"nd": "<U2", "shape": [1], "b64": B64_8},
    "negative shape": {"nd": "<f8", "shape": [-1], "b64": ""},
    "float shape": {"nd": "<f8", "shape": [1.0], "b64": B64_8},
    "too many dims": {"nd": "|u1", "shape": [1] * 40, "b64": "AA=="},
    "oversized": {"nd": "<f8", "shape": [2 ** 11, 2 ** 11], "b64": B64_8},
    "bad base64": {"nd": "<f8", "shape": [1], "b64": "!!!!!!!!!!!="},
    "scalar of two": {"np": "<f8", "b64": "AAAAAAAAAAAAAAAAAAAAAA=="},
    "extra key": {"nd": "<f8", "shape": [1], "b64": B64_8, "pickle": "gASV"},
    "float not a string": {"py": "float", "v": 1.0},
    "float with underscores": {"py": "float", "v": "1_0"},
    "bool as int": {"py": "bool", "v": 1},
    "int as bool": {"py": "int", "v": True},
    "int out of range": {"py": "int", "v": 2 ** 64},
    "str too long": {"py": "str", "v": "x" * (codec.MAX_STR + 1)},
    "pickle": {"pickle": "gASV"},
    "too long": {"seq": "tuple", "items": [{"py": "none"}] * 65},
    "items not a list": {"seq": "tuple", "items": {"py": "none"}},
    "unknown sequence": {"seq": "set", "items": []},
    "mapping key not plain": {"map": [[{"seq": "tuple", "items": []}, {"py": "none"}]]},
    "mapping pair of three": {"map": [[{"py": "none"}] * 3]},
    "too deep": _deep(codec.MAX_DEPTH + 5),
    "too many values": {"seq": "list", "items": [{"seq": "list", "items": [{"seq": "list", "items":
                        [{"py": "none"}] * 64}] * 64}] * 10},
    "too many bytes": {"seq": "list", "items": [{"nd": "|u1", "shape": [HALF], "b64": "A" * (4 * HALF // 3)}] * 2},
    "opaque too long": {"opaque": "x" * 81},
    "just a string": "just a string",
    "a list": [{"py": "none"}],
}


WHY = {"size does not match": "bytes for shape", "object dtype": "not one of the plain numeric dtypes",
       "oversized": "larger than", "too many bytes": "larger than", "too deep": "too deep",
       "too many values": "more than", "too many dims": "shape", "float with underscores": "float"}


@pytest.mark.parametrize("name", BAD)
def test_decode_refuses_malformed_input(name):
    with pytest.raises(codec.DecodeError, match=WHY.get(name)):
        codec.decode(BAD[name])


# --------------------------------------------------------------------------- the harness
def test_harness_imports_only_the_standard_library_and_numpy():
    inside = Path(link.CHILD).parent
    for path in (inside / "child.py", inside / "codec.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "numpy" or \
                    (top == "IPython" and path.name == "child.py" and node.col_offset > 0), (path.name, name)


def test_harness_starts_by_file_path_without_helpers(box):
    one = link.Link(box)
    try:
        one.send({"op": "hello", "nonce": "n1"})
        assert json.loads(one.receive(time.monotonic() + 60)) == {"hello": "n1"}
        one.send({"op": "cell", "seq": 1, "id": "c", "source": "import sys, json\nopen('mods.json', 'w').write("
                                                                 "json.dumps([sorted(sys.modules), sys.argv]))"})
        assert json.loads(one.receive(time.monotonic() + 30)) == {"seq": 1, "cell": "done"}
    finally:
        one.close()
    modules, argv = json.loads((box.scratch / "mods.json").read_text())
    assert not [m for m in modules if m.split(".")[0] in ("helpers", "IPython")], modules
    assert "numpy" in modules and len(argv) == 1


def test_link_refuses_an_oversized_reply_and_never_blocks_on_a_child_that_does_not_read(box, monkeypatch):
    monkeypatch.setattr(link, "MAX_LINE", 2 ** 20)
    one = link.Link(DirectBox(box.scratch, program="import os, sys, time\n"
                                                   "os.write(int(sys.argv[1]), b'x' * 3000000)\ntime.sleep(60)"))
    try:
        assert one.receive(time.monotonic() + 20) == "oversized"
    finally:
        one.close()
    sleeper = link.Link(DirectBox(box.scratch, program="import time; time.sleep(60)"))
    try:
        sleeper.send({"op": "cell", "source": "x" * 10_000_000})
        t0 = time.monotonic()
        assert sleeper.receive(time.monotonic() + 2) == "timeout" and time.monotonic() - t0 < 5
    finally:
        sleeper.close()


# --------------------------------------------------------------------------- fresh inputs, comparison, plan
ALL_CASES = [(f, c) for f, cs in CASES.items() for c in cs]


def _arrays(value):
    return [v for _, v in _leaves(value)]


@pytest.mark.parametrize("func,case", ALL_CASES, ids=[f"{f}-{c}" for f, c in ALL_CASES])
def test_fresh_inputs_keep_the_structure_and_the_reference_passes_them(func, case, reference):
    spec = CASES[func][case]
    stored = spec.build(reference)
    a = ok.fresh_args(func, case, reference, np.random.default_rng(1))
    b = ok.fresh_args(func, case, reference, np.random.default_rng(2))
    assert [x.shape for x in _arrays(a)] == [x.shape for x in _arrays(stored)]
    assert [x.dtype for x in _arrays(a)] == [x.dtype for x in _arrays(stored)]
    if spec.rule is not None:     # the pinned training run: the same inputs for everyone, judged by its rule
        assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(stored)))
        return
    if _arrays(stored) and any(x.size > 1 for x in _arrays(stored)):
        assert any(not np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b)))
        assert any(not np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(stored)))
    if spec.fresh is None:        # a case's own fresh builder draws whole inputs (digits, a network's caches)
        for x, y in zip(_arrays(a), _arrays(stored)):   # exact zeros stay where the case has them
            if x.dtype.kind == "f":
                assert np.array_equal(x == 0, y == 0)
    got = reference[func](*copy.deepcopy(a))
    got = codec.decode(json.loads(json.dumps(codec.encode(got))))
    after = codec.decode(json.loads(json.dumps(codec.encode(a))))
    assert ok.compare(func, a, got, after, ok.expected(reference, func, a)) is None


def test_a_parameter_count_crosses_as_an_int_on_fresh_ints_and_is_judged_as_one(reference):
    from helpers.instructor.outofkernel.judge import judge

    for value in (296, np.int64(296)):
        back = codec.decode(json.loads(json.dumps(codec.encode(value))))
        assert back == 296 and type(back) is type(value)
    a = ok.fresh_args("conv_param_count", "canonical", reference, np.random.default_rng(1))
    b = ok.fresh_args("conv_param_count", "canonical", reference, np.random.default_rng(2))
    assert all(type(x) is int and x >= 1 for x in a + b), (a, b)
    assert a != b and (3, 4, 8) not in (a, b), "fresh counts are new whole numbers, not the stored case"
    want = ok.expected(reference, "conv_param_count", a)
    assert type(want["count"]) is int
    right = reference["conv_param_count"](*a)
    assert ok.compare("conv_param_count", a, right, a, want) is None
    assert "whole number" in ok.compare("conv_param_count", a, float(right), a, want)
    assert "wrong value" in ok.compare("conv_param_count", a, right - a[2], a, want)
    reply = {"seq": 1, "value": codec.encode(right), "after": codec.encode(a)}
    assert judge("conv_param_count", "canonical", a, want, reply).status == "ok"
    reply["value"] = codec.encode(True)
    assert judge("conv_param_count", "canonical", a, want, reply).status == "wrong"


@pytest.mark.parametrize("func,case", [(f, c) for f, c in ALL_CASES if c.startswith("ties")])
def test_fresh_inputs_of_a_ties_case_still_have_ties(func, case, reference):
    """A fast max pool that breaks ties differently from the loop version must fail on fresh inputs too."""
    args = ok.fresh_args(func, case, reference, np.random.default_rng(3))
    A_prev, hp = (args[0], args[1]) if func.startswith("pool_forward") else args[1]
    windows = np.lib.stride_tricks.sliding_window_view(A_prev, (hp["f"], hp["f"]), axis=(1, 2))
    windows = windows[:, ::hp["stride"], ::hp["stride"]]
    ties = (windows == windows.max(axis=(-2, -1), keepdims=True)).sum(axis=(-2, -1)) > 1
    assert ties.sum() >= 3, f"{func}/{case}: fresh inputs with {ties.sum()} tied windows"
    assert np.array_equal(A_prev, np.round(A_prev)) and A_prev.min() >= -2 and A_prev.max() <= 2


def test_compare_says_what_is_wrong(reference):
    args = ok.fresh_args("relu", "canonical", reference, np.random.default_rng(3))
    want = ok.expected(reference, "relu", args)
    assert "wrong values" in ok.compare("relu", args, np.abs(args[0]), args, want)
    assert "should be a numpy array" in ok.compare("relu", args, [1, 2], args, want)
    assert "changed its input" in ok.compare("relu", args, reference["relu"](args[0]), (np.zeros_like(args[0]),), want)
    assert "did not come back" in ok.compare("relu", args, reference["relu"](args[0]), None, want)


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=lambda a: a.id)
def test_plan_maps_every_test_cell_to_its_cases(a):
    plan = ok.Plan.from_notebook(nbformat.read(str(a.source), as_version=4), list(a.functions))
    assert set(plan.defined_in) == set(a.functions)
    assert plan.test_cases and all(plan.test_cases.values()), plan.test_cases
    evaluated = [f for s in plan.steps if s["kind"] == "eval" for f in s["functions"]]
    assert sorted(evaluated) == sorted(a.functions)
    for f in a.functions:
        assert set(plan.cases_of(f)) == set(CASES[f]), f"{a.id}: the test cells do not check every case of {f}"


def test_checks_in_cell_reads_case_lists():
    src = 'check_function(relu, "relu")\ncheck_function(relu, "relu", ["with_zeros", "batch1"])\n' \
          'check_case(relu_backward, "relu_backward", "at_zero")\nprint(check_function)'
    assert ok.checks_in_cell(src, ["relu", "relu_backward"]) == [
        ("relu", None), ("relu", ["with_zeros", "batch1"]), ("relu_backward", ["at_zero"])]


# --------------------------------------------------------------------------- verdicts
RELU = "def relu(Z):\n    return np.maximum(0.0, Z)\n"
BACKWARD = "def relu_backward(dA, Z):\n    return np.where(Z > 0, dA, 0.0)\n"
WRONG_RELU = "def relu(Z):\n    return Z\n"
RELU_CELLS = {"relu": ["test_relu_canonical", "test_relu_hidden"],
              "relu_backward": ["test_relu_backward_canonical", "test_relu_backward_hidden"]}


def _nb(path, **answers):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def _relu(relu=RELU, backward=BACKWARD, box=None, reference=None, **kw):
    nb = _nb(ROOT / "notebooks/07_relu/relu.ipynb", relu=relu, relu_backward=backward)
    plan = ok.Plan.from_notebook(nb, ["relu", "relu_backward"])
    t0 = time.monotonic()
    verdicts = ok.evaluate(plan, box, reference, **{"cell_timeout": 3, **kw})
    assert set(verdicts) == {g for cells in RELU_CELLS.values() for g in cells}
    return verdicts, time.monotonic() - t0


def _by_function(verdicts):
    return {f: [verdicts[g].status for g in cells] for f, cells in RELU_CELLS.items()}


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=lambda a: a.id)
def test_the_reference_solutions_are_ok_on_every_case(a, box, reference):
    plan = ok.Plan.from_notebook(nbformat.read(str(a.source), as_version=4), list(a.functions))
    verdicts = ok.evaluate(plan, box, reference, cell_timeout=30, seed=7)
    assert set(verdicts) == set(plan.test_cases)
    assert {g: (v.status, v.message) for g, v in verdicts.items() if not v.ok} == {}


@pytest.mark.parametrize("ret", ["np.asarray(np.sum(a_slice_prev * W) + b.item())",       # a 0-d array
                                 "np.sum(a_slice_prev * W) + np.float64(b.item())",         # a numpy scalar
                                 "float(np.sum(a_slice_prev * W) + b.item())"])             # a Python float
def test_a_scalar_of_any_plain_kind_is_ok(ret, box, reference):
    nb = _nb(ROOT / "notebooks/02_conv_single_step/conv_single_step.ipynb",
             conv_single_step=f"def conv_single_step(a_slice_prev, W, b):\n    return {ret}\n")
    verdicts = ok.evaluate(ok.Plan.from_notebook(nb, ["conv_single_step"]), box, reference, cell_timeout=10)
    assert len(verdicts) == 2 and all(v.ok for v in verdicts.values()), verdicts


@pytest.mark.parametrize("name,relu,backward,expected", [
    ("correct", RELU, BACKWARD, {"relu": "ok", "relu_backward": "ok"}),
    ("wrong", WRONG_RELU, BACKWARD, {"relu": "wrong", "relu_backward": "ok"}),
    ("raises", "def relu(Z):\n    raise ValueError('no')\n", BACKWARD, {"relu": "error", "relu_backward": "ok"}),
    ("hangs", RELU, "def relu_backward(dA, Z):\n    while True:\n        pass\n",
     {"relu": "ok", "relu_backward": "timeout"}),
    ("crashes", "def relu(Z):\n    import os\n    os._exit(3)\n", BACKWARD, {"relu": "crashed", "relu_backward": "ok"}),
    ("never_finishes", RELU, BACKWARD + "\nwhile True:\n    pass\n", {"relu": "ok", "relu_backward": "answer-timeout"}),
    ("kills_itself_in_the_cell", RELU, BACKWARD + "\nimport os\nos._exit(0)\n",
     {"relu": "ok", "relu_backward": "answer-crashed"}),
    ("ipython_only", "def relu(Z):\n    get_ipython().user_ns['In'][-1]\n    display(Z)\n    return np.maximum(0.0, Z)\n",
     BACKWARD + "\n%timeit relu_backward(np.ones(2), np.ones(2))\n", {"relu": "ok", "relu_backward": "ok"}),
    ("no_definition", "x = 1\n", BACKWARD, {"relu": "undefined", "relu_backward": "ok"}),
    ("exits_in_the_cell", RELU + "import sys\nsys.exit(0)\n", BACKWARD, {"relu": "ok", "relu_backward": "ok"}),
    ("mutates", "def relu(Z):\n    Z[Z < 0] = 0\n    return Z.copy()\n", BACKWARD, {"relu": "wrong", "relu_backward": "ok"}),
])
def test_verdicts(name, relu, backward, expected, box, reference):
    verdicts, seconds = _relu(relu, backward, box, reference)
    assert _by_function(verdicts) == {f: [s, s] for f, s in expected.items()}, \
        {g: (v.status, v.message) for g, v in verdicts.items()}
    assert seconds < 40


def test_a_function_wrong_only_on_the_hidden_cases_keeps_the_visible_cell(box, reference):
    # wrong only with a single channel, which only the hidden cases have
    wrong_on_one = ("def relu_backward(dA, Z):\n"
                    "    return np.where(Z > 0, dA, 0.0) if Z.shape[-1] > 1 else dA.copy()\n")
    verdicts, _ = _relu(RELU, wrong_on_one, box, reference)
    assert _by_function(verdicts) == {"relu": ["ok", "ok"], "relu_backward": ["ok", "wrong"]}


def test_a_timer_that_kills_the_process_later_never_passes_wrongly(box, reference):
    later = BACKWARD + "\nimport threading, os\nthreading.Timer(0.2, lambda: os._exit(1)).start()\nimport time\n" \
                       "time.sleep(0.01)\n"
    verdicts, _ = _relu(RELU, later, box, reference)
    assert set(_by_function(verdicts)["relu"]) <= {"ok", "crashed", "answer-crashed"}
    assert "infra" not in {v.status for v in verdicts.values()}


# --------------------------------------------------------------------------- forged events
FIND_THE_HARNESS = '''
import json, os, sys, threading, time
import helpers.checks
helpers.checks.check_function = lambda *a, **k: print("all checks passed")   # what fooled the kernel

def _harness():
    f = sys._getframe()
    while f is not None:
        if "out_fd" in f.f_locals:
            return f.f_locals
        f = f.f_back

H = _harness()
FD = H["out_fd"]
assert FD == int(sys.orig_argv[-1])
def put(obj):
    os.write(FD, (json.dumps(obj) + "\\n").encode())
ZEROS = {"nd": "<f8", "shape": [2, 3], "b64": "A" * 64}
'''
ATTACKS = {
    "writes finished": 'put({"event": "finished"})\nput({"event": "finished"})\n',
    "writes fake results for other cases":
        'for s in range(1, 60):\n    put({"seq": s, "value": ZEROS, "after": {"seq": "tuple", "items": [ZEROS]}})\n'
        '    put({"event": "result", "function": "relu", "case": s % 3, "value": ZEROS})\n',
    "writes a cell reply ahead": 'for s in range(1, 30):\n    put({"seq": s, "cell": "done"})\n',
    "closes the channel": "os.close(FD)\n",
    "exits right after the answer cell": "_write = os.write\nos.write = lambda fd, data: (_write(fd, data), os._exit(0))\n",
    "writes garbage": 'os.write(FD, b"\\x00\\xff garbage {not json\\n" * 3 + b"[1, 2]\\n")\n',
    "keeps writing from a thread":
        'def spam():\n    while True:\n        put({"seq": 1, "cell": "done"})\n        put({"hello": "x"})\n'
        '        os.write(FD, b"finished\\n")\n        time.sleep(0.001)\n'
        'threading.Thread(target=spam, daemon=True).start()\ntime.sleep(0.05)\n',
    "redefines the harness's codec": 'H["codec"].encode = lambda v, depth=0: {"py": "str", "v": "ok"}\n'
                                     'H["codec"].decode = lambda v, *a: (np.zeros(3),)\n',
    "redefines json.dumps": 'json.dumps = lambda *a, **k: \'{"event": "finished"}\'\n',
    "redefines the harness's globals": 'import __main__\n__main__.main = None\n'
                                       'sys.modules["json"].loads = lambda *a, **k: {"op": "cell", "source": ""}\n',
    "steals the commands": 'threading.Thread(target=lambda: [H["commands"].readline() for _ in iter(int, 1)], '
                           'daemon=True).start()\n',
    "a huge line without newline": 'os.write(FD, b"x" * (70 * 2 ** 20))\n',
    "returns a lying object": 'class Fake(np.ndarray):\n    pass\n'
                              'def relu(Z):\n    return np.asarray(Z).view(Fake)\n',
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_forged_events_never_pass_a_wrong_function_nor_make_it_infra(attack, box, reference):
    code = WRONG_RELU + FIND_THE_HARNESS + "open('attack-ran', 'w').close()\n" + ATTACKS[attack]
    verdicts, seconds = _relu(code, BACKWARD, box, reference, cell_timeout=2)
    print(attack, {g: (v.status, v.message[:80]) for g, v in verdicts.items()})
    assert (box.scratch / "attack-ran").exists()
    statuses = _by_function(verdicts)
    assert "ok" not in statuses["relu"], {g: (v.status, v.message) for g, v in verdicts.items()}
    assert "infra" not in {v.status for v in verdicts.values()}, {g: (v.status, v.message) for g, v in verdicts.items()}
    assert seconds < 60


# --------------------------------------------------------------------------- infra: only before student code
def test_a_sandbox_that_does_not_start_is_infra(tmp_path, reference):
    verdicts, _ = _relu(box=DirectBox(tmp_path, fail_after=0), reference=reference)
    assert {v.status for v in verdicts.values()} == {"infra"}
    assert "sandbox did not start" in verdicts["test_relu_canonical"].message


@pytest.mark.parametrize("program", ["import time; time.sleep(60)",
                                     "import os, sys; os.write(int(sys.argv[1]), b'{\"hello\": \"a guess\"}\\n')",
                                     "raise SystemExit(1)"])
def test_no_valid_hello_from_the_first_child_is_infra(program, tmp_path, reference):
    verdicts, seconds = _relu(box=DirectBox(tmp_path, program=program), reference=reference, startup_timeout=3)
    assert {v.status for v in verdicts.values()} == {"infra"} and seconds < 20


def test_a_restart_that_fails_after_student_code_ran_is_not_infra(tmp_path, reference):
    box = DirectBox(tmp_path, fail_after=1)
    verdicts, _ = _relu("def relu(Z):\n    import os\n    os._exit(0)\n", BACKWARD, box, reference)
    assert _by_function(verdicts) == {"relu": ["crashed", "crashed"], "relu_backward": ["crashed", "crashed"]}


def test_the_reference_failing_is_infra_for_its_own_function_only(box, reference):
    def broken(*a):
        raise RuntimeError("the grader's own bug")
    verdicts, _ = _relu(WRONG_RELU, BACKWARD, box, {**reference, "relu": broken})
    assert _by_function(verdicts) == {"relu": ["infra", "infra"], "relu_backward": ["ok", "ok"]}


def test_a_budget_used_up_by_student_code_is_a_timeout_not_infra(box, reference):
    slow = BACKWARD + "import time\ntime.sleep(60)\n"
    verdicts, seconds = _relu(RELU, slow, box, reference, cell_timeout=30, deadline=time.monotonic() + 8)
    assert _by_function(verdicts)["relu"] == ["ok", "ok"]
    assert set(_by_function(verdicts)["relu_backward"]) <= {"answer-timeout", "timeout"} and seconds < 20


def test_a_budget_gone_before_anything_ran_is_infra(box, reference):
    verdicts, _ = _relu(box=box, reference=reference, deadline=time.monotonic() - 1)
    assert {v.status for v in verdicts.values()} == {"infra"}


# --------------------------------------------------------------------------- notebook 10: the training run
DIGITS = ROOT / "notebooks/10_digits_cnn/digits_cnn.ipynb"


def _train_cells(train_source: str):
    nb = _nb(DIGITS, train_cnn=train_source)
    a = next(a for a in ASSIGNMENTS if a.id == "10_digits_cnn")
    return ok.Plan.from_notebook(nb, list(a.functions))


def test_the_accuracy_is_computed_by_the_grader_from_the_returned_weights(box, reference):
    """A train_cnn that returns the untrained weights (and prints a fine accuracy) fails the accuracy cell:
    the grader computes the accuracy itself, with the reference forward pass, from what came back."""
    lazy = ("def train_cnn(X, y, params, num_epochs, batch_size, learning_rate, beta, seed, callback=None):\n"
            "    print('test accuracy 99.7%')\n"
            "    return params, np.full(num_epochs * -(-len(y) // batch_size), 0.01)\n")
    verdicts = ok.evaluate(_train_cells(lazy), box, reference, cell_timeout=30, seed=3)
    v = verdicts["test_train_cnn_accuracy"]
    assert v.status == "wrong" and "computed by the grader" in v.message and "below 97%" in v.message, v
    assert verdicts["test_train_cnn_first_steps"].status == "wrong"
    assert verdicts["test_cnn_backward_canonical"].ok and verdicts["test_network_gradient_check"].ok


def test_the_accuracy_rule_reads_only_plain_weights(reference):
    from helpers.instructor.cases import _accuracy_rule
    from helpers.network import init_params, training_args

    args = training_args()
    assert "(params, losses)" in _accuracy_rule(reference, args, [init_params(0), np.zeros(3)])
    assert "keys" in _accuracy_rule(reference, args, ({"W1": np.zeros((3, 3, 1, 16))}, np.zeros(3)))
    bad = init_params(0)
    bad["W2"] = bad["W2"][..., :8]
    assert "shape (3, 3, 16, 32)" in _accuracy_rule(reference, args, (bad, np.zeros(3)))
    bad = init_params(0)
    bad["W3"][0, 0] = np.nan
    assert "diverged" in _accuracy_rule(reference, args, (bad, np.zeros(3)))
    assert "below 97%" in _accuracy_rule(reference, args, (init_params(0), np.zeros(3)))


def test_a_declared_timeout_lets_the_training_call_run_longer(box, reference):
    """The source notebook declares 90 s for its accuracy cell: the call of train_cnn on the pinned run gets it,
    every other call keeps the cell timeout (here 8 s, shorter than the training)."""
    a = next(a for a in ASSIGNMENTS if a.id == "10_digits_cnn")
    assert dict(a.timeouts) == {"test_train_cnn_accuracy": 90}
    plan = ok.Plan.from_notebook(nbformat.read(str(a.source), as_version=4), list(a.functions))
    verdicts = ok.evaluate(plan, box, reference, cell_timeout=8, seed=5, timeouts=dict(a.timeouts))
    assert {g: (v.status, v.message) for g, v in verdicts.items() if not v.ok} == {}


def test_the_grading_context_honours_only_declared_timeouts():
    from helpers.instructor.grading.context import SubmissionContext
    from helpers.instructor.options import GradingOptions

    ctx = SubmissionContext("s", "10_digits_cnn", GradingOptions(cell_timeout=10), None,
                            timeouts={"test_train_cnn_accuracy": 90})
    cell = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade_id": "test_train_cnn_accuracy"}})
    other = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade_id": "test_dense_forward_hidden"},
                                                        "cnn_course": {"timeout": 999}})   # the submission's own say
    assert ctx.cell_timeout(cell) == 90 and ctx.cell_timeout(other) == 10 and ctx.cell_timeout() == 10
    ctx.deadline = time.monotonic() + 30
    assert ctx.cell_timeout(cell) <= 30          # never past the budget
