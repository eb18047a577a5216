"""``dask worker --preload helpers.instructor.cluster.preload``: make a Dask worker process a grader.

In each worker process, before it takes a task: lock a sandbox slot for the process's life (its
own system user ``cnngrader<N>``, created if missing; two processes never share one), clean up what
a killed predecessor left in that slot, and run the sandbox probe. A worker whose sandbox does not
work refuses to start, unless ``CNN_COURSE_WORKER_SANDBOX=0`` (what ``cnn-course worker
--no-sandbox`` sets): then it grades only runs that ask for no sandbox. ``cnn-course worker`` is
the documented way to start it; a plain ``dask worker`` with this preload works too.
"""
from __future__ import annotations

import logging
import os
import warnings

from . import remote

log = logging.getLogger("cnn_course.worker")
SANDBOX_ENV = "CNN_COURSE_WORKER_SANDBOX"


def prepare() -> dict:
    from ..options import GradingOptions
    from ..sandbox import Policy, acquire_slot, ensure_users, probe, remove_stale_boxes

    warnings.filterwarnings("ignore", module="nbgrader")
    os.environ.pop("CNN_COURSE_DB_URL", None)    # a worker never opens the central gradebook
    sandbox = os.environ.get(SANDBOX_ENV, "1") != "0"
    slot, line = 0, "sandbox: OFF on this worker (cnn-course worker --no-sandbox)"
    if sandbox:
        slot, _token = acquire_slot(0)            # held for the life of this process
        ensure_users(slot + 1)
        remove_stale_boxes(slot)
        line = probe(Policy.from_options(GradingOptions(), slot)).summary()   # SandboxError: the worker does not start
    remote.WORKER.update(prepared=True, sandbox=sandbox, slot=slot, probe=line, pid=os.getpid())
    log.info("cnn-course grader ready: slot %s; %s", slot, line)
    return remote.WORKER


def dask_setup(worker) -> None:
    prepare()
