"""`cnn-course --root DIR site` and `cnn-course --root DIR refdata` work on the course in DIR, not on
this repository (the real command, in a subprocess; the course directory made by conftest.make_course)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import nbformat
import numpy as np
import pytest
from bs4 import BeautifulSoup

from conftest import make_course
from helpers.data import REFERENCE_FILE
from helpers.instructor.course import ROOT, get

pytestmark = pytest.mark.slow
MARK = "This copy of the lesson lives in a course directory of its own"


def cnn_course(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers.instructor.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def own_course(tmp_path: Path) -> Path:
    """make_course, with the notebooks copied instead of linked, so that the test may change them."""
    course = make_course(tmp_path / "course")
    (course / "notebooks").unlink()
    shutil.copytree(ROOT / "notebooks", course / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return course


def edit_cell(path: Path, find: str, change) -> None:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if find in c.source]
    assert cells, f"test setup: no cell of {path} holds {find!r}"
    change(cells[0])
    nbformat.write(nb, path)


def text(page: Path) -> str:
    """What a reader sees on a page, whitespace-squashed (highlighted code is split into many spans)."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return " ".join(soup.get_text().split())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_site_builds_the_course_of_root_with_its_config(tmp_path):
    """--root's notebooks go to <root>/site; --config's delimiters make the student edition."""
    course = own_course(tmp_path)
    relu = get("07_relu").source_at(course)
    edit_cell(relu, "### Exercise 1: `relu`", lambda c: setattr(c, "source", c.source + f"\n\n{MARK}."))
    edit_cell(relu, "A = np.maximum(0.0, Z)", lambda c: setattr(
        c, "source", c.source.replace("### BEGIN SOLUTION", "# >>> answer").replace("### END SOLUTION", "# <<< answer")))
    config = course / "custom_config.py"
    config.write_text((course / "nbgrader_config.py").read_text()
                      + '\nc.ClearSolutions.begin_solution_delimeter = ">>> answer"'
                      + '\nc.ClearSolutions.end_solution_delimeter = "<<< answer"\n')
    repo_site = ROOT / "site" / "student" / "07_relu.html"
    before = repo_site.stat().st_mtime_ns if repo_site.exists() else None

    result = cnn_course("--root", str(course), "--config", str(config), "site", "07_relu", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    student, instructor = (text(course / "site" / e / "07_relu.html") for e in ("student", "instructor"))
    assert MARK in student and MARK in instructor
    assert "A = np.maximum(0.0, Z)" in instructor and ">>> answer" in instructor
    assert "A = np.maximum(0.0, Z)" not in student and ">>> answer" not in student
    assert "def relu(Z):" in student and "# YOUR CODE HERE raise NotImplementedError()" in student
    assert (course / "site" / "index.html").exists() and (course / "site" / "_static" / "mathjax" / "MathJax.js").exists()
    assert not (tmp_path / "site").exists(), "the site went to the working directory"
    assert (repo_site.stat().st_mtime_ns if repo_site.exists() else None) == before, "the repository's site changed"

    # Without --config, <root>/nbgrader_config.py has nbgrader's delimiters: the cell has no region that
    # nbgrader knows, so the whole answer cell becomes the stub.
    result = cnn_course("--root", str(course), "site", "07_relu", "--edition", "student", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    student = text(course / "site" / "student" / "07_relu.html")
    assert MARK in student and "def relu(Z):" not in student and "A = np.maximum(0.0, Z)" not in student

    missing = cnn_course("--root", str(tmp_path / "nowhere"), "site", "07_relu", cwd=tmp_path)
    assert missing.returncode == 2 and "source notebooks missing" in missing.stderr, missing.stderr


def test_refdata_reads_the_notebooks_of_root_and_never_overwrites_the_package_file_by_default(tmp_path):
    course = own_course(tmp_path)
    edit_cell(get("07_relu").source_at(course), "A = np.maximum(0.0, Z)",
              lambda c: setattr(c, "source", c.source.replace("A = np.maximum(0.0, Z)", "A = 2 * np.maximum(0.0, Z)")))
    package_file = digest(REFERENCE_FILE)

    refused = cnn_course("--root", str(course), "refdata", cwd=tmp_path)
    assert refused.returncode == 2 and "--out" in refused.stderr, refused.stdout + refused.stderr

    out = tmp_path / "ref.h5"
    written = cnn_course("--root", str(course), "refdata", "--out", str(out), cwd=tmp_path)
    assert written.returncode == 0, written.stdout + written.stderr
    assert digest(REFERENCE_FILE) == package_file, "refdata --root changed the package's data file"
    with h5py.File(out) as ours, h5py.File(REFERENCE_FILE) as package:
        for case in ours["relu"]:
            a, b = ours[f"relu/{case}/outputs/A"][()], package[f"relu/{case}/outputs/A"][()]
            assert np.array_equal(a, 2 * b) and np.any(b != 0), f"relu/{case}: not computed from {course}"
        assert np.array_equal(ours["zero_pad/canonical/outputs/X_pad"][()],
                              package["zero_pad/canonical/outputs/X_pad"][()])

    checked = cnn_course("--root", str(course), "refdata", "--check", cwd=tmp_path)
    assert checked.returncode == 1 and "relu/" in checked.stdout, checked.stdout + checked.stderr
    same = cnn_course("--root", str(course), "refdata", "--check", "--out", str(out), cwd=tmp_path)
    assert same.returncode == 0 and "up to date" in same.stdout, same.stdout + same.stderr
