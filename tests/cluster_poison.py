"""A ``dask worker --preload`` for tests/test_cluster.py: the worker process kills itself (SIGKILL,
the real process) as soon as it starts to grade a submission of the student ``POISON``: a
submission that kills every worker it lands on, without a mock anywhere."""
from __future__ import annotations

import os
import signal

from distributed import WorkerPlugin

POISON = "poison-pill"


class KillOnPoison(WorkerPlugin):
    name = "cnn-course-test-poison"

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and f"-{POISON}-" in str(key):
            os.kill(os.getpid(), signal.SIGKILL)


async def dask_setup(worker):
    await worker.plugin_add(KillOnPoison(), name=KillOnPoison.name)
