"""The instructor tool on the synthetic class: exact scores, parallel = serial, restart after a kill
(of the grader, or of one worker), feedback without hidden tests, a per-question export that matches
the gradebook, clear errors."""
from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from helpers.instructor import autograde as ag
from helpers.instructor.course import ASSIGNMENTS
from helpers.instructor.feedback import hidden_test_texts
from helpers.instructor.nbapi import gradebook, load_config

from conftest import make_course

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "cnn-course")

FULL = {  # points of every test cell, in the notebooks' order
    "01_zero_padding": {"test_zero_pad_canonical": 2, "test_zero_pad_hidden": 3},
    "02_conv_single_step": {"test_conv_single_step_canonical": 2, "test_conv_single_step_hidden": 3},
    "03_conv_forward": {"test_conv_forward_canonical": 2, "test_conv_forward_hidden": 3,
                        "test_conv_param_count_canonical": 2, "test_conv_param_count_hidden": 3},
    "04_conv_backward": {"test_conv_backward_canonical": 2, "test_conv_backward_hidden": 3},
    "05_pool_forward": {"test_pool_forward_canonical": 2, "test_pool_forward_hidden": 3},
    "06_pool_backward": {"test_create_mask_canonical": 2, "test_create_mask_hidden": 3,
                         "test_distribute_value_canonical": 2, "test_distribute_value_hidden": 3,
                         "test_pool_backward_canonical": 2, "test_pool_backward_stride_hidden": 3,
                         "test_pool_backward_f1_hidden": 3},
    "07_relu": {"test_relu_canonical": 2, "test_relu_hidden": 3, "test_relu_backward_canonical": 2,
                "test_relu_backward_hidden": 3},
    "08_sobel": {"test_to_grayscale_canonical": 2, "test_to_grayscale_hidden": 3, "test_sobel_kernels": 2,
                 "test_filter2d_canonical": 2, "test_filter2d_hidden": 3, "test_sobel_edges_canonical": 2,
                 "test_sobel_edges_hidden": 3},
    "09_fast_layers": {"test_conv_forward_fast_canonical": 2, "test_conv_forward_fast_hidden": 3,
                       "test_conv_backward_fast_canonical": 2, "test_conv_backward_fast_hidden": 3,
                       "test_pool_forward_fast_canonical": 2, "test_pool_forward_fast_hidden": 3,
                       "test_pool_backward_fast_canonical": 2, "test_pool_backward_fast_hidden": 3},
    "10_digits_cnn": {"test_dense_forward_canonical": 2, "test_dense_forward_hidden": 3,
                      "test_dense_backward_canonical": 2, "test_dense_backward_hidden": 3,
                      "test_softmax_cross_entropy_canonical": 2, "test_softmax_cross_entropy_hidden": 3,
                      "test_cnn_forward_canonical": 2, "test_cnn_forward_hidden": 3,
                      "test_cnn_backward_canonical": 2, "test_cnn_backward_hidden": 3,
                      "test_network_gradient_check": 4,
                      "test_sgd_momentum_step_canonical": 2, "test_sgd_momentum_step_hidden": 3,
                      "test_train_cnn_first_steps": 3, "test_train_cnn_hidden": 2, "test_train_cnn_accuracy": 5},
}


def zero(a):
    return {g: 0 for g in FULL[a]}


def expected_scores() -> dict:
    """What each synthetic student must score on each test cell, reasoned from their mistake."""
    exp = {s: {a: zero(a) for a in FULL}
           for s in ("alice", "ben", "cara", "dev", "eve", "finn", "gus", "hana", "ivan", "jack", "jay")}
    exp["alice"] = {a: dict(FULL[a]) for a in FULL}
    # ben: no stride in conv_forward and pool_forward: both canonical cases use stride 2, both hidden cells stride 3
    # cara: no bias in conv_single_step, conv_forward and conv_param_count: every case has a non-zero bias, and
    # every count has n_C >= 1 biases
    # dev: the unpadded slice; canonical pads by 1, and the hidden cell reaches the padded stride-3 case
    # (ben, cara and dev keep their zeros on conv_forward; ben and dev count the parameters right: 2 + 3)
    for s in ("ben", "dev"):
        exp[s]["03_conv_forward"].update(test_conv_param_count_canonical=2, test_conv_param_count_hidden=3)
    # eve: distribute_value without the division: its own cells, and every pool_backward cell with an average case
    exp["eve"]["06_pool_backward"].update(test_create_mask_canonical=2, test_create_mask_hidden=3,
                                          test_pool_backward_f1_hidden=3)
    # finn: conv_backward ignores the stride (canonical stride 2, hidden stride 3): 0;
    # pool_backward ignores it: the stride-1 cells pass (the source's bug), the stride 2 and 3 cell does not
    exp["finn"]["06_pool_backward"].update(test_create_mask_canonical=2, test_create_mask_hidden=3,
                                           test_distribute_value_canonical=2, test_distribute_value_hidden=3,
                                           test_pool_backward_canonical=2, test_pool_backward_f1_hidden=3)
    # gus: 01's notebook missing (0), 02 right. hana: 01 corrupt (0).
    exp["gus"]["02_conv_single_step"] = dict(FULL["02_conv_single_step"])
    # ivan: relu hangs: its cells time out; relu_backward still earns its points
    exp["ivan"]["07_relu"].update(test_relu_backward_canonical=2, test_relu_backward_hidden=3)
    # jack: params + learning_rate * v in the SGD step: every sgd_momentum_step case is wrong, and train_cnn, which
    # calls it, neither matches the reference's first steps nor trains; the layers, the loss and the gradients
    # (the gradient check included) keep their points
    exp["jack"]["10_digits_cnn"] = {g: (0 if g.startswith(("test_sgd", "test_train")) else p)
                                    for g, p in FULL["10_digits_cnn"].items()}
    # jay: conv_forward_fast without the stride: its canonical case (stride 2) and its hidden cell (stride 3,
    # stride 2 with the floor) fail; conv_backward_fast and both pooling layers build their own views: full points
    exp["jay"]["09_fast_layers"] = dict(FULL["09_fast_layers"], test_conv_forward_fast_canonical=0,
                                        test_conv_forward_fast_hidden=0)
    return exp


def gradebook_scores(config) -> dict:
    out = {}
    with gradebook(config) as gb:
        for student in gb.students:
            for sub in student.submissions:
                for nb in sub.notebooks:
                    for g in nb.grades:
                        out[(student.id, sub.assignment.name, g.name)] = float(g.score)
    return out


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    from helpers.instructor.demo import run_demo

    course = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    result = run_demo(course, jobs=2, stream=buf)
    result["log"] = buf.getvalue()
    result["root"] = course
    return result


def test_demo_grades_every_cell_exactly(demo):
    config = load_config(demo["root"])
    got = gradebook_scores(config)
    exp = expected_scores()
    wrong = []
    for s, per in exp.items():
        for a, cells in per.items():
            for g, points in cells.items():
                score = got.get((s, a, g), 0.0)   # no submission, or not graded: 0
                if score != points:
                    wrong.append(f"{s} {a}/{g}: expected {points}, got {score}")
    assert not wrong, "demo class scores differ:\n" + "\n".join(wrong)


def test_demo_reports_problems_by_student(demo):
    by = {(o.assignment, o.student): o for o in demo["outcomes"]}
    assert by[("01_zero_padding", "hana")].status == "corrupt" and "not a readable notebook" in \
        by[("01_zero_padding", "hana")].reason
    assert by[("01_zero_padding", "gus")].status == "missing"
    assert by[("07_relu", "ivan")].status == "graded" and "timed out" in by[("07_relu", "ivan")].reason
    log = demo["log"]
    assert "hana" in log and "gus" in log and "per-question CSV" in log and "item_analysis" in log


def test_export_matches_gradebook(demo):
    config = load_config(demo["root"])
    got = gradebook_scores(config)
    rows = list(csv.DictReader(open(demo["paths"]["per-question CSV"])))
    assert rows[0]["student_id"] == "max_points"
    header = list(rows[0])
    assert header[1] == "01_zero_padding/test_zero_pad_canonical" and header[-1] == "course_total"
    for a, cells in FULL.items():
        for g, pts in cells.items():
            assert float(rows[0][f"{a}/{g}"]) == pts
    students = {r["student_id"]: r for r in rows[1:]}
    assert set(students) == set(expected_scores())
    for sid, row in students.items():
        total = 0.0
        for a, cells in FULL.items():
            sub = sum(got.get((sid, a, g), 0.0) for g in cells)
            for g in cells:
                assert float(row[f"{a}/{g}"]) == got.get((sid, a, g), 0.0), f"{sid} {a}/{g}"
            assert float(row[f"{a}/total"]) == sub
            total += sub
        assert float(row["course_total"]) == total
    assert Path(demo["paths"]["nbgrader CSV"]).read_text().startswith("assignment,duedate,timestamp,student_id")


def test_report_has_item_analysis_and_plots(demo):
    text = Path(demo["paths"]["report"]).read_text()
    assert "03_conv_forward/test_conv_forward_canonical" in text and "%" in text
    for key in ("plot item_analysis", "plot grade_distribution"):
        png = Path(demo["paths"][key])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_feedback_hides_hidden_tests(demo):
    pages = sorted(Path(demo["root"], "feedback").rglob("*.html"))
    graded = [o for o in demo["outcomes"] if o.status == "graded"]
    assert len(pages) == len(graded), f"expected one feedback page per graded submission, got {len(pages)}"
    for page in pages:
        assignment = page.parent.name
        a = next(x for x in ASSIGNMENTS if x.id == assignment)
        secrets = hidden_test_texts(nbformat.read(str(a.source), as_version=4))
        html = page.read_text()
        leaked = [t for t in secrets if t in html or t.replace('"', "&quot;") in html]
        assert not leaked, f"{page}: hidden test text in the feedback: {leaked[:3]}"
        assert "Hidden test" in html and "Traceback" not in html.split("Hidden test")[1][:400]
    eve = Path(demo["root"], "feedback", "eve", "06_pool_backward", "pool_backward.html").read_text()
    assert "Hidden test failed: AssertionError" in eve and "distribute_value" in eve


def _copy_class(src: Path, dest: Path, assignments) -> Path:
    course = make_course(dest)
    shutil.copytree(src / "release", course / "release")
    for student in (src / "submitted").iterdir():
        for a in assignments:
            if (student / a).exists():
                shutil.copytree(student / a, course / "submitted" / student.name / a)
    return course


SUBSET = ["01_zero_padding", "02_conv_single_step", "06_pool_backward"]


def test_parallel_and_serial_gradebooks_identical(demo, tmp_path):
    runs = {}
    for jobs in (1, 2):
        course = _copy_class(demo["root"], tmp_path / f"jobs{jobs}", SUBSET)
        ag.autograde(course, SUBSET, jobs=jobs, stream=io.StringIO())
        runs[jobs] = gradebook_scores(load_config(course))
        con = sqlite3.connect(course / "gradebook.db")
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
    assert runs[1] == runs[2] and len(runs[1]) >= 20


@pytest.fixture(scope="module")
def subset_reference(demo, tmp_path_factory):
    """The SUBSET of the demo class graded once, undisturbed: (gradebook scores, submissions graded)."""
    reference = _copy_class(demo["root"], tmp_path_factory.mktemp("reference"), SUBSET)
    graded = [o for o in ag.autograde(reference, SUBSET, jobs=2, stream=io.StringIO()) if o.status == "graded"]
    return gradebook_scores(load_config(reference)), graded


def _cli_env():
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _assert_nothing_doubled(course: Path, graded: int) -> None:
    con = sqlite3.connect(course / "gradebook.db")
    dup = con.execute("SELECT COUNT(*) FROM (SELECT notebook_id, cell_id, COUNT(*) c FROM grade "
                      "GROUP BY notebook_id, cell_id HAVING c > 1)").fetchone()[0]
    subs = con.execute("SELECT COUNT(*) FROM submitted_assignment").fetchone()[0]
    con.close()
    assert dup == 0 and subs == graded


def grading_workers(pid: int) -> list:
    """The pool's worker processes under the grading command ``pid`` (psutil), not its resource tracker."""
    import psutil

    try:
        return [p for p in psutil.Process(pid).children()
                if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def _rerun_completes_the_class(course: Path, jobs: int, subset_reference) -> None:
    """Run autograde again: it succeeds, and the gradebook is the undisturbed run's, nothing doubled."""
    rerun = subprocess.run([CLI, "--root", str(course), "autograde", "--all", "--jobs", str(jobs)], env=_cli_env(),
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    reference, graded = subset_reference
    assert gradebook_scores(load_config(course)) == reference
    _assert_nothing_doubled(course, len(graded))


def test_kill_then_rerun_loses_and_doubles_nothing(demo, tmp_path, subset_reference):
    course = _copy_class(demo["root"], tmp_path / "killed", SUBSET)
    env = _cli_env()
    proc = subprocess.Popen([CLI, "--root", str(course), "autograde", "--all", "--jobs", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if " ok " in line:   # at least one submission graded; others are mid-way
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)   # let orphaned workers notice their parent is gone
    partial = gradebook_scores(load_config(course))
    rerun = subprocess.run([CLI, "--root", str(course), "autograde", "--all", "--jobs", "2"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "already graded" in rerun.stdout, "the rerun should skip what the killed run finished"
    final = gradebook_scores(load_config(course))
    reference, graded = subset_reference
    assert final == reference
    assert len(partial) < len(final)
    _assert_nothing_doubled(course, len(graded))


def test_a_worker_killed_mid_run_loses_nothing_it_held(demo, tmp_path, subset_reference):
    """A worker holds the next submission while it grades one (its kernel boots meanwhile). When the
    worker is killed, the submission it was grading is reported as failed, the one it held goes
    back to the queue and is graded by its replacement: each submission has exactly one line, and
    a rerun completes the class with nothing doubled."""
    course = _copy_class(demo["root"], tmp_path / "worker-killed", SUBSET)
    env = _cli_env()
    proc = subprocess.Popen([CLI, "--root", str(course), "autograde", "--all", "--jobs", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, killed = [], None
    for line in proc.stdout:
        lines.append(line)
        if " ok " in line and killed is None:
            time.sleep(0.3)   # the worker is grading the second submission, holding the third
            workers = grading_workers(proc.pid)
            assert len(workers) == 1, workers
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
    assert proc.wait(600) == 0, "".join(lines)
    progress = [ln for ln in lines if ln.startswith("[")]
    done = [tuple(ln.split()[3:6:2]) for ln in progress]   # (assignment, student)
    tasks = {(a, s.name) for s in (course / "submitted").iterdir() for a in SUBSET if (s / a).exists()}
    assert len(done) == len(set(done)) and set(done) >= {t for t in tasks}, "".join(progress)
    failed = [ln for ln in progress if " FAIL " in ln and "grading process died" in ln]
    assert len(failed) <= 1, "".join(progress)
    _rerun_completes_the_class(course, 1, subset_reference)


def test_workers_killed_at_any_moment_lose_nothing(demo, tmp_path, subset_reference):
    """Workers SIGKILLed while they start up (the pool has already given them a submission, which
    they have not taken or not yet said they started) and while they grade: the run still ends, each
    submission has exactly one line, and a rerun completes the class with nothing doubled. The pool
    gives every submission to one worker through that worker's own queue, so what a dead worker
    held is always known."""
    import threading

    import psutil

    course = _copy_class(demo["root"], tmp_path / "kill-storm", SUBSET)
    env = _cli_env()
    proc = subprocess.Popen([CLI, "--root", str(course), "autograde", "--all", "--jobs", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed: list[int] = []

    def storm():
        seen: set = set()
        delays = iter([0.05, 0.4, 2.5])   # new workers: as they import, as they take their first, mid-grade
        while proc.poll() is None and len(killed) < 3:
            for w in grading_workers(proc.pid):
                if w.pid in seen:
                    continue
                seen.add(w.pid)
                delay = next(delays, None)
                if delay is None:
                    return
                time.sleep(delay)
                try:
                    w.kill()
                    killed.append(w.pid)
                except psutil.Error:
                    pass
            time.sleep(0.02)

    killer = threading.Thread(target=storm, daemon=True)
    killer.start()
    out = proc.communicate(timeout=900)[0]
    killer.join(5)
    assert killed and proc.returncode == 0, out
    progress = [ln for ln in out.splitlines() if ln.startswith("[")]
    done = [tuple(ln.split()[3:6:2]) for ln in progress]   # (assignment, student)
    tasks = {(a, s.name) for s in (course / "submitted").iterdir() for a in SUBSET if (s / a).exists()}
    assert len(done) == len(set(done)) == len(tasks) and set(done) == tasks, out
    died = [ln for ln in progress if "grading process died" in ln]
    assert len(died) <= len(killed), out
    _rerun_completes_the_class(course, 2, subset_reference)


def test_a_worker_hung_at_start_up_is_replaced_and_blocks_no_one(demo, tmp_path, subset_reference):
    """A worker SIGSTOPped as soon as it exists (it holds a submission it never starts, and is
    stopped wherever it was, in the middle of a write included): the other worker goes on, since each
    talks to the pool through a pipe of its own; after the time limit the pool kills the hung one
    and gives its submission to a new worker. Every submission is graded, none fails."""
    import psutil

    course = _copy_class(demo["root"], tmp_path / "hung", SUBSET)
    proc = subprocess.Popen([CLI, "--root", str(course), "autograde", "--all", "--jobs", "2", "--budget", "30",
                             "--cell-timeout", "5"], env=_cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    stopped = None
    t0 = time.monotonic()
    while stopped is None and time.monotonic() - t0 < 60:
        for p in grading_workers(proc.pid):
            p.suspend()
            stopped = p
            break
        time.sleep(0.01)
    assert stopped is not None
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    assert not stopped.is_running() or stopped.status() == psutil.STATUS_ZOMBIE, "the hung worker was not killed"
    progress = [ln for ln in out.splitlines() if ln.startswith("[")]
    tasks = {(a, s.name) for s in (course / "submitted").iterdir() for a in SUBSET if (s / a).exists()}
    assert len(progress) == len(tasks) and not [ln for ln in progress if "grading process died" in ln
                                                or "over the time budget" in ln], out
    reference, graded = subset_reference
    assert gradebook_scores(load_config(course)) == reference


@pytest.mark.parametrize("args,needle", [
    (["autograde", "no_such_assignment"], "unknown assignment 'no_such_assignment'"),
    (["autograde", "--all"], "no submitted/ folder"),
    (["--config", "{bad}", "release"], "cannot read the nbgrader config"),
    (["release", "09_nope"], "unknown assignment '09_nope'"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, needle):
    course = make_course(tmp_path / "course")
    bad = tmp_path / "bad_config.py"
    bad.write_text("c = get_config()\nc.CourseDirectory.root = (\n")
    args = [str(bad) if a == "{bad}" else a for a in args]
    res = subprocess.run([CLI, "--root", str(course)] + args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr
