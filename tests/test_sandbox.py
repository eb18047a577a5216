"""The grading sandbox, piece by piece (the out-of-kernel check: tests/test_outofkernel.py).

- the launcher applies its measures, and reports what it could not apply (as root, and as an
  ordinary user through a user namespace);
- inside: another user, no network, no course files, nothing writable but the scratch folder,
  resource limits that turn memory, fork and file bombs into errors.
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

import pytest

from conftest import ROOT
from helpers.instructor import sandbox as sb

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
