"""The grading sandbox and the out-of-kernel check, piece by piece.

- the launcher applies its measures, and reports what it could not apply (as root, and as an
  ordinary user through a user namespace);
- inside: another user, no network, no course files, nothing writable but the scratch folder,
  resource limits that turn memory, fork and file bombs into errors;
- the out-of-kernel check: plain-data encoding that refuses malformed input, fresh inputs that the
  reference solutions accept, a plan that maps every test cell of every notebook to its function,
  and verdicts for right, wrong, hanging, crashing and never-finishing answers.
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

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (per-slot sandbox users)")


def run_in_box(code: str, policy: sb.Policy | None = None, timeout: float = 120, files_from=()) -> dict:
    """Run ``code`` (which fills the dict ``out``) in a fresh box; return ``out``."""
    box = sb.Box(policy or sb.Policy(), "test", files_from=files_from)
    try:
        result = box.home / "out.json"
        program = "import json, os\nout = {}\n" + textwrap.dedent(code) + \
            f"\nopen({str(result)!r}, 'w').write(json.dumps(out))\n"
        log = box.next_name("test") + ".log"
        subprocess.run(box.argv([sys.executable, "-I", "-c", program], log=log), cwd=str(box.base),
                       timeout=timeout, capture_output=True)
        try:
            return json.loads(result.read_text())
        except (OSError, ValueError):
            raise AssertionError(f"no result from the box: {box.log_tail(log, 30)}") from None
    finally:
        box.cleanup()


# --------------------------------------------------------------------------- the launcher
@root_only
def test_probe_as_root_applies_everything():
    report, info = sb.probe(sb.Policy())
    for measure in ("no-network", "private-root-fs", "proc-hidepid", "rlimit-as", "rlimit-cpu", "rlimit-nproc",
                    "rlimit-fsize", "rlimit-nofile", "no-new-privileges"):
        assert measure in report.applied, report.summary()
    assert any(a.startswith("user-cnngrader") for a in report.applied)
    assert report.missing == [], report.summary()
    assert info["uid"] != 0 and info["imports"] == "ok" and info["interfaces"] == ["lo"]


@root_only
def test_launcher_as_ordinary_user_says_what_it_could_not_apply(request):
    """A grader that is not root: a user namespace gives the private file system and no network; the
    report says that the sandbox runs as the grading user. (Run with the system's Python as
    ``nobody``, because the venv's interpreter lives under /root.)"""
    python, setpriv = shutil.which("python3", path="/usr/bin:/bin"), shutil.which("setpriv")
    if not python or not setpriv:
        pytest.skip("needs /usr/bin/python3 and setpriv")
    work = Path(tempfile.mkdtemp(prefix="cnnsb-test-"))   # not under pytest's tmp (0700 root)
    request.addfinalizer(lambda: shutil.rmtree(work, ignore_errors=True))
    launcher = work / "sandbox_launch.py"
    shutil.copy(ROOT / "helpers/instructor/sandbox_launch.py", launcher)
    home, new_root = work / "home", work / "root"
    home.mkdir()
    new_root.mkdir()
    for p in (work, home, new_root):
        os.chmod(p, 0o777)
    os.chmod(launcher, 0o644)
    spec = {"mode": "userns", "isolate_network": True, "limits": {"AS": 2 ** 31, "NPROC": 400, "CPU": 60},
            "env": {"PATH": "/usr/bin:/bin"}, "home": str(home), "new_root": str(new_root),
            "expose_ro": ["/usr", "/etc", "/bin", "/lib", "/lib64", str(launcher)], "expose_rw": [str(home)]}
    blob = base64.b64encode(json.dumps(spec).encode()).decode()
    code = ("import os, json, socket, resource\n"
            f"open({str(home / 'out.json')!r}, 'w').write(json.dumps({{'uid': os.getuid(), "
            "'applied': os.environ['CNN_SANDBOX_APPLIED'], 'missing': os.environ['CNN_SANDBOX_MISSING'], "
            "'ifaces': [n for _, n in socket.if_nameindex()], 'root': sorted(os.listdir('/')), "
            "'nproc': resource.getrlimit(resource.RLIMIT_NPROC)[0]}))")
    res = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", str(launcher),
                          blob, "--", python, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(work))
    out = json.loads((home / "out.json").read_text())
    assert out["uid"] == 65534
    if "user-namespace" not in out["applied"]:
        assert "no-network" in out["missing"] and "private-root-fs" in out["missing"], out
        pytest.skip(f"unprivileged user namespaces are not available here: {out['missing']}")
    assert "no-network" in out["applied"] and out["ifaces"] == ["lo"]
    assert "private-root-fs" in out["applied"] and "work" not in out["root"] and "root" not in out["root"]
    assert "rlimit-nproc" in out["applied"] and out["nproc"] == 400
    assert "separate user" in out["missing"], out["missing"]


@root_only
def test_inside_the_box(tmp_path):
    course = tmp_path / "course"
    (course / "notebooks").mkdir(parents=True)
    (course / "notebooks" / "secret.ipynb").write_text("{}")
    (course / "gradebook.db").write_text("db")
    out = run_in_box(f"""
        import resource, socket, errno
        out['uid'] = os.getuid()
        out['cwd'] = os.getcwd()
        out['home_is_cwd'] = os.environ['HOME'] == os.getcwd()
        def attempt(fn):
            try:
                fn()
                return 'ok'
            except Exception as exc:
                return type(exc).__name__
        out['read_course'] = attempt(lambda: open({str(course / 'notebooks' / 'secret.ipynb')!r}).read())
        out['read_db'] = attempt(lambda: open({str(course / 'gradebook.db')!r}).read())
        out['read_repo_sources'] = attempt(lambda: os.listdir({str(ROOT / 'notebooks')!r}))
        out['read_data'] = attempt(lambda: open({str(ROOT / 'data' / 'reference_outputs.h5')!r}, 'rb').read(4))
        out['write_tmp'] = attempt(lambda: open('/tmp/x', 'w').write('x'))
        out['write_repo'] = attempt(lambda: open({str(ROOT / 'pwned')!r}, 'w').write('x'))
        out['write_home'] = attempt(lambda: open('mine.txt', 'w').write('x'))
        out['net'] = attempt(lambda: socket.create_connection(('1.1.1.1', 53), timeout=2))
        out['loopback'] = attempt(lambda: socket.create_connection(('127.0.0.1', 22), timeout=2))
        out['procs'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
        out['as'] = resource.getrlimit(resource.RLIMIT_AS)[0]
        def memory():
            b = bytearray(3 * 2 ** 30)
        out['memory_bomb'] = attempt(memory)
        def big_file():
            with open('big.bin', 'wb') as fh:
                fh.write(b'x' * (65 * 2 ** 20))
        out['file_bomb'] = attempt(big_file)
        kids = 0
        while True:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                import time
                time.sleep(60)
                os._exit(0)
            kids += 1
        out['forks'] = kids
        out['sudo'] = attempt(lambda: __import__('subprocess').run(['su', '-c', 'id'], check=True, timeout=5,
                                                                    capture_output=True))
    """)
    assert out["uid"] != 0 and out["home_is_cwd"]
    assert out["read_course"] == "FileNotFoundError" and out["read_db"] == "FileNotFoundError"
    assert out["read_repo_sources"] == "FileNotFoundError" and out["read_data"] == "ok"
    assert out["write_tmp"] in ("OSError", "PermissionError") and out["write_repo"] in ("OSError", "PermissionError")
    assert out["write_home"] == "ok"
    assert out["net"] == "OSError" and out["loopback"] == "OSError"
    assert len(out["procs"]) <= 3, out["procs"]           # itself (and its children), nobody else's
    assert out["as"] == sb.Limits().address_space and out["memory_bomb"] == "MemoryError"
    assert out["file_bomb"] == "OSError"                   # EFBIG at the file size limit
    assert 10 < out["forks"] < sb.Limits().processes
    assert out["sudo"] != "ok"
    assert not (ROOT / "pwned").exists()


@root_only
def test_slots_are_exclusive_and_strays_are_killed():
    s1, token = sb.acquire_slot(0)
    try:
        other = subprocess.run([sys.executable, "-c", f"from helpers.instructor import sandbox as sb; "
                                                      f"print(sb.acquire_slot({s1})[0])"],
                               capture_output=True, text=True, timeout=60)
        assert int(other.stdout) != s1, "another process got a slot this one holds"
        assert sb.acquire_slot(s1) == (s1, s1)      # this process may take it again
        sb.release_slot(s1)
        box = sb.Box(sb.Policy(slot=s1), "strays")
    finally:
        sb.release_slot(token)
    try:
        proc = subprocess.Popen(box.argv([sys.executable, "-I", "-c",
                                          "import os, time\nfor _ in range(5):\n    os.fork()\ntime.sleep(60)"],
                                         log="strays.log"), cwd=str(box.base))
        deadline = time.monotonic() + 20
        while len(sb.pids_of(uid=box.uid)) < 32 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(sb.pids_of(uid=box.uid)) >= 32
        assert box.kill_strays() >= 32
        assert sb.pids_of(uid=box.uid) == []
        proc.wait(10)
    finally:
        box.cleanup()


@root_only
def test_root_never_writes_through_a_planted_symlink(tmp_path):
    """The run folder (connection file, logs, sockets) is root's while student code runs; and the
    launcher opens its log and hands over the connection file without following symlinks."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    box = sb.Box(sb.Policy(), "symlinks")
    try:
        # whatever a student could do, simulate the worst: a symlink already sits where a log will go
        (box.run / "evil.log").symlink_to(victim)
        (box.run / "evil.json").symlink_to(victim)
        subprocess.run(box.argv([sys.executable, "-I", "-c", "print('x' * 100)", "-f", str(box.run / "evil.json")],
                                log="evil.log"), cwd=str(box.base), timeout=60, capture_output=True)
        assert victim.read_text() == "precious" and victim.stat().st_uid == 0
        assert box.run.stat().st_uid == 0 and oct(box.run.stat().st_mode & 0o777) == "0o711"
    finally:
        box.cleanup()


@root_only
def test_student_code_cannot_touch_the_run_folder():
    box = sb.Box(sb.Policy(), "runfolder")
    try:
        result = box.home / "out.json"
        code = (f"import json, os\nout = {{}}\n"
                f"try:\n    open({str(box.run / 'x')!r}, 'w')\n    out['create'] = 'ok'\n"
                f"except Exception as exc:\n    out['create'] = type(exc).__name__\n"
                f"open({str(result)!r}, 'w').write(json.dumps(out))\n")
        subprocess.run(box.argv([sys.executable, "-I", "-c", code], log="t.log"), cwd=str(box.base), timeout=60)
        assert json.loads(result.read_text())["create"] == "PermissionError"
    finally:
        box.cleanup()


def test_symlinks_in_a_submission_are_not_followed(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "data.csv").write_text("1,2\n")
    (sub / "leak.txt").symlink_to("/etc/hostname")
    (sub / "relu.ipynb").write_text("{}")
    box = sb.Box(sb.Policy(enabled=False), "links", files_from=[sub])
    try:
        assert (box.home / "data.csv").read_text() == "1,2\n"
        assert not (box.home / "leak.txt").exists() and not (box.home / "relu.ipynb").exists()
    finally:
        box.cleanup()


def test_exposure_check_refuses_a_course_inside_the_venv():
    with pytest.raises(sb.SandboxError):
        sb.check_exposure(sb.default_exposed(), [sys.prefix + "/course"])
    sb.check_exposure(sb.default_exposed(), [str(ROOT), str(ROOT / "notebooks"), str(ROOT / "gradebook.db")])


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
     {"test_relu_backward_canonical": "wrong", "test_relu_backward_hidden": "wrong"}),   # the visible cell has an exact 0
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
