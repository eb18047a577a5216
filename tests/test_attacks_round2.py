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
    """Attack (works): c_hang ships ``.ipython/profile_default/startup/00-hang.py`` (sleeps
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
    """Attack (works): when the pool kills a worker (over the hard limit, as c_hang makes it),
    nothing closes that worker's boxes: the scratch tmpfs of the submission it was grading (and
    of one it held) stays mounted under the temp dir, with the student's 40 MiB in RAM, and its
    cgroups stay. ``remove_stale_boxes`` exists but nothing calls it. A class that repeats this
    pins 64 MiB of RAM per submission until reboot. Secure: no scratch of this run stays mounted."""
    assert ahead["leaked"] == [], f"scratch tmpfs left mounted after the run: {ahead['leaked']}"


def test_others_in_the_row_are_intact(ahead):
    """The correct classmates of class 1 keep full marks."""
    assert ahead["outcomes"]["b_victim"].score == 10
    assert ahead["outcomes"]["a_boot"].status == "graded"
