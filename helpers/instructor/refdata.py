"""Write ``data/reference_outputs.h5`` from the reference solutions in the source notebooks.

The reference solutions are the solution cells of ``notebooks/*/*.ipynb``. They are executed here,
in the instructor's process, and never copied into the package or the student edition.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import nbformat
import numpy as np

from ..data import REFERENCE_FILE, write_value
from .cases import CASES
from .course import ASSIGNMENTS, GRADED_FUNCTIONS, ROOT
from .nbapi import CourseError
from .outofkernel.judge import expected
from .regions import Regions, is_answer_cell


def solution_source(nb_path: Path, regions: Regions | None = None) -> str:
    """The code of every answer cell of a notebook, joined: the reference solution, without the lines of
    nbgrader's solution delimiters (``regions``: the course's; default: nbgrader's defaults)."""
    regions = regions or Regions()
    nb = nbformat.read(str(nb_path), as_version=4)
    parts = [regions.without_solution_delimiters(c.source) for c in nb.cells
             if c.cell_type == "code" and is_answer_cell(c)]
    return "\n\n".join(parts)


def reference_functions(root: Path | str | None = None, config=None) -> dict:
    """Map each graded function to its reference implementation, taken from its own notebook in the
    course directory ``root`` (default: this repository). ``config`` is the course's nbgrader config
    (delimiters, ``CourseDirectory.source_directory``); without it the notebooks are in ``notebooks/``."""
    regions = Regions(config)
    source_dir = config.CourseDirectory.get("source_directory", "source") if config is not None else "notebooks"
    funcs = {}
    for a in ASSIGNMENTS:
        path = a.source_at(root or ROOT, source_dir)
        if not path.exists():
            raise CourseError(f"no source notebook {path}")
        ns: dict = {"np": np, "__name__": f"reference_{a.id}"}
        exec(compile("import numpy as np\n" + solution_source(path, regions), str(path), "exec"), ns)
        for f in a.functions:
            if f not in ns:
                raise RuntimeError(f"{path}: no solution cell defines {f}")
            funcs[f] = ns[f]
    return funcs


def compute_cases(ref: dict) -> dict:
    """{function: {case: (CaseSpec, args, outputs)}} computed with the reference solutions."""
    out = {}
    for func, cases in CASES.items():
        out[func] = {}
        for case_name, spec in cases.items():
            if not spec.stored:         # judged by a rule at grading time (the pinned training run)
                continue
            args = spec.build(ref)
            out[func][case_name] = (spec, args, expected(ref, func, args))
    return out


def write_reference(path: Path | str = REFERENCE_FILE, ref: dict | None = None) -> Path:
    """Compute every case with the reference solutions and write the HDF5 file."""
    ref = ref if ref is not None else reference_functions()
    missing = set(GRADED_FUNCTIONS) - set(CASES)
    if missing:
        raise RuntimeError(f"no reference cases defined for {sorted(missing)}")
    path = Path(path)
    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w", track_order=True) as h5:
        h5.attrs["written_by"] = "cnn-course refdata (helpers/instructor/refdata.py)"
        for func, cases in compute_cases(ref).items():
            fg = h5.create_group(func)
            for case_name, (spec, args, outputs) in cases.items():
                g = fg.create_group(case_name)
                g.attrs["description"] = spec.description
                g.attrs["visible"] = spec.visible
                write_value(g, "args", tuple(args))
                og = g.create_group("outputs")
                for n, v in outputs.items():
                    write_value(og, n, v)
    tmp.replace(path)
    return path
