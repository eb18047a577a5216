"""Second round of attacks on the grader, aimed at what changed last: kernels that boot ahead (a
worker holds the next submission and opens its box while it grades one), the separate kernel
cgroup, and submission files copied in after the kernel starts.

Each test asserts the SECURE outcome: an attack that works is a failing test. Every attack is a
real submission graded by the real ``autograde`` (the function ``cnn-course autograde`` calls), as
root, in the bubblewrap sandbox, in a small throwaway course.
"""
from __future__ import annotations

import io
import math
import os
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from conftest import make_course

pytestmark = [pytest.mark.slow]

A = "07_relu"
NB = "relu"


@pytest.fixture(scope="module", autouse=True)
def _needs_root_sandbox():
    from conftest import require_root_sandbox

    require_root_sandbox()


# --------------------------------------------------------------------------- building submissions
def _course(tmp: Path) -> Path:
    from helpers.instructor.nbapi import load_config
    from helpers.instructor.release import release

    course = make_course(tmp)
    release(load_config(course), [A], stream=io.StringIO())
    return course


def _good(course: Path):
    from helpers.instructor.demo import filled_notebook

    return filled_notebook(course / "release" / A / f"{NB}.ipynb", course / "notebooks" / A / f"{NB}.ipynb")


def _cell(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def _before(nb, gid, source):
    nb.cells.insert(nb.cells.index(_cell(nb, gid)), new_code_cell(source))


def _submit(course: Path, student: str, nb, files: dict | None = None) -> Path:
    folder = course / "submitted" / student / A
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / f"{NB}.ipynb"))
    for rel, text in (files or {}).items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return folder


def _grade(course: Path, **settings):
    from helpers.instructor import autograde as ag

    log = io.StringIO()
    t0 = time.monotonic()
    outcomes = ag.autograde(course, [A], stream=log, **settings)
    return {o.student: o for o in outcomes}, log.getvalue(), time.monotonic() - t0


def _outputs(course: Path, student: str) -> str:
    nb = nbformat.read(str(course / "autograded" / student / A / f"{NB}.ipynb"), as_version=4)
    return "\n".join(o.get("text", "") if o.get("output_type") == "stream" else str(o.get("data", o.get("evalue", "")))
                     for c in nb.cells for o in c.get("outputs", []))


def _scratch_mounts() -> list[str]:
    with open("/proc/mounts") as fh:
        return [ln.split()[1] for ln in fh if ln.split()[0] == "cnn-scratch"]


def _unmount_ours(marker: str) -> list[str]:
    """Unmount every scratch tmpfs left mounted that holds ``marker`` (a file our attacker wrote)."""
    left = []
    for m in _scratch_mounts():
        if os.path.exists(os.path.join(m, marker)):
            left.append(m)
            subprocess.run(["umount", "-l", m], check=False)
            subprocess.run(["rm", "-rf", os.path.dirname(m)], check=False)
            base = os.path.basename(os.path.dirname(m))
            subprocess.run(f"rmdir /sys/fs/cgroup/*/cnn-course/*{base}* /sys/fs/cgroup/cnn-course/*{base}*",
                           shell=True, check=False, capture_output=True)
    return left


# --------------------------------------------------------------------------- class 1: one worker, boxes ahead
CELL_TIMEOUT = 5
BUDGET = 20
MARKER = "round2-leak-marker.bin"

BOOT_MARK = "BOOTMARK_RAN_AT_KERNEL_START"
KILL_ALL = """
import os, signal, time
# a child of the kernel sends SIGKILL to every process it may signal: its own box's kernel and
# whatever else of the slot user it can find (the classmate's kernel, booting ahead in its own box)
pid = os.fork()
if pid == 0:
    try:
        os.kill(-1, signal.SIGKILL)
    finally:
        os._exit(0)
time.sleep(2)
"""
HANG_AT_START = "import time\ntime.sleep(10 ** 6)\n"
CRASH_AFTER_FILL = f"""
# fill the scratch tmpfs (it is RAM), then kill the kernel: its restart runs the startup file that hangs
with open('/scratch/{MARKER}', 'wb') as fh:
    fh.write(b'x' * (40 * 2 ** 20))
import os
os._exit(1)
"""


@pytest.fixture(scope="module")
def ahead(tmp_path_factory):
    """One worker (--jobs 1), three submissions graded in a row, each one's box opened while the
    previous one is graded:

    - ``a_boot``, graded first (its kernel starts right before its files are copied in): ships an
      IPython startup file, prints whether it ran in the first kernel, then kills every process
      it can signal;
    - ``b_victim``: a correct submission whose kernel boots ahead while ``a_boot`` is graded;
    - ``c_hang``: ships a startup file that sleeps forever; fills its scratch, then kills its
      kernel, so that every restart hangs in the startup file.
    """
    course = _course(tmp_path_factory.mktemp("round2_ahead"))
    nb = _good(course)
    _before(nb, "test_relu_canonical", f"print('{BOOT_MARK}', '{BOOT_MARK}' in globals())")
    _before(nb, "test_relu_backward_canonical", KILL_ALL)
    _submit(course, "a_boot", nb, {".ipython/profile_default/startup/00-mark.py": f"{BOOT_MARK} = 1\n"})
    _submit(course, "b_victim", _good(course))
    nb = _good(course)
    _before(nb, "test_relu_canonical", CRASH_AFTER_FILL)
    _submit(course, "c_hang", nb, {".ipython/profile_default/startup/00-hang.py": HANG_AT_START})
    outcomes, log, seconds = _grade(course, jobs=1, cell_timeout=CELL_TIMEOUT, budget=BUDGET)
    leaked = _unmount_ours(MARKER)
    return {"course": course, "outcomes": outcomes, "log": log, "seconds": seconds, "leaked": leaked}


def test_prestarted_kernel_of_a_classmate_survives_kill_all(ahead):
    """Attack (fails): a_boot's code forks a child that sends SIGKILL to every process it may
    signal (``kill(-1)``), as the slot user that b_victim's kernel, booted ahead meanwhile, also
    runs as. Only a_boot's own box may suffer: b_victim is graded 10/10 with no kernel death."""
    b = ahead["outcomes"]["b_victim"]
    assert b.status == "graded" and b.score == 10, b
    assert "died" not in b.reason, b


def test_first_kernel_never_runs_a_students_startup_file(ahead):
    """Attack: the README says that nothing a student wrote takes part in starting a kernel. But a
    submission that no worker held (the first of each worker, or one taken when the queue was
    short) gets its box and kernel at its turn, and ``Worker.grade`` copies its files into scratch
    (``add_files``) right after ``start_kernel`` returns, while that kernel is still booting. The
    kernel's IPYTHONDIR is in scratch, so a shipped ``.ipython/profile_default/startup/*.py`` (or
    ``ipython_kernel_config.py``) may run inside the kernel's start-up. Secure: it never does."""
    out = _outputs(ahead["course"], "a_boot")
    assert f"{BOOT_MARK} False" in out, out[-2000:]


def test_kernel_restarts_stay_within_the_budget(ahead):
    """Attack (it worked before the fix): c_hang ships ``.ipython/profile_default/startup/00-hang.py`` (sleeps
    forever) and kills its kernel in a cell. Each restart's kernel runs that startup file from
    scratch and never answers kernel_info; ``SandboxedExecute._restart`` waits nbclient's whole
    ``startup_timeout`` (60 s) for each of ``max_restarts`` restarts, whatever is left of the
    budget. The submission runs past budget + slack until the pool kills the worker: it is
    reported "failed" (its partial credit lost) instead of graded, and the worker is lost.
    Secure: graded, within the budget plus a little."""
    c = ahead["outcomes"]["c_hang"]
    assert c.status == "graded", c
    assert c.seconds < BUDGET + 15, c


def test_killed_worker_leaves_no_scratch_mounted(ahead):
    """Attack (it worked before the fix): when the pool kills a worker (over the hard limit, as c_hang makes it),
    nothing closes that worker's boxes: the scratch tmpfs of the submission it was grading (and
    of one it held) stays mounted under the temp dir, with the student's 40 MiB in RAM, and its
    cgroups stay. ``remove_stale_boxes`` exists but nothing calls it. A class that repeats this
    pins 64 MiB of RAM per submission until reboot. Secure: no scratch of this run stays mounted."""
    assert ahead["leaked"] == [], f"scratch tmpfs left mounted after the run: {ahead['leaked']}"


def test_others_in_the_row_are_intact(ahead):
    """The correct classmates of class 1 keep full marks."""
    assert ahead["outcomes"]["b_victim"].score == 10
    assert ahead["outcomes"]["a_boot"].status == "graded"


# --------------------------------------------------------------------------- class 2: two workers, CPU
SPINNERS = 110    # under the kernel cgroup's 128 tasks (a kernel has about 15 threads)


def _hog(seconds: float, n: int = SPINNERS) -> str:
    return f'''
import os, time
def _hog(seconds={seconds}, n={n}):
    """n processes, each in a session of its own, that spin until the cell's end (then it returns)."""
    end = time.monotonic() + seconds
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            try:
                os.setsid()
                while time.monotonic() < end:
                    pass
            finally:
                os._exit(0)
    while time.monotonic() < end:
        time.sleep(0.2)
_hog()
'''


@pytest.fixture(scope="module")
def starved(tmp_path_factory):
    """A correct ``alice`` graded alone (the baseline: how long her setup cell takes here), then
    graded again with --jobs 2 beside ``hog``, whose cells (in the kernel and in the out-of-kernel
    check) each fork 110 spinning processes for just under the cell timeout. The cell timeout of
    the second run is 3 times alice's own slowest cell of the first."""
    base = _course(tmp_path_factory.mktemp("round2_base"))
    _submit(base, "alice", _good(base))
    outcomes, _, _ = _grade(base, jobs=1, cell_timeout=30, budget=120)
    assert outcomes["alice"].score == 10, outcomes["alice"]
    from helpers.instructor.grading import state

    timings = state.read(base, A, "alice")["timings"]
    timeout = max(4, math.ceil(3 * timings["setup"]))
    course = _course(tmp_path_factory.mktemp("round2_cpu"))
    _submit(course, "alice", _good(course))
    nb = _good(course)
    hog = _hog(max(1.0, timeout - 1.5))
    for gid in ("relu", "relu_backward"):
        _cell(nb, gid).source += "\n" + hog
    for _ in range(8):
        _before(nb, "test_relu_backward_hidden", "_hog()")
    _submit(course, "hog", nb)
    outcomes, log, seconds = _grade(course, jobs=2, cell_timeout=timeout, budget=120)
    return {"base": timings, "timeout": timeout, "outcomes": outcomes, "log": log,
            "alice_timings": state.read(course, A, "alice").get("timings")}


def test_a_classmate_graded_beside_a_cpu_hog_keeps_her_points(starved):
    """Attack: a box limits memory and process count (cgroups memory, pids) but not CPU: no cpu
    cgroup or share per box (``sandbox/cgroups.py``), only RLIMIT_CPU per process. hog's cells
    fork 110 busy processes (each its own session) for just under the cell timeout, in the kernel
    and in the out-of-kernel check, so that a classmate graded at the same time on the other
    worker gets a sliver of the CPU and her correct cells time out. Secure: alice keeps 10/10 with
    a cell timeout of 3 times her slowest cell graded alone."""
    alice = starved["outcomes"]["alice"]
    assert alice.status == "graded" and alice.score == 10, \
        (alice, f"timeout {starved['timeout']} s; alone {starved['base']}; beside hog {starved['alice_timings']}")


def test_a_cpu_hog_cannot_slow_a_classmate_many_times_over(starved):
    """Attack (it worked before the fix): the same hog, measured. A box has no CPU share of its own, so 110 busy
    processes of one submission take the machine from the submission graded beside it: alice's
    setup and lesson cells run many times slower than when she is graded alone (her setup cell
    7.6x and 12.5x in two runs here, on a 2-core machine already loaded by other work; on an idle
    grader 110 spinners against one task is worse). With her cells near the cell timeout (heavier
    assignments, a slower machine, a shorter --cell-timeout) she loses points for a classmate's
    code. Secure: a per-box CPU share (cgroup v1 ``cpu.shares`` / v2 ``cpu.weight``) keeps the
    slowdown of her slowest cell under 3x."""
    alone, beside = starved["base"], starved["alice_timings"]
    ratio = beside["setup"] / max(alone["setup"], 0.05)
    assert ratio < 3, f"alice's setup cell took {ratio:.1f}x longer beside the hog (alone {alone}, beside {beside})"


# --------------------------------------------------------------------------- class 3: files formgrader serves
XML_PAGES = ("notes.rdf", "notes.xslt", "notes.mml", "notes.atom", "notes.xul", "notes.xpdl")


def _xml_page(tag: str) -> str:
    return ('<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body><p>notes</p>'
            f"<script>window.pwned='{tag}';document.title='pwned'</script></body></html>\n")


@pytest.fixture(scope="module")
def xml_pages(tmp_path_factory):
    """``mallory`` hands in a correct notebook and, beside it, XHTML pages under file names whose
    MIME type is XML (``.rdf`` application/rdf+xml, ``.xslt``, ``.mml``, ``.atom``, ``.xul``,
    ``.xpdl`` application/xml), none of them in the staging step's list of active suffixes."""
    course = _course(tmp_path_factory.mktemp("round2_xml"))
    _submit(course, "mallory", _good(course), {name: _xml_page(name) for name in XML_PAGES})
    outcomes, log, _ = _grade(course, jobs=1, cell_timeout=15, budget=90, out_of_kernel=False)
    return {"course": course, "outcome": outcomes["mallory"], "log": log}


@pytest.mark.browser
def test_formgrader_serves_no_student_xml_page_that_runs(xml_pages, request, tmp_path):
    """Attack: ``stage.ACTIVE_SUFFIXES`` rejects ``.html``, ``.svg``, ``.xml``, ``.xsl``... but not
    the many other suffixes that Python's ``mimetypes`` (hence Tornado's StaticFileHandler, which
    formgrader's ``SubmissionFilesHandler`` is) maps to an XML type. Chromium renders an XHTML
    document served as any XML type and runs its script, in the Jupyter server's origin with the
    instructor logged in (the Jupyter API, terminals: the instructor's account). Measured: formgrader
    serves ``notes.xpdl`` as ``application/xml`` and its script runs (``.atom`` renders without
    running; ``.rdf``, ``.xslt``, ``.mml``, ``.xul`` download). Secure: such a submission is
    rejected, or nothing it holds runs in formgrader."""
    import secrets

    from _browser import VENV_BIN, free_port, shared_browser, stop, venv_env, wait_for_http
    from helpers.instructor.nbapi import gradebook, load_config

    o = xml_pages["outcome"]
    if o.status == "rejected":
        return
    browser = shared_browser(request)
    course = xml_pages["course"]
    with gradebook(load_config(course)) as gb:
        sid = gb.find_submission_notebook(NB, A, "mallory").id
    token, port = secrets.token_hex(24), free_port()
    env = venv_env(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    cmd = [str(VENV_BIN / "jupyter"), "server", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={course}", "--allow-root"]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    ran = {}
    try:
        wait_for_http(f"{url}/api/status?token={token}", timeout=120, proc=proc)
        context = browser.new_context()
        try:
            page = context.new_page()
            for name in XML_PAGES:
                try:
                    resp = page.goto(f"{url}/formgrader/submissions/{sid}/{name}?token={token}")
                except Exception as exc:   # a type Chromium downloads instead of rendering
                    ran[name] = ("not rendered", str(exc).splitlines()[0][:80], None)
                    continue
                page.wait_for_timeout(500)
                got = page.evaluate("() => window.pwned === undefined ? null : String(window.pwned)")
                ran[name] = (resp.status if resp else None, resp.headers.get("content-type") if resp else None, got)
        finally:
            context.close()
    finally:
        stop(proc)
    assert not [n for n, (_, _, got) in ran.items() if got], f"student script ran in formgrader: {ran}"
