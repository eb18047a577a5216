"""Scoring that the kernel cannot fake: each graded function checked again, outside the kernel.

The in-kernel tests run in the same interpreter as the student's code, so an answer cell can change
what they see (redefine ``check_function``, patch NumPy, blank the test cells, read the stored
expected outputs). This package does not trust the kernel, nor anything that runs next to student
code:

- :mod:`.plan`: which cells run, in notebook order, and what each test cell checks;
- :mod:`.fresh`: fresh random inputs shaped like each case, drawn at grading time;
- :mod:`.runner` and :mod:`.link`: the grader's driver, which runs ``inside/child.py`` in the sandbox
  one command at a time with deadlines, and restarts it after a crash or a hang with what is left;
- :mod:`.judge`: each result against the reference solution, with the in-kernel checks;
- :mod:`.verdict`: one :class:`Verdict` per test cell, for
  :mod:`helpers.instructor.grading.preprocessors.apply_verdicts`.

Nothing the child writes can make a case pass (only a right result does) or turn a failure into
``infra`` (only the grader's own failures, before any student code ran, are ``infra``).
"""
from .fresh import fresh_args, freshen
from .judge import compare, expected
from .plan import Plan, checks_in_cell, defined_names, definitions_only, visible_cases
from .runner import evaluate
from .verdict import Verdict

__all__ = ["Plan", "evaluate", "Verdict", "defined_names", "definitions_only", "fresh_args", "visible_cases",
           "freshen", "checks_in_cell", "expected", "compare"]
