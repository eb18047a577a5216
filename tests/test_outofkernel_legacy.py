"""The out-of-kernel check, piece by piece (moved unchanged from tests/test_sandbox.py; the out-of-kernel
module is being rewritten separately): plain-data encoding that refuses malformed input, fresh inputs
that the reference solutions accept, a plan that maps every test cell of every notebook to its
function, and verdicts for right, wrong, hanging, crashing and never-finishing answers.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from conftest import ROOT
from helpers.instructor import outofkernel as ok
from helpers.instructor import sandbox as sb
from helpers.instructor.course import ASSIGNMENTS

# --------------------------------------------------------------------------- plain data across the boundary
def test_encoding_round_trip():
    values = [np.arange(6.0).reshape(2, 3), np.array([[True, False]]), np.float64(2.5), 3, 2.0, "max", None,
              (np.zeros((1, 1, 1, 2)), {"stride": 2, "pad": 0}), [1, 2]]
    for v in values:
        back = ok.decode(json.loads(json.dumps(ok.encode(v))))
        if isinstance(v, np.ndarray):
            assert back.dtype == v.dtype and np.array_equal(back, v)
        elif isinstance(v, tuple):
            assert np.array_equal(back[0], v[0]) and back[1] == v[1]
        else:
            assert back == v and type(back) is type(v)
    assert isinstance(ok.decode(ok.encode(object())), ok.Opaque)
    assert isinstance(ok.decode(ok.encode(np.array([1 + 2j]))), ok.Opaque)


@pytest.mark.parametrize("bad", [
    {"nd": "<f8", "shape": [3], "b64": base64.b64encode(b"\0" * 8).decode()},     # size does not match
    {"nd": "|O", "shape": [1], "b64": ""},                                         # object dtype
    {"nd": "<f8", "shape": [-1], "b64": ""},
    {"py": "float", "v": 1.0},                                                     # not the encoded form
    {"pickle": "gASV"},
    {"seq": "tuple", "items": [{"seq": "tuple", "items": []}] * 100},             # too long
    "just a string",
])
def test_decoding_refuses_malformed_input(bad):
    with pytest.raises(ok.DecodeError):
        ok.decode(bad)


def test_decoding_refuses_deep_nesting():
    v: dict = {"py": "none"}
    for _ in range(20):
        v = {"seq": "list", "items": [v]}
    with pytest.raises(ok.DecodeError):
        ok.decode(v)


# --------------------------------------------------------------------------- fresh inputs and comparison
ALL_CASES = [(f, c) for f, cs in __import__("helpers.instructor.cases", fromlist=["CASES"]).CASES.items() for c in cs]


def _arrays(value):
    return [v for _, v in __import__("helpers.checks", fromlist=["_leaves"])._leaves(value)]


@pytest.mark.parametrize("func,case", ALL_CASES, ids=[f"{f}-{c}" for f, c in ALL_CASES])
def test_fresh_inputs_keep_the_structure_and_the_reference_passes_them(func, case, reference):
    from helpers.instructor.cases import CASES

    stored = CASES[func][case].build(reference)
    a = ok.fresh_args(func, case, reference, np.random.default_rng(1))
    b = ok.fresh_args(func, case, reference, np.random.default_rng(2))
    assert [x.shape for x in _arrays(a)] == [x.shape for x in _arrays(stored)]
    assert [x.dtype for x in _arrays(a)] == [x.dtype for x in _arrays(stored)]
    if _arrays(stored) and any(x.size > 1 for x in _arrays(stored)):
        assert any(not np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b)))
        assert any(not np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(stored)))
    for x, y in zip(_arrays(a), _arrays(stored)):   # exact zeros stay where the case has them
        if x.dtype.kind == "f":
            assert np.array_equal(x == 0, y == 0)
    expected = ok._expected(reference, func, a)
    got = reference[func](*__import__("copy").deepcopy(a))
    got = ok.decode(json.loads(json.dumps(ok.encode(got))))
    assert ok.compare(func, 0, a, got, a, expected) is None


def test_compare_says_what_is_wrong(reference):
    args = ok.fresh_args("relu", "canonical", reference, np.random.default_rng(3))
    expected = ok._expected(reference, "relu", args)
    assert "wrong values" in ok.compare("relu", 0, args, np.abs(args[0]), args, expected)
    assert "should be a numpy array" in ok.compare("relu", 0, args, [1, 2], args, expected)
    mutated = (np.zeros_like(args[0]),)
    assert "changed its input" in ok.compare("relu", 0, args, reference["relu"](args[0]), mutated, expected)


@pytest.mark.parametrize("a", ASSIGNMENTS, ids=lambda a: a.id)
def test_plan_maps_every_test_cell_to_its_cases(a):
    from helpers.instructor.cases import CASES

    nb = nbformat.read(str(a.source), as_version=4)
    plan = ok.Plan.from_notebook(nb, list(a.functions))
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


# --------------------------------------------------------------------------- verdicts (one sandboxed process each)
RELU = "def relu(Z):\n    return np.maximum(0.0, Z)\n"
BACKWARD = "def relu_backward(dA, Z):\n    return np.where(Z > 0, dA, 0.0)\n"


def _relu_nb(relu=RELU, backward=BACKWARD, extra=""):
    src = nbformat.read(str(ROOT / "notebooks/07_relu/relu.ipynb"), as_version=4)
    for cell in src.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "relu":
            cell.source = relu
        elif gid == "relu_backward":
            cell.source = backward + extra
    return src


@pytest.mark.slow
@pytest.mark.parametrize("name,relu,backward,extra,expected", [
    ("correct", RELU, BACKWARD, "", {"relu": "ok", "relu_backward": "ok"}),
    ("wrong", "def relu(Z):\n    return Z\n", BACKWARD, "", {"relu": "wrong", "relu_backward": "ok"}),
    ("raises", "def relu(Z):\n    raise ValueError('no')\n", BACKWARD, "", {"relu": "error", "relu_backward": "ok"}),
    ("hangs", RELU, "def relu_backward(dA, Z):\n    while True:\n        pass\n", "",
     {"relu": "ok", "relu_backward": "timeout"}),
    ("crashes", "def relu(Z):\n    import os\n    os._exit(3)\n", BACKWARD, "",
     {"relu": "crashed", "relu_backward": "ok"}),
    ("never_finishes", RELU, BACKWARD, "\nwhile True:\n    pass\n", {"relu": "ok", "relu_backward": "answer-timeout"}),
    ("kills_later", RELU, BACKWARD, "\nimport threading, os\nthreading.Timer(0.2, lambda: os._exit(1)).start()\n"
                                    "import time\ntime.sleep(0.01)\n", None),
    ("ipython_only", "def relu(Z):\n    get_ipython().user_ns['In'][-1]\n    display(Z)\n    return np.maximum(0.0, Z)\n",
     BACKWARD, "\n%timeit relu_backward(np.ones(2), np.ones(2))\n", {"relu": "ok", "relu_backward": "ok"}),
    ("no_definition", "x = 1\n", BACKWARD, "", {"relu": "undefined", "relu_backward": "ok"}),
    ("wrong_at_zero_only", RELU, "def relu_backward(dA, Z):\n    return np.where(Z >= 0, dA, 0.0)\n", "",
     {"test_relu_backward_canonical": "ok", "test_relu_backward_hidden": "wrong"}),
])
def test_out_of_kernel_verdicts(name, relu, backward, extra, expected, reference):
    plan = ok.Plan.from_notebook(_relu_nb(relu, backward, extra), ["relu", "relu_backward"])
    box = sb.Box(sb.Policy(enabled=os.geteuid() == 0), name)
    try:
        t0 = time.monotonic()
        verdicts = ok.evaluate(plan, box, reference, cell_timeout=3)
        seconds = time.monotonic() - t0
    finally:
        box.cleanup()
    got = {gid: v.status for gid, v in verdicts.items()}
    assert set(got) == {"test_relu_canonical", "test_relu_hidden", "test_relu_backward_canonical",
                        "test_relu_backward_hidden"}
    by_function = {"relu": [got["test_relu_canonical"], got["test_relu_hidden"]],
                   "relu_backward": [got["test_relu_backward_canonical"], got["test_relu_backward_hidden"]]}
    if expected is None:   # a timer kills the process a moment later: nothing passes wrongly, nothing is "infra"
        assert set(by_function["relu"]) <= {"ok", "crashed", "answer-crashed"}
        assert "infra" not in got.values()
    elif "relu" in expected:
        for f, want in expected.items():
            assert by_function[f] == [want, want], {g: (v.status, v.message) for g, v in verdicts.items()}
    else:
        for gid, want in expected.items():
            assert got[gid] == want, {g: (v.status, v.message) for g, v in verdicts.items()}
    assert seconds < 30
