"""Is this code running inside the course's grading tool?

``cnn-course autograde`` sets ``CNN_COURSE_GRADING=1`` in every sandboxed process it starts (and
nothing else does: plain nbgrader sets only ``NBGRADER_EXECUTION``). While it grades, the lessons'
demonstrations (figures, framework comparisons, speed races) return at once: no grade depends on
them, and drawing them is most of a notebook's running time.
"""
from __future__ import annotations

import functools
import os

GRADING_ENV = "CNN_COURSE_GRADING"


def grading() -> bool:
    """True inside ``cnn-course autograde``'s kernels and checks."""
    return os.environ.get(GRADING_ENV) == "1"


def demonstration(func):
    """Decorate a lesson demonstration: it returns ``None`` at once while the grading tool grades."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if grading():
            return None
        return func(*args, **kwargs)
    return wrapper
