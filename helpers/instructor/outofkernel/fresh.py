"""Fresh random inputs, drawn at grading time: the stored cases' structure with new values.

A test cell is judged on fresh versions of its own cases: the same shapes, pads, strides and modes
(and exact zeros where the case has them), with new random values from a new seed per submission,
never the values stored in ``data/reference_outputs.h5``.
"""
from __future__ import annotations

import copy

import numpy as np

# Positional arguments that carry values although they are plain numbers (every other int is
# structure: a pad, a shape, a stride): a float drawn at random, or a positive whole number.
VALUE_ARGS = {"distribute_value": {0}}
COUNT_ARGS = {"conv_param_count": {0, 1, 2}}


def fresh_count(value: int, rng: np.random.Generator) -> int:
    """A new positive int in [1, 2 * value + 1]: a filter size or a number of channels."""
    return int(rng.integers(1, 2 * max(1, int(value)) + 2))


def _ties(case: str) -> bool:
    """A case about ties (``ties_*``): its whole-number float arrays stay whole numbers, so that windows
    keep having ties for their maximum."""
    return case.startswith("ties")


def freshen(value, rng: np.random.Generator, is_value: bool = False, whole: bool = False):
    """The same structure with new random values: arrays keep their shape, dtype, sign range and
    exact zeros; integers (pads, shapes) and dicts (hyperparameters) and strings (modes) stay. With
    ``whole``, a float array of whole numbers is drawn again as whole numbers in the same range."""
    if isinstance(value, np.ndarray):
        if whole and value.dtype.kind == "f" and value.size and np.array_equal(value, np.round(value)):
            lo, hi = int(value.min()), int(value.max())
            choices = [k for k in range(lo, hi + 1) if k != 0] or [1]
            new = rng.choice(choices, size=value.shape).astype(value.dtype)
            new[value == 0] = 0.0                     # exact zeros stay where the case has them
            return new
        if value.dtype == bool:
            return rng.random(value.shape) < 0.5
        if value.size == 0:
            return value.copy()
        if value.dtype.kind in "iu":
            lo, hi = int(value.min()), int(value.max())
            if value.dtype == np.uint8:
                lo, hi = (200, 255) if lo >= 200 else (0, 255)
            elif hi - lo + 1 < value.size:
                lo, hi = lo - value.size, hi + value.size
            if hi - lo + 1 >= value.size:   # distinct values: a unique maximum stays unique
                vals = rng.permutation(np.arange(lo, hi + 1))[:value.size]
            else:
                vals = rng.integers(lo, hi + 1, size=value.size)
            return vals.reshape(value.shape).astype(value.dtype)
        if value.dtype.kind == "f":
            zeros = value == 0
            if float(np.min(value)) >= 0:
                new = rng.random(value.shape) * (float(np.max(value)) or 1.0)
            else:
                new = rng.standard_normal(value.shape) * max(1.0, float(np.std(value)))
            new[zeros] = 0.0
            return new.astype(value.dtype)
        return value.copy()
    if isinstance(value, tuple):
        return tuple(freshen(v, rng, whole=whole) for v in value)
    if isinstance(value, list):
        return [freshen(v, rng, whole=whole) for v in value]
    if isinstance(value, dict):
        return dict(value)
    if is_value and isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(rng.standard_normal() * max(1.0, abs(float(value))))
    return copy.deepcopy(value)


def fresh_args(func: str, case: str, reference: dict, rng: np.random.Generator) -> tuple:
    """Fresh random arguments shaped like the stored case ``case`` of ``func`` (same shapes, pads,
    strides, modes; new values), drawn now: what a test cell checks, on inputs nobody has seen."""
    from ..cases import CASES

    spec = CASES[func][case]
    if spec.fresh is not None:
        return tuple(spec.fresh(reference, rng))
    if spec.rule is not None:      # judged by a rule on its pinned inputs (a training run from a fixed seed)
        return tuple(spec.build(reference))
    state = np.random.get_state()
    try:
        args = spec.build(reference)
    finally:
        np.random.set_state(state)
    values, counts = VALUE_ARGS.get(func, set()), COUNT_ARGS.get(func, set())
    return tuple(fresh_count(a, rng) if i in counts else freshen(a, rng, i in values, whole=_ties(case))
                 for i, a in enumerate(args))
