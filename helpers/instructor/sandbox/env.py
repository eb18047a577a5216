"""The environment of every sandboxed process."""
from __future__ import annotations

import os
import sys

_PASS_ENV = ("NBGRADER_EXECUTION", "CNN_COURSE_DATA")
# IPython's and Jupyter's configuration folders: a path that does not exist and cannot be made
# (read-only /usr). IPython then starts from a fresh temporary folder and Jupyter finds no config,
# so no start-up file or kernel config in scratch (handed in, or written by a cell before a
# restart) ever runs while a kernel starts.
NO_CONFIG = "/usr/lib/cnn-course-no-config"


def base_env(home: str, user: str) -> dict:
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMEXPR_NUM_THREADS": "1", "CNN_COURSE_GRADING": "1", "USER": user, "HOME": home,
           "TMPDIR": f"{home}/tmp", "MPLCONFIGDIR": f"{home}/.config/matplotlib", "IPYTHONDIR": NO_CONFIG,
           "JUPYTER_CONFIG_DIR": NO_CONFIG, "JUPYTER_DATA_DIR": f"{home}/.local/share/jupyter",
           "JUPYTER_RUNTIME_DIR": f"{home}/.local/share/jupyter/runtime", "JUPYTER_PLATFORM_DIRS": "1"}
    env.update({k: os.environ[k] for k in _PASS_ENV if k in os.environ})
    return env
