"""Numerical gradient checking: compare a backward pass with centred finite differences.

For a layer ``Y = forward(X)`` and any upstream gradient ``dY``, the scalar ``L = sum(Y * dY)`` has
``dL/dX = backward(dY)``. We estimate ``dL/dX`` one entry at a time with

    (L(X + h e_k) - L(X - h e_k)) / (2 h)

and report the relative error ``|a - n| / max(|a| + |n|, tiny)`` (norms over all entries). Below
``1e-7`` the backward pass is right; above ``1e-3`` it is certainly wrong. Used in notebooks 04, 06
and 07. The three lesson checks (``check_conv_gradients``, ``check_pool_gradients``,
``check_activation_gradient``) are demonstrations: they return at once while ``cnn-course``
grades, and no graded test calls them (a hygiene test sees to that).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ._mode import demonstration
from ._validate import require_array, require_positive_int

DEFAULT_THRESHOLD = 1e-7


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred finite-difference gradient of the scalar function ``f`` at ``x`` (float64)."""
    x = require_array("numerical_gradient", "x", x, dtype_kind="f")
    if x.dtype != np.float64:
        raise ValueError(f"numerical_gradient: x must be float64 for finite differences; got dtype {x.dtype}")
    x = x.copy()
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        k = it.multi_index
        old = x[k]
        x[k] = old + h
        plus = float(f(x))
        x[k] = old - h
        minus = float(f(x))
        x[k] = old
        grad[k] = (plus - minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / max(||a|| + ||b||, 1e-12)``: scale-free, 0 when they agree."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: both gradients must have the same shape; got {a.shape} and {b.shape}")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12))


def check_gradient(name: str, analytic, numeric, threshold: float = DEFAULT_THRESHOLD, where: str = "") -> float:
    """Assert that an analytic gradient matches the numerical one; print and return the relative error."""
    numeric = np.asarray(numeric, dtype=np.float64)
    if not isinstance(analytic, np.ndarray) or analytic.shape != numeric.shape:
        raise AssertionError(f"gradient check of {name}: your gradient should be an array of shape {numeric.shape}; "
                             f"got {getattr(analytic, 'shape', type(analytic).__name__)}.")
    err = relative_error(analytic, numeric)
    if not err < threshold:
        idx = np.unravel_index(int(np.argmax(np.abs(analytic - numeric))), numeric.shape)
        raise AssertionError(
            f"gradient check of {name} FAILED: relative error {err:.3e} (must be below {threshold:.0e}).\n"
            f"  largest disagreement at {name}{list(map(int, idx))}: finite differences give {numeric[idx]:.8g}, "
            f"your backward gives {analytic[idx]:.8g}." + (f"\nWhere to look: {where}." if where else ""))
    print(f"\u2714 gradient check of {name}: relative error {err:.2e} (< {threshold:.0e})")
    return err


def _loss(forward_value, dY):
    return float(np.sum(forward_value * dY))


def check_layer_gradients(forward: Callable, backward: Callable, inputs: dict, *, forward_args: tuple = (),
                          output_index: int | None = 0, seed: int = 0, threshold: float = DEFAULT_THRESHOLD,
                          backward_order: tuple | None = None, where: str = "") -> dict:
    """Check ``backward`` against finite differences of ``forward`` for every array in ``inputs``.

    ``forward(*inputs.values(), *forward_args)`` returns the output (or a tuple whose
    ``output_index`` entry is the output, and whose last entry is the cache). ``backward(dY, cache)``
    returns the gradients in the order of ``backward_order`` (default: the order of ``inputs``).
    Returns the relative error per input.
    """
    if not inputs:
        raise ValueError("check_layer_gradients: inputs must name at least one array")
    names = list(inputs)
    values = {k: require_array("check_layer_gradients", k, v, dtype_kind="f").astype(np.float64).copy()
              for k, v in inputs.items()}

    def run(vals):
        out = forward(*[vals[k] for k in names], *forward_args)
        return (out[output_index], out[-1]) if output_index is not None else (out, None)

    Y, cache = run(values)
    rng = np.random.default_rng(seed)
    dY = rng.standard_normal(np.shape(Y))
    grads = backward(dY, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    order = list(backward_order or names)
    errors = {}
    for k in names:
        if k not in order:
            continue
        analytic = grads[order.index(k)]

        def f(x, k=k):
            vals = dict(values)
            vals[k] = x
            return _loss(run(vals)[0], dY)

        errors[k] = check_gradient(f"d{k}" if not k.startswith("d") else k, analytic,
                                   numerical_gradient(f, values[k]), threshold, where)
    return errors


@demonstration
def check_conv_gradients(conv_forward: Callable, conv_backward: Callable, *, stride: int = 2, pad: int = 1,
                         f: int = 3, shape: tuple = (2, 5, 6, 3), n_C: int = 2, seed: int = 0) -> dict:
    """Gradient check of ``conv_backward`` against ``conv_forward`` (notebook 04) on a small random layer."""
    stride = require_positive_int("check_conv_gradients", "stride", stride)
    f = require_positive_int("check_conv_gradients", "f", f)
    if len(shape) != 4:
        raise ValueError(f"check_conv_gradients: shape must be (m, n_H_prev, n_W_prev, n_C_prev); got {shape}")
    rng = np.random.default_rng(seed)
    inputs = {"A_prev": rng.standard_normal(shape), "W": rng.standard_normal((f, f, shape[3], n_C)),
              "b": rng.standard_normal((1, 1, 1, n_C))}
    print(f"conv layer: A_prev {shape}, W {(f, f, shape[3], n_C)}, stride {stride}, pad {pad}")
    return check_layer_gradients(conv_forward, conv_backward, inputs,
                                 forward_args=({"stride": stride, "pad": pad},), seed=seed + 1,
                                 where="notebook 04, 'The three gradients'")


@demonstration
def check_pool_gradients(pool_forward: Callable, pool_backward: Callable, *, mode: str = "max", f: int = 2,
                         stride: int = 2, shape: tuple = (2, 6, 7, 2), seed: int = 0) -> dict:
    """Gradient check of ``pool_backward`` against ``pool_forward`` (notebook 06).

    The input entries are drawn well apart so that no window has a near tie for its maximum, where
    max pooling has no gradient.
    """
    if mode not in ("max", "average"):
        raise ValueError(f"check_pool_gradients: mode must be 'max' or 'average'; got {mode!r}")
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    A_prev = (rng.permutation(n).reshape(shape) * 0.1).astype(np.float64)  # distinct values, 0.1 apart
    print(f"{mode} pool: A_prev {tuple(shape)}, f {f}, stride {stride}")
    hp = {"f": require_positive_int("check_pool_gradients", "f", f),
          "stride": require_positive_int("check_pool_gradients", "stride", stride)}
    return check_layer_gradients(lambda A: pool_forward(A, hp, mode), lambda dA, cache: pool_backward(dA, cache, mode),
                                 {"A_prev": A_prev}, seed=seed + 1, where="notebook 06, 'Putting it together'")


@demonstration
def check_activation_gradient(forward: Callable, backward: Callable, *, shape: tuple = (2, 4, 4, 3),
                              seed: int = 0, kinks: int = 4, slope_at_zero: float = 0.0) -> float:
    """Gradient check of an activation: ``backward(dA, Z)`` against ``forward(Z)`` (notebook 07).

    ReLU has a kink at 0, where a finite difference means nothing (it gives the average of the two
    slopes). So ``kinks`` entries of Z are put at exactly 0 and checked directly against the
    course's convention, ``relu'(0) = slope_at_zero`` (0): there dZ must be ``slope_at_zero * dA``.
    The other entries are kept at least 0.01 away from 0 and checked by finite differences.
    ``kinks=0`` checks an activation without a kink.
    """
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal(shape)
    Z = np.where(np.abs(Z) < 0.01, 0.5, Z)
    dA = rng.standard_normal(shape)
    dA = np.where(np.abs(dA) < 0.1, 1.0, dA)          # a visible gradient everywhere, at the kinks too
    kink = np.zeros(Z.shape, dtype=bool)
    kink.flat[rng.choice(Z.size, size=min(int(kinks), Z.size), replace=False)] = True
    Z[kink] = 0.0
    analytic = backward(dA, Z.copy())
    numeric = numerical_gradient(lambda z: _loss(forward(z), dA), Z)
    numeric[kink] = slope_at_zero * dA[kink]           # the convention, not the meaningless finite difference
    if isinstance(analytic, np.ndarray) and analytic.shape == Z.shape and kink.any():
        bad = kink & ~np.isclose(np.asarray(analytic, dtype=np.float64), numeric, rtol=1e-9, atol=1e-12)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise AssertionError(
                f"gradient check of dZ FAILED at Z == 0: at dZ{list(idx)}, where Z is exactly 0 and dA is "
                f"{float(dA[idx]):.8g}, your backward gives {float(analytic[idx]):.8g}; the course takes the "
                f"slope of ReLU at 0 as {float(slope_at_zero):g}, so dZ must be {float(numeric[idx]):.8g} there"
                + (" (use Z > 0, not Z >= 0)" if slope_at_zero == 0 else "")
                + ".\nWhere to look: notebook 07, 'ReLU backward'.")
    return check_gradient("dZ", analytic, numeric, where="notebook 07, 'ReLU backward'")


def check_network_gradients(forward: Callable, backward: Callable, loss: Callable, params: dict, X: np.ndarray,
                            y: np.ndarray, *, entries: int = 24, threshold: float = 1e-6, h: float = 1e-5,
                            seed: int = 0) -> dict:
    """Gradient check of a whole network, every parameter included (notebook 10).

    ``forward(X, params)`` returns ``(logits, caches)``, ``loss(logits, y)`` returns ``(loss, dlogits)``
    and ``backward(dlogits, caches)`` returns ``{name: gradient}``. For every parameter, ``entries``
    entries drawn at random (all of them when it has fewer, as the biases do) are checked by centred
    finite differences of the loss, and the relative error over them must be below ``threshold``.
    Choose ``X`` so that no ReLU input sits near 0 and no pooling window has a near tie, where the
    network has a kink (continuous random inputs almost never do). Graded: this is not a
    demonstration, it runs while ``cnn-course`` grades. Returns the relative error per parameter.
    """
    if not isinstance(params, dict) or not params:
        raise ValueError("check_network_gradients: params must be a non-empty dict of arrays")
    entries = require_positive_int("check_network_gradients", "entries", entries)
    values = {k: require_array("check_network_gradients", k, v, dtype_kind="f").astype(np.float64).copy()
              for k, v in params.items()}

    def total(vals):
        logits, _ = forward(X.copy(), vals)
        return float(loss(logits, y.copy())[0])

    logits, caches = forward(X.copy(), {k: v.copy() for k, v in values.items()})
    _, dlogits = loss(logits, y.copy())
    grads = backward(dlogits, caches)
    where = "notebook 10, 'The network backward'"
    if not isinstance(grads, dict):
        raise AssertionError(f"gradient check of the network: your backward should return a dict of gradients with "
                             f"the keys {', '.join(values)}; got {type(grads).__name__}.\nWhere to look: {where}.")
    missing = [k for k in values if k not in grads]
    if missing:
        raise AssertionError(f"gradient check of the network: your backward returns no gradient for "
                             f"{', '.join(missing)}; every parameter needs one.\nWhere to look: {where}.")
    rng = np.random.default_rng(seed)
    errors = {}
    for k, value in values.items():
        g = grads[k]
        if not isinstance(g, np.ndarray) or g.shape != value.shape:
            raise AssertionError(f"gradient check of d{k}: your gradient should be an array of shape {value.shape}; "
                                 f"got {getattr(g, 'shape', type(g).__name__)}.\nWhere to look: {where}.")
        flat = np.arange(value.size) if value.size <= entries else rng.choice(value.size, entries, replace=False)
        numeric = np.zeros(len(flat))
        for j, n in enumerate(flat):
            idx = np.unravel_index(int(n), value.shape)
            vals = dict(values)
            vals[k] = value.copy()
            vals[k][idx] = value[idx] + h
            plus = total(vals)
            vals[k][idx] = value[idx] - h
            numeric[j] = (plus - total(vals)) / (2 * h)
        picked = np.asarray(g, dtype=np.float64).reshape(-1)[flat]
        shown = f"{len(flat)} entries of d{k}" if len(flat) < value.size else f"d{k}"
        errors[k] = check_gradient(shown, picked, numeric, threshold, where)
    return errors
