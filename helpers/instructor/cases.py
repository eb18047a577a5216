"""The reference cases: which inputs each graded function is checked on.

Each builder returns the positional arguments of one call. Builders get the reference solutions
(``ref``, a dict of functions taken from the source notebooks) for inputs that are themselves
outputs of another block, such as the ``dZ`` and ``cache`` that ``conv_backward`` consumes.

``visible`` cases are what the visible test cells check: the canonical cases of the lesson,
published in the source material (and, for ``conv_param_count``, the canonical layer of notebook 03),
and, beside three of them, one small case that a published case
cannot catch a common mistake on (an exact zero for ``relu_backward``, pad 0 for ``conv_backward``,
a non-square window for ``distribute_value``). The others are what the hidden test cells check:
pad 0, non-square inputs, stride 2 and 3 in forward and backward, a batch of one, f = 1, and for
notebook 09's fast layers also overlapping windows and windows with ties for their maximum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..data import load_digits, load_photo
from ..network import ACCURACY_THRESHOLD, init_params, param_shapes, training_args


@dataclass(frozen=True)
class CaseSpec:
    description: str
    build: Callable[[dict], tuple]
    visible: bool = False
    # fresh(ref, rng): the out-of-kernel check's fresh inputs, drawn with the grader's Generator (default:
    # the stored inputs with new values, helpers.instructor.outofkernel.fresh.freshen)
    fresh: Callable | None = None
    # rule(ref, args, result): the grader's own judgement of a result (a message, or None when it passes),
    # instead of equality with the reference; such a case runs on its pinned inputs and is not stored
    rule: Callable | None = None

    @property
    def stored(self) -> bool:
        return self.rule is None


def _rng(seed: int):
    np.random.seed(seed)
    return np.random.randn


def _zero_pad(seed, shape, pad):
    def build(ref):
        randn = _rng(seed)
        return (randn(*shape), pad)
    return build


def _conv_single(seed, shape):
    def build(ref):
        randn = _rng(seed)
        a = randn(*shape)
        W = randn(*shape)
        b = randn(1, 1, 1)
        return (a, W, b)
    return build


def _conv_inputs(seed, a_shape, w_shape, pad, stride):
    randn = _rng(seed)
    A_prev = randn(*a_shape)
    W = randn(*w_shape)
    b = randn(1, 1, 1, w_shape[3])
    return A_prev, W, b, {"pad": pad, "stride": stride}


def _conv_forward(seed, a_shape, w_shape, pad, stride):
    def build(ref):
        return _conv_inputs(seed, a_shape, w_shape, pad, stride)
    return build


def _conv_backward(seed, a_shape, w_shape, pad, stride, dz_is_z=False):
    def build(ref):
        A_prev, W, b, hp = _conv_inputs(seed, a_shape, w_shape, pad, stride)
        Z, cache = ref["conv_forward"](A_prev, W, b, hp)
        dZ = Z if dz_is_z else np.random.RandomState(seed + 100).randn(*Z.shape)
        return (dZ, (A_prev, W, b, hp))
    return build


def _pool_forward(seed, shape, f, stride, mode):
    def build(ref):
        randn = _rng(seed)
        return (randn(*shape), {"f": f, "stride": stride}, mode)
    return build


def _pool_backward(seed, shape, f, stride, mode):
    def build(ref):
        randn = _rng(seed)
        A_prev = randn(*shape)
        hp = {"stride": stride, "f": f}
        A, _ = ref["pool_forward"](A_prev, hp, mode)
        dA = randn(*A.shape)  # same random stream as the source material's canonical case
        return (dA, (A_prev, hp), mode)
    return build


def _whole_numbers(seed, shape, low=-2, high=2):
    """Small whole numbers as float64: windows with ties for their maximum."""
    return np.random.RandomState(seed).randint(low, high + 1, size=shape).astype(np.float64)


def _pool_forward_ties(seed, shape, f, stride, mode):
    def build(ref):
        return (_whole_numbers(seed, shape), {"f": f, "stride": stride}, mode)
    return build


def _pool_backward_ties(seed, shape, f, stride, mode):
    def build(ref):
        A_prev = _whole_numbers(seed, shape)
        hp = {"stride": stride, "f": f}
        A, _ = ref["pool_forward"](A_prev, hp, mode)
        return (np.random.RandomState(seed + 100).randn(*A.shape), (A_prev, hp), mode)
    return build


def _relu(seed, shape):
    def build(ref):
        return (_rng(seed)(*shape),)
    return build


def _relu_backward(seed, shape):
    def build(ref):
        randn = _rng(seed)
        Z = randn(*shape)
        dA = randn(*shape)
        return (dA, Z)
    return build


def _relu_backward_zeros(seed, shape, zeros):
    """Z = randn(shape) with exact zeros at the flat indices ``zeros``; dA = randn(shape), no zeros."""
    def build(ref):
        rs = np.random.RandomState(seed)
        Z = rs.randn(*shape)
        Z.flat[list(zeros)] = 0.0
        dA = rs.randn(*shape)
        dA[dA == 0] = 1.0
        return (dA, Z)
    return build


def _photo_crop(top, left, h, w):
    return load_photo()[top:top + h, left:left + w].copy()


def _filter2d(seed, img_shape, k_shape):
    def build(ref):
        randn = _rng(seed)
        return (randn(*img_shape), randn(*k_shape))
    return build


def _step_image(h=6, w=7, at=3):
    img = np.zeros((h, w))
    img[:, at:] = 1.0
    return img


# ---- notebook 10: each builder draws from a Generator, the stored case's (its seed) or the grader's (fresh)
def _seeded(make, seed):
    """``build`` and ``fresh`` for a builder ``make(ref, g)`` that draws from the Generator ``g``."""
    return {"build": lambda ref: make(ref, np.random.default_rng(seed)), "fresh": make}


def _dense_forward(m, n_in, n_out):
    def make(ref, g):
        return (g.standard_normal((m, n_in)), g.standard_normal((n_in, n_out)), g.standard_normal((1, n_out)))
    return make


def _dense_backward(m, n_in, n_out):
    def make(ref, g):
        A, W, b = _dense_forward(m, n_in, n_out)(ref, g)
        return (g.standard_normal((m, n_out)), (A, W, b))
    return make


def _softmax(m, n_classes, scale=1.0, shift=0.0):
    def make(ref, g):
        logits = g.standard_normal((m, n_classes)) * scale + shift
        return (logits, g.integers(0, n_classes, size=m))
    return make


def _net_inputs(g, m, scale=0.3):
    X = g.random((m, 8, 8, 1))
    params = {k: g.standard_normal(shape) * scale for k, shape in param_shapes().items()}
    return X, params


def _cnn_forward(m):
    def make(ref, g):
        return _net_inputs(g, m)
    return make


def _cnn_backward(m):
    def make(ref, g):
        X, params = _net_inputs(g, m)
        _, caches = ref["cnn_forward"](X, params)
        return (g.standard_normal((m, 10)) / m, caches)
    return make


def _sgd(learning_rate, beta, zero_velocity=False):
    def make(ref, g):
        shapes = {"W": (3, 4), "b": (1, 4), "W_conv": (2, 2, 1, 3)}
        params = {k: g.standard_normal(s) for k, s in shapes.items()}
        grads = {k: g.standard_normal(s) for k, s in shapes.items()}
        velocity = {k: np.zeros(s) if zero_velocity else g.standard_normal(s) for k, s in shapes.items()}
        return (params, grads, velocity, learning_rate, beta)
    return make


def _train_steps(m, num_epochs, batch_size):
    def make(ref, g):
        X_train, y_train, _, _ = load_digits()
        pick = g.choice(len(y_train), size=m, replace=False)
        init_seed, seed = (int(v) for v in g.integers(0, 2 ** 31, size=2))
        return (X_train[pick], y_train[pick], init_params(init_seed), num_epochs, batch_size, 0.05, 0.9, seed)
    return make


def _accuracy_rule(ref, args, result):
    """The grader's judgement of the pinned training run: it computes the test accuracy itself, with the
    reference cnn_forward, from the weights that train_cnn returned."""
    if type(result) is not tuple or len(result) != 2:
        return "train_cnn should return the tuple (params, losses)"
    params, shapes = result[0], param_shapes()
    if type(params) is not dict or set(params) != set(shapes):
        return f"train_cnn should return params as a dict with the keys {', '.join(shapes)}"
    for k, shape in shapes.items():
        v = params[k]
        if type(v) is not np.ndarray or v.shape != shape or v.dtype.kind != "f":
            return f"params[{k!r}] should be a float array of shape {shape}"
        if not np.all(np.isfinite(v)):
            return f"params[{k!r}] holds inf or nan after training: the training diverged"
    _, _, X_test, y_test = load_digits()
    logits, _ = ref["cnn_forward"](X_test, {k: params[k].astype(np.float64) for k in shapes})
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    if accuracy >= ACCURACY_THRESHOLD:
        return None
    return (f"the trained weights give a test accuracy of {accuracy:.2%} (computed by the grader), below "
            f"{ACCURACY_THRESHOLD:.0%}")


SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])

CASES: dict[str, dict[str, CaseSpec]] = {
    "zero_pad": {
        "canonical": CaseSpec("seed 1, x = randn(4, 3, 3, 2), pad = 3", _zero_pad(1, (4, 3, 3, 2), 3), True),
        "pad0": CaseSpec("pad = 0 leaves x as it is", _zero_pad(2, (2, 3, 4, 2), 0)),
        "nonsquare_batch1": CaseSpec("a batch of one non-square image (1, 2, 5, 3), pad = 2",
                                     _zero_pad(3, (1, 2, 5, 3), 2)),
    },
    "conv_single_step": {
        "canonical": CaseSpec("seed 1, a_slice_prev and W = randn(4, 4, 3), b = randn(1, 1, 1)",
                              _conv_single(1, (4, 4, 3)), True),
        "f1": CaseSpec("f = 1 with one channel", _conv_single(2, (1, 1, 1))),
        "many_channels": CaseSpec("a 3 x 3 window with 7 channels", _conv_single(3, (3, 3, 7))),
    },
    "conv_forward": {
        "canonical": CaseSpec("seed 1, A_prev (2, 5, 7, 4), W (3, 3, 4, 8), pad 1, stride 2",
                              _conv_forward(1, (2, 5, 7, 4), (3, 3, 4, 8), 1, 2), True),
        "pad0_stride1": CaseSpec("pad 0, stride 1", _conv_forward(2, (2, 4, 5, 3), (2, 2, 3, 4), 0, 1)),
        "stride3_nonsquare": CaseSpec("stride 3, pad 2, non-square A_prev (2, 9, 11, 3)",
                                      _conv_forward(3, (2, 9, 11, 3), (3, 3, 3, 2), 2, 3)),
        "stride2_floor": CaseSpec("stride 2 where (n + 2 pad - f) / stride is not whole: the floor matters",
                                  _conv_forward(5, (1, 6, 8, 2), (3, 3, 2, 3), 0, 2)),
        "f1_batch1": CaseSpec("f = 1 on a batch of one", _conv_forward(4, (1, 4, 6, 3), (1, 1, 3, 5), 0, 1)),
    },
    "conv_param_count": {
        "canonical": CaseSpec("the canonical layer of notebook 03: f = 3, n_C_prev = 4, n_C = 8",
                              lambda ref: (3, 4, 8), True),
        "f1": CaseSpec("a 1 x 1 convolution: f = 1, n_C_prev = 64, n_C = 32", lambda ref: (1, 64, 32)),
        "deep": CaseSpec("a deep layer: f = 7, n_C_prev = 64, n_C = 128", lambda ref: (7, 64, 128)),
        "single": CaseSpec("one filter on one channel: f = 2, n_C_prev = 1, n_C = 1", lambda ref: (2, 1, 1)),
    },
    "conv_backward": {
        "canonical": CaseSpec("seed 1, A_prev (10, 4, 4, 3), W (2, 2, 3, 8), pad 2, stride 2, dZ = Z",
                              _conv_backward(1, (10, 4, 4, 3), (2, 2, 3, 8), 2, 2, dz_is_z=True), True),
        "pad0": CaseSpec("seed 6, A_prev (2, 4, 4, 3), W (3, 3, 3, 2), pad 0, stride 1: cutting pad:-pad off "
                         "leaves nothing", _conv_backward(6, (2, 4, 4, 3), (3, 3, 3, 2), 0, 1), True),
        "pad0_stride1": CaseSpec("pad 0, stride 1", _conv_backward(2, (2, 4, 5, 3), (2, 2, 3, 4), 0, 1)),
        "stride3_nonsquare": CaseSpec("stride 3, pad 2, non-square A_prev (2, 9, 11, 3)",
                                      _conv_backward(3, (2, 9, 11, 3), (3, 3, 3, 2), 2, 3)),
        "stride2_floor": CaseSpec("stride 2, pad 0, where the last rows and columns are in no window",
                                  _conv_backward(5, (1, 6, 8, 2), (3, 3, 2, 3), 0, 2)),
        "f1_batch1": CaseSpec("f = 1 on a batch of one", _conv_backward(4, (1, 4, 6, 3), (1, 1, 3, 5), 0, 1)),
    },
    "pool_forward": {
        "canonical_stride1_max": CaseSpec("seed 1, A_prev (2, 5, 5, 3), f 3, stride 1, max",
                                          _pool_forward(1, (2, 5, 5, 3), 3, 1, "max"), True),
        "canonical_stride1_average": CaseSpec("seed 1, A_prev (2, 5, 5, 3), f 3, stride 1, average",
                                              _pool_forward(1, (2, 5, 5, 3), 3, 1, "average"), True),
        "canonical_stride2_max": CaseSpec("seed 1, A_prev (2, 5, 5, 3), f 3, stride 2, max",
                                          _pool_forward(1, (2, 5, 5, 3), 3, 2, "max"), True),
        "canonical_stride2_average": CaseSpec("seed 1, A_prev (2, 5, 5, 3), f 3, stride 2, average",
                                              _pool_forward(1, (2, 5, 5, 3), 3, 2, "average"), True),
        "stride3_nonsquare_max": CaseSpec("f 2, stride 3, non-square (2, 8, 10, 3), max",
                                          _pool_forward(3, (2, 8, 10, 3), 2, 3, "max")),
        "stride3_nonsquare_average": CaseSpec("f 2, stride 3, non-square (2, 8, 10, 3), average",
                                              _pool_forward(3, (2, 8, 10, 3), 2, 3, "average")),
        "f2_stride2_odd_max": CaseSpec("f 2, stride 2 on 7 x 7: the floor drops the last row and column",
                                       _pool_forward(4, (1, 7, 7, 2), 2, 2, "max")),
        "f1_batch1_average": CaseSpec("f 1, stride 1 on a batch of one: the identity",
                                      _pool_forward(5, (1, 3, 4, 2), 1, 1, "average")),
    },
    "create_mask_from_window": {
        "canonical": CaseSpec("x = [[-1, 2, 3], [2, -3, 2], [1, 5, -2]]",
                              lambda ref: (np.array([[-1, 2, 3], [2, -3, 2], [1, 5, -2]]),), True),
        "random_2x3": CaseSpec("seed 1, x = randn(2, 3)", lambda ref: (_rng(1)(2, 3),)),
        "single": CaseSpec("a 1 x 1 window", lambda ref: (np.array([[7.5]]),)),
    },
    "distribute_value": {
        "canonical": CaseSpec("dz = 2, shape = (2, 2)", lambda ref: (2, (2, 2)), True),
        "nonsquare_3x2": CaseSpec("dz = 1.5, shape = (3, 2): a window that is not square",
                                  lambda ref: (1.5, (3, 2)), True),
        "nonsquare": CaseSpec("dz = 3.0, shape = (2, 3)", lambda ref: (3.0, (2, 3))),
        "negative_3x3": CaseSpec("dz = -1.5, shape = (3, 3)", lambda ref: (-1.5, (3, 3))),
    },
    "pool_backward": {
        "canonical_max": CaseSpec("seed 1, A_prev (5, 5, 3, 2), f 2, stride 1, dA = randn(5, 4, 2, 2), max",
                                  _pool_backward(1, (5, 5, 3, 2), 2, 1, "max"), True),
        "canonical_average": CaseSpec("seed 1, A_prev (5, 5, 3, 2), f 2, stride 1, dA = randn(5, 4, 2, 2), average",
                                      _pool_backward(1, (5, 5, 3, 2), 2, 1, "average"), True),
        "stride2_max": CaseSpec("f 2, stride 2 (windows side by side), max",
                                _pool_backward(2, (2, 6, 6, 3), 2, 2, "max")),
        "stride2_overlap_average": CaseSpec("f 3, stride 2 (windows overlap), average",
                                            _pool_backward(6, (2, 7, 9, 2), 3, 2, "average")),
        "stride3_max": CaseSpec("f 2, stride 3 (gaps between windows), non-square, max",
                                _pool_backward(3, (2, 8, 11, 3), 2, 3, "max")),
        "stride3_average": CaseSpec("f 2, stride 3 (gaps between windows), non-square, average",
                                    _pool_backward(3, (2, 8, 11, 3), 2, 3, "average")),
        "f1_batch1_max": CaseSpec("f 1 on a batch of one, max", _pool_backward(4, (1, 3, 4, 2), 1, 1, "max")),
    },
    "relu": {
        "canonical": CaseSpec("seed 1, Z = randn(2, 4, 4, 3)", _relu(1, (2, 4, 4, 3)), True),
        "with_zeros": CaseSpec("exact zeros and tiny values",
                               lambda ref: (np.array([[[[-2.0], [0.0]], [[1e-12], [3.5]]]]),)),
        "batch1": CaseSpec("a batch of one (1, 3, 5, 1)", _relu(2, (1, 3, 5, 1))),
    },
    "relu_backward": {
        "canonical": CaseSpec("seed 1, Z = randn(2, 4, 4, 3), dA = randn(2, 4, 4, 3)",
                              _relu_backward(1, (2, 4, 4, 3)), True),
        "exact_zero": CaseSpec("seed 3, Z = randn(1, 3, 4, 2) with four exact zeros, where the gradient is 0",
                               _relu_backward_zeros(3, (1, 3, 4, 2), (0, 5, 10, 19)), True),
        "at_zero": CaseSpec("the gradient at Z = 0 is taken as 0",
                            lambda ref: (np.array([[[[2.0], [3.0]], [[-1.0], [5.0]]]]),
                                         np.array([[[[0.0], [1.0]], [[-4.0], [0.0]]]]))),
        "batch1": CaseSpec("a batch of one (1, 3, 5, 1)", _relu_backward(2, (1, 3, 5, 1))),
    },
    "to_grayscale": {
        "canonical": CaseSpec("a 16 x 20 uint8 crop of the photograph", lambda ref: (_photo_crop(200, 250, 16, 20),),
                              True),
        "float_input": CaseSpec("a float image (4, 5, 3) with values in [0, 1]",
                                lambda ref: (np.random.RandomState(7).rand(4, 5, 3),)),
        "bright_uint8": CaseSpec("bright uint8 pixels, where R + G + B overflows uint8",
                                 lambda ref: (np.full((2, 3, 3), 250, dtype=np.uint8),)),
    },
    "sobel_kernels": {
        "canonical": CaseSpec("no arguments", lambda ref: (), True),
    },
    "filter2d": {
        "canonical": CaseSpec("seed 1, image = randn(6, 7), kernel = randn(3, 3)", _filter2d(1, (6, 7), (3, 3)), True),
        "kernel5_nonsquare": CaseSpec("a 5 x 5 kernel on an 8 x 9 image", _filter2d(2, (8, 9), (5, 5))),
        "kernel1": CaseSpec("a 1 x 1 kernel", _filter2d(3, (4, 3), (1, 1))),
        "sobel_on_step": CaseSpec("the Sobel x kernel on a dark-to-bright vertical step",
                                  lambda ref: (_step_image(), SOBEL_X.copy())),
    },
    "sobel_edges": {
        "canonical": CaseSpec("the grayscale of a 24 x 32 crop of the photograph",
                              lambda ref: (ref["to_grayscale"](_photo_crop(180, 240, 24, 32)),), True),
        "step": CaseSpec("a vertical step: gy is zero inside, gx is not",
                         lambda ref: (_step_image(5, 6, 3),)),
    },
    "dense_forward": {
        "canonical": CaseSpec("A (4, 5), W (5, 3), b (1, 3)", **_seeded(_dense_forward(4, 5, 3), 10), visible=True),
        "batch1": CaseSpec("a batch of one, A (1, 7), W (7, 2)", **_seeded(_dense_forward(1, 7, 2), 11)),
        "network_head": CaseSpec("the network's head, A (6, 128), W (128, 10)", **_seeded(_dense_forward(6, 128, 10), 12)),
    },
    "dense_backward": {
        "canonical": CaseSpec("A (4, 5), W (5, 3), dZ (4, 3)", **_seeded(_dense_backward(4, 5, 3), 13), visible=True),
        "square": CaseSpec("a square W (4, 4), where a transposed dW has the right shape",
                           **_seeded(_dense_backward(3, 4, 4), 14)),
        "batch1": CaseSpec("a batch of one, A (1, 6), W (6, 2)", **_seeded(_dense_backward(1, 6, 2), 15)),
    },
    "softmax_cross_entropy": {
        "canonical": CaseSpec("logits (5, 10) = randn, labels 0-9", **_seeded(_softmax(5, 10), 16), visible=True),
        "large_logits": CaseSpec("large logits, about 1000 (np.exp overflows above 709)",
                                 **_seeded(_softmax(3, 10, 50.0, 1000.0), 17), visible=True),
        "very_negative": CaseSpec("logits about -1000 (np.exp underflows to 0)", **_seeded(_softmax(4, 10, 50.0, -1000.0), 18)),
        "two_classes": CaseSpec("two classes, a batch of 6", **_seeded(_softmax(6, 2, 3.0), 19)),
        "batch1": CaseSpec("a batch of one", **_seeded(_softmax(1, 10, 2.0), 20)),
    },
    "cnn_forward": {
        "canonical": CaseSpec("X (2, 8, 8, 1) in [0, 1], random params of the network's shapes",
                              **_seeded(_cnn_forward(2), 21), visible=True),
        "batch1": CaseSpec("a batch of one", **_seeded(_cnn_forward(1), 22)),
        "batch5": CaseSpec("a batch of five", **_seeded(_cnn_forward(5), 23)),
    },
    "cnn_backward": {
        "canonical": CaseSpec("dlogits (2, 10) and the caches of cnn_forward on X (2, 8, 8, 1)",
                              **_seeded(_cnn_backward(2), 24), visible=True),
        "batch1": CaseSpec("a batch of one", **_seeded(_cnn_backward(1), 25)),
        "batch3": CaseSpec("a batch of three", **_seeded(_cnn_backward(3), 26)),
    },
    "sgd_momentum_step": {
        "canonical": CaseSpec("three parameters, learning_rate 0.1, beta 0.9, a velocity from earlier steps",
                              **_seeded(_sgd(0.1, 0.9), 27), visible=True),
        "first_step": CaseSpec("the first step: the velocity is 0", **_seeded(_sgd(0.05, 0.9, True), 28)),
        "no_momentum": CaseSpec("beta 0: plain SGD", **_seeded(_sgd(0.2, 0.0), 29)),
    },
    "train_cnn": {
        "first_steps": CaseSpec("2 epochs over 64 training digits, batches of 16 (8 steps): the loss falls",
                                **_seeded(_train_steps(64, 2, 16), 30), visible=True),
        "uneven_batches": CaseSpec("1 epoch over 50 digits, batches of 16: the last batch has 2",
                                   **_seeded(_train_steps(50, 1, 16), 31)),
        "full_training": CaseSpec(f"the pinned training run (helpers.network.TRAINING) reaches "
                                  f"{ACCURACY_THRESHOLD:.0%} test accuracy", lambda ref: training_args(),
                                  rule=_accuracy_rule),
    },
}


# Notebook 09: the fast layers are graded on their loop versions' cases (the same inputs, the same
# descriptions) and on more: overlapping windows and ties (tests/test_reference_data.py checks that
# the fast reference solutions give the loop versions' values on every case).
_FAST_MORE: dict[str, dict[str, CaseSpec]] = {
    "conv_forward_fast": {},
    "conv_backward_fast": {
        "stride2_overlap": CaseSpec("f 3, stride 2, pad 1, non-square (2, 7, 6, 2): windows overlap by one row",
                                    _conv_backward(7, (2, 7, 6, 2), (3, 3, 2, 3), 1, 2)),
    },
    "pool_forward_fast": {
        "ties_max": CaseSpec("whole numbers from -2 to 2, (2, 6, 7, 2), f 3, stride 2, max: windows with ties",
                             _pool_forward_ties(8, (2, 6, 7, 2), 3, 2, "max")),
    },
    "pool_backward_fast": {
        "ties_max": CaseSpec("whole numbers from -2 to 2, (1, 4, 6, 2), f 2, stride 2, max: a tie sends the whole "
                             "gradient to every entry equal to the maximum, as create_mask_from_window does",
                             _pool_backward_ties(9, (1, 4, 6, 2), 2, 2, "max"), True),
        "stride2_overlap_max": CaseSpec("f 3, stride 2 (windows overlap), max",
                                        _pool_backward(7, (2, 7, 9, 2), 3, 2, "max")),
        "ties_overlap_max": CaseSpec("whole numbers from -2 to 2, (2, 5, 6, 2), f 3, stride 1, max: ties in "
                                     "overlapping windows", _pool_backward_ties(10, (2, 5, 6, 2), 3, 1, "max")),
    },
}
CASES.update({fast: {**CASES[fast.removesuffix("_fast")], **more} for fast, more in _FAST_MORE.items()})

# Outputs that are checked against the inputs rather than stored (the caches).
NOT_STORED = {"cache", "caches"}
