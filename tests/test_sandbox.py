"""The grading sandbox (helpers.instructor.sandbox on bubblewrap), measured from the outside.

- what a box applies (probe), and what code inside sees: another user, its own PID namespace, no
  network, a read-only file system without the course, a scratch folder limited in bytes and inodes;
- nothing outlives a box: a process whose main thread exited while a thread runs, a double-forked
  daemon, a fork bomb; a memory bomb and a fork bomb in one box leave another box working, and
  the kernel booting in the same box beside them;
- the Python installation and the venv are usable even under a 0700 folder of root;
- the kernel transport: root makes the sockets, so symlinks planted by the sandbox user in every
  folder it can write change nothing outside, across kernel restarts too.
(The out-of-kernel tests are in test_outofkernel_legacy.py.)
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from conftest import ROOT, require_root_sandbox
from helpers.instructor import sandbox as sb
from helpers.instructor.sandbox import bwrap as sb_bwrap


@pytest.fixture
def rootbox():
    require_root_sandbox()


def run_async(scenario):
    """Run the coroutine function ``scenario`` to completion in a thread of its own: the test may be
    called while another test's event loop is running in this thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, scenario()).result()


def run_in_box(box, code: str, timeout: float = 120, env=None) -> dict:
    """Run ``code`` (which fills the dict ``out``) in a new sandbox of ``box``; return ``out``."""
    program = "import json, os, sys\nout = {}\n" + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
    proc = box.spawn([sys.executable, "-I", "-c", program], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate(timeout=timeout)
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"no result from the box (exit {proc.returncode}): {err.decode()[-2000:]}") from None


def uid_processes(uid: int) -> list:
    return [p for p in psutil.process_iter(["uids", "status", "cmdline"]) if p.info["uids"] and p.info["uids"].real == uid]


def wait_gone(uid: int, seconds: float = 5.0) -> list:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        left = uid_processes(uid)
        if not left:
            return []
        time.sleep(0.05)
    return [(p.pid, p.info["status"], p.info["cmdline"]) for p in uid_processes(uid)]


# --------------------------------------------------------------------------- policy, errors
def test_policy_round_trip_and_unknown_fields():
    p = sb.Policy(slot=3, scratch_inodes=100, expose=("/opt",))
    assert sb.Policy.from_dict(p.to_dict()) == p
    assert json.loads(json.dumps(p.to_dict())) == p.to_dict()
    with pytest.raises(sb.SandboxError, match="unknown sandbox policy field.*scratch_inodes"):
        sb.Policy.from_dict({"scratch_inode": 5})


def test_without_bubblewrap_the_box_says_how_to_fix_it(monkeypatch):
    monkeypatch.setattr(sb_bwrap, "BWRAP", "/nonexistent/bwrap")
    monkeypatch.setattr(sb_bwrap, "_CHECKED", {})
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(sb.SandboxError) as info:
        sb.Box(sb.Policy(), "nobwrap")
    assert "apt-get install bubblewrap" in str(info.value) and "--no-sandbox" in str(info.value)


# --------------------------------------------------------------------------- what a box applies
def test_probe_applies_everything_in_one_line(rootbox):
    report = sb.probe(sb.Policy())
    line = report.summary()
    print(line)
    assert "\n" not in line and "NOT applied" not in line, line
    for measure in ("bubblewrap", "user cnngrader", "pidns", "netns", "read-only fs", "scratch tmpfs 64 MiB/4096 inodes",
                    "cgroups v1 memory", "rlimits AS,CPU,NPROC,FSIZE,NOFILE,CORE"):
        assert measure in line, line
    assert report.info["pids"] == [1, 2], report.info


def test_inside_the_box(rootbox, tmp_path, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    (files / "data.txt").write_text("student data")
    (files / "sub" / "more.csv").write_text("1,2")
    with sb.Box(sb.Policy(), "inside", files_dir=files) as box, sb.Box(sb.Policy(slot=1), "other") as other:
        neighbour = other.spawn(["/bin/sleep", "30"], stdin=subprocess.DEVNULL)
        out = run_in_box(box, f"""
            import socket, errno
            out["uid"] = os.getuid(); out["groups"] = os.getgroups(); out["cwd"] = os.getcwd()
            out["env"] = {{k: os.environ.get(k) for k in ("CNN_COURSE_GRADING", "NBGRADER_EXECUTION", "HOME", "TMPDIR",
                          "MPLCONFIGDIR", "IPYTHONDIR", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "PYTHONNOUSERSITE",
                          "PYTHONDONTWRITEBYTECODE", "PATH")}}
            out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
            out["interfaces"] = [n for _, n in socket.if_nameindex()]
            try:
                socket.create_connection(("1.1.1.1", 53), timeout=2); out["net"] = "connected"
            except OSError as exc:
                out["net"] = exc.errno
            out["visible"] = {{p: os.path.exists(p) for p in ({str(ROOT)!r}, {str(ROOT / 'notebooks')!r},
                             {str(ROOT / 'tests')!r}, {str(ROOT / 'pyproject.toml')!r}, "/home", "/root/.bashrc",
                             {str(tmp_path)!r}, {str(box.base)!r}, {str(other.base)!r})}}
            out["root_dir"] = sorted(os.listdir({str(ROOT)!r}))
            out["files"] = [open("data.txt").read(), open("sub/more.csv").read()]
            import tempfile
            out["no_tmp"] = not os.path.lexists("/tmp") and tempfile.gettempdir() == "/scratch/tmp"
            writable = []
            for p in ("/usr/x", "/etc/x", {str(ROOT / 'helpers' / 'x')!r}, {sys.prefix + '/x'!r}, "/x", "/proc/x"):
                try:
                    open(p, "w"); writable.append(p)
                except OSError:
                    pass
            out["writable"] = writable
            import numpy, helpers
            out["helpers"] = helpers.__file__
            out["cannot_signal_pid1"] = True
            try:
                os.kill(1, 9); out["cannot_signal_pid1"] = False
            except PermissionError:
                pass
        """)
        neighbour.kill()
    assert out["uid"] == box.uid and out["groups"] in ([], [box.gid]) and out["cwd"] == box.scratch == "/scratch"
    env = out["env"]
    assert env["CNN_COURSE_GRADING"] == "1" and env["NBGRADER_EXECUTION"] == "autograde"
    assert all(env[k].startswith("/scratch") for k in ("HOME", "TMPDIR", "MPLCONFIGDIR"))
    assert env["IPYTHONDIR"] == "/usr/lib/cnn-course-no-config"   # no start-up file of scratch ever runs
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"
    assert env["PYTHONNOUSERSITE"] == env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].split(":")[0] == os.path.dirname(sys.executable)
    assert out["pids"] == [1, 2], out["pids"]         # nothing of the neighbour box, nothing of the host
    assert out["interfaces"] == ["lo"] and out["net"] != "connected"
    assert out["visible"] == {str(ROOT): True, str(ROOT / "notebooks"): False, str(ROOT / "tests"): False,
                              str(ROOT / "pyproject.toml"): False, "/home": False, "/root/.bashrc": False,
                              str(tmp_path): False, str(box.base): False, str(other.base): False}, out["visible"]
    assert set(out["root_dir"]) <= {"helpers", "data", ".venv"}, out["root_dir"]
    assert out["files"] == ["student data", "1,2"] and out["no_tmp"]
    assert out["writable"] == [] and out["helpers"].startswith(str(ROOT / "helpers"))
    assert out["cannot_signal_pid1"]


def test_seccomp_denies_keyrings_namespaces_and_tracing(rootbox):
    """The seccomp filter: no kernel keyring (a channel between the students a slot grades in a
    row), no new namespace (a user namespace would make the student root in it), no ptrace; what
    ordinary code needs (threads, fork, NumPy) still works, in a kernel too."""
    from helpers.instructor.sandbox import seccomp

    if platform_machine() != "x86_64":
        pytest.skip("the system call numbers below are x86_64's")
    path, why = seccomp.filter_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no seccomp filter under CI: {why}")
        pytest.skip(why)
    code = """
        import ctypes, errno, os, subprocess, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def call(nr, *args):
            r = libc.syscall(nr, *args)
            return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
        out["add_key"] = call(248, b"user", b"cnn", b"x", 1, -4)        # x86_64 numbers
        out["keyctl"] = call(250, 0, -4, 0, 0, 0)
        out["unshare_user"] = call(272, 0x10000000)
        out["unshare_net"] = call(272, 0x40000000)
        out["ptrace"] = call(101, 0, 0, 0, 0)                         # PTRACE_TRACEME
        out["unshare_cmd"] = subprocess.run(["/usr/bin/unshare", "-Ur", "true"]).returncode
        seen = []
        t = threading.Thread(target=seen.append, args=(1,)); t.start(); t.join()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        out["thread"], out["fork"] = seen, os.waitpid(pid, 0)[1] >> 8
        import numpy
        out["numpy"] = float(numpy.arange(4.0) @ numpy.arange(4.0))
    """
    with sb.Box(sb.Policy(slot=12), "seccomp") as box:
        out = run_in_box(box, code)
        assert {k: out[k] for k in ("add_key", "keyctl", "unshare_user", "unshare_net", "ptrace")} == dict.fromkeys(
            ("add_key", "keyctl", "unshare_user", "unshare_net", "ptrace"), "EPERM"), out
        assert out["unshare_cmd"] != 0 and out["thread"] == [1] and out["fork"] == 7 and out["numpy"] == 14.0, out
    with sb.Box(sb.Policy(slot=12, seccomp=False), "no-seccomp") as box:
        without = run_in_box(box, "out['unshare'] = __import__('subprocess').run(['/usr/bin/unshare', '-Ur', 'true']).returncode")
    assert without["unshare"] == 0, "the test cannot tell: without the filter a user namespace is refused too"


def platform_machine() -> str:
    import platform

    return platform.machine()


def test_scratch_is_limited_in_bytes_and_inodes(rootbox):
    policy = sb.Policy(scratch_bytes=8 * sb.MiB, scratch_inodes=300)
    with sb.Box(policy, "limits") as box:
        out = run_in_box(box, """
            import errno
            n = 0
            try:
                with open("big", "wb") as fh:
                    while True:
                        fh.write(b"x" * 65536); fh.flush(); n += 65536
            except OSError as exc:
                out["write_errno"] = exc.errno
            out["written"] = n
            os.remove("big")
            k = 0
            try:
                for k in range(100000):
                    open(f"f{k}", "w").close()
            except OSError as exc:
                out["create_errno"] = exc.errno
            out["created"] = k
        """)
    assert out["write_errno"] == 28, out                 # ENOSPC
    assert 7 * sb.MiB <= out["written"] <= 8 * sb.MiB, out
    assert out["create_errno"] == 28, out
    assert 250 <= out["created"] < 300, out


# --------------------------------------------------------------------------- nothing outlives a box
LEFTOVERS = r"""
import ctypes, os, subprocess, sys, threading, time
# a double-forked daemon in a session of its own
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time  # cnn-daemon\nwhile True: time.sleep(0.2)"])
    os._exit(0)
# a process whose main thread exits while another thread runs (shows as a zombie)
code = ("import ctypes, threading, time  # cnn-zombie\n"
        "threading.Thread(target=lambda: [time.sleep(0.2) for _ in iter(int, 1)]).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)\n")
subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
time.sleep(1.0)
"""


def _markers(uid):
    """The leftovers of LEFTOVERS still alive: the daemon (by its command line) and the zombie leader
    with a live thread (its command line is gone: by its state and thread count)."""
    found = {}
    for p in uid_processes(uid):
        try:
            cmd = p.info["cmdline"] or []
            if cmd and cmd[-1].startswith("import time  # cnn-daemon"):
                found["cnn-daemon"] = p.info["status"]
            elif p.info["status"] == psutil.STATUS_ZOMBIE and p.num_threads() > 1:
                found["cnn-zombie"] = p.info["status"]
        except psutil.Error:
            pass
    return found


def test_zombie_with_a_live_thread_and_a_daemon_do_not_outlive_their_sandbox(rootbox):
    with sb.Box(sb.Policy(), "leftovers") as box:
        proc = box.spawn([sys.executable, "-c", LEFTOVERS + "\ntime.sleep(30)\n"], stdin=subprocess.DEVNULL)
        end = time.monotonic() + 20
        while time.monotonic() < end and _markers(box.uid).get("cnn-zombie") != psutil.STATUS_ZOMBIE:
            time.sleep(0.1)
        seen = _markers(box.uid)
        assert set(seen) == {"cnn-daemon", "cnn-zombie"}, seen
        assert seen["cnn-zombie"] == psutil.STATUS_ZOMBIE, seen    # the case the old stray-killer skipped
        proc.kill()           # the sandbox's first process ends: its PID namespace ends, with everything in it
        proc.wait(10)
        assert wait_gone(box.uid) == []
        # the same when the first process simply exits
        proc = box.spawn([sys.executable, "-c", LEFTOVERS], stdin=subprocess.DEVNULL)
        assert proc.wait(30) == 0
        assert wait_gone(box.uid) == []
        # and box.close() ends a sandbox that is still running
        box.spawn([sys.executable, "-c", LEFTOVERS + "\ntime.sleep(30)\n"], stdin=subprocess.DEVNULL)
        time.sleep(2)
        uid = box.uid
    assert wait_gone(uid, 2) == []


def test_bombs_in_one_box_leave_another_box_working(rootbox):
    bombs = sb.Policy(slot=10, memory_bytes=256 * sb.MiB, max_processes=40, address_space=1024 * sb.MiB, processes=1000)
    with sb.Box(bombs, "bombs") as a, sb.Box(sb.Policy(slot=11), "calm") as b:
        assert a.uid != b.uid and a.cg.dirs and b.cg.dirs
        fork = a.spawn([sys.executable, "-c", textwrap.dedent("""
            import os, time
            n = 0
            end = time.monotonic() + 6
            while time.monotonic() < end:
                try:
                    if os.fork() == 0:
                        time.sleep(30); os._exit(0)
                    n += 1
                except OSError:
                    time.sleep(0.01)
            print(n)
        """)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        memory = a.spawn([sys.executable, "-c", textwrap.dedent("""
            chunks = []
            while True:
                chunks.append(bytearray(16 * 2 ** 20))   # touched: bytearray is zeroed
        """)], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        calm = run_in_box(b, """
            import time
            t = time.monotonic(); s = sum(range(3 * 10 ** 6)); x = bytearray(100 * 2 ** 20)
            out["ok"] = s; out["seconds"] = time.monotonic() - t
        """, timeout=60)
        assert calm["ok"] == sum(range(3 * 10 ** 6))
        assert memory.wait(60) != 0                        # killed by the OOM killer of its cgroup, or MemoryError
        assert len(a.cg.pids()) <= 40
        out, _ = fork.communicate(timeout=60)
        assert 0 < int(out) < 40, out
        assert run_in_box(b, "out['still'] = 1")["still"] == 1, "the other box stopped working"
        with open(os.path.join(a.cg.dirs[0], "memory.max_usage_in_bytes")) as fh:
            assert int(fh.read()) <= 256 * sb.MiB
        uid = a.uid
    assert wait_gone(uid) == []


def test_a_kernel_booting_beside_the_check_outlives_what_the_check_leaves(rootbox):
    """The worker starts a submission's kernel before the out-of-kernel check runs, so that it boots
    meanwhile. The check's processes (a fork bomb, a memory bomb) are in the box's other cgroup:
    they neither starve nor OOM-kill the kernel, and end_processes ends them all but the kernel."""
    from concurrent.futures import ThreadPoolExecutor

    bombs = sb.Policy(slot=12, memory_bytes=256 * sb.MiB, max_processes=40, address_space=1024 * sb.MiB, processes=1000)
    # no event loop may run in the thread that starts the kernel, and that thread must outlive it
    # (bubblewrap's --die-with-parent follows the thread that launched it): a pool kept to the end
    pool = ThreadPoolExecutor(1)
    with sb.Box(bombs, "early-kernel") as box:
        km = pool.submit(box.start_kernel).result()
        end = time.monotonic() + 20
        while not box.kernel_cg.pids() and time.monotonic() < end:   # it joins its cgroup as it starts
            time.sleep(0.05)
        assert km.has_kernel and box.kernel_cg.pids() and not set(box.kernel_cg.pids()) & set(box.cg.pids())
        fork = box.spawn([sys.executable, "-c", "import os, time\nwhile True:\n    try:\n        os.fork()\n"
                          "    except OSError:\n        time.sleep(0.01)\n"], stdin=subprocess.DEVNULL)
        memory = box.spawn([sys.executable, "-c", "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 2 ** 20))"],
                           stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        assert len(box.cg.pids()) >= 20, "the fork bomb did not run"
        assert memory.wait(60) != 0
        box.end_processes()
        assert box.cg.pids() == [] and fork.poll() is not None
        assert km.has_kernel and box.kernel_cg.pids(), "the kernel was ended with the check's processes"

        async def scenario():
            kc = km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=60)
            r = await _execute(kc, "import os\nprint(6 * 7, len([p for p in os.listdir('/proc') if p.isdigit()]))")
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            return r

        r = run_async(scenario)
        assert r["status"] == "ok", r
        answer, processes = map(int, r["stdout"].split())
        assert answer == 42 and processes < 10, r["stdout"]     # its own PID namespace: no bomb in sight
        uid = box.uid
    pool.shutdown()
    assert wait_gone(uid) == []


# --------------------------------------------------------------------------- the Python installation under /root (0700)
def test_each_box_weighs_as_one_process_on_the_cpu(rootbox):
    """Every process of a box is in the box's own top-level CPU group (v1 cpu controller), so that
    the scheduler shares the CPU between boxes first: a box of a hundred busy processes weighs as
    much as one classmate's kernel (the attack: 110 busy processes slowed a classmate 12x)."""
    if not os.path.isdir("/sys/fs/cgroup/cpu") or not os.access("/sys/fs/cgroup/cpu", os.W_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("no writable v1 cpu controller under CI")
        pytest.skip("no writable v1 cpu controller here")
    with sb.Box(sb.Policy(slot=12), "cpu-a") as a, sb.Box(sb.Policy(slot=13), "cpu-b") as b:
        groups = []
        for box in (a, b):
            proc = box.spawn(["/bin/sleep", "5"], stdin=subprocess.DEVNULL)
            time.sleep(0.3)
            inside = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            cpu = set()
            for pid in inside:
                with open(f"/proc/{pid}/cgroup") as fh:
                    cpu |= {ln.split(":", 2)[2].strip() for ln in fh if ln.split(":")[1] in ("cpu,cpuacct", "cpu")}
            groups.append(cpu)
        assert len(groups[0]) == 1 and len(groups[1]) == 1 and groups[0] != groups[1], groups
        assert all(g.startswith("/cnn-course-") for grp in groups for g in grp), groups
        with open(f"/sys/fs/cgroup/cpu{next(iter(groups[0]))}/cpu.shares") as fh:
            assert int(fh.read()) == 1024


def test_venv_under_a_private_folder_of_root_works(rootbox, tmp_path):
    """CI clones the project under root's home (0700): the sandbox user cannot traverse the path to the
    venv or the Python installation (here /root/.pyenv already is one), yet the box must run them."""
    private = Path(tempfile.mkdtemp(prefix="cnn-ci-", dir="/root"))
    try:
        os.chmod(private, 0o700)
        proj = private / "proj"
        shutil.copytree(ROOT / "helpers", proj / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "data", proj / "data")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(proj / ".venv")], check=True)
        site = next((proj / ".venv" / "lib").glob("python3*/site-packages"))
        real_site = [p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)][0]
        (site / "cnn.pth").write_text(f"{proj}\n{real_site}\n")
        code = ("from helpers.instructor.sandbox import probe; r = probe(); "
                "print(r.summary()); print(r.info['imports']); import helpers; print(helpers.__file__)")
        res = subprocess.run([str(proj / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True,
                             timeout=180, cwd=str(proj))
        assert res.returncode == 0, res.stderr[-3000:]
        assert "ok" in res.stdout.splitlines() and str(proj / "helpers") in res.stdout, res.stdout
        assert os.stat("/root").st_mode & 0o077 == 0 and os.stat(private).st_mode & 0o077 == 0
    finally:
        shutil.rmtree(private, ignore_errors=True)


# --------------------------------------------------------------------------- kernels and their transport
def test_libzmq_adopts_a_listening_socket_and_leaves_its_path_alone(tmp_path):
    import zmq

    path = str(tmp_path / "k-1")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    inode = os.stat(path).st_ino
    ctx = zmq.Context()
    server = ctx.socket(zmq.REP)
    server.setsockopt(zmq.USE_FD, listener.fileno())
    server.bind(f"ipc://{path}")
    client = ctx.socket(zmq.REQ)
    client.connect(f"ipc://{path}")
    client.send(b"ping")
    assert server.recv() == b"ping"
    server.send(b"pong")
    assert client.recv() == b"pong"
    assert os.stat(path).st_ino == inode
    server.close(linger=0)
    client.close(linger=0)
    ctx.term()
    assert os.path.exists(path) and os.stat(path).st_ino == inode   # not unlinked, not replaced


PLANT = r"""
import os, sys, time
target, names = sys.argv[1], sys.argv[2:]
def plant():
    for d, dirs, files in os.walk("/scratch"):
        for n in names:
            p = os.path.join(d, n)
            if not os.path.lexists(p):
                try:
                    os.symlink(target, p)
                except OSError:
                    pass
end = time.monotonic() + float(os.environ.get("PLANT_SECONDS", "60"))
while time.monotonic() < end:
    plant()
    time.sleep(0.005)
"""


async def _execute(kc, code: str, timeout: float = 60) -> dict:
    """The reply's content, with the cell's printed text under ``"stdout"``."""
    text = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            text.append(msg["content"]["text"])
    reply = await kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return {**reply["content"], "stdout": "".join(text)}


def test_symlinks_planted_everywhere_the_sandbox_writes_change_nothing_outside(rootbox, tmp_path):
    outside = Path(tempfile.mkdtemp(prefix="cnn-target-"))
    target = outside / "target"
    target.write_text("original")
    os.chmod(outside, 0o755)
    os.chmod(target, 0o666)    # writable by anyone who reaches it: only a write by root through a link can
    with sb.Box(sb.Policy(), "symlinks") as box:
        names = ["k1.json", "k2.json", "k3.json", "kernel.json", "connection.json"] + \
            [f"k{i}-{p}" for i in (1, 2, 3) for p in range(1, 6)] + [f"k{i}.log" for i in (1, 2, 3)]
        # a planter in a sandbox of its own runs through the whole test, kernel restarts included
        planter = box.spawn([sys.executable, "-c", PLANT, str(target), *names], stdin=subprocess.DEVNULL)

        async def scenario():
            km = box.kernel_manager()
            await km.start_kernel()
            kc = km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=60)
            # the kernel plants links too, in every folder it can write, and keeps planting in the background
            plant = (f"import subprocess, sys, os\nos.makedirs('.local/share/jupyter/runtime', exist_ok=True)\n"
                     f"subprocess.Popen([sys.executable, '-c', {PLANT!r}, {str(target)!r}] + {names!r})\n"
                     f"import time; time.sleep(1); print(sorted(os.listdir('.')))")
            assert (await _execute(kc, plant))["status"] == "ok"
            await km.restart_kernel(now=True)
            await kc.wait_for_ready(timeout=60)
            assert (await _execute(kc, "x = 6 * 7\nprint(x)"))["status"] == "ok"
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            km2 = box.kernel_manager()     # a second kernel (new ip prefix k2) in the same box
            await km2.start_kernel()
            kc2 = km2.client()
            kc2.start_channels()
            await kc2.wait_for_ready(timeout=60)
            r = await _execute(kc2, "import os\nprint([n for n in os.listdir('/scratch/.local/share/jupyter/runtime') "
                                    "if os.path.islink('/scratch/.local/share/jupyter/runtime/' + n)])")
            assert r["status"] == "ok" and "k2.json" in r["stdout"] and "k2-1" in r["stdout"], r   # planted
            run_entries = {n: os.lstat(box.run / n) for n in os.listdir(box.run)}
            kc2.stop_channels()
            await km2.shutdown_kernel(now=True)
            return run_entries

        run_entries = run_async(scenario)
        # root's folder has only what root put there: sockets, connection files, logs; no link
        import stat
        assert {f"k2-{p}" for p in range(1, 6)} | {"k2.json"} <= set(run_entries), sorted(run_entries)
        for name, st in run_entries.items():
            assert st.st_uid == 0 and not stat.S_ISLNK(st.st_mode), name
            assert stat.S_ISSOCK(st.st_mode) == name.startswith("k2-"), name
        assert os.stat(box.run).st_uid == 0 and os.stat(box.run).st_mode & 0o077 == 0
        assert planter.poll() is None, "the planter stopped early"
    assert target.read_text() == "original"
    assert os.lstat(target).st_nlink == 1
    shutil.rmtree(outside)


def test_kernel_interrupt_restart_and_message_cap(rootbox, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / "mylib.py").write_text("def twice(x):\n    return 2 * x\n")
    for name in ("zmq.py", "ipykernel_launcher.py", "json.py"):     # must not take part in starting the kernel
        (files / name).write_text("import os\nos._exit(1)\n")
    with sb.Box(sb.Policy(), "kernel", files_dir=files) as box:
        async def scenario():
            km = box.kernel_manager()
            assert km.kernel_spec.metadata["kernel_provisioner"]["provisioner_name"] == "cnn-course-sandbox"
            await km.start_kernel()
            assert type(km.provisioner).__name__ == "SandboxProvisioner"
            kc = km.client()
            import zmq
            assert kc.context.getsockopt(zmq.MAXMSGSIZE) == 32 * 2 ** 20
            kc.start_channels()
            await kc.wait_for_ready(timeout=60)
            r = await _execute(kc, "import os, numpy, helpers\nassert os.environ['CNN_COURSE_GRADING'] == '1'\n"
                                   "assert os.getcwd() == '/scratch'\nopen('keep.txt', 'w').write('kept')\n"
                                   "import mylib\nassert mylib.twice(21) == 42")
            assert r["status"] == "ok", r
            # what a cell leaves behind (a double-forked daemon, a zombie leader with a live thread) goes;
            # the kernel stays
            r = await _execute(kc, LEFTOVERS)
            assert r["status"] == "ok", r
            assert len(km.provisioner.strays()) == 2, km.provisioner.strays()   # (dead zombies are not counted)
            assert box.kill_strays(km) >= 1
            time.sleep(0.5)
            assert km.provisioner.strays() == []
            assert (await _execute(kc, "print(1)"))["stdout"] == "1\n"
            kc.execute("while True: pass")
            await asyncio.sleep(1.5)
            await km.interrupt_kernel()
            reply = await kc.get_shell_msg(timeout=20)
            assert reply["content"].get("ename") == "KeyboardInterrupt", reply["content"]
            r = await _execute(kc, "import os\nfor d in ('.ipython/profile_default/startup', '.jupyter'):\n"
                                   "    os.makedirs(d, exist_ok=True)\n"
                                   "open('.ipython/profile_default/startup/00.py', 'w').write('STARTED = 1')\n"
                                   "open('.jupyter/ipython_kernel_config.py', 'w').write('import os; os._exit(3)')")
            assert r["status"] == "ok", r
            await km.restart_kernel(now=True)
            await kc.wait_for_ready(timeout=60)
            r = await _execute(kc, "assert open('keep.txt').read() == 'kept'\n"   # same scratch, new kernel
                                   "assert 'STARTED' not in globals(), 'a start-up file in scratch ran'")
            assert r["status"] == "ok", r
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
        run_async(scenario)
        assert wait_gone(box.uid) == []


def test_null_box_runs_directly(tmp_path):
    (tmp_path / "f.txt").write_text("hi")
    with sb.NullBox(sb.Policy(enabled=False), "null", files_dir=tmp_path) as box:
        proc = box.spawn([sys.executable, "-c", "import os; print(os.getcwd(), open('f.txt').read(), "
                                                "os.environ['CNN_COURSE_GRADING'])"], stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=60)
        assert out.decode().split() == [os.path.realpath(box.scratch), "hi", "1"]
        assert type(box.kernel_manager()).__name__ == "CappedKernelManager"


def test_what_a_killed_worker_left_is_cleared_when_its_slot_is_taken_again(rootbox):
    """A worker killed with SIGKILL (over its budget, or by an instructor) leaves its boxes: a
    mounted scratch tmpfs, cgroups, root's folder, and, for a moment, its user's processes. The next
    process that locks the slot clears them."""
    import glob

    code = textwrap.dedent("""
        import subprocess, sys, time
        from helpers.instructor import sandbox as sb
        box = sb.Box(sb.Policy(slot=13), "killed")
        box.spawn([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL)
        print(box.base, flush=True)
        time.sleep(60)
    """)
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    base = worker.stdout.readline().strip()
    assert base and os.path.isdir(base), base
    worker.kill()
    worker.wait(10)
    assert os.path.ismount(os.path.join(base, "scratch")) and glob.glob(f"/sys/fs/cgroup/*/cnn-course/s13-{os.path.basename(base)}*")
    slot, token = sb.acquire_slot(13)
    try:
        assert slot == 13
        assert not os.path.exists(base), "the killed worker's box folder is still there"
        assert not glob.glob(f"/sys/fs/cgroup/*/cnn-course/s13-{os.path.basename(base)}*")
        assert wait_gone(pwd_uid("cnngrader13")) == []
    finally:
        sb.release_slot(token)


def pwd_uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def test_slots_are_exclusive(rootbox):
    code = ("import time, sys; from helpers.instructor.sandbox import acquire_slot; "
            "s, t = acquire_slot(7); print(s, flush=True); time.sleep(20)")
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=str(ROOT))
    try:
        assert other.stdout.readline().strip() == b"7"
        slot, token = sb.acquire_slot(7)
        assert slot != 7
        sb.release_slot(token)
    finally:
        other.kill()
        other.wait()
