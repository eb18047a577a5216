"""Adversarial submissions: grading that students cannot game or break.

One session fixture builds a class of adversarial submissions to two light assignments
(01_zero_padding and 07_relu) and grades all of them in ONE parallel autograde run, with short
cell timeouts and a short budget. Each case has an expected score and outcome, and each is
asserted on its score, on what the report (the autograde outcome and ``cnn-course report``) says
about it, and on the gradebook staying intact for everyone else.

07_relu has 10 points: relu 2 + 3, relu_backward 2 + 3. 01_zero_padding has 5: 2 + 3.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import ROOT, make_course

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="session", autouse=True)
def _needs_root_sandbox():
    """Root and bubblewrap, or a skip; under CI=true their absence fails the test."""
    from conftest import require_root_sandbox

    require_root_sandbox()


CELL_TIMEOUT = 5
BUDGET = 45
RELU_CELLS = ("test_relu_canonical", "test_relu_hidden")
BACKWARD_CELLS = ("test_relu_backward_canonical", "test_relu_backward_hidden")


@dataclass
class Case:
    assignment: str
    expected: float | None         # total score; None: no score (not graded)
    status: str = "graded"         # the autograde outcome's status
    flagged: tuple = ()            # test cells the out-of-kernel check must flag (score 0, FLAG comment)
    note: str = ""                 # text the outcome's reason must contain
    why: str = ""


CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ 07_relu
    "alice": Case("07_relu", 10, why="a correct submission"),
    "wrong": Case("07_relu", 5, why="relu returns |Z|: its tests fail in the kernel and out of it"),
    "patch_numpy": Case("07_relu", 5, flagged=RELU_CELLS,
                        why="a wrong relu, and np.allclose, np.isclose, np.array_equal, np.testing.assert_allclose "
                            "and np.abs replaced so that every in-kernel check passes"),
    "patch_checker": Case("07_relu", 5, flagged=RELU_CELLS,
                          why="a wrong relu, and check_function redefined in the answer cell"),
    "patch_builtins": Case("07_relu", 5, flagged=RELU_CELLS,
                           why="a wrong relu; a fake check_function put into builtins, the real one deleted"),
    "neuter_tests": Case("07_relu", 5, flagged=RELU_CELLS,
                         why="a wrong relu; an IPython input transformer blanks every later test cell"),
    "hardcoded": Case("07_relu", 5, flagged=("test_relu_canonical",),
                      why="relu returns the canonical expected output: the visible test passes, the hidden fails"),
    "lookup_h5": Case("07_relu", 5, flagged=RELU_CELLS,
                      why="relu looks every stored case up in data/reference_outputs.h5: all in-kernel tests pass"),
    "toplevel_loop": Case("07_relu", 5, flagged=RELU_CELLS, note="timed out",
                          why="a correct relu followed by a top-level while True in its answer cell"),
    "hanging": Case("07_relu", 5, note="timed out", why="relu_backward never returns"),
    "memory_bomb": Case("07_relu", 5, why="relu allocates 16 GiB: MemoryError at the address-space limit"),
    "fork_bomb": Case("07_relu", 10, note="processes left behind",
                      why="after a correct relu_backward, fork until the process limit, children sleep"),
    "huge_output": Case("07_relu", 10, note="output truncated",
                        why="a cell prints 100 lines of 120 kB, 200,000 lines and then one 50 MB line"),
    "exit_midway": Case("07_relu", 10, note="kernel died",
                        why="os._exit(1) in a cell of its own between relu's and relu_backward's tests"),
    "exit_in_function": Case("07_relu", 5, note="kernel died", why="relu_backward calls os._exit"),
    "read_source": Case("07_relu", 5,
                        why="relu reads the solution from the source notebook (denied, so it falls back to a "
                            "wrong one); a cell tries to read sources, gradebook, other submissions"),
    "write_gradebook": Case("07_relu", 10,
                            why="correct functions; a cell tries to raise alice's score in the gradebook, "
                                "and to overwrite her submission and the source notebook"),
    "network": Case("07_relu", 10, why="correct functions; a cell tries to reach the network and the grader's "
                                       "loopback"),
    "write_outside": Case("07_relu", 10, why="correct functions; a cell writes outside its scratch folder"),
    "leak_hidden": Case("07_relu", 10,
                        why="relu records the source of the hidden test that calls it; a later cell prints it, "
                            "displays it as HTML and raises it in a traceback"),
    "loud_wrong": Case("07_relu", 5, note="output truncated",
                       why="a wrong relu that prints 10 MB on every call: the output is capped, its failure is not"),
    "over_budget": Case("07_relu", 5, note="time budget ran out",
                        why="correct functions, but after relu's tests a dozen cells sleep 4 s each (under the cell "
                            "timeout): the 45 s budget runs out before relu_backward's tests"),
    "own_module": Case("07_relu", 10,
                       why="relu imports a helper from the student's own mylib.py; the submission also holds an "
                           "ipykernel_launcher.py that would kill a kernel started in its folder"),
    # ------------------------------------------------------------------ 01_zero_padding
    "alice01": Case("01_zero_padding", 5, why="a correct submission"),
    "deleted_test": Case("01_zero_padding", 5, why="the hidden test cell deleted: nbgrader puts it back"),
    "edited_locked": Case("01_zero_padding", 0,
                          why="a wrong zero_pad, and both test cells edited to print a pass line: restored"),
    "changed_points": Case("01_zero_padding", 5, why="points of a test cell set to 100: the gradebook's count"),
    "metadata_lost": Case("01_zero_padding", 5, note="metadata was missing",
                          why="every cell pasted into a fresh notebook: the nbgrader metadata is lost"),
    "corrupt": Case("01_zero_padding", None, status="corrupt", why="the notebook is not valid JSON"),
    # ------------------------------------------------------------------ 02_conv_single_step
    "zero_d": Case("02_conv_single_step", 5, why="a correct conv_single_step that returns a 0-d array"),
    # ------------------------------------------------------------------ the attacks of the grading-engine issue
    "forge_events": Case("07_relu", 5, flagged=RELU_CELLS,
                         why="a wrong relu and a fake check_function; in the out-of-kernel checker the answer cell "
                             "writes forged 'finished' and result events to every descriptor it has"),
    "symlink_notebook": Case("07_relu", None, status="rejected", note="link",
                             why="relu.ipynb is a symlink to the instructor's source notebook"),
    "symlink_file": Case("07_relu", None, status="rejected", note="link",
                         why="a correct notebook and a data file that is a symlink to a root-only file"),
    "hardlink_file": Case("07_relu", None, status="rejected", note="hard link",
                          why="a correct notebook and a hard link to a root-only file outside the submission"),
    "zombie_survivor": Case("07_relu", 10,
                            why="correct functions; a cell leaves a process whose main thread has exited while "
                                "another thread hunts for the next students' kernels"),
    "plant_symlinks": Case("07_relu", 10, note="kernel died",
                           why="correct functions; a process plants symlinks to a canary file and to the gradebook "
                               "in every folder it can write, then the kernel dies and is restarted"),
    "*": Case("07_relu", None, status="rejected", note="not allowed",
              why="a student folder named '*' (nbgrader treats ids as globs)"),
    "=2+5": Case("07_relu", None, status="rejected", note="not allowed",
                 why="a formula-shaped student id"),
    "output_dicts": Case("07_relu", 10, note="output truncated",
                         why="correct functions; displays with 20 MB in a JSON dict value and 20 MB in the output "
                             "metadata (under ZeroMQ's 32 MiB message cap, over the cell's 8 MiB)"),
    "script_output": Case("07_relu", 10,
                          why="correct functions; outputs <script>, onerror=, javascript: links and a Javascript "
                              "output, and a markdown cell with script"),
    "fill_disk": Case("07_relu", 10,
                      why="correct functions; a cell writes 3 GiB and creates 100,000 files in its scratch folder"),
    "fake_graded": Case("07_relu", 10, note="grade",
                        why="an extra graded cell worth 100 points that the source notebook does not have"),
    "dup_grade_id": Case("07_relu", 10, note="grade",
                         why="a copy of a test cell that keeps its grade_id"),
    # ------------------------------------------------------------------ found by the hostile-class review
    "partial_credit": Case("07_relu", 5, flagged=RELU_CELLS,
                           why="a wrong relu, and check_function redefined to return 'passed' (an execute_result: "
                               "nbgrader's partial credit would give full points)"),
    "prerun_result": Case("07_relu", 0,
                          why="wrong relu and relu_backward; a pre_run_cell hook sends an execute_result before "
                              "every cell"),
    "crash_partial": Case("07_relu", 0, flagged=RELU_CELLS,
                          why="check_function returns 'passed' for relu and 99 for relu_backward (a value over the "
                              "points made nbgrader crash after saving relu's cells)"),
    "display_update": Case("07_relu", 10, note="output truncated",
                           why="correct functions; 12 small displays with one display_id, then an update of 24 MB"),
    "timestamp_overflow": Case("07_relu", 10, note="timestamp",
                               why="a correct notebook with timestamp.txt = '9' * 30"),
    "web_page": Case("07_relu", None, status="rejected", note="browser",
                     why="a correct notebook and evil.html (script) beside it, which formgrader would serve"),
    "ansi_name": Case("07_relu", None, status="rejected",
                      why="a FIFO whose name holds terminal escape sequences"),
    "huge_notebook": Case("07_relu", None, status="rejected", note="MiB",
                          why="a notebook of 150,000 cells (60 MB)"),
}


# --------------------------------------------------------------------------- building the class
def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _insert_after(nb, grade_id, source):
    i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    nb.cells.insert(i + 1, new_code_cell(source))


def _probe_code(kind: str, paths: list[str]) -> str:
    """A cell that tries ``kind`` (read, write) on each path and prints one line per attempt."""
    return (
        "import os, sqlite3\n"
        f"for p in {paths!r}:\n"
        "    try:\n"
        + ("        with open(p, 'rb') as fh:\n            fh.read(16)\n        print('READ', p)\n"
           if kind == "read" else
           "        with open(p, 'ab') as fh:\n            fh.write(b'pwned')\n        print('WROTE', p)\n")
        + "    except Exception as exc:\n"
          "        print('DENIED', p, type(exc).__name__)\n")


def build_class(course: Path, port: int) -> None:
    from helpers.instructor.demo import filled_notebook

    def nb07(mistakes=()):
        return filled_notebook(course / "release/07_relu/relu.ipynb", course / "notebooks/07_relu/relu.ipynb",
                               list(mistakes))

    def nb02(mistakes=()):
        return filled_notebook(course / "release/02_conv_single_step/conv_single_step.ipynb",
                               course / "notebooks/02_conv_single_step/conv_single_step.ipynb", list(mistakes))

    def nb01(mistakes=()):
        return filled_notebook(course / "release/01_zero_padding/zero_padding.ipynb",
                               course / "notebooks/01_zero_padding/zero_padding.ipynb", list(mistakes))

    c = str(course)
    nbs: dict[str, object] = {}
    nbs["alice"] = nb07()
    nbs["wrong"] = nb07([("relu", "A = np.maximum(0.0, Z)", "A = np.abs(Z)")])

    nb = nb07()
    _cell(nb, "relu").source = (
        "def relu(Z):\n    return np.abs(Z) + 1.0\n\n"
        "import numpy\n"
        "numpy.allclose = lambda *a, **k: True\n"
        "numpy.isclose = lambda a, *r, **k: numpy.ones(numpy.shape(a), dtype=bool)\n"
        "numpy.array_equal = lambda *a, **k: True\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "_abs = numpy.abs\n"
        "numpy.abs = lambda x, *a, **k: numpy.zeros(numpy.shape(x))\n")
    nbs["patch_numpy"] = nb

    nb = nb07()
    _cell(nb, "relu").source = ("def relu(Z):\n    return Z.copy()\n\n"
                                "def check_function(fn, name, cases=None):\n"
                                "    print(f'\\u2714 {name}: all checks passed')\n")
    nbs["patch_checker"] = nb

    nb = nb07()
    _cell(nb, "relu").source = ("def relu(Z):\n    return Z.copy()\n\n"
                                "import builtins\n"
                                "builtins.check_function = lambda fn, name, cases=None: print('\\u2714', name)\n"
                                "del check_function\n")
    nbs["patch_builtins"] = nb

    nb = nb07()
    _cell(nb, "relu").source = ("def relu(Z):\n    return Z.copy()\n\n"
                                "get_ipython().input_transformers_cleanup.append(\n"
                                "    lambda lines: [] if any('check_function' in l for l in lines) else lines)\n")
    nbs["neuter_tests"] = nb

    nb = nb07()
    _cell(nb, "relu").source = ("from helpers import load_case\n"
                                "_CANONICAL = load_case('relu').outputs['A']\n\n"
                                "def relu(Z):\n    return _CANONICAL.copy()\n")
    nbs["hardcoded"] = nb

    nb = nb07()
    _cell(nb, "relu").source = (
        "import h5py\nfrom helpers.data import REFERENCE_FILE\n\n"
        "def relu(Z):\n"
        "    with h5py.File(REFERENCE_FILE, 'r') as h5:\n"
        "        for case in h5['relu'].values():\n"
        "            x = case['args']['0'][()]\n"
        "            if x.shape == Z.shape and np.array_equal(x, Z):\n"
        "                return case['outputs']['A'][()]\n"
        "    return Z.copy()\n")
    nbs["lookup_h5"] = nb

    nbs["toplevel_loop"] = nb07([("relu", "    return A", "    return A\n\nwhile True:\n    pass")])
    nbs["hanging"] = nb07([("relu_backward", "dZ = np.where(Z > 0, dA, 0.0)", "while True:\n        pass")])
    nbs["memory_bomb"] = nb07([("relu", "A = np.maximum(0.0, Z)",
                                "hog = np.ones(2 ** 31)   # 16 GiB\n    A = np.maximum(0.0, Z)")])
    nbs["fork_bomb"] = nb07([("relu_backward", "    return dZ",
                              "    return dZ\n\nimport os, time\nkids = 0\nwhile kids < 100000:\n"
                              "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
                              "    if pid == 0:\n        time.sleep(600)\n        os._exit(0)\n    kids += 1\n"
                              "print('forked', kids)")])
    nb = nb07()
    # 12 MB in a hundred big lines first: past the 8 MiB cell cap within a second even on a loaded
    # machine (the 5 s cell timeout may end the slow part, 200,000 small prints, before the cap is reached)
    _insert_after(nb, "test_relu_hidden", "for i in range(100):\n    print('z' * 120_000, flush=True)\n"
                                          "for i in range(200_000):\n    print('spam', i, 'x' * 100)\n"
                                          "print('y' * 50_000_000)")
    nbs["huge_output"] = nb
    nb = nb07()
    _insert_after(nb, "test_relu_hidden", "import os\nos._exit(1)")
    nbs["exit_midway"] = nb
    nbs["exit_in_function"] = nb07([("relu_backward", "dZ = np.where(Z > 0, dA, 0.0)", "import os\n    os._exit(7)")])

    nb = nb07()
    _cell(nb, "relu").source = (
        "import json\n\ndef relu(Z):\n"
        "    try:\n"
        f"        src = json.load(open({c + '/notebooks/07_relu/relu.ipynb'!r}))\n"
        "        code = ''.join(next(''.join(x['source']) for x in src['cells']\n"
        "                            if x['metadata'].get('nbgrader', {}).get('grade_id') == 'relu'))\n"
        "        ns = {'np': np}\n        exec(code, ns)\n        return ns['relu'](Z)\n"
        "    except OSError:\n        return Z.copy()\n")
    secret = [f"{c}/notebooks/07_relu/relu.ipynb", f"{ROOT}/notebooks/07_relu/relu.ipynb", f"{c}/gradebook.db",
              f"{c}/submitted/alice/07_relu/relu.ipynb", f"{c}/autograded/alice/07_relu/relu.ipynb",
              f"{c}/nbgrader_config.py", "/root/.bashrc", "/etc/shadow"]
    _insert_after(nb, "test_relu_backward_hidden", _probe_code("read", secret) +
                  "print('cwd', os.getcwd(), 'listing /:', sorted(os.listdir('/')))\n")
    nbs["read_source"] = nb

    nb = nb07()
    _insert_after(nb, "test_relu_backward_hidden",
                  "import sqlite3\ntry:\n"
                  f"    con = sqlite3.connect({c + '/gradebook.db'!r})\n"
                  "    con.execute('UPDATE grade SET manual_score = 99')\n    con.commit()\n    print('WROTE gradebook')\n"
                  "except Exception as exc:\n    print('DENIED gradebook', type(exc).__name__)\n"
                  + _probe_code("write", [f"{c}/gradebook.db", f"{c}/submitted/alice/07_relu/relu.ipynb",
                                          f"{c}/notebooks/07_relu/relu.ipynb",
                                          f"{ROOT}/notebooks/07_relu/relu.ipynb"]))
    nbs["write_gradebook"] = nb

    nb = nb07()
    _insert_after(nb, "test_relu_backward_hidden",
                  "import socket\n"
                  f"for host, port in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('pypi.org', 443)]:\n"
                  "    try:\n        socket.create_connection((host, port), timeout=3).close()\n"
                  "        print('CONNECTED', host, port)\n"
                  "    except Exception as exc:\n        print('BLOCKED', host, port, type(exc).__name__)\n")
    nbs["network"] = nb

    nb = nb07()
    _insert_after(nb, "test_relu_backward_hidden",
                  _probe_code("write", [f"/tmp/cnn-course-pwned-{course.name}", f"{c}/pwned", f"{ROOT}/pwned",
                                        "/dev/shm/cnn-course-pwned", "/var/tmp/cnn-course-pwned",
                                        "/etc/cnn-course-pwned"])
                  + "import os\nopen(os.path.join(os.environ['HOME'], 'mine.txt'), 'w').write('ok')\n"
                    "print('SCRATCH OK', os.path.exists(os.path.join(os.environ['HOME'], 'mine.txt')))\n")
    nbs["write_outside"] = nb

    nb = nb07()
    _cell(nb, "relu").source = (
        "_seen = []\n\ndef relu(Z):\n"
        "    ip = get_ipython()\n"
        "    _seen.append(ip.user_ns['In'][-1])\n"
        "    return np.maximum(0.0, Z)\n")
    _insert_after(nb, "test_relu_backward_hidden",
                  "from IPython.display import HTML, display\n"
                  "leak = '\\n'.join(_seen)\nprint(leak)\ndisplay(HTML('<pre>' + leak + '</pre>'))\nleak")
    _insert_after(nb, "test_relu_backward_hidden", "raise RuntimeError('\\n'.join(_seen))")
    nbs["leak_hidden"] = nb

    nb = nb07()
    _cell(nb, "relu").source = "def relu(Z):\n    print('x' * 10_000_000)\n    return Z.copy()\n"
    nbs["loud_wrong"] = nb
    nb = nb07()
    for _ in range(12):
        _insert_after(nb, "test_relu_hidden", "import time\ntime.sleep(4)")
    nbs["over_budget"] = nb

    nb = nb07()
    _cell(nb, "relu").source = "from mylib import rectify\n\ndef relu(Z):\n    return rectify(Z)\n"
    nbs["own_module"] = nb
    extra_files = {"own_module": {"mylib.py": "import numpy as np\n\ndef rectify(Z):\n    return np.maximum(0.0, Z)\n",
                                  "ipykernel_launcher.py": "import os\nos._exit(1)\n"}}

    # ------------------------------------------------------------------ 01
    nbs["alice01"] = nb01()
    nb = nb01()
    nb.cells = [x for x in nb.cells if x.metadata.get("nbgrader", {}).get("grade_id") != "test_zero_pad_hidden"]
    nbs["deleted_test"] = nb
    nb = nb01([("zero_pad", 'mode="constant", constant_values=0)', 'mode="edge")')])
    for gid in ("test_zero_pad_canonical", "test_zero_pad_hidden"):
        _cell(nb, gid).source = "print('\\u2714 zero_pad: all checks passed')"
    nbs["edited_locked"] = nb
    nb = nb01()
    _cell(nb, "test_zero_pad_canonical").metadata["nbgrader"]["points"] = 100
    nbs["changed_points"] = nb
    nb = nb01()
    fresh = new_notebook(metadata=nb.metadata)
    fresh.cells = [new_code_cell(x.source) for x in nb.cells if x.cell_type == "code"]
    nbs["metadata_lost"] = fresh

    # ------------------------------------------------------------------ 02
    nb = nb02()
    _cell(nb, "conv_single_step").source = (
        "def conv_single_step(a_slice_prev, W, b):\n"
        "    return np.asarray(np.sum(a_slice_prev * W) + b.item())   # a 0-d array\n")
    nbs["zero_d"] = nb

    # ------------------------------------------------------------------ the grading-engine issue's attacks
    nb = nb07()
    _cell(nb, "relu").source = (
        "def relu(Z):\n    return Z.copy()\n\n"
        "def check_function(fn, name, cases=None):\n    print('\\u2714', name, 'all checks passed')\n\n"
        "import json as _json, os as _os, sys as _sys\n"
        "if 'ipykernel' not in _sys.modules:            # only in the out-of-kernel checker\n"
        "    _lines = [{'event': 'finished'}, {'event': 'func-undefined', 'function': 'relu'}]\n"
        "    _lines += [{'event': 'result', 'function': 'relu', 'case': k, 'error': 'x'} for k in range(8)]\n"
        "    _data = ''.join(_json.dumps(x) + '\\n' for x in _lines).encode()\n"
        "    _fds = {int(a) for a in _sys.argv if a.isdigit()} | set(range(3, 40))\n"
        "    for _fd in sorted(_fds):\n"
        "        try:\n            _os.write(_fd, _data)\n        except OSError:\n            pass\n")
    nbs["forge_events"] = nb

    nbs["symlink_notebook"] = None          # made below: a link, not a file
    nbs["symlink_file"] = nb07()
    nbs["hardlink_file"] = nb07()

    nb = nb07()
    _insert_after(nb, "test_relu_backward_hidden",
                  "import os, threading, time\n"
                  "def _hunt():\n"
                  "    end = time.time() + 120\n"
                  "    while time.time() < end:\n"
                  "        for pid in os.listdir('/proc'):\n"
                  "            if pid.isdigit() and int(pid) != os.getpid():\n"
                  "                try:\n"
                  "                    open(f'/proc/{pid}/root/tmp/pwned-by-zombie', 'w').write('x')\n"
                  "                    open(f'/proc/{pid}/cwd/pwned-by-zombie', 'w').write('x')\n"
                  "                except OSError:\n"
                  "                    pass\n"
                  "        time.sleep(0.2)\n"
                  "if os.fork() == 0:\n"
                  "    os.setsid()\n"
                  "    import ctypes\n"
                  f"    ctypes.CDLL(None).prctl(15, {_survivor_name(course).encode()!r}, 0, 0, 0)   # PR_SET_NAME\n"
                  "    threading.Thread(target=_hunt).start()\n"
                  "    ctypes.CDLL(None).syscall(60, 0)        # exit the main thread only (SYS_exit)\n"
                  "print('survivor started')\n")
    nbs["zombie_survivor"] = nb

    canary = course / "canary.txt"
    canary.write_text("canary\n")
    nb = nb07()
    _insert_after(nb, "test_relu_hidden",
                  "import os, time\n"
                  f"targets = [{str(canary)!r}, {c + '/gradebook.db'!r}]\n"
                  "if os.fork() == 0:\n"
                  "    os.setsid()\n"
                  "    end = time.time() + 60\n"
                  "    while time.time() < end:\n"
                  "        tops = {os.getcwd(), os.environ.get('HOME', '/'), '/tmp', '/var/tmp', '/dev/shm', '/run'}\n"
                  "        tops |= {os.path.join('/', x) for x in os.listdir('/') if os.access(os.path.join('/', x), os.W_OK)}\n"
                  "        dirs = [d for t in tops if os.path.isdir(t) and not t.startswith(('/proc', '/sys'))\n"
                  "                for d, _, _ in os.walk(t)]\n"
                  "        for d in dirs:\n"
                  "            if not os.access(d, os.W_OK):\n"
                  "                continue\n"
                  "            for i, name in enumerate(['kernel.json', 'kernel-1.json', 'kernel2.json', 'kernel-ipc-1',\n"
                  "                                      'connection.json', 'kernel2.log', 'shell', 'iopub']):\n"
                  "                p = os.path.join(d, name)\n"
                  "                try:\n"
                  "                    os.symlink(targets[i % 2], p)\n"
                  "                except OSError:\n"
                  "                    pass\n"
                  "        time.sleep(0.05)\n"
                  "    os._exit(0)\n"
                  "time.sleep(1)\n"
                  "os._exit(1)\n")
    nbs["plant_symlinks"] = nb

    nbs["*"] = nb07()
    nbs["=2+5"] = nb07()

    nb = nb07()
    _insert_after(nb, "test_relu_backward_hidden",
                  "from IPython.display import display\n"
                  "display({'application/json': {'k': 'z' * 20_000_000}}, raw=True)\n"
                  "display({'text/plain': 'meta'}, raw=True, metadata={'big': 'y' * 20_000_000})\n")
    nbs["output_dicts"] = nb

    nb = nb07()
    _insert_after(nb, "test_relu_backward_hidden",
                  "from IPython.display import HTML, Javascript, display\n"
                  "print('<script>document.title = \"pwned-print\"</script>')\n"
                  "display(HTML('<img src=x onerror=\"document.title=\\'pwned-img\\'\">'\n"
                  "             '<a href=\"javascript:document.title=1\">click</a><script>window.pwned = 1</script>'))\n"
                  "display(Javascript('window.pwned = 2; document.title = \"pwned-js\"'))\n")
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "<script>document.title = 'pwned-md'</script><img src=x onerror=\"window.pwned=3\">\n\n"
        "[click](&#106;avascript:window.pwned=4)"))
    _insert_after(nb, "test_relu_backward_hidden",
                  "from IPython.display import Markdown, display\n"
                  "display(Markdown('[also](&#106;avascript:window.pwned=5)'))\n")
    nbs["script_output"] = nb

    nb = nb07()
    _insert_after(nb, "test_relu_backward_hidden",
                  "import os\n"
                  "try:\n"
                  "    with open('big.bin', 'wb') as fh:\n"
                  "        for _ in range(3 * 1024):\n"
                  "            fh.write(b'x' * 2 ** 20)\n"
                  "    print('WROTE 3 GiB')\n"
                  "except OSError as exc:\n"
                  "    print('DISK FULL after', os.path.getsize('big.bin') // 2 ** 20, 'MiB', exc.errno)\n"
                  "os.remove('big.bin')\n"
                  "os.makedirs('many', exist_ok=True)\n"
                  "made = 0\n"
                  "try:\n"
                  "    for i in range(100_000):\n"
                  "        open(f'many/{i}', 'w').close()\n"
                  "        made += 1\n"
                  "    print('MADE 100000 files')\n"
                  "except OSError as exc:\n"
                  "    print('INODES FULL after', made, 'files', exc.errno)\n")
    nbs["fill_disk"] = nb

    nb = nb07()
    bonus = new_code_cell("print('free points')")
    bonus.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 100,
                                  "grade_id": "bonus", "schema_version": 3}
    nb.cells.insert(3, bonus)
    nbs["fake_graded"] = nb

    nb = nb07()
    copy_of_test = nbformat.from_dict(json.loads(json.dumps(_cell(nb, "test_relu_canonical"))))
    copy_of_test.source = "print('the same grade id, another cell')"
    nb.cells.insert(3, copy_of_test)
    nbs["dup_grade_id"] = nb

    nb = nb07([("relu", "A = np.maximum(0.0, Z)", "A = np.abs(Z)")])
    _cell(nb, "relu").source += "\n\ndef check_function(fn, name, cases=None):\n    return 'passed'\n"
    nbs["partial_credit"] = nb

    nb = nb07([("relu", "A = np.maximum(0.0, Z)", "A = np.zeros_like(Z)"),
               ("relu_backward", "dZ = np.where(Z > 0, dA, 0.0)", "dZ = np.zeros_like(dA)")])
    _cell(nb, "relu").source += (
        "\n\ndef _ok(info):\n"
        "    k = get_ipython().kernel\n"
        "    k.session.send(k.iopub_socket, 'execute_result', {'data': {'text/plain': \"'ok'\"}, 'metadata': {},\n"
        "                   'execution_count': 1}, parent=k.get_parent('shell'))\n"
        "get_ipython().events.register('pre_run_cell', _ok)\n")
    nbs["prerun_result"] = nb

    nb = nb07([("relu", "A = np.maximum(0.0, Z)", "A = np.zeros_like(Z)"),
               ("relu_backward", "dZ = np.where(Z > 0, dA, 0.0)", "dZ = np.zeros_like(dA)")])
    _cell(nb, "relu").source += ("\n\ndef check_function(fn, name, cases=None):\n"
                                 "    return 'passed' if name == 'relu' else 99\n")
    nbs["crash_partial"] = nb

    nb = nb07()
    _insert_after(nb, "test_relu_backward_hidden",
                  "from IPython.display import display, update_display\n"
                  "for _ in range(12):\n    display('small', display_id='same')\n")
    nb.cells.append(new_code_cell("from IPython.display import update_display\n"
                                  "update_display({'text/plain': 'x' * 24_000_000}, raw=True, display_id='same')\n"))
    nbs["display_update"] = nb

    nbs["timestamp_overflow"] = nb07()
    nbs["web_page"] = nb07()
    nbs["ansi_name"] = nb07()
    big = nb07()
    big.cells += [new_code_cell("x = 1  # " + "y" * 300) for _ in range(150_000)]
    nbs["huge_notebook"] = big

    notebook_of = {"07_relu": "relu.ipynb", "01_zero_padding": "zero_padding.ipynb",
                   "02_conv_single_step": "conv_single_step.ipynb"}
    for student, nb in nbs.items():
        if nb is None:
            continue
        a = CASES[student].assignment
        folder = course / "submitted" / student / a
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / notebook_of[a]))
        for name, text in extra_files.get(student, {}).items():
            (folder / name).write_text(text)
    folder = course / "submitted" / "corrupt" / "01_zero_padding"
    folder.mkdir(parents=True)
    (folder / "zero_padding.ipynb").write_text('{"cells": [ {"cell_type": "code", "sou')
    folder = course / "submitted" / "symlink_notebook" / "07_relu"
    folder.mkdir(parents=True)
    (folder / "relu.ipynb").symlink_to("../../../notebooks/07_relu/relu.ipynb")
    secret = course / "root-only.txt"
    secret.write_text("SECRET-ROOT-ONLY\n")
    secret.chmod(0o600)
    (course / "submitted" / "symlink_file" / "07_relu" / "data.txt").symlink_to(secret)
    os.link(secret, course / "submitted" / "hardlink_file" / "07_relu" / "data.txt")
    (course / "submitted" / "timestamp_overflow" / "07_relu" / "timestamp.txt").write_text("9" * 30)
    (course / "submitted" / "web_page" / "07_relu" / "evil.html").write_text(
        "<script>fetch('/api/contents').then(r => document.title = 'PWNED')</script>")
    os.mkfifo(course / "submitted" / "ansi_name" / "07_relu" / "\x1b[2K\x1b[32mok\x1b[0m\x1b[8m")
    assert set(CASES) == set(nbs) | {"corrupt"}


def _survivor_name(course: Path) -> str:
    """The process name (at most 15 characters) the zombie_survivor's process gives itself."""
    return "cnnsurv" + hashlib.sha256(str(course).encode()).hexdigest()[:8]


def _digest(paths) -> dict:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    from helpers.instructor import autograde as ag
    from helpers.instructor.feedback import feedback_overrides
    from helpers.instructor.grades import report
    from helpers.instructor.nbapi import load_config, make_api
    from helpers.instructor.release import release

    course = make_course(tmp_path_factory.mktemp("adversarial"))
    config = load_config(course)
    release(config, ["01_zero_padding", "02_conv_single_step", "07_relu"], stream=io.StringIO())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    connections = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, addr = listener.accept()
                connections.append(addr)
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    build_class(course, port)
    watched = list((course / "submitted" / "alice").rglob("*.ipynb")) + \
        list((course / "submitted" / "alice01").rglob("*.ipynb")) + list((ROOT / "notebooks").rglob("*.ipynb"))
    before = _digest(watched)
    log = io.StringIO()
    t0 = time.monotonic()
    outcomes = ag.autograde(course, ["01_zero_padding", "02_conv_single_step", "07_relu"], jobs=2,
                            cell_timeout=CELL_TIMEOUT, budget=BUDGET, stream=log)
    seconds = time.monotonic() - t0
    stop.set()
    thread.join(2)
    listener.close()
    api = make_api(load_config(course, overrides=feedback_overrides()))
    feedback = {a: api.generate_feedback(a, None, force=True)
                for a in ("01_zero_padding", "02_conv_single_step", "07_relu")}
    text, _ = report(config, course / "reports")
    return {"course": course, "config": config, "outcomes": {o.student: o for o in outcomes}, "log": log.getvalue(),
            "table": ag.summary_table(outcomes),
            "report": text, "seconds": seconds, "before": before, "after": _digest(watched),
            "connections": connections, "feedback": feedback}


def _autograded(graded, student) -> str:
    a = CASES[student].assignment
    names = {"07_relu": "relu.ipynb", "01_zero_padding": "zero_padding.ipynb",
             "02_conv_single_step": "conv_single_step.ipynb"}
    path = graded["course"] / "autograded" / student / a / names[a]
    nb = nbformat.read(str(path), as_version=4)
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") if o.get("output_type") == "stream" else
                       json.dumps(o.get("data", {})) + o.get("evalue", ""))
    return "\n".join(out)


def _grades(graded) -> dict:
    from helpers.instructor.nbapi import gradebook

    out = {}
    with gradebook(graded["config"]) as gb:
        for student in gb.students:
            for sub in student.submissions:
                for nb in sub.notebooks:
                    for g in nb.grades:
                        out[(student.id, sub.assignment.name, g.name)] = (g.auto_score, g.manual_score, g.score,
                                                                          g.max_score)
    return out


# --------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("student", sorted(CASES))
def test_score_and_outcome(graded, student):
    case = CASES[student]
    o = graded["outcomes"][student]
    assert o.status == case.status, f"{student} ({case.why}): {o}"
    if case.expected is None:
        assert o.score in (None, 0)
    else:
        assert o.score == case.expected, f"{student} ({case.why}): score {o.score}, outcome {o}"
        assert o.max_score == (10 if case.assignment == "07_relu" else 5), "a fake graded cell changed the points"
    assert case.note in o.reason, f"{student}: expected {case.note!r} in the outcome: {o.reason!r}"


@pytest.mark.parametrize("student", sorted(CASES))
def test_flags_in_gradebook_and_report(graded, student):
    case = CASES[student]
    grades = _grades(graded)
    report = graded["report"]
    flagged_lines = [ln for ln in report.splitlines() if ln.strip().startswith(f"{student} ")]
    for gid in case.flagged:
        auto, manual, score, _ = grades[(student, case.assignment, gid)]
        # the out-of-kernel verdict makes nbgrader itself score the cell 0; nothing is written by hand
        assert auto == 0 and manual is None and score == 0, (student, gid, grades[(student, case.assignment, gid)])
        assert any(f"{case.assignment}/{gid}: FLAG" in ln for ln in flagged_lines), report
        assert any(f"FLAG {gid}" in f for f in graded["outcomes"][student].flags)
    if not case.flagged:
        assert not flagged_lines, f"{student} should not be flagged: {flagged_lines}"
        assert not graded["outcomes"][student].flags
        assert all(m is None for (s, a, g), (auto, m, score, mx) in grades.items() if s == student)


def test_everyone_else_intact(graded):
    grades = _grades(graded)
    for (s, a, g), (auto, manual, score, mx) in grades.items():
        if s in ("alice", "alice01"):
            assert auto == mx and manual is None and score == mx, (s, a, g)
        assert manual is None, f"unexpected manual score {manual} for {s} {a}/{g}"
    con = sqlite3.connect(graded["course"] / "gradebook.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert graded["before"] == graded["after"], "a submission or a source notebook was changed"
    assert not list(graded["course"].glob("pwned*")) and not (ROOT / "pwned").exists()
    assert not list(Path("/tmp").glob(f"cnn-course-pwned-{graded['course'].name}*"))
    assert not Path("/dev/shm/cnn-course-pwned").exists() and not Path("/var/tmp/cnn-course-pwned").exists()


def test_attempts_were_denied(graded):
    read = _autograded(graded, "read_source")
    assert "READ " not in read and read.count("DENIED") >= 8, read[-2000:]
    assert "notebooks" not in read.split("listing /:")[1].split("\n")[0]
    write = _autograded(graded, "write_gradebook")
    assert "WROTE" not in write and "DENIED gradebook" in write, write[-2000:]
    net = _autograded(graded, "network")
    assert "CONNECTED" not in net and net.count("BLOCKED") == 3, net[-2000:]
    assert graded["connections"] == [], "the sandbox reached the grader's loopback"
    outside = _autograded(graded, "write_outside")
    assert "WROTE" not in outside and outside.count("DENIED") == 6 and "SCRATCH OK True" in outside, outside[-2000:]


def test_huge_output_is_capped(graded):
    path = graded["course"] / "autograded" / "huge_output" / "07_relu" / "relu.ipynb"
    assert path.stat().st_size < 8 * 2 ** 20 + 2 ** 20    # the 8 MiB cell cap, and the rest of the notebook
    assert "output truncated" in _autograded(graded, "huge_output").lower()


def test_feedback_never_leaks_hidden_tests(graded):
    from helpers.instructor.feedback import hidden_test_texts

    assert all(r.get("success") for r in graded["feedback"].values()), graded["feedback"]
    secrets = {a: hidden_test_texts(nbformat.read(str(ROOT / "notebooks" / a / f"{n}.ipynb"), as_version=4))
               for a, n in (("07_relu", "relu"), ("01_zero_padding", "zero_padding"),
                            ("02_conv_single_step", "conv_single_step"))}
    pages = sorted((graded["course"] / "feedback").rglob("*.html"))
    assert len(pages) >= 20
    for page in pages:
        html = page.read_text()
        leaked = [t for t in secrets[page.parent.name] if t in html or t.replace('"', "&quot;") in html
                  or t.replace('"', "&#34;") in html]
        assert not leaked, f"{page}: hidden test text in the feedback: {leaked[:3]}"
    flagged = (graded["course"] / "feedback" / "patch_checker" / "07_relu" / "relu.html").read_text()
    assert "OutOfKernelCheckFailed" in flagged


def test_sandbox_report_and_timing(graded):
    log = graded["log"]
    first = log.splitlines()[0]
    assert first.startswith("sandbox:") and "netns (no network)" in first and "read-only fs" in first
    assert "NOT applied" not in first, first
    assert graded["seconds"] < 400, f"the adversarial class took {graded['seconds']:.0f} s"
    print(f"\nadversarial class: {len(CASES)} submissions graded in {graded['seconds']:.0f} s\n{first}\n"
          f"{graded['table']}")


# --------------------------------------------------------------------------- the grading-engine issue's attacks
def _files_under(*folders):
    return [p for f in folders if f.exists() for p in f.rglob("*") if p.is_file()]


def test_links_are_rejected_and_nothing_leaks(graded):
    course = graded["course"]
    for student in ("symlink_notebook", "symlink_file", "hardlink_file"):
        o = graded["outcomes"][student]
        assert o.status == "rejected" and student in graded["log"], (student, o)
        assert not (course / "autograded" / student).exists()
    for path in _files_under(course / "autograded", course / "feedback"):
        assert b"SECRET-ROOT-ONLY" not in path.read_bytes(), f"a root-only file leaked into {path}"



def test_unsafe_student_ids_never_reach_nbgrader(graded):
    for student in ("*", "=2+5"):
        o = graded["outcomes"][student]
        assert o.status == "rejected" and "rename the folder" in o.reason, o
    grades = _grades(graded)
    assert not [k for k in grades if k[0] in ("*", "=2+5")]
    assert graded["outcomes"]["alice"].score == 10


def test_no_survivor_reaches_anyone(graded):
    import psutil

    assert "survivor started" in _autograded(graded, "zombie_survivor")   # the attack did run
    name = _survivor_name(graded["course"])
    left = [p.info for p in psutil.process_iter(["pid", "username", "name", "status"]) if p.info["name"] == name]
    assert not left, f"the survivor outlived its kernel: {left}"
    assert not list(Path("/tmp").rglob("pwned-by-zombie"))
    assert not list(graded["course"].rglob("pwned-by-zombie"))


def test_planted_symlinks_are_never_followed(graded):
    course = graded["course"]
    assert (course / "canary.txt").read_text() == "canary\n"
    con = sqlite3.connect(course / "gradebook.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_every_output_byte_is_capped(graded):
    path = graded["course"] / "autograded" / "output_dicts" / "07_relu" / "relu.ipynb"
    assert path.stat().st_size < 9 * 2 ** 20, path.stat().st_size


def test_no_active_content_reaches_the_instructor(graded):
    course = graded["course"]
    nb = nbformat.read(str(course / "autograded" / "script_output" / "07_relu" / "relu.ipynb"), as_version=4)
    # what a browser renders: rich outputs and markdown (printed text is a stream, shown as text)
    rendered = [json.dumps(o.get("data", {})) for c in nb.cells for o in c.get("outputs", []) if "data" in o]
    rendered += [c.source for c in nb.cells if c.cell_type == "markdown"]
    low = "\n".join(rendered).lower()
    for bad in ("<script", "window.pwned", "onerror=", "javascript:document", "application/javascript"):
        assert bad not in low, f"{bad!r} survives in the autograded notebook's rendered content"
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((course / "feedback" / "script_output" / "07_relu" / "relu.html").read_text(),
                         "html.parser")
    scripts = [t.get_text() for t in soup.find_all("script") if "pwned" in t.get_text()]
    handlers = [(t.name, a) for t in soup.find_all(True) for a in t.attrs if a.lower().startswith("on")]
    links = [t["href"] for t in soup.find_all(href=True) if t["href"].strip().lower().startswith("javascript:")]
    assert not scripts and not handlers and not links, (scripts, handlers, links)


def test_scratch_is_bounded(graded):
    out = _autograded(graded, "fill_disk")
    assert "WROTE 3 GiB" not in out and "MADE 100000" not in out, out[-1000:]
    full = [ln for ln in out.splitlines() if ln.startswith("DISK FULL after")]
    assert full and int(full[0].split()[3]) <= 64, out[-1000:]
    assert "INODES FULL after" in out


def test_review_attacks_hold(graded):
    course, log = graded["course"], graded["log"]
    assert "\x1b" not in log and "\x1b" not in graded["table"], "raw terminal escapes reach the instructor"
    path = course / "autograded" / "display_update" / "07_relu" / "relu.ipynb"
    assert path.stat().st_size < 40 * 2 ** 20, path.stat().st_size
    assert not (course / "autograded" / "web_page").exists()
    for page in _files_under(course / "feedback", course / "autograded"):
        assert page.suffix not in (".html",) or "PWNED" not in page.read_text(errors="replace")
    # a failed submission leaves nothing half-graded in the gradebook
    grades = _grades(graded)
    for (s, a, g), (auto, manual, score, mx) in grades.items():
        if graded["outcomes"].get(s) is not None and graded["outcomes"][s].status == "failed":
            assert not score, f"{s} failed but keeps {score} points on {a}/{g}"
