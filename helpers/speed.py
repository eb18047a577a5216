"""Timing for the speed race of notebook 09: wall times, FLOP counts and this machine's GEMM peak.

A convolution layer with ``A_prev`` of shape (m, n_H_prev, n_W_prev, n_C_prev) and ``W`` of shape
(f, f, n_C_prev, n_C) does ``2 * m * n_H * n_W * f * f * n_C_prev * n_C`` floating-point operations
in its forward pass (one multiply and one add per weight, per output entry); its backward pass does
twice that (one product for dA_prev, one for dW). Dividing by the time taken gives GFLOP/s, which
:func:`gemm_peak` puts in proportion: the rate of one large float64 matrix product on this machine.

Every number here is a wall time on a machine that other programs share: take the best of a few
runs, and read the figures as orders of magnitude. Nothing here is graded: :func:`race` is a
demonstration (it returns at once while ``cnn-course`` grades), and this module implements no
graded function. Introduced in notebook 09, section "The race".
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ._mode import demonstration
from ._validate import require_array


def output_size(n: int, f: int, pad: int, stride: int) -> int:
    """floor((n + 2 * pad - f) / stride) + 1, the output-size formula of notebook 03."""
    return (n + 2 * pad - f) // stride + 1


def conv_flops(A_shape: tuple, W_shape: tuple, hparameters: dict) -> int:
    """The floating-point operations of one convolution forward pass: 2 * m * n_H * n_W * f * f * n_C_prev * n_C."""
    if len(A_shape) != 4 or len(W_shape) != 4:
        raise ValueError(f"conv_flops: A_shape must be (m, n_H_prev, n_W_prev, n_C_prev) and W_shape (f, f, n_C_prev, "
                         f"n_C); got {A_shape} and {W_shape}")
    m, n_H_prev, n_W_prev, _ = A_shape
    f, _, n_C_prev, n_C = W_shape
    pad, stride = int(hparameters["pad"]), int(hparameters["stride"])
    n_H, n_W = output_size(n_H_prev, f, pad, stride), output_size(n_W_prev, f, pad, stride)
    return 2 * m * n_H * n_W * f * f * n_C_prev * n_C


def best_time(fn: Callable, *args, repeat: int = 5, budget: float = 2.0) -> float:
    """The shortest wall time in seconds of ``fn(*args)`` over up to ``repeat`` runs, stopping early once
    ``budget`` seconds have gone (a slow function runs once)."""
    best, spent = float("inf"), 0.0
    for _ in range(max(1, int(repeat))):
        t0 = time.perf_counter()
        fn(*args)
        t = time.perf_counter() - t0
        best, spent = min(best, t), spent + t
        if spent >= budget:
            break
    return best


def gemm_peak(n: int = 1024, repeat: int = 5) -> float:
    """This machine's float64 matrix-product rate in GFLOP/s: the best of ``repeat`` products of two
    n x n matrices (2 n^3 operations each), which is what NumPy's BLAS reaches at its best."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    X @ Y                                      # warm up: threads started, pages touched
    return 2 * n ** 3 / best_time(lambda: X @ Y, repeat=repeat) / 1e9


def _times(ratio: float) -> str:
    """A speed-up as a learner reads it: 1,234x, 12.3x, 0.45x."""
    return f"{ratio:8,.0f}x" if ratio >= 100 else f"{ratio:8.3g}x"


@demonstration
def race(contestants: dict, A_prev: np.ndarray, W: np.ndarray, b: np.ndarray, hparameters: dict, *,
         repeat: int = 5, seed: int = 0) -> dict:
    """Time each contestant's forward and backward pass on the same layer, and check that they agree.

    ``contestants`` maps a name to ``(forward, backward)``, functions with the contract of
    ``conv_forward`` and ``conv_backward``. Each forward runs on ``(A_prev, W, b, hparameters)``,
    each backward on one fixed random ``dZ`` and the cache its own forward returned. Returns
    ``{name: {"forward": seconds, "backward": seconds}}`` (best of ``repeat`` runs; a run slower than
    2 s is not repeated), and prints the times and the speed-up over the first contestant. A cache is handed from a contestant's
    forward to its own backward untouched, so it may hold more than the course's cache. Raises
    ``AssertionError`` if a contestant's Z or gradients differ from the first one's.
    """
    A_prev = require_array("race", "A_prev", A_prev, ndim=4)
    if not contestants:
        raise ValueError("race: give at least one contestant, {name: (forward, backward)}")
    results, first = {}, None
    dZ = None
    for name, (forward, backward) in contestants.items():
        Z, cache = forward(A_prev, W, b, hparameters)
        if dZ is None:
            dZ = np.random.default_rng(seed).standard_normal(np.shape(Z))
        grads = backward(dZ, cache)
        if first is None:
            first = (name, np.asarray(Z), tuple(np.asarray(g) for g in grads))
        else:
            for label, got, want in zip(("Z", "dA_prev", "dW", "db"), (Z, *grads), (first[1], *first[2])):
                got = np.asarray(got)
                assert got.shape == want.shape and np.allclose(got, want, rtol=1e-8, atol=1e-8), (
                    f"race: {name} and {first[0]} disagree on {label} (shape {got.shape} against {want.shape}, "
                    f"largest difference {np.max(np.abs(got - want)) if got.shape == want.shape else 'n/a'}): "
                    "a race between different answers means nothing; fix the functions first")
        results[name] = {"forward": best_time(forward, A_prev, W, b, hparameters, repeat=repeat),
                         "backward": best_time(backward, dZ, cache, repeat=repeat)}
    base = results[first[0]]
    flops = conv_flops(A_prev.shape, W.shape, hparameters)
    print(f"layer: A_prev {A_prev.shape}, W {W.shape}, {hparameters}; forward {flops / 1e6:.1f} MFLOP, backward "
          f"{2 * flops / 1e6:.1f} MFLOP")
    for name, t in results.items():
        print(f"  {name:<24} forward {t['forward'] * 1e3:10.2f} ms ({_times(base['forward'] / t['forward'])})   "
              f"backward {t['backward'] * 1e3:10.2f} ms ({_times(base['backward'] / t['backward'])})")
    return results
