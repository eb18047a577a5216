"""Plain data across the sandbox boundary, one codec for both sides (standard library and NumPy only).

Arrays cross as dtype, shape and raw bytes (base64), numpy scalars as dtype and bytes, then Python
``bool``/``int``/``float``/``str``/``None``, tuples, lists and dicts with plain keys, each with its
exact type, shape and dtype (a 0-d array stays 0-d, a ``np.float64`` stays one, a float stays a
float). Anything else crosses as an :class:`Opaque` (its type name only). Nothing is unpickled.

:func:`decode` is for data from an untrusted process: it checks every field, size, dtype, depth and
count, and raises :class:`DecodeError` at the first thing :func:`encode` would not have written.
"""
from __future__ import annotations

import base64
import binascii
import re

import numpy as np

MAX_DEPTH = 12              # containers nest at most this deep
MAX_ITEMS = 64              # items of one tuple, list or dict
MAX_NODES = 20_000          # values in one tree
MAX_DIMS = 32
MAX_BYTES = 4 * 2 ** 20     # raw bytes of all the arrays of one tree (a right answer: < 25 KB)
MAX_STR = 10_000
ALLOWED_DTYPES = frozenset(np.dtype(order + code).str for order in "<>"   # bool, ints, floats, complex
                           for code in ("i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8 c8 c16".split())) | {"|b1"}
_FLOAT = re.compile(r"-?(inf|nan|\d+(\.\d*)?(e[-+]?\d+)?|\.\d+(e[-+]?\d+)?)\Z")


class DecodeError(ValueError):
    """The data is not something :func:`encode` writes (or goes over a limit)."""


class Opaque:
    """A value that could not cross as plain data: only its type name did."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self):
        return f"<{self.type_name}>"


def _opaque(what: str) -> dict:
    return {"opaque": str(what)[:80]}


def encode(value, depth: int = 0) -> dict:
    """``value`` as a tree of dicts, lists, strings and numbers (``json.dumps`` writes it)."""
    t = type(value)             # type(), not isinstance: a student's __class__ property cannot lie here
    if t is np.ndarray or issubclass(t, np.generic):
        dt = np.dtype(value.dtype)
        if dt.str not in ALLOWED_DTYPES:
            return _opaque(f"{t.__name__} of dtype {dt}")
        if value.nbytes > MAX_BYTES:
            return _opaque(f"{t.__name__} of {value.nbytes} bytes")
        raw = base64.b64encode(value.tobytes()).decode()
        return {"nd": dt.str, "shape": list(value.shape), "b64": raw} if t is np.ndarray else {"np": dt.str, "b64": raw}
    if t is bool:
        return {"py": "bool", "v": value}
    if issubclass(t, int):      # the base class's own methods: a subclass's overrides do not run
        v = int.__int__(value)
        return {"py": "int", "v": v} if -2 ** 63 <= v < 2 ** 63 else _opaque("int out of range")
    if issubclass(t, float):
        return {"py": "float", "v": float.__repr__(value)}
    if issubclass(t, str):
        v = str.__str__(value)
        return {"py": "str", "v": v} if len(v) <= MAX_STR else _opaque("str too long")
    if value is None:
        return {"py": "none"}
    if issubclass(t, (tuple, list, dict)):
        if depth >= MAX_DEPTH:
            return _opaque("too deeply nested")
        if len(value) > MAX_ITEMS:
            return _opaque(f"{t.__name__} of {len(value)} items")
        if issubclass(t, dict):
            keys = list(dict.keys(value))
            if not all(type(k) in (str, int, float, bool) or k is None for k in keys):
                return _opaque("dict with keys that are not plain")
            return {"map": [[encode(k, depth + 1), encode(dict.__getitem__(value, k), depth + 1)] for k in keys]}
        return {"seq": "tuple" if issubclass(t, tuple) else "list", "items": [encode(v, depth + 1) for v in value]}
    return _opaque(t.__name__)


def decode(obj, depth: int = 0, budget: list | None = None):
    """The value :func:`encode` made ``obj`` from; :class:`DecodeError` if ``obj`` is anything else."""
    budget = budget if budget is not None else [MAX_NODES, MAX_BYTES]
    budget[0] -= 1
    if budget[0] < 0:
        raise DecodeError(f"more than {MAX_NODES} values")
    if type(obj) is not dict or depth > MAX_DEPTH:
        raise DecodeError("malformed value" if depth <= MAX_DEPTH else f"nested deeper than {MAX_DEPTH}")
    keys = set(obj)
    if keys in ({"nd", "shape", "b64"}, {"np", "b64"}):
        dt, raw = obj.get("nd", obj.get("np")), obj["b64"]
        shape = obj.get("shape", [])
        if type(dt) is not str or dt not in ALLOWED_DTYPES:
            raise DecodeError(f"dtype {str(dt)[:20]!r} is not one of the plain numeric dtypes")
        if type(shape) is not list or len(shape) > MAX_DIMS or \
                not all(type(s) is int and 0 <= s <= MAX_BYTES for s in shape):
            raise DecodeError("malformed array shape")
        dtype, size = np.dtype(dt), 1
        for s in shape:
            size *= s
        if type(raw) is not str or size * dtype.itemsize > budget[1] or len(raw) > 4 * (budget[1] // 3 + 1):
            raise DecodeError(f"arrays larger than {MAX_BYTES} bytes")
        try:
            data = base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeError):
            raise DecodeError("malformed array bytes") from None
        if len(data) != size * dtype.itemsize:
            raise DecodeError(f"{len(data)} bytes for shape {tuple(shape)} of dtype {dt}")
        budget[1] -= len(data)
        arr = np.frombuffer(data, dtype=dtype)
        return arr.reshape(shape).copy() if "nd" in obj else arr[0]
    if "py" in keys and keys <= {"py", "v"}:
        kind, v = obj["py"], obj.get("v")
        if kind == "bool" and type(v) is bool:
            return v
        if kind == "int" and type(v) is int and -2 ** 63 <= v < 2 ** 63:
            return v
        if kind == "float" and type(v) is str and _FLOAT.match(v) and len(v) < 40:
            return float(v)
        if kind == "str" and type(v) is str and len(v) <= MAX_STR:
            return v
        if kind == "none" and keys == {"py"}:
            return None
        raise DecodeError(f"malformed {str(kind)[:10]} value")
    if keys == {"seq", "items"} and obj["seq"] in ("tuple", "list"):
        items = obj["items"]
        if type(items) is not list or len(items) > MAX_ITEMS or depth >= MAX_DEPTH:
            raise DecodeError("malformed sequence (too long or too deep)")
        vals = [decode(v, depth + 1, budget) for v in items]
        return tuple(vals) if obj["seq"] == "tuple" else vals
    if keys == {"map"}:
        pairs = obj["map"]
        if type(pairs) is not list or len(pairs) > MAX_ITEMS or depth >= MAX_DEPTH:
            raise DecodeError("malformed mapping (too long or too deep)")
        out = {}
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2:
                raise DecodeError("malformed mapping item")
            k = decode(pair[0], depth + 1, budget)
            if type(k) not in (str, int, float, bool) and k is not None:
                raise DecodeError("mapping key that is not plain")
            out[k] = decode(pair[1], depth + 1, budget)
        return out
    if keys == {"opaque"} and type(obj["opaque"]) is str and len(obj["opaque"]) <= 80:
        return Opaque(obj["opaque"])
    raise DecodeError("malformed value")
