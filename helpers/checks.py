"""Checks for the graded functions, with messages a learner can act on.

A visible test cell calls ``check_function(zero_pad, "zero_pad")``: it runs the learner's function
on the visible cases stored in ``data/reference_outputs.h5`` (the lesson's canonical case and, for
``relu_backward``, ``conv_backward`` and ``distribute_value``, one small case beside it: an exact
zero, pad 0, a non-square window) and either prints one pass line or raises ``AssertionError``
with a message that says what was expected, what was given, and where in the lesson to look.
Hidden test cells call the same function on the other stored cases.

Every check catches, in this order: an error raised by the function, the wrong return type or
tuple length, an input changed in place, the wrong cache, the wrong shape (with the output-size
formula worked out on the case's numbers), the wrong dtype, and the wrong values (the first
differing index, expected against got, and the largest error). Numbers print as a learner writes
them (``0.5``, ``False``), never as ``np.float64(0.5)``. A failure may end with a diagnosis: the
wrong answer of one plausible mistake, recomputed inline from the case's inputs, that the
learner's output equals exactly (a forgotten bias or stride, an unpadded slice, BT.709 weights...).

This module holds no implementation of any graded function: a diagnosis returns a sentence, never
an array, and computes only wrong answers.
"""
from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from .data import Case, list_cases, load_case

RTOL = 1e-6
ATOL = 1e-9


# --------------------------------------------------------------------------- plain numbers
def _show(value) -> str:
    """A value as a learner writes it: ``0.5``, ``True``, ``(2, 3)``, never ``np.float64(0.5)``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_show(k)}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        inner = ", ".join(_show(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=8, threshold=20)
    return repr(value)


def _close(got, candidate, rtol: float = 1e-6, atol: float = 1e-7) -> bool:
    """``got`` (any array-like) equals ``candidate`` in shape and values."""
    try:
        g = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    c = np.asarray(candidate, dtype=np.float64)
    return g.shape == c.shape and bool(np.allclose(g, c, rtol=rtol, atol=atol))


# --------------------------------------------------------------------------- shape notes
def _out_size(n, f, pad, stride):
    return (n + 2 * pad - f) // stride + 1


def _conv_shape_note(args) -> str:
    A_prev, W, _b, hp = args
    m, nh, nw, _ = A_prev.shape
    f, _, _, nc = W.shape
    pad, s = hp["pad"], hp["stride"]
    return (f"n_H = floor((n_H_prev + 2*pad - f) / stride) + 1 = floor(({nh} + 2*{pad} - {f}) / {s}) + 1 = "
            f"{_out_size(nh, f, pad, s)}; n_W = floor(({nw} + 2*{pad} - {f}) / {s}) + 1 = {_out_size(nw, f, pad, s)}; "
            f"n_C = number of filters = W.shape[3] = {nc}; m = {m}")


def _pool_shape_note(args) -> str:
    A_prev, hp = args[0], args[1]
    m, nh, nw, nc = A_prev.shape
    f, s = hp["f"], hp["stride"]
    return (f"no padding in pooling: n_H = floor((n_H_prev - f) / stride) + 1 = floor(({nh} - {f}) / {s}) + 1 = "
            f"{_out_size(nh, f, 0, s)}; n_W = floor(({nw} - {f}) / {s}) + 1 = {_out_size(nw, f, 0, s)}; "
            f"n_C = n_C_prev = {nc}. Pooling halves an even side with stride = 2 and f = 2 (or f = 1), not in general")


def _pad_shape_note(args) -> str:
    X, pad = args
    m, nh, nw, nc = X.shape
    return (f"only the height and width grow: (m, n_H + 2*pad, n_W + 2*pad, n_C) = "
            f"({m}, {nh} + 2*{pad}, {nw} + 2*{pad}, {nc}) = {(m, nh + 2 * pad, nw + 2 * pad, nc)}")


def _same_as(i: int, label: str):
    def note(args) -> str:
        return f"the same shape as {label} ({np.shape(args[i])})"
    return note


def _backward_note(args) -> str:
    dZ, (A_prev, W, b, hp) = args
    return (f"each gradient has the shape of what it is the gradient of: dA_prev like A_prev {A_prev.shape}, "
            f"dW like W {W.shape}, db like b {b.shape}")


# --------------------------------------------------------------------------- diagnoses
# Each diagnosis recomputes, with plain NumPy and inline, the answer that one plausible mistake
# gives on the case's inputs, and names the mistake only when the learner's output is exactly that.
# A diagnosis returns a sentence, never an array: none of them computes a graded function's answer.
def _windows(A: np.ndarray, f: int) -> np.ndarray:
    """Every f x f window of A (m, n_H, n_W, n_C) at stride 1, as a read-only view (m, ., ., n_C, f, f)."""
    return np.lib.stride_tricks.sliding_window_view(A, (f, f), axis=(1, 2))


def _diagnose_conv_forward(fn, args, got, case) -> str | None:
    A_prev, W, b, hp = args
    Z, Zexp = got.get("Z"), case.outputs["Z"]
    if not isinstance(Z, np.ndarray):
        return None
    m, nh, nw, _ = A_prev.shape
    f, n_C = W.shape[0], W.shape[3]
    pad, s = int(hp["pad"]), int(hp["stride"])
    n_H, n_W = Zexp.shape[1:3]
    same_shape = Z.shape == Zexp.shape
    if same_shape and _close(Z + b, Zexp):
        return "Every entry of Z is short by exactly b[..., c]: the bias was not added."
    if same_shape and not np.allclose(b, 0) and _close(Z - b, Zexp):
        return "Every entry of Z has the bias b[..., c] added twice."
    if s > 1:
        h1, w1 = nh + 2 * pad - f + 1, nw + 2 * pad - f + 1
        if Z.shape == (m, h1, w1, n_C):
            return (f"Z has the shape of a stride-1 output, {(m, h1, w1, n_C)}: the stride was left out of the "
                    f"output size. With stride {s}: n_H = floor(({nh} + 2*{pad} - {f}) / {s}) + 1 = {n_H} and "
                    f"n_W = floor(({nw} + 2*{pad} - {f}) / {s}) + 1 = {n_W}.")
        if same_shape:
            # the stride forgotten in the corners: windows start at (h, w), i.e. the stride-1 output, cut
            P = np.pad(np.asarray(A_prev, dtype=np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
            wrong = np.einsum("ihwcuv,uvck->ihwk", _windows(P[:, :n_H + f - 1, :n_W + f - 1, :], f), W) \
                + np.reshape(b, (1, 1, 1, -1))
            if _close(Z, wrong):
                return (f"Z equals the stride-1 output cut to {n_H} x {n_W}: the windows start at vert_start = h and "
                        f"horiz_start = w. With stride {s} they start at vert_start = h * stride and "
                        "horiz_start = w * stride.")
    if same_shape and pad > 0:
        # the windows sliced from A_prev instead of the padded A_prev_pad; a window cut short at the
        # border broadcasts against W as NumPy does (or raises, and then this is not the mistake)
        wrong = np.zeros(Zexp.shape)
        try:
            for i in range(m):
                for h in range(n_H):
                    for w in range(n_W):
                        window = A_prev[i, h * s:h * s + f, w * s:w * s + f, :]
                        for c in range(n_C):
                            wrong[i, h, w, c] = np.sum(window * W[:, :, :, c]) + b[0, 0, 0, c]
        except ValueError:
            wrong = None
        if wrong is not None and _close(Z, wrong):
            return (f"Z is what you get by taking the windows from A_prev itself: slice the padded input "
                    f"(A_prev_pad = A_prev padded by pad = {pad} on height and width, then "
                    "a_prev_pad = A_prev_pad[i]), so that the windows at the border see the zeros.")
    return None


def _diagnose_conv_single_step(fn, args, got, case) -> str | None:
    a, W, b = args
    Z, Zexp = got.get("Z"), case.outputs["Z"]
    if Z is not None and np.ndim(Z) == 0 and np.isclose(float(Z) + b.item(), Zexp, rtol=RTOL):
        return "Z is short by exactly b: the bias was not added."
    return None


def _diagnose_conv_param_count(fn, args, got, case) -> str | None:
    f, n_C_prev, n_C = (int(a) for a in args)
    count = got.get("count")
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, float, np.integer, np.floating)):
        return None
    right, weights = int(case.outputs["count"]), f * f * n_C_prev * n_C
    if count == weights:
        return (f"{count} is the number of weights alone, f*f*n_C_prev*n_C = {f}*{f}*{n_C_prev}*{n_C}: the biases "
                f"are missing. Every filter has one bias too, so add n_C = {n_C}.")
    if count == weights + 1:
        return (f"{count} counts one bias for the whole layer. Every filter has a bias of its own: add n_C = {n_C} "
                f"to the {weights} weights, not 1.")
    if count == (f * f + 1) * n_C:
        return (f"{count} = (f*f + 1)*n_C counts filters of one channel. A filter reaches through all the "
                f"n_C_prev = {n_C_prev} channels of its input: f*f*n_C_prev = {f * f * n_C_prev} weights each.")
    if f > 1 and count == (f * n_C_prev + 1) * n_C:
        return (f"{count} = (f*n_C_prev + 1)*n_C: a filter is f x f, so it has f*f*n_C_prev = {f * f * n_C_prev} "
                f"weights, not f*n_C_prev = {f * n_C_prev}.")
    k = count / right if right else 0
    if k == int(k) and k >= 2 and int(k) not in {f, f * f, n_C_prev, n_C}:
        return (f"{count} is exactly {int(k)} times the right count, {right}: as if each of {int(k)} positions of the "
                f"output had filters of its own. A convolution layer shares its n_C filters over all positions "
                f"(parameter sharing), so its count depends only on f, n_C_prev and n_C, never on the size of the "
                f"image: (f*f*n_C_prev + 1)*n_C.")
    return None


def _diagnose_conv_backward(fn, args, got, case) -> str | None:
    dZ, (A_prev, W, b, hp) = args
    dA_prev = got.get("dA_prev")
    if (int(hp["pad"]) == 0 and isinstance(dA_prev, np.ndarray) and dA_prev.ndim == 4
            and 0 in dA_prev.shape[1:3] and 0 not in A_prev.shape[1:3]):
        return ("dA_prev is empty: with pad = 0, dA_prev_pad[:, pad:-pad, pad:-pad, :] is "
                "dA_prev_pad[:, 0:0, 0:0, :] (-0 is 0). Cut the padding off with "
                "dA_prev_pad[:, pad:pad + n_H_prev, pad:pad + n_W_prev, :], which works for every pad.")
    return None


def _pool_forward_got(args, got, case):
    """What the pool_forward diagnoses look at: ``(A, expected A, A_prev's shape, f, stride)``, or None
    when the answer is not an array."""
    A_prev, hp, _ = args
    A = got.get("A")
    if not isinstance(A, np.ndarray):
        return None
    return A, case.outputs["A"], A_prev.shape, int(hp["f"]), int(hp["stride"])


def _diagnose_pool_forward(fn, args, got, case) -> str | None:
    A_prev, hp, mode = args
    seen = _pool_forward_got(args, got, case)
    if seen is None:
        return None
    A, Aexp, (m, nh, nw, nc), f, s = seen
    n_H, n_W = Aexp.shape[1:3]
    if mode == "average" and f > 1 and A.shape == Aexp.shape:
        if _close(A, Aexp * (f * f)):
            return (f"Every entry of A is exactly f*f = {f * f} times too large: you added up the window without "
                    f"dividing. The average of an f x f window is its sum divided by f*f = {f * f} (np.mean does it).")
        if _close(A, Aexp * f):
            return (f"Every entry of A is exactly f = {f} times too large: divide the window's sum by f*f = {f * f}, "
                    f"not by f = {f}.")
    if s > 1:
        h1, w1 = nh - f + 1, nw - f + 1
        if A.shape == (m, h1, w1, nc):
            return (f"A has the shape of a stride-1 output, {(m, h1, w1, nc)}: the stride was left out of the "
                    f"output size. With stride {s}: n_H = floor(({nh} - {f}) / {s}) + 1 = {n_H} and "
                    f"n_W = floor(({nw} - {f}) / {s}) + 1 = {n_W}.")
        if A.shape == Aexp.shape and mode in ("max", "average"):
            windows = _windows(np.asarray(A_prev, dtype=np.float64)[:, :n_H + f - 1, :n_W + f - 1, :], f)
            wrong = windows.max(axis=(-2, -1)) if mode == "max" else windows.mean(axis=(-2, -1))
            if _close(A, wrong):
                return (f"A equals the stride-1 output cut to {n_H} x {n_W}: the windows start at vert_start = h "
                        f"and horiz_start = w. With stride {s} they start at vert_start = h * stride and "
                        "horiz_start = w * stride.")
    return None


def _diagnose_distribute_value(fn, args, got, case) -> str | None:
    dz, shape = args
    n_H, n_W = (int(n) for n in shape)
    a = got.get("a")
    if not isinstance(a, np.ndarray):
        return None
    if n_H != n_W and a.shape in ((n_H, n_H), (n_W, n_W)):
        return (f"a has shape {a.shape}, a square: the window is shape = ({n_H}, {n_W}), which need not be square. "
                "Unpack both sides, (f_H, f_W) = shape, and use them both.")
    if a.shape != (n_H, n_W):
        return None
    if n_H != n_W:
        for n, name in ((n_H, "f_H"), (n_W, "f_W")):
            if _close(a, np.full((n_H, n_W), float(dz) / (n * n))):
                return (f"Every entry is dz / ({name} * {name}) = {float(dz)} / {n * n}: the window is "
                        f"{n_H} x {n_W}, not square. Divide by f_H * f_W = {n_H * n_W}.")
    if n_H * n_W > 1 and float(dz) != 0 and _close(a, np.full((n_H, n_W), float(dz))):
        return (f"Every entry is dz itself ({float(dz)}): spread it evenly, so that the {n_H * n_W} entries add "
                f"up to dz: divide by f_H * f_W = {n_H * n_W}.")
    return None


def _diagnose_pool_backward(fn, args, got, case) -> str | None:
    dA, (A_prev, hp), mode = args
    d, expected = got.get("dA_prev"), case.outputs["dA_prev"]
    f = int(hp["f"])
    if mode == "average" and f > 1 and isinstance(d, np.ndarray) and d.shape == expected.shape \
            and _close(d, expected * (f * f)):
        return (f"Every entry of dA_prev is exactly f*f = {f * f} times too large: each window must receive "
                f"dA[i, h, w, c] / (f*f), so check that distribute_value divides dz by f_H * f_W.")
    return None


# Notebook 09's fast layers make their own mistakes: a windows view that was not strided, a
# scatter-add over the f x f offsets that assigns (=) instead of adding (+=), an average not divided.
def _offset_rows(u: int, stride: int, n: int) -> slice:
    """The rows (or columns) of the padded input that offset u of the windows touches, one per output."""
    return slice(u, u + stride * (n - 1) + 1, stride)


def _assigned_not_added(shape, f: int, stride: int, n_H: int, n_W: int, share) -> np.ndarray:
    """What a scatter over the f x f offsets gives when it assigns each offset's share instead of adding
    it: where windows overlap, only the last offset written survives. ``share(u, v)`` is that offset's
    array of shape (m, n_H, n_W, n_C). A wrong answer, computed only to name the mistake."""
    wrong = np.zeros(shape)
    for u in range(f):
        for v in range(f):
            wrong[:, _offset_rows(u, stride, n_H), _offset_rows(v, stride, n_W), :] = share(u, v)
    return wrong


def _diagnose_conv_forward_fast(fn, args, got, case) -> str | None:
    A_prev, W, b, hp = args
    Z, Zexp = got.get("Z"), case.outputs["Z"]
    if not isinstance(Z, np.ndarray):
        return None
    m, nh, nw, _ = A_prev.shape
    f, n_C = W.shape[0], W.shape[3]
    pad, s = int(hp["pad"]), int(hp["stride"])
    n_H, n_W = Zexp.shape[1:3]
    if s > 1:
        h1, w1 = nh + 2 * pad - f + 1, nw + 2 * pad - f + 1
        if Z.shape == (m, h1, w1, n_C):
            return (f"Z has the shape of a stride-1 output, {(m, h1, w1, n_C)}: the stride was forgotten. "
                    f"sliding_window_view gives every window at stride 1 ({h1} x {w1} of them here); keep every "
                    f"stride-th one, windows[:, ::stride, ::stride], which leaves floor(({nh} + 2*{pad} - {f}) / {s}) "
                    f"+ 1 = {n_H} by {n_W} windows, before the contraction.")
    return _diagnose_conv_forward(fn, args, got, case)


def _diagnose_conv_backward_fast(fn, args, got, case) -> str | None:
    dZ, (A_prev, W, b, hp) = args
    dA_prev = got.get("dA_prev")
    msg = _diagnose_conv_backward(fn, args, got, case)
    if msg or not isinstance(dA_prev, np.ndarray) or dA_prev.shape != A_prev.shape:
        return msg
    f, s, pad = W.shape[0], int(hp["stride"]), int(hp["pad"])
    m, n_H, n_W, _ = dZ.shape
    if s < f:   # windows overlap: assigning loses all but the last share
        padded = (m, A_prev.shape[1] + 2 * pad, A_prev.shape[2] + 2 * pad, A_prev.shape[3])
        wrong = _assigned_not_added(padded, f, s, n_H, n_W, lambda u, v: np.tensordot(dZ, W[u, v], axes=([3], [1])))
        wrong = wrong[:, pad:pad + A_prev.shape[1], pad:pad + A_prev.shape[2], :]
        if _close(dA_prev, wrong) and not _close(wrong, case.outputs["dA_prev"]):
            return (f"dA_prev is what the scatter gives when each offset (u, v) assigns its share (=) instead of "
                    f"adding it (+=). With f = {f} and stride {s} the windows overlap, so an entry of A_prev lies "
                    "in several windows and must collect the share of every one: dA_prev_pad[...] += ...")
    return None


def _diagnose_pool_forward_fast(fn, args, got, case) -> str | None:
    seen = _pool_forward_got(args, got, case)
    if seen is None:
        return None
    A, Aexp, (m, nh, nw, nc), f, s = seen
    if s > 1 and A.shape == (m, nh - f + 1, nw - f + 1, nc):
        return (f"A has the shape of a stride-1 output, {(m, nh - f + 1, nw - f + 1, nc)}: the stride was forgotten. "
                f"Keep every stride-th window of the view, windows[:, ::stride, ::stride], which leaves "
                f"floor(({nh} - {f}) / {s}) + 1 = {Aexp.shape[1]} by {Aexp.shape[2]} windows.")
    return _diagnose_pool_forward(fn, args, got, case)


def _diagnose_pool_backward_fast(fn, args, got, case) -> str | None:
    dA, (A_prev, hp), mode = args
    d, expected = got.get("dA_prev"), case.outputs["dA_prev"]
    if not isinstance(d, np.ndarray) or d.shape != expected.shape:
        return None
    f, s = int(hp["f"]), int(hp["stride"])
    m, n_H, n_W, _ = dA.shape
    if mode == "average" and f > 1 and _close(d, expected * (f * f)):
        return (f"Every entry of dA_prev is exactly f*f = {f * f} times too large: the average of a window is its "
                f"sum divided by f*f, so each of its f*f entries receives dA / (f*f) = dA / {f * f}, at every offset.")
    if s < f and mode in ("max", "average"):
        if mode == "average":
            wrong = _assigned_not_added(A_prev.shape, f, s, n_H, n_W, lambda u, v: dA / (f * f))
        else:
            windows = _windows(np.asarray(A_prev, dtype=np.float64), f)[:, ::s, ::s][:, :n_H, :n_W]
            mask = windows == windows.max(axis=(-2, -1), keepdims=True)
            wrong = _assigned_not_added(A_prev.shape, f, s, n_H, n_W, lambda u, v: mask[..., u, v] * dA)
        if _close(d, wrong) and not _close(wrong, expected):
            return (f"dA_prev is what the scatter gives when each offset (u, v) assigns its share (=) instead of "
                    f"adding it (+=). With f = {f} and stride {s} the windows overlap, so an entry of A_prev lies "
                    "in several windows and must collect the share of every one: dA_prev[...] += ...")
    return None


def _diagnose_filter2d(fn, args, got, case) -> str | None:
    image, kernel = args
    out, expected = got.get("out"), case.outputs["out"]
    if out is None or np.shape(out) != expected.shape:
        return None
    k = kernel.shape[0] // 2
    if kernel.shape[0] > 1 and not np.array_equal(kernel, kernel[::-1, ::-1]):
        try:
            flipped = np.asarray(fn(image.copy(), kernel[::-1, ::-1].copy()), dtype=float)
        except Exception:
            flipped = None
        if flipped is not None and flipped.shape == expected.shape and np.allclose(flipped, expected, rtol=1e-5):
            return ("Your output equals the expected one for the kernel flipped by 180 degrees: you computed true "
                    "convolution. filter2d computes cross-correlation: out[i, j] = sum_u sum_v "
                    "kernel[u, v] * padded[i + u, j + v], with no flip.")
    if k > 0 and expected.shape[0] > 2 * k and expected.shape[1] > 2 * k:
        inner = (slice(k, -k), slice(k, -k))
        if np.allclose(np.asarray(out, dtype=float)[inner], expected[inner], rtol=1e-5, atol=1e-8):
            return ("The inside of the image is right but the border is not: pad the image with "
                    f"{k} row(s) and column(s) of zeros on each side (kernel size // 2) before sliding.")
    return None


_BT709 = (0.2126, 0.7152, 0.0722)


def _diagnose_to_grayscale(fn, args, got, case) -> str | None:
    (image,) = args
    gray, expected = got.get("gray"), case.outputs["gray"]
    if not isinstance(gray, np.ndarray) or gray.shape != expected.shape or image.ndim != 3 or image.shape[2] != 3:
        return None
    x = np.asarray(image, dtype=np.float64)
    R, G, B = x[:, :, 0], x[:, :, 1], x[:, :, 2]
    if _close(gray, _BT709[0] * R + _BT709[1] * G + _BT709[2] * B):
        return ("You used the ITU-R BT.709 weights (0.2126, 0.7152, 0.0722), those of HDTV. This course uses "
                "ITU-R BT.601: gray = 0.299 R + 0.587 G + 0.114 B.")
    if _close(gray, 0.299 * B + 0.587 * G + 0.114 * R):
        return ("R and B are exchanged: 0.299 went to channel 2 and 0.114 to channel 0. The image is RGB: "
                "channel 0 is red (weight 0.299), channel 2 is blue (weight 0.114).")
    if _close(gray, expected / 255.0):
        return ("Your gray is the expected one divided by 255: keep the input's own scale (an image from 0 to 255 "
                "gives a gray from 0 to 255); do not rescale to [0, 1].")
    if _close(gray, expected * 255.0):
        return "Your gray is the expected one times 255: keep the input's own scale; do not rescale it."
    if image.dtype == np.uint8:
        total8 = (image[:, :, 0] + image[:, :, 1] + image[:, :, 2]).astype(np.float64)   # uint8: wraps at 256
        if np.any(total8 != R + G + B):
            g = np.asarray(gray, dtype=np.float64)
            scale = float(np.sum(g * total8) / max(float(np.sum(total8 * total8)), 1e-300))
            if (scale > 0 and _close(gray, scale * total8)) or _close(gray, total8 // 3):
                return ("Your gray follows R + G + B added as uint8, which wraps around above 255 (250 + 250 is 244 "
                        "in uint8). Convert to float first (image.astype(np.float64)), then use the weights "
                        "0.299, 0.587 and 0.114.")
    if _close(gray, (R + G + B) / 3.0):
        return ("You took the plain mean of the three channels. Weigh them as the eye does (ITU-R BT.601): "
                "gray = 0.299 R + 0.587 G + 0.114 B.")
    return None


def _diagnose_relu_backward(fn, args, got, case) -> str | None:
    dA, Z = args
    dZ = got.get("dZ")
    if dZ is None or np.shape(dZ) != np.shape(Z):
        return None
    at_zero = Z == 0
    if at_zero.any() and not np.allclose(np.asarray(dZ)[at_zero], 0):
        return "Where Z == 0 the course takes the gradient of ReLU as 0: use Z > 0, not Z >= 0."
    return None


def _diagnose_sobel_kernels(fn, args, got, case) -> str | None:
    Kx, Ky = got.get("Kx"), got.get("Ky")
    ex, ey = case.outputs["Kx"], case.outputs["Ky"]
    if _close(Kx, ey) and _close(Ky, ex):
        return "Kx and Ky are exchanged: Kx changes from left to right (columns -1, 0, 1), Ky from top to bottom."
    for name, k, e in (("Kx", Kx, ex), ("Ky", Ky, ey)):
        if _close(k, -e):
            return (f"{name} has the opposite sign (flipped): the negative weights come first, "
                    f"{name} = {_show(e.tolist())}, so that a dark-to-bright edge gives a positive response.")
    return None


def _diagnose_sobel_edges(fn, args, got, case) -> str | None:
    gx, gy = got.get("gx"), got.get("gy")
    ex, ey = case.outputs["gx"], case.outputs["gy"]
    if not isinstance(gx, np.ndarray) or not isinstance(gy, np.ndarray):
        return None
    if not _close(ex, ey) and any(_close(gx, sx * ey) for sx in (1, -1)) and any(_close(gy, sy * ex) for sy in (1, -1)):
        return ("gx and gy are exchanged: gx = filter2d(gray, Kx) with Kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] "
                "(vertical edges), gy = filter2d(gray, Ky) with Ky = Kx transposed. Check which kernel "
                "sobel_kernels returns first, and which one you use for gx.")
    neg_x = bool(np.any(ex != 0)) and _close(gx, -ex)
    neg_y = bool(np.any(ey != 0)) and _close(gy, -ey)
    if neg_x and neg_y:
        return ("gx and gy both have the opposite sign: both kernels are flipped by 180 degrees, which is what "
                "true convolution does. filter2d must not flip the kernel (cross-correlation), and Kx, Ky must "
                "start with their negative weights: Kx = [[-1, 0, 1], ...], Ky = [[-1, -2, -1], ...].")
    if neg_x:
        return ("gx has the opposite sign: Kx is flipped left to right. Kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] "
                "is negative on the left, so that a dark-to-bright edge gives a positive gx.")
    if neg_y:
        return ("gy has the opposite sign: Ky is flipped upside down. Ky = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]] "
                "is negative on top, so that a dark-to-bright edge downwards gives a positive gy.")
    return None


# ---- notebook 10
def _diagnose_dense_backward(fn, args, got, case) -> str | None:
    dZ, (A, W, b) = args
    dW, want = got.get("dW"), case.outputs["dW"]
    if not isinstance(dW, np.ndarray):
        return None
    if _close(dW, want.T) and (dW.shape != want.shape or not _close(dW, want)):
        return (f"dW is the transpose of the weight gradient: it has shape {dW.shape} and equals (A.T @ dZ).T. "
                f"A gradient has the shape of what it is the gradient of, W {W.shape}: dW = A.T @ dZ, "
                f"({A.shape[1]}, {A.shape[0]}) @ {dZ.shape}.")
    return None


def _diagnose_softmax(fn, args, got, case) -> str | None:
    logits, y = args
    loss, dlogits = got.get("loss"), got.get("dlogits")
    values = [np.asarray(v, dtype=np.float64) for v in (loss, dlogits) if isinstance(v, (float, np.ndarray, np.floating))]
    if any(not np.all(np.isfinite(v)) for v in values):
        big = float(np.max(np.abs(logits)))
        return (f"Your result holds inf or nan: np.exp overflows above about 709, and these logits reach {big:.4g}. "
                "Subtract each row's maximum first, shifted = logits - np.max(logits, axis=1, keepdims=True): the "
                "softmax does not change, and the largest exponent becomes exp(0) = 1.")
    if isinstance(dlogits, np.ndarray) and dlogits.shape == case.outputs["dlogits"].shape and logits.shape[0] > 1 \
            and _close(dlogits, case.outputs["dlogits"] * logits.shape[0]):
        return (f"dlogits is exactly m = {logits.shape[0]} times too large: the loss is the mean over the batch, so "
                "its gradient is (softmax - one_hot) / m.")
    return None


_RELU_KEYS = ("relu1", "relu2")


def _diagnose_cnn_backward(fn, args, got, case) -> str | None:
    dlogits, caches = args
    grads = got.get("grads")
    if not isinstance(grads, dict) or not isinstance(caches, dict) or not all(k in caches for k in _RELU_KEYS):
        return None
    changed = dict(caches)
    for k in _RELU_KEYS:          # every Z made negative: a backward that uses the ReLU masks changes
        changed[k] = -np.abs(np.asarray(caches[k], dtype=np.float64)) - 1.0
    try:
        again = fn(copy.deepcopy(dlogits), copy.deepcopy(changed))
    except Exception:
        return None
    if isinstance(again, dict) and again.keys() == grads.keys() and \
            all(_close(again[k], grads[k], rtol=0, atol=0) for k in grads):
        return ("Your gradients stay the same when every Z in caches['relu1'] and caches['relu2'] is negative, where "
                "ReLU lets no gradient through: the backward pass skips the ReLU masks. After each pool backward, "
                "apply relu_backward(dA, Z) with Z = caches['relu2'] (then caches['relu1']) before the conv backward.")
    return None


def _diagnose_sgd(fn, args, got, case) -> str | None:
    params, grads, velocity, lr, beta = args
    new, vel = got.get("params"), got.get("velocity")
    want_v = case.outputs["velocity"]
    if not isinstance(new, dict) or not all(k in new and k in want_v for k in params):
        return None
    if all(_close(new[k], params[k] + lr * want_v[k]) for k in params) and any(np.any(want_v[k] != 0) for k in params):
        return ("Every parameter moved by + learning_rate * v: up the gradient, so the loss grows. Gradient descent "
                "steps against the gradient: params[k] - learning_rate * v[k].")
    if isinstance(vel, dict) and all(k in vel for k in params) and \
            all(_close(vel[k], grads[k]) for k in params) and any(np.any(velocity[k] != 0) for k in params):
        return "The velocity forgot its past: v[k] = beta * velocity[k] + grads[k], not grads[k] alone."
    return None


def _diagnose_train(fn, args, got, case) -> str | None:
    losses = got.get("losses")
    if isinstance(losses, np.ndarray) and losses.ndim == 1 and losses.size >= 2 and np.all(np.isfinite(losses)) \
            and losses[-1] > losses[0]:
        return (f"The loss rises over the first steps ({_show(float(losses[0]))} at the first, "
                f"{_show(float(losses[-1]))} at the last): the parameters move up the gradient. Check the sign in "
                "sgd_momentum_step (params[k] - learning_rate * v[k]) and that train_cnn passes the grads of the "
                "batch it just ran.")
    n = sum(-(-int(args[0].shape[0]) // int(args[4])) for _ in range(int(args[3]))) if len(args) > 4 else None
    if isinstance(losses, np.ndarray) and n is not None and losses.shape != (n,):
        return (f"losses should hold one loss per step: {args[3]} epoch(s) of ceil({args[0].shape[0]} / {args[4]}) "
                f"batches is {n} steps; got shape {losses.shape}. The last batch of an epoch may be smaller.")
    return None

# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class Spec:
    params: tuple[str, ...]
    returns: tuple[str, ...]
    lesson: str
    shape_note: Callable | None = None
    hints: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=dict)
    scalar: frozenset = frozenset()
    diagnose: Callable | None = None


SPECS: dict[str, Spec] = {
    "zero_pad": Spec(
        ("X", "pad"), ("X_pad",), "notebook 01, 'Zero padding'", _pad_shape_note,
        {"X_pad": "Pad axes 1 and 2 (height and width) by pad on both sides, with zeros; the batch axis 0 and "
                  "the channel axis 3 get (0, 0)."}),
    "conv_single_step": Spec(
        ("a_slice_prev", "W", "b"), ("Z",), "notebook 02, 'One step of convolution'", None,
        {"Z": "Z = sum over the window of a_slice_prev * W, then + b (one number)."},
        scalar=frozenset({"Z"}), diagnose=_diagnose_conv_single_step),
    "conv_forward": Spec(
        ("A_prev", "W", "b", "hparameters"), ("Z", "cache"), "notebook 03, 'Output size' and 'The slice corners'",
        _conv_shape_note,
        {"Z": "Check the slice corners (vert_start = h * stride, horiz_start = w * stride), that you slice the "
              "padded input a_prev_pad, and that you add b[..., c]."},
        diagnose=_diagnose_conv_forward),
    "conv_param_count": Spec(
        ("f", "n_C_prev", "n_C"), ("count",), "notebook 03, 'How many parameters? Sharing the weights'", None,
        {"count": "Each of the n_C filters has f*f*n_C_prev weights and one bias."},
        dtypes={"count": "int"}, scalar=frozenset({"count"}), diagnose=_diagnose_conv_param_count),
    "conv_backward": Spec(
        ("dZ", "cache"), ("dA_prev", "dW", "db"), "notebook 04, 'The three gradients'", _backward_note,
        {"dA_prev": "Add W[..., c] * dZ[i, h, w, c] into the padded gradient at the strided window, then cut the "
                    "padding off (careful: X[pad:-pad] is empty when pad = 0).",
         "dW": "Add a_slice * dZ[i, h, w, c], where a_slice comes from the padded input at the strided window.",
         "db": "db[..., c] is the sum of dZ[..., c] over examples, rows and columns."},
        diagnose=_diagnose_conv_backward),
    "pool_forward": Spec(
        ("A_prev", "hparameters", "mode"), ("A", "cache"), "notebook 05, 'Output size' and 'Max and average'",
        _pool_shape_note,
        {"A": "Window corners are h * stride and w * stride; take np.max for 'max' and np.mean for 'average', "
              "one channel at a time."},
        diagnose=_diagnose_pool_forward),
    "create_mask_from_window": Spec(
        ("x",), ("mask",), "notebook 06, 'Max pooling: the mask'", _same_as(0, "x"),
        {"mask": "True exactly where x equals its largest entry, False elsewhere (a boolean array)."}, dtypes={"mask": "bool"}),
    "distribute_value": Spec(
        ("dz", "shape"), ("a",), "notebook 06, 'Average pooling: spreading the gradient'",
        lambda args: f"the shape argument itself, {tuple(args[1])}",
        {"a": "Every entry is dz / (f_H * f_W)."}, diagnose=_diagnose_distribute_value),
    "pool_backward": Spec(
        ("dA", "cache", "mode"), ("dA_prev",), "notebook 06, 'Putting it together'",
        lambda args: f"the shape of A_prev, {np.shape(args[1][0])}",
        {"dA_prev": "The window corners must use the stride (vert_start = h * stride), and gradients from "
                    "overlapping windows are added (+=), not assigned."},
        diagnose=_diagnose_pool_backward),
    "conv_forward_fast": Spec(
        ("A_prev", "W", "b", "hparameters"), ("Z", "cache"), "notebook 09, 'Windows as a view' and 'im2col'",
        _conv_shape_note,
        {"Z": "Pad once, take the view sliding_window_view(A_prev_pad, (f, f), axis=(1, 2)), keep every "
              "stride-th window ([:, ::stride, ::stride]), contract it with W over (u, v, k), then add b."},
        diagnose=_diagnose_conv_forward_fast),
    "conv_backward_fast": Spec(
        ("dZ", "cache"), ("dA_prev", "dW", "db"), "notebook 09, 'The backward pass, fast'", _backward_note,
        {"dA_prev": "For each offset (u, v), add dZ contracted with W[u, v] into dA_prev_pad at rows "
                    "u, u + stride, ... and columns v, v + stride, ... (+=, not =), then cut the padding off with "
                    "explicit ends.",
         "dW": "dW contracts the strided windows view of the padded input with dZ over (i, h, w), then its axes "
               "go back to (u, v, k, c).",
         "db": "db[..., c] is the sum of dZ[..., c] over examples, rows and columns."},
        diagnose=_diagnose_conv_backward_fast),
    "pool_forward_fast": Spec(
        ("A_prev", "hparameters", "mode"), ("A", "cache"), "notebook 09, 'Pooling, fast'", _pool_shape_note,
        {"A": "Take the view sliding_window_view(A_prev, (f, f), axis=(1, 2))[:, ::stride, ::stride], then its "
              "max or its mean over the last two axes (the window)."},
        diagnose=_diagnose_pool_forward_fast),
    "pool_backward_fast": Spec(
        ("dA", "cache", "mode"), ("dA_prev",), "notebook 09, 'Pooling, fast'",
        lambda args: f"the shape of A_prev, {np.shape(args[1][0])}",
        {"dA_prev": "For each offset (u, v), add the window's share into dA_prev at rows u, u + stride, ... and "
                    "columns v, v + stride, ... (+=): mask * dA for max (every entry equal to the window's max, as "
                    "create_mask_from_window marks it), dA / (f*f) for average."},
        diagnose=_diagnose_pool_backward_fast),
    "relu": Spec(("Z",), ("A",), "notebook 07, 'ReLU forward'", _same_as(0, "Z"),
                 {"A": "A is Z where Z > 0, and 0 elsewhere, entry by entry."}),
    "relu_backward": Spec(
        ("dA", "Z"), ("dZ",), "notebook 07, 'ReLU backward'", _same_as(1, "Z"),
        {"dZ": "dZ = dA where Z > 0, and 0 elsewhere."}, diagnose=_diagnose_relu_backward),
    "to_grayscale": Spec(
        ("image",), ("gray",), "notebook 08, 'From colour to gray'",
        lambda args: f"the image without its channel axis, {np.shape(args[0])[:2]}",
        {"gray": "gray = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), as float64 on the input's own scale."},
        diagnose=_diagnose_to_grayscale),
    "sobel_kernels": Spec(
        (), ("Kx", "Ky"), "notebook 08, 'The Sobel kernels'", lambda args: "(3, 3) for each kernel",
        {"Kx": "Kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]: it responds to vertical edges (left to right change).",
         "Ky": "Ky is Kx transposed: [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]."},
        diagnose=_diagnose_sobel_kernels),
    "filter2d": Spec(
        ("image", "kernel"), ("out",), "notebook 08, 'Filtering an image'",
        lambda args: f"the same size as the image, {np.shape(args[0])}",
        {"out": "Zero-pad by kernel_size // 2, then out[i, j] = sum(kernel * padded[i:i+k, j:j+k])."},
        diagnose=_diagnose_filter2d),
    "sobel_edges": Spec(
        ("gray",), ("gx", "gy", "magnitude"), "notebook 08, 'Edges of the photograph'",
        lambda args: f"the same size as the image, {np.shape(args[0])}",
        {"gx": "gx = filter2d(gray, Kx).", "gy": "gy = filter2d(gray, Ky).",
         "magnitude": "magnitude = sqrt(gx**2 + gy**2)."},
        diagnose=_diagnose_sobel_edges),
    "dense_forward": Spec(
        ("A", "W", "b"), ("Z", "cache"), "notebook 10, 'A dense layer'",
        lambda args: f"(m, n_out) = ({np.shape(args[0])[0]}, {np.shape(args[1])[1]}): A (m, n_in) @ W (n_in, n_out)",
        {"Z": "Z = A @ W + b: b (1, n_out) is added to every row."}),
    "dense_backward": Spec(
        ("dZ", "cache"), ("dA", "dW", "db"), "notebook 10, 'A dense layer'",
        lambda args: (f"each gradient has the shape of what it is the gradient of: dA like A {np.shape(args[1][0])}, "
                      f"dW like W {np.shape(args[1][1])}, db like b {np.shape(args[1][2])}"),
        {"dA": "dA = dZ @ W.T.", "dW": "dW = A.T @ dZ.", "db": "db = dZ summed over the batch (axis 0), keepdims."},
        diagnose=_diagnose_dense_backward),
    "softmax_cross_entropy": Spec(
        ("logits", "y"), ("loss", "dlogits"), "notebook 10, 'Softmax and cross-entropy'", _same_as(0, "logits"),
        {"loss": "loss = mean over the batch of -log softmax(logits)[i, y[i]], computed from the shifted logits.",
         "dlogits": "dlogits = (softmax(logits) - one_hot(y)) / m."},
        scalar=frozenset({"loss"}), diagnose=_diagnose_softmax),
    "cnn_forward": Spec(
        ("X", "params"), ("logits", "caches"), "notebook 10, 'The network forward'",
        lambda args: f"(m, 10) = ({np.shape(args[0])[0]}, 10)",
        {"logits": "conv1 -> relu -> pool -> conv2 -> relu -> pool -> reshape(m, -1) -> dense, with conv "
                   "{'stride': 1, 'pad': 1} and pool {'f': 2, 'stride': 2}."}),
    "cnn_backward": Spec(
        ("dlogits", "caches"), ("grads",), "notebook 10, 'The network backward'",
        lambda args: "one gradient per parameter, each of that parameter's shape",
        {"grads": "Go through the layers in reverse: dense, reshape back to pool2's output, pool, ReLU, conv2, "
                  "pool, ReLU, conv1."},
        diagnose=_diagnose_cnn_backward),
    "sgd_momentum_step": Spec(
        ("params", "grads", "velocity", "learning_rate", "beta"), ("params", "velocity"),
        "notebook 10, 'SGD with momentum'", lambda args: "the shapes of params",
        {"params": "params[k] - learning_rate * v[k], with the new velocity v.",
         "velocity": "v[k] = beta * velocity[k] + grads[k]."},
        diagnose=_diagnose_sgd),
    "train_cnn": Spec(
        ("X", "y", "params", "num_epochs", "batch_size", "learning_rate", "beta", "seed"), ("params", "losses"),
        "notebook 10, 'Training'", lambda args: "params like the initial params; losses (number of steps,)",
        {"params": "rng = np.random.default_rng(seed); each epoch perm = rng.permutation(m) and the batches "
                   "perm[k:k + batch_size]; forward, loss, backward, one SGD step per batch.",
         "losses": "one mean loss per batch, in the order of the steps."},
        diagnose=_diagnose_train),
}


# --------------------------------------------------------------------------- core
def _fail(func: str, case: Case, lesson: str, what: str) -> AssertionError:
    return AssertionError(f"{func} failed on case '{case.name}' ({case.description}).\n{what}\n"
                          f"Where to look: {lesson}.")


def _leaves(value, path=""):
    """Yield (path, ndarray) for every array inside nested tuples, lists and dicts."""
    if isinstance(value, np.ndarray):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}[{k!r}]")


def first_difference(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL, atol: float = ATOL):
    """Return ``(index, n_bad, max_abs_error)`` for arrays of equal shape, or ``None`` if they agree."""
    got = np.asarray(got, dtype=np.float64) if got.dtype != bool else got.astype(np.float64)
    exp = expected.astype(np.float64) if expected.dtype == bool else np.asarray(expected, dtype=np.float64)
    nan_mismatch = np.isnan(got) != np.isnan(exp)
    err = np.abs(np.nan_to_num(got - exp, nan=np.inf))
    bad = (err > atol + rtol * np.abs(exp)) & ~(np.isnan(got) & np.isnan(exp)) | nan_mismatch
    if not bad.any():
        return None
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    finite = err[np.isfinite(err)]
    return idx, int(bad.sum()), float(finite.max()) if finite.size else float("inf")


def compare_arrays(name: str, got, expected: np.ndarray, *, shape_note: str = "", hint: str = "",
                   dtype: str = "float64") -> str | None:
    """Compare one output with its expected value. Return a message saying what differs, or ``None``."""
    if not isinstance(got, np.ndarray):
        return (f"{name} should be a numpy array of shape {expected.shape}; got {type(got).__name__}"
                f"{'' if not hasattr(got, '__len__') else f' of length {len(got)}'}.")
    if got.shape != expected.shape:
        return (f"{name} has the wrong shape.\n  expected shape: {expected.shape}\n  got shape:      {got.shape}"
                + (f"\n  Expected shape: {shape_note}." if shape_note else "") + (f"\n  Hint: {hint}" if hint else ""))
    if dtype == "bool" and got.dtype != np.bool_:
        return f"{name} should be a boolean array (dtype bool); got dtype {got.dtype}. {hint}"
    if dtype == "float64" and got.dtype != np.float64:
        return (f"{name} should have dtype float64; got dtype {got.dtype}. "
                "Create arrays with np.zeros(shape) (float64 by default), not np.zeros(shape, dtype=int).")
    diff = first_difference(got, expected)
    if diff is None:
        return None
    idx, n_bad, max_err = diff
    return (f"{name} has the right shape {expected.shape} but wrong values.\n"
            f"  first wrong entry: {name}{list(idx)}\n"
            f"  expected: {_show(expected[idx])}\n  got:      {_show(got[idx])}\n"
            f"  {n_bad} of {expected.size} entries differ; largest absolute error {max_err:.4g}.\n"
            f"  Hint: {hint}")


def _unpack(func: str, spec: Spec, result, case: Case) -> dict:
    n = len(spec.returns)
    if n == 1:
        if isinstance(result, tuple):
            raise _fail(func, case, spec.lesson,
                        f"{func} should return one value ({spec.returns[0]}); got a tuple of {len(result)}.")
        return {spec.returns[0]: result}
    if not isinstance(result, (tuple, list)) or len(result) != n:
        got = (f"a {type(result).__name__} of length {len(result)}" if isinstance(result, (tuple, list))
               else f"one {type(result).__name__}")
        raise _fail(func, case, spec.lesson, f"{func} should return {n} values ({', '.join(spec.returns)}); got {got}.")
    return dict(zip(spec.returns, result))


def _check_count(name: str, got, expected, spec: Spec) -> str | None:
    """A whole number: a Python int (or a NumPy integer), equal to ``expected``."""
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
        if isinstance(got, (float, np.floating)) and float(got).is_integer():
            return (f"{name} should be a whole number, a Python int; got the float {_show(got)}. Compute it with "
                    "ints only (no /, which always gives a float; no np.prod of floats), or wrap it in int(...).")
        what = f"an array of shape {got.shape}" if isinstance(got, np.ndarray) else f"{type(got).__name__} {_show(got)}"
        return f"{name} should be a whole number, a Python int; got {what}."
    if int(got) != int(expected):
        return (f"{name} has the wrong value.\n  expected: {int(expected)}\n  got:      {int(got)}\n"
                f"  Hint: {spec.hints.get(name, '')}")
    return None


def _check_scalar(func: str, name: str, got, expected, case: Case, spec: Spec) -> str | None:
    if spec.dtypes.get(name) == "int":
        return _check_count(name, got, expected, spec)
    if isinstance(got, np.ndarray) and got.ndim > 0:
        return (f"{name} should be a scalar (one number); got an array of shape {got.shape}. "
                "b has shape (1, 1, 1): add b.item() (a Python float), and sum the whole window with np.sum.")
    if not isinstance(got, (float, int, np.floating, np.integer, np.ndarray)):
        return f"{name} should be a number; got {type(got).__name__}."
    if not np.isclose(float(got), float(expected), rtol=RTOL, atol=ATOL):
        return (f"{name} has the wrong value.\n  expected: {float(expected)!r}\n  got:      {float(got)!r}\n"
                f"  absolute error {abs(float(got) - float(expected)):.4g}.\n  Hint: {spec.hints.get(name, '')}")
    return None


def _check_cache(func: str, args: tuple, cache, case: Case, spec: Spec) -> str | None:
    """conv_forward's cache is (A_prev, W, b, hparameters); pool_forward's is (A_prev, hparameters); the fast
    versions of notebook 09 keep the same caches; dense_forward's is (A, W, b)."""
    full = func in ("conv_forward", "conv_forward_fast", "dense_forward")
    want = args if full else args[:2]
    names = {"dense_forward": ("A", "W", "b")}.get(
        func, ("A_prev", "W", "b", "hparameters") if full else ("A_prev", "hparameters"))
    if not isinstance(cache, tuple) or len(cache) != len(want):
        got = f"a tuple of {len(cache)}" if isinstance(cache, tuple) else type(cache).__name__
        return f"cache should be the tuple ({', '.join(names)}); got {got}."
    for name, g, w in zip(names, cache, want):
        if isinstance(w, dict):
            if g != w:
                return f"cache's {name} should be the hparameters you were given, {_show(w)}; got {_show(g)}."
            continue
        if not isinstance(g, np.ndarray) or g.shape != w.shape:
            return (f"cache's {name} should be the {name} you were given, shape {w.shape}; got "
                    f"{getattr(g, 'shape', type(g).__name__)}"
                    + (" (that looks like the padded input; cache the original A_prev)" if name == "A_prev" else "")
                    + ".")
        if not np.array_equal(g, w):
            return f"cache's {name} has the right shape but not the values you were given."
    return None


def _plain_equal(a, b) -> bool:
    """``a == b`` for dicts of plain values (hyperparameters); dicts that hold arrays (parameters, caches) have
    their arrays compared one by one instead, so here only their keys count."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() != b.keys():
        return False
    try:
        return bool(a == b)
    except (ValueError, TypeError):
        return True


def _check_not_mutated(func: str, spec: Spec, before: tuple, after: tuple) -> str | None:
    for i, (b, a) in enumerate(zip(before, after)):
        pname = spec.params[i] if i < len(spec.params) else f"argument {i}"
        for (path, old), (_, new) in zip(_leaves(b), _leaves(a)):
            if old.shape != new.shape or not np.array_equal(old, new, equal_nan=True):
                where = ""
                if old.shape == new.shape:
                    idx = tuple(int(j) for j in np.argwhere(old != new)[0])
                    where = f" (entry {list(idx)} was {_show(old[idx])}, is now {_show(new[idx])})"
                return (f"{func} changed its input {pname}{path} in place{where}. A graded function never changes "
                        "its inputs: write into a new array (np.zeros(...), or .copy()).")
        if isinstance(b, dict) and not _plain_equal(b, a):
            return f"{func} changed its input {pname} in place: it was {_show(b)}, it is now {_show(a)}."
    return None


NETWORK_CACHES = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "dense")


def _check_network_caches(args: tuple, caches) -> str | None:
    """cnn_forward's caches: a dict with one entry per layer, in the blocks' own formats (notebook 10)."""
    X, params = args[0], args[1]
    if not isinstance(caches, dict) or set(caches) != set(NETWORK_CACHES):
        got = sorted(map(str, caches)) if isinstance(caches, dict) else type(caches).__name__
        return (f"caches should be a dict with the keys {', '.join(NETWORK_CACHES)} (the cache of each layer, as "
                f"the layer returns it; for a ReLU, its input Z); got {got}.")
    conv1 = caches["conv1"]
    if not isinstance(conv1, tuple) or len(conv1) != 4 or not isinstance(conv1[0], np.ndarray) \
            or conv1[0].shape != X.shape or not np.array_equal(conv1[0], X):
        return "caches['conv1'] should be the cache of the first conv_forward_fast, (X, W1, b1, hparameters)."
    dense = caches["dense"]
    if not isinstance(dense, tuple) or len(dense) != 3 or not isinstance(dense[1], np.ndarray) \
            or not np.array_equal(dense[1], params["W3"]):
        return "caches['dense'] should be the cache of dense_forward, (A, W3, b3), with A the flattened pool2 output."
    return None


def compare_dicts(name: str, got, expected: dict, *, hint: str = "") -> str | None:
    """Compare a dict of arrays (parameters, gradients) key by key; a message, or ``None``."""
    if not isinstance(got, dict):
        return f"{name} should be a dict with the keys {', '.join(expected)}; got {type(got).__name__}."
    if set(got) != set(expected):
        return (f"{name} should have exactly the keys {', '.join(expected)}; got {', '.join(map(str, got)) or 'none'}."
                + (f"\n  Hint: {hint}" if hint else ""))
    for k in expected:
        msg = compare_arrays(f"{name}[{k!r}]", got[k], np.asarray(expected[k]), hint=hint)
        if msg:
            return msg
    return None


def check_case(fn: Callable, func: str, case: str | Case = "canonical", *, quiet: bool = False) -> Case:
    """Run ``fn`` on one stored case and raise ``AssertionError`` with a specific message if it is wrong."""
    if not callable(fn):
        raise ValueError(f"check_case: the first argument must be your function {func}, got {type(fn).__name__}")
    if func not in SPECS:
        raise ValueError(f"check_case: unknown function {func!r}; known: {', '.join(SPECS)}")
    spec = SPECS[func]
    c = case if isinstance(case, Case) else load_case(func, case)
    args = copy.deepcopy(c.args)
    before = copy.deepcopy(c.args)
    try:
        result = fn(*args)
    except NotImplementedError:
        raise
    except Exception as exc:
        raise _fail(func, c, spec.lesson,
                    f"{func}({', '.join(spec.params)}) raised {type(exc).__name__}: {exc}") from exc
    got = _unpack(func, spec, result, c)
    problems = []
    msg = _check_not_mutated(func, spec, before, args)
    if msg:
        raise _fail(func, c, spec.lesson, msg)
    if "cache" in got:
        msg = _check_cache(func, c.args, got["cache"], c, spec)
        if msg:
            raise _fail(func, c, spec.lesson, msg)
    if "caches" in got:
        msg = _check_network_caches(c.args, got["caches"])
        if msg:
            raise _fail(func, c, spec.lesson, msg)
    for name in spec.returns:
        if name in ("cache", "caches"):
            continue
        expected = c.outputs[name]
        if isinstance(expected, dict):
            msg = compare_dicts(name, got[name], expected, hint=spec.hints.get(name, ""))
        elif name in spec.scalar:
            msg = _check_scalar(func, name, got[name], expected, c, spec)
        else:
            note = spec.shape_note(c.args) if spec.shape_note else ""
            msg = compare_arrays(name, got[name], expected, shape_note=note, hint=spec.hints.get(name, ""),
                                 dtype=spec.dtypes.get(name, "float64"))
        if msg:
            problems.append(msg)
    if problems:
        try:
            diag = spec.diagnose(fn, c.args, got, c) if spec.diagnose else None
        except Exception:   # a diagnosis is a bonus: it never hides the message above
            diag = None
        text = "\n".join(problems) + (f"\nDiagnosis: {diag}" if diag else "")
        raise _fail(func, c, spec.lesson, text)
    if not quiet:
        print(f"\u2714 {func} passed case '{c.name}' ({c.description}).")
    return c


def check_function(fn: Callable, func: str, cases: str | Iterable[str] | None = None) -> None:
    """Check ``fn`` (the learner's ``func``) on stored cases: by default every visible case.

    Prints one pass line when every case passes; raises ``AssertionError`` at the first failure.
    """
    if cases is None:
        cases = [name for name in list_cases(func)[func] if load_case(func, name).visible]
    elif isinstance(cases, str):
        cases = [cases]
    names = []
    for name in cases:
        check_case(fn, func, name, quiet=True)
        names.append(name)
    print(f"\u2714 {func}: all {len(names)} check(s) passed ({', '.join(names)}).")


def check_not_mutated(fn: Callable, *args, name: str | None = None) -> None:
    """Call ``fn(*args)`` and raise AssertionError if any argument was changed in place."""
    before = copy.deepcopy(args)
    fn(*args)
    spec = SPECS.get(name or getattr(fn, "__name__", ""), Spec(tuple(f"argument {i}" for i in range(len(args))),
                                                                (), ""))
    msg = _check_not_mutated(name or getattr(fn, "__name__", "function"), spec, before, args)
    assert msg is None, msg
    print(f"\u2714 {name or fn.__name__} leaves its inputs unchanged.")


def check_equal(name: str, got, expected, *, where: str = "", rtol: float = RTOL, atol: float = ATOL) -> None:
    """Assert that ``got`` equals ``expected`` (arrays or numbers), with an expected-against-got message."""
    expected_arr = np.asarray(expected)
    if expected_arr.ndim == 0:
        ok = np.ndim(got) == 0 and np.isclose(float(got), float(expected_arr), rtol=rtol, atol=atol)
        assert ok, (f"{name}: expected {float(expected_arr)!r}, got {_show(got)}."
                    + (f" Where to look: {where}." if where else ""))
        return
    msg = compare_arrays(name, np.asarray(got) if isinstance(got, (list, tuple)) else got, expected_arr,
                         dtype=str(expected_arr.dtype) if expected_arr.dtype == bool else "any")
    assert msg is None, msg + (f"\nWhere to look: {where}." if where else "")


def show_expected(func: str, case: str = "canonical", index: Sequence | None = None) -> None:
    """Print the stored expected output of a case, so that a lesson can show it."""
    c = load_case(func, case)
    for name, value in c.outputs.items():
        shown = value[tuple(index)] if index is not None and np.ndim(value) else value
        print(f"{name}{'' if index is None else list(index)} =\n{np.array2string(np.asarray(shown), precision=8)}")


def check_accuracy(fn: Callable, func: str = "train_cnn", case: str = "full_training", *, predict: Callable) -> float:
    """Train with ``fn`` (the learner's ``train_cnn``) on the digits, as pinned in :mod:`helpers.network`,
    and assert that ``predict`` (the learner's ``cnn_forward``) reaches the stated test accuracy.

    Prints the accuracy, the number of steps and the training time, and returns the accuracy.
    Notebook 10, 'Training'. While ``cnn-course`` grades, the grader decides this test itself: it runs
    ``train_cnn`` again out of the kernel and computes the accuracy from the returned weights.
    """
    import time

    from .data import load_digits
    from .network import ACCURACY_THRESHOLD, training_args

    if func != "train_cnn" or case != "full_training":
        raise ValueError(f"check_accuracy checks train_cnn on the case 'full_training'; got {func!r}, {case!r}")
    if not callable(fn) or not callable(predict):
        raise ValueError("check_accuracy: pass your train_cnn and, as predict=, your cnn_forward")
    spec = SPECS[func]
    where = "notebook 10, 'Training'"
    c = Case(func, case, "the pinned training run on the 1,437 training digits (helpers.network.TRAINING)", False,
             training_args(), {})
    args, before = copy.deepcopy(c.args), copy.deepcopy(c.args)
    t0 = time.perf_counter()
    try:
        result = fn(*args)
    except NotImplementedError:
        raise
    except Exception as exc:
        raise _fail(func, c, where, f"train_cnn({', '.join(spec.params)}) raised {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - t0
    got = _unpack(func, spec, result, c)
    msg = _check_not_mutated(func, spec, before, args)
    if msg:
        raise _fail(func, c, where, msg)
    params = got["params"]
    shapes = {k: np.shape(v) for k, v in before[2].items()}
    if not isinstance(params, dict) or {k: np.shape(v) for k, v in params.items()} != shapes:
        raise _fail(func, c, where, f"params should be a dict of arrays of the shapes {_show(shapes)}; got "
                                    f"{type(params).__name__ if not isinstance(params, dict) else sorted(params)}.")
    _, _, X_test, y_test = load_digits()
    try:
        out = predict(X_test, params)
    except Exception as exc:
        raise _fail(func, c, where, f"cnn_forward(X_test, trained params) raised {type(exc).__name__}: {exc}") from exc
    logits = out[0] if isinstance(out, tuple) else out
    if not isinstance(logits, np.ndarray) or logits.shape != (len(y_test), 10):
        raise _fail(func, c, where, f"cnn_forward(X_test, params) should give logits of shape ({len(y_test)}, 10); "
                                    f"got {getattr(logits, 'shape', type(logits).__name__)}.")
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    losses = got["losses"]
    steps = len(losses) if hasattr(losses, "__len__") else "?"
    if not accuracy >= ACCURACY_THRESHOLD:
        trend = ""
        if isinstance(losses, np.ndarray) and losses.ndim == 1 and losses.size > 10 and np.all(np.isfinite(losses)):
            trend = (f" The loss went from {float(np.mean(losses[:10])):.4g} (first 10 steps) to "
                     f"{float(np.mean(losses[-10:])):.4g} (last 10).")
        raise _fail(func, c, where,
                    f"test accuracy after training: expected at least {ACCURACY_THRESHOLD:.0%}, got {accuracy:.2%} "
                    f"({int(round(accuracy * len(y_test)))} of {len(y_test)} test digits right, {steps} steps)."
                    + trend + " A loss that does not fall points to the SGD step (its sign, the velocity) or to "
                    "the batch loop (every batch, the grads of that batch).")
    print(f"\u2714 train_cnn: test accuracy {accuracy:.2%} (at least {ACCURACY_THRESHOLD:.0%}) on {len(y_test)} held-out "
          f"digits after {steps} steps, trained in {seconds:.1f} s.")
    return accuracy


# --------------------------------------------------------------------------- loops (notebook 09)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _offset_loop(node) -> bool:
    """``for <name> in range(f):``, a loop over one of the f x f offsets of a window."""
    it = node.iter
    return (isinstance(node.target, ast.Name) and isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
            and it.func.id == "range" and len(it.args) == 1 and not it.keywords
            and isinstance(it.args[0], ast.Name) and it.args[0].id == "f")


def check_loops(fn: Callable) -> None:
    """Assert that the only Python loops of ``fn`` run over the f x f offsets of a window.

    Reads the function's source (its syntax tree; nothing is run or timed). Allowed: at most two nested
    ``for u in range(f):`` loops. Refused, with the line: any other ``for``, any ``while``, and
    comprehensions (a loop in one line). A stub that still raises ``NotImplementedError`` raises it
    again. Introduced in notebook 09, "No loop left".
    """
    import inspect
    import textwrap

    name = getattr(fn, "__name__", "function")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise ValueError(f"check_loops: cannot read the source of {name} ({exc}); define it in a cell with def") from exc
    tree = ast.parse(source)
    if any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n) for n in ast.walk(tree)):
        raise NotImplementedError(f"{name} still raises NotImplementedError: write it first")
    problems = []

    def visit(node, depth):
        for child in ast.iter_child_nodes(node):
            line = child.lineno if hasattr(child, "lineno") else None
            text = ast.get_source_segment(source, child).split("\n")[0].split("  #")[0] if line else ""
            if isinstance(child, (ast.For, ast.AsyncFor)):
                if not _offset_loop(child):
                    problems.append(f"line {line}: `{text.strip()}` is a loop over something else than an offset "
                                    "(only `for u in range(f):` and `for v in range(f):` are allowed)")
                elif depth >= 2:
                    problems.append(f"line {line}: `{text.strip()}` is a third loop over range(f); a window has only "
                                    "two offsets, u and v")
                visit(child, depth + 1)
                continue
            if isinstance(child, ast.While):
                problems.append(f"line {line}: `{text.strip()}` is a while loop")
            elif isinstance(child, _COMPREHENSIONS):
                problems.append(f"line {line}: `{text.strip()}` holds a comprehension, a Python loop in one line")
            visit(child, depth)

    visit(tree, 0)
    if problems:
        raise AssertionError(f"{name} has Python loops that the fast layers do without:\n  " + "\n  ".join(problems)
                             + "\nLet the windows view and whole-array operations do the work. "
                               "Where to look: notebook 09, 'The backward pass, fast' and 'Pooling, fast'.")
    print(f"\u2714 {name}: no Python loop but the f x f offsets.")
