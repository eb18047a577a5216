"""Submissions are data: links, special files, unsafe ids, tampered metadata and resubmissions.

One session fixture builds a class for 07_relu (10 points) and grades it twice with the real
``autograde`` (sandbox on, as root; out-of-kernel check off to keep it light): once as handed in,
then after one student resubmits with a fix and a newer timestamp.txt.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from conftest import ROOT, make_course

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="session", autouse=True)
def _needs_root_sandbox():
    """Root and bubblewrap, or a skip; under CI=true their absence fails the test."""
    from conftest import require_root_sandbox

    require_root_sandbox()


A, NB = "07_relu", "relu.ipynb"
SECRET = "TOP-SECRET-instructor-only-7f3a"
BAD_IDS = ["*", "?x", "[ab]", "-rf", "=2+5", "+SUM(A1)", "@x", ".hidden", "a b", "a\\b"]
REJECTED = {  # student -> words the reason must contain
    "link_nb": f"{NB} is a symbolic link",
    "link_data": "data.h5 is a symbolic link",
    "link_dir": "lib is a symbolic link",
    "hardlink": "notes.txt is a hard link",
    "fifo": "pipe is a FIFO",
}
GRADED = {"alice": 10, "bob": 10, "extra_cell": 10, "dup_id": 10}
TS1, TS2 = "2026-11-20 10:00:00.000000 UTC", "2026-11-21 09:30:00.000000 UTC"


def _cell(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def _write(course: Path, student: str, nb, ts: str | None = None) -> Path:
    folder = course / "submitted" / student / A
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / NB))
    if ts:
        (folder / "timestamp.txt").write_text(ts + "\n")
    return folder


def build_class(course: Path) -> None:
    from helpers.instructor.demo import filled_notebook

    def good(mistakes=()):
        return filled_notebook(course / "release" / A / NB, course / "notebooks" / A / NB, list(mistakes))

    secret = course / "secret.txt"
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)
    for s in ("alice", "bob"):
        _write(course, s, good())
    (course / "submitted" / "link_nb" / A).mkdir(parents=True)
    os.symlink(f"../../../notebooks/{A}/{NB}", course / "submitted" / "link_nb" / A / NB)
    folder = _write(course, "link_data", good())
    os.symlink(course / "secret.txt", folder / "data.h5")
    folder = _write(course, "link_dir", good())
    os.symlink(course / "notebooks" / A, folder / "lib", target_is_directory=True)
    folder = _write(course, "hardlink", good())
    os.link(secret, folder / "notes.txt")
    folder = _write(course, "fifo", good())
    os.mkfifo(folder / "pipe")
    nb = good()
    extra = new_code_cell("assert True\nprint('extra points')")
    extra.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 100,
                                  "grade_id": "test_my_bonus", "schema_version": 3}
    nb.cells.append(extra)
    _write(course, "extra_cell", nb)
    nb = good()   # the visible test copied twice: edited early on, verbatim at the end
    original = _cell(nb, "test_relu_canonical")
    for where, source in ((1, "print('relu: all checks passed')"), (len(nb.cells), original.source)):
        copy = new_code_cell(source)
        copy.metadata["nbgrader"] = dict(original.metadata["nbgrader"])
        nb.cells.insert(where, copy)
    _write(course, "dup_id", nb)
    for bad in BAD_IDS:
        _write(course, bad, good())
    _write(course, "resub", good([("relu", "A = np.maximum(0.0, Z)", "A = np.abs(Z)")]), TS1)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    from helpers.instructor import autograde as ag
    from helpers.instructor.demo import filled_notebook
    from helpers.instructor.feedback import feedback_overrides
    from helpers.instructor.nbapi import load_config, make_api
    from helpers.instructor.release import release

    course = make_course(tmp_path_factory.mktemp("submissions"))
    config = load_config(course)
    release(config, [A], stream=io.StringIO())
    build_class(course)
    kw = dict(jobs=2, cell_timeout=10, budget=60, out_of_kernel=False)
    first = {(o.student): o for o in ag.autograde(course, [A], stream=io.StringIO(), **kw)}
    with _gradebook(config) as gb:
        before = {s: gb.find_submission(A, s).score for s in ("alice", "bob", "resub")}
    # resubmission: fixed code, newer timestamp
    _write(course, "resub", filled_notebook(course / "release" / A / NB, course / "notebooks" / A / NB), TS2)
    nb = nbformat.read(str(course / "submitted" / "bob" / A / NB), as_version=4)   # other content, no timestamp
    nb.cells.append(new_code_cell("# one more note"))
    _write(course, "bob", nb)
    second = {o.student: o for o in ag.autograde(course, [A], stream=io.StringIO(), **kw)}
    api = make_api(load_config(course, overrides=feedback_overrides()))
    feedback = api.generate_feedback(A, None, force=True)
    return {"course": course, "config": config, "first": first, "second": second, "before": before,
            "feedback": feedback}


def _gradebook(config):
    from helpers.instructor.nbapi import gradebook

    return gradebook(config)


@pytest.mark.parametrize("student", sorted(REJECTED))
def test_links_and_special_files_rejected_by_name(graded, student):
    o = graded["first"][student]
    assert o.status == "rejected", (o, REJECTED[student])
    assert REJECTED[student] in o.reason, o.reason
    assert not (graded["course"] / "autograded" / student).exists()
    assert not (graded["course"] / "feedback" / student).exists()


@pytest.mark.parametrize("student", BAD_IDS)
def test_unsafe_ids_rejected_by_name(graded, student):
    from helpers.instructor.grading.discover import shown

    o = graded["first"][shown(student)]
    assert o.status == "rejected" and "is not allowed" in o.reason and "rename the folder" in o.reason, o
    with _gradebook(graded["config"]) as gb:
        assert student not in {s.id for s in gb.students}
    assert not (graded["course"] / "autograded" / student).exists()


def test_unsafe_student_option_refused(graded):
    from helpers.instructor.autograde import discover
    from helpers.instructor.nbapi import CourseError

    for bad in ("a/b", "*", "=1"):
        with pytest.raises(CourseError, match="is not allowed"):
            discover(graded["course"], [A], student=bad)


@pytest.mark.parametrize("student", sorted(GRADED))
def test_classmates_and_tampering_graded(graded, student):
    o = graded["first"][student]
    assert o.status == "graded" and o.score == GRADED[student] and o.max_score == 10, o
    if student == "extra_cell":
        assert "'test_my_bonus' is not in the assignment" in o.reason, o.reason
    if student == "dup_id":
        assert "'test_relu_canonical' appears 3 times" in o.reason, o.reason
    with _gradebook(graded["config"]) as gb:
        assert gb.find_submission(A, student).score == GRADED[student]


def test_no_instructor_file_reaches_autograded_or_feedback(graded):
    course = graded["course"]
    assert graded["feedback"].get("success"), graded["feedback"]
    source = _digest(ROOT / "notebooks" / A / NB)
    files = [p for d in ("autograded", "feedback") for p in (course / d).rglob("*")]
    assert any(p.suffix == ".html" for p in files)
    for p in files:
        assert not p.is_symlink(), p
        if p.is_file():
            assert _digest(p) != source, f"{p} is the source notebook"
            assert SECRET.encode() not in p.read_bytes(), f"{p} holds the root-only file"
            assert os.stat(p).st_nlink == 1, p


def test_resubmission_regraded_without_force(graded):
    first, second = graded["first"]["resub"], graded["second"]["resub"]
    assert first.status == "graded" and first.score == 5, first
    assert second.status == "graded" and second.score == 10, second
    assert "resubmitted: regraded" in second.reason, second.reason
    assert graded["second"]["alice"].status == "skipped", graded["second"]["alice"]
    assert "unchanged" in graded["second"]["alice"].reason
    bob = graded["second"]["bob"]   # changed content without a timestamp.txt: regraded too
    assert bob.status == "graded" and bob.score == 10 and "resubmitted: regraded" in bob.reason, bob
    assert all(o.status in ("skipped", "rejected") for s, o in graded["second"].items() if s not in ("resub", "bob"))
    assert graded["before"]["alice"] == 10
    with _gradebook(graded["config"]) as gb:
        subs = [s for s in gb.find_student("resub").submissions if s.assignment.name == A]
        assert len(subs) == 1 and subs[0].score == 10 and subs[0].max_score == 10
        assert str(subs[0].timestamp).startswith("2026-11-21 09:30")
        grades = [g for nb in subs[0].notebooks for g in nb.grades]
        assert len(grades) == 4 and sum(g.score for g in grades) == 10


def test_csv_exports_never_start_a_formula(graded, tmp_path):
    from helpers.instructor.grades import export_csv
    from helpers.instructor.grading.csvsafe import NUMBER

    with _gradebook(graded["config"]) as gb:   # a roster imported with hostile names (nbgrader db student add)
        gb.update_or_create_student("=HYPERLINK(\"http://x\")", first_name="+SUM(A1)", last_name="@cmd",
                                    email="-2+3@x")
    out = export_csv(graded["config"], tmp_path / "q.csv", tmp_path / "nb.csv")
    for path in (out, tmp_path / "nb.csv"):
        rows = list(csv.reader(path.open(newline="")))
        assert len(rows) > 3
        cells = [c for r in rows for c in r]
        bad = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not NUMBER.match(c)]
        assert not bad, f"{path.name}: {bad[:5]}"
        assert any(c.startswith("'=HYPERLINK") for c in cells), path.name


# --------------------------------------------------------------------------- without grading
def test_stage_limits_and_nested_links(tmp_path):
    from helpers.instructor.grading.stage import Limits, Rejected, stage

    sub = tmp_path / "submitted" / "s" / A
    (sub / "deep" / "er").mkdir(parents=True)
    (sub / "a.txt").write_text("x" * 3000)
    (sub / "deep" / "er" / "b.txt").write_text("y")
    digest = stage(sub, tmp_path / "st" / "s" / A, base=tmp_path / "submitted")
    assert (tmp_path / "st" / "s" / A / "deep" / "er" / "b.txt").read_text() == "y"
    assert digest == stage(sub, tmp_path / "st" / "s" / A)            # same content, same hash
    for limits, words in ((Limits(max_bytes=2000), "MiB in all"), (Limits(max_files=2), "more than 2 files"),
                          (Limits(max_depth=1), "nested deeper")):
        with pytest.raises(Rejected, match=words):
            stage(sub, tmp_path / "st2", limits)
    os.symlink("/etc/shadow", sub / "deep" / "er" / "c")
    with pytest.raises(Rejected, match="deep/er/c is a symbolic link"):
        stage(sub, tmp_path / "st3")
    assert not (tmp_path / "st3").exists()


@pytest.mark.parametrize("name", ["notes.xpdl", "feed.atom", "x.rdf", "t.xslt", "m.mml", "c.xul", "PAGE.HTML",
                                  "page.html.gz", "pic.svgz", "app.mjs"])
def test_stage_rejects_every_name_a_browser_would_run(tmp_path, name):
    """Formgrader serves a submission's files with the type Python's mimetypes gives their name; any
    HTML, script, SVG or XML type (Chromium runs the script of an XHTML element in any XML) is refused,
    whatever the suffix, while data files pass."""
    from helpers.instructor.grading.stage import Rejected, stage

    sub = tmp_path / "submitted" / "s" / A
    sub.mkdir(parents=True)
    for ok_name in ("data.npy", "weights.h5", "notes.txt", "table.csv", "plot.png", "helper.py", "meta.json"):
        (sub / ok_name).write_text("x")
    stage(sub, tmp_path / "ok" / "s" / A)
    (sub / name).write_text("<x:script xmlns:x='http://www.w3.org/1999/xhtml'>alert(1)</x:script>")
    with pytest.raises(Rejected, match="a file a browser would run"):
        stage(sub, tmp_path / "st" / "s" / A)


def test_every_limit_has_one_default_and_the_config_reaches_it(tmp_path):
    """GradingOptions holds every default once: the sandbox policy and the staging limits start from
    it, and a course's nbgrader_config.py setting reaches discovery."""
    from helpers.instructor.autograde import grading_options
    from helpers.instructor.grading.discover import discover
    from helpers.instructor.grading.stage import LIMITS, Limits
    from helpers.instructor.nbapi import load_config
    from helpers.instructor.options import GradingOptions
    from helpers.instructor.sandbox import Policy

    assert Policy() == Policy.from_options(GradingOptions()) and LIMITS == Limits.from_options(GradingOptions())
    course = make_course(tmp_path / "c")
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write("\nc.GradingOptions.submission_files = 2\nc.GradingOptions.memory_mib = 777\n")
    folder = _write(course, "many", nbformat.read(str(ROOT / "notebooks" / A / NB), as_version=4))
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(name)
    opts = grading_options(load_config(course))
    assert Policy.from_options(opts, 3).memory_bytes == 777 * 2 ** 20
    tasks, known = discover(course, [A], limits=Limits.from_options(opts))
    assert not tasks and known[0].status == "rejected" and "more than 2 files" in known[0].reason, known


def test_strip_active_on_a_notebook():
    from nbformat.v4 import new_markdown_cell, new_notebook, new_output

    from helpers.instructor.grading.preprocessors.strip_active import StripActive

    nb = new_notebook(cells=[
        new_markdown_cell("a < b and `x > 2`"),
        new_markdown_cell("<b>ok</b><script>alert(1)</script>[x](JaVa\tScRiPt:alert(1))<img src=x onerror=alert(1)>"),
        new_code_cell("", outputs=[new_output("display_data", data={
            "text/html": "<table><tr><td>1</td></tr></table><a href='javascript:alert(1)'>l</a>",
            "application/javascript": "alert(1)", "image/svg+xml": "<svg onload='alert(1)'/>",
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "p"})])])
    nb.metadata["widgets"] = {"state": {}}
    nb, _ = StripActive().preprocess(nb, {})
    assert nb.cells[0].source == "a < b and `x > 2`"             # no markup: left as it is
    # judged on its rendered HTML: the script and the handler go; the tab-broken "link" stays text, not a link
    cleaned = nb.cells[1].source
    assert "<b>ok</b>" in cleaned and not re.search(r"<script|onerror|href\s*=", cleaned, re.I), cleaned
    data = nb.cells[2].outputs[0].data
    assert set(data) == {"text/html", "text/plain"} and "<td>1</td>" in data["text/html"]
    assert "javascript" not in data["text/html"] and "widgets" not in nb.metadata


def test_state_decide():
    from helpers.instructor.grading.state import decide

    rec = {"digest": "h1", "timestamp": TS1}
    assert decide(None, False, "h1", TS1)[0] == "grade"
    assert decide(None, True, "h1", TS1)[0] == "regrade"                  # interrupted run
    assert decide(rec, True, "h1", TS1)[0] == "skip"
    assert decide(rec, True, "h1", TS2) == ("regrade", "resubmitted: regraded")
    assert decide(rec, True, "h2", TS1) == ("regrade", "resubmitted: regraded")
    assert decide(rec, False, "h1", TS1)[0] == "grade"                    # autograded/ removed
    assert decide({"note": ""}, True, "h1", TS1, graded_timestamp=TS1)[0] == "skip"     # an old record
    assert decide({"note": ""}, True, "h1", TS2, graded_timestamp=TS1)[0] == "regrade"
