"""The "In the frameworks" cells: the same block in PyTorch, Keras 3 and TensorFlow, next to yours.

Every notebook ends with cells that compute its block again in the three frameworks, on the same
arrays as your function, and print the largest difference from your result. They follow one pattern::

    from helpers import frameworks

    if frameworks.ready():                      # one line, and False, when the cell cannot run
        import torch
        mine = frameworks.yours(zero_pad, x, 3)  # your function; a line instead of an exception
        frameworks.compare("torch.nn.functional.pad", mine, theirs)

The frameworks are an optional extra of the course: ``pip install -e '.[frameworks]'`` or
``make frameworks``. Without it, :func:`ready` prints one line saying so and the cell does nothing.
While ``cnn-course`` grades a submission (``CNN_COURSE_GRADING=1``), :func:`ready` prints one line and
the cell does nothing either: importing the three frameworks costs seconds per kernel and grading
does not need them.

This module holds no implementation of any graded function. Introduced in notebook 01, section
"In the frameworks"; used by every notebook.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

# TensorFlow prints start-up lines (oneDNN, cpu_feature_guard) on stderr unless told not to, and Keras 3
# picks its backend when first imported. Both read the environment at import time, so set it here,
# before any notebook cell imports them. A value that the learner set already is kept.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

#: The import names that the extra ``frameworks`` provides.
MODULES = ("torch", "keras", "tensorflow")
INSTALL = "pip install -e '.[frameworks]'  (or: make frameworks)"
#: The start of the line printed when the extra is missing (the course's tests look for it).
NOT_INSTALLED = "Frameworks not installed"
#: The start of the line printed while cnn-course grades.
GRADING = "Frameworks skipped while grading"
#: The start of a line printed by :func:`compare`: agreement within the tolerance, or not.
AGREE, DISAGREE = "\u2714", "\u2718"
#: Float64 arithmetic done in a different order differs by a few units of 1e-16 times the size of the
#: numbers; 1e-10 leaves room for that and catches any real mistake.
TOLERANCE = 1e-10


#: A ``sitecustomize.py`` that makes the three frameworks look not installed (put its folder on
#: PYTHONPATH): how the tests and ``make bench`` run the notebooks "without the extra".
HIDE_SITECUSTOMIZE = """
import sys

class _HideFrameworks:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "tensorflow", "keras"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _HideFrameworks())
"""


def grading() -> bool:
    """True while ``cnn-course`` grades (it alone sets ``CNN_COURSE_GRADING=1``)."""
    return os.environ.get("CNN_COURSE_GRADING") == "1"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):     # a broken install, or an import hook that refuses the name
        return False


def missing() -> list[str]:
    """The framework modules that cannot be imported here."""
    return [name for name in MODULES if not _importable(name)]


def available() -> bool:
    """True when PyTorch, Keras and TensorFlow can all be imported."""
    return not missing()


def skip_reason() -> str | None:
    """Why a framework cell does not run here, as one line; None when it runs."""
    if grading():
        return f"{GRADING}: these cells only compare, they are not graded."
    gone = missing()
    if gone:
        return (f"{NOT_INSTALLED} ({', '.join(gone)} missing), so this cell is skipped. "
                f"To run it: {INSTALL}, then restart the kernel.")
    return None


def ready() -> bool:
    """Call first in a framework cell: True when it can run, else print the reason on one line."""
    reason = skip_reason()
    if reason is not None:
        print(reason)
        return False
    return True


def to_numpy(value) -> np.ndarray:
    """A NumPy array from a NumPy array, a PyTorch tensor, a TensorFlow tensor or a Keras tensor."""
    if hasattr(value, "detach"):                  # torch.Tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):                   # tf.Tensor, tf.Variable (Keras 3 on TensorFlow)
        return np.asarray(value.numpy())
    return np.asarray(value)


def yours(func, *args, **kwargs):
    """Call your function on copies of the arguments; if it raises, print one line and return None."""
    import copy

    try:
        return func(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    except Exception as err:  # a learner's function may raise anything; say so on one line
        print(f"your {getattr(func, '__name__', 'function')} raised {type(err).__name__}: {err} "
              "(fix it above; nothing to compare yet)")
        return None


def compare(label: str, mine, theirs, tolerance: float = TOLERANCE) -> float | None:
    """Print the largest absolute difference between your result and a framework's, with a verdict.

    ``mine`` and ``theirs`` are arrays (or tensors) of the same shape, in the same layout. Returns the
    difference, or None when your function gave nothing to compare.
    """
    if mine is None:
        print(f"- {label}: skipped, your function gave no result")
        return None
    a, b = np.asarray(mine, dtype=np.float64), to_numpy(theirs).astype(np.float64)
    if a.shape != b.shape:
        print(f"{DISAGREE} {label}: shape {b.shape}, yours is {a.shape}")
        return float("inf")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    mark = AGREE if diff <= tolerance else DISAGREE
    print(f"{mark} {label}: largest |difference| from yours = {diff:.1e} (tolerance {tolerance:g})")
    return diff
