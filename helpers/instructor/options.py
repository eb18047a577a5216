"""Every grading setting, with its default, in one place.

``GradingOptions`` is a traitlets ``Configurable``: the course's ``nbgrader_config.py`` may set any
of these (``c.GradingOptions.cell_timeout = 45``), and ``cnn-course autograde`` flags override
them for one run. Nothing else in the tool holds a grading default of its own: the pipeline copies
what nbgrader needs (the cell timeout, the output limits) into nbgrader's own settings from here,
the sandbox's :class:`~helpers.instructor.sandbox.Policy` and the staging step's
:class:`~helpers.instructor.grading.stage.Limits` take theirs from here (``from_options``), and
their defaults are these defaults.
"""
from __future__ import annotations

from traitlets import Bool, Integer
from traitlets.config import Configurable

MiB = 2 ** 20


class GradingOptions(Configurable):
    # time
    cell_timeout = Integer(30, help="Seconds a cell may run before it is interrupted").tag(config=True)
    budget = Integer(300, help="Seconds one submission may take in all, out-of-kernel check included; later "
                               "cells get at most what is left").tag(config=True)
    jobs = Integer(0, help="Submissions graded at once (0: the number of cores)").tag(config=True)
    max_restarts = Integer(3, help="Kernel restarts per notebook after a crash").tag(config=True)
    host_writers = Integer(0, help="With a Dask scheduler: processes on this machine that check what the "
                                   "workers return and write it into the gradebook (0: the cores, at most 8)"
                           ).tag(config=True)

    # what runs
    sandbox = Bool(True, help="Run student code in the bubblewrap sandbox (off only for trusted code)").tag(config=True)
    out_of_kernel = Bool(True, help="Score every graded function again outside the kernel, on fresh "
                                    "inputs").tag(config=True)

    # sandbox limits (per submission)
    memory_mib = Integer(2048, help="Memory of one submission's processes (cgroup; else per-process address "
                                    "space)").tag(config=True)
    max_processes = Integer(128, help="Processes and threads of one submission").tag(config=True)
    scratch_mib = Integer(64, help="Size of the writable scratch folder").tag(config=True)
    scratch_files = Integer(4096, help="Files and folders the scratch folder may hold").tag(config=True)
    file_mib = Integer(64, help="Largest file a submission may write").tag(config=True)
    processes_per_user = Integer(256, help="Processes of the slot's user (RLIMIT_NPROC)").tag(config=True)
    open_files = Integer(256, help="Open files of one process").tag(config=True)

    # what a submission folder may hold (checked before anything runs)
    submission_mib = Integer(64, help="All files of one submission together").tag(config=True)
    submission_files = Integer(500, help="Files and folders of one submission").tag(config=True)
    folder_depth = Integer(8, help="Folders inside folders of one submission").tag(config=True)
    notebook_mib = Integer(16, help="The graded notebook itself (checked before it is read)").tag(config=True)
    max_cells = Integer(2000, help="Cells of the graded notebook").tag(config=True)

    # what is kept
    max_cell_output_bytes = Integer(8 * MiB, help="Output kept per cell, every byte counted").tag(config=True)
    max_notebook_output_bytes = Integer(32 * MiB, help="Output kept per notebook").tag(config=True)
    max_output_lines = Integer(200, help="Lines kept per stream output (nbgrader's LimitOutput)").tag(config=True)

    def override(self, **values) -> "GradingOptions":
        """Set the values that are not None (command-line flags); return self."""
        for name, value in values.items():
            if value is None:
                continue
            if not self.has_trait(name):
                raise AttributeError(f"GradingOptions has no setting {name!r}")
            setattr(self, name, value)
        return self

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.trait_names(config=True)}

    @classmethod
    def from_dict(cls, values: dict) -> "GradingOptions":
        return cls().override(**values)
