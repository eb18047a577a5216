"""Judge what came back from the sandbox against the reference solutions, with the in-kernel checks.

Whatever the child sent is untrusted data: it is decoded with every size, dtype and depth checked
(:func:`helpers.instructor.inside.codec.decode`), then compared with what the reference solution
gives on the same fresh inputs, by :func:`helpers.checks.check_case` (return type, shape, dtype,
values, cache) and the in-kernel test's check that the inputs were left unchanged. Only a result
that passes those is ``ok``; a reply that is anything else is ``wrong``.
"""
from __future__ import annotations

import copy

import numpy as np

from ...checks import SPECS, _check_not_mutated, check_case
from ...data import Case
from ..cases import NOT_STORED
from ..inside.codec import DecodeError, decode
from .verdict import Verdict


def expected(reference: dict, func: str, args: tuple) -> dict:
    """``{output name: value}`` that the reference solution of ``func`` gives on ``args``, as stored
    in ``data/reference_outputs.h5`` (whole-number outputs, such as a parameter count, as ints; other
    scalars as floats; dicts of arrays as dicts; the cache is not stored)."""
    spec = SPECS[func]
    result = reference[func](*copy.deepcopy(args))
    values = result if len(spec.returns) > 1 else (result,)
    return {n: _stored(v, spec.dtypes.get(n)) for n, v in zip(spec.returns, values) if n not in NOT_STORED}


def _stored(v, dtype: str | None = None):
    """An output as stored: a dict of arrays stays a dict (parameters, gradients), a whole-number
    output (``dtype == "int"``) is an int, another scalar a float."""
    if isinstance(v, dict):
        return {k: np.asarray(x) for k, x in v.items()}
    if dtype == "int":
        return int(v)
    return float(v) if np.ndim(v) == 0 else np.asarray(v)


def expected_for(reference: dict, func: str, case: str, args: tuple):
    """What a fresh call is judged against: the reference's outputs (a dict), or, for a case judged by a
    rule (the pinned training run), that rule bound to the reference solutions (a callable)."""
    from ..cases import CASES

    rule = CASES[func][case].rule
    if rule is not None:
        return lambda got, rule=rule: rule(reference, args, got)
    return expected(reference, func, args)


def compare(func: str, args: tuple, got, after, want) -> str | None:
    """``None`` if ``got`` is right for ``args`` and ``after`` equals ``args``; else what is wrong, in the
    in-kernel checks' own words. ``want`` is the reference's outputs, or a rule (see :func:`expected_for`)."""
    if type(after) is not tuple or len(after) != len(args):
        return "the arguments did not come back after the call"
    msg = _check_not_mutated(func, SPECS[func], args, after)
    if msg:
        return msg
    if callable(want):
        return want(got)
    case = Case(func, "fresh", "fresh random inputs drawn at grading time", False, args, want)
    try:
        check_case(lambda *a: got, func, case, quiet=True)
    except AssertionError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return " ".join(lines[1:4])[:400] or "wrong result"
    return None


def judge(func: str, case: str, args: tuple, want: dict, reply: dict) -> Verdict:
    """The verdict on one call, from the child's reply ``reply`` (a parsed JSON object)."""
    if reply.keys() == {"seq", "raised"} and isinstance(reply["raised"], str):
        return Verdict(func, "error", reply["raised"][:300], case)
    if reply.keys() == {"seq", "undefined"}:
        return Verdict(func, "undefined", "", case)
    if reply.keys() != {"seq", "value", "after"}:
        return Verdict(func, "wrong", "the checking process sent something that is not a result", case)
    try:
        got, after = decode(reply["value"]), decode(reply["after"])
    except DecodeError as exc:
        return Verdict(func, "wrong", f"the result could not be read: {exc}", case)
    try:
        msg = compare(func, args, got, after, want)
    except Exception as exc:   # data shaped to break the checks is still a wrong answer
        msg = f"the result could not be checked: {type(exc).__name__}: {str(exc)[:200]}"
    return Verdict(func, "wrong", msg, case) if msg else Verdict(func, "ok", "", case)
