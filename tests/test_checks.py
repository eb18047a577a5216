"""The learner-facing checks: right answers pass, realistic wrong answers fail with a useful message."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import variant

from helpers import checks, gradcheck, plots
from helpers.data import load_case, load_photo
from helpers.instructor.course import GRADED_FUNCTIONS


def fails(fn, func, case="canonical") -> str:
    with pytest.raises(AssertionError) as err:
        checks.check_case(fn, func, case, quiet=True)
    return str(err.value)


@pytest.mark.parametrize("func", sorted(GRADED_FUNCTIONS))
def test_reference_passes_every_case(func, reference, capsys):
    checks.check_function(reference[func], func, checks.list_cases(func)[func])
    assert f"\u2714 {func}: all" in capsys.readouterr().out


# ----------------------------------------------------------------- realistic mistakes, one message each
def test_conv_forward_forgotten_stride():
    msg = fails(variant("conv_forward", ("vert_start = h * stride", "vert_start = h"),
                        ("horiz_start = w * stride", "horiz_start = w")), "conv_forward")
    assert "Z has the right shape (2, 3, 4, 8) but wrong values" in msg
    assert "first wrong entry: Z[" in msg and "expected:" in msg and "got:" in msg and "largest absolute error" in msg
    assert "vert_start = h * stride" in msg and "Where to look: notebook 03" in msg


def test_conv_forward_forgotten_stride_passes_stride_1_only():
    wrong = variant("conv_forward", ("vert_start = h * stride", "vert_start = h"),
                    ("horiz_start = w * stride", "horiz_start = w"))
    checks.check_case(wrong, "conv_forward", "pad0_stride1", quiet=True)   # stride 1 hides the bug ...
    assert "wrong values" in fails(wrong, "conv_forward", "stride3_nonsquare")   # ... stride 3 does not


def test_conv_forward_forgotten_bias_is_diagnosed():
    msg = fails(variant("conv_forward", (" + b[0, 0, 0, c]", "")), "conv_forward")
    assert "Diagnosis: Every entry of Z is short by exactly b[..., c]: the bias was not added." in msg


def test_conv_forward_unpadded_input():
    msg = fails(variant("conv_forward", ("a_prev_pad = A_prev_pad[i]", "a_prev_pad = A_prev[i]")), "conv_forward")
    # a window that runs off the unpadded input silently broadcasts: the values are wrong, the hint names the cause
    assert "Z has the right shape (2, 3, 4, 8) but wrong values" in msg and "that you slice the padded input" in msg


def test_conv_forward_wrong_output_size_names_formula():
    msg = fails(variant("conv_forward", ("n_H = (n_H_prev + 2 * pad - f) // stride + 1",
                                         "n_H = (n_H_prev - f) // stride + 1")), "conv_forward")
    assert "expected shape: (2, 3, 4, 8)" in msg and "got shape:      (2, 2, 4, 8)" in msg
    assert "floor((5 + 2*1 - 3) / 2) + 1 = 3" in msg


def test_conv_forward_padded_cache():
    msg = fails(variant("conv_forward", ("cache = (A_prev, W, b, hparameters)",
                                         "cache = (A_prev_pad, W, b, hparameters)")), "conv_forward")
    assert "cache's A_prev should be the A_prev you were given, shape (2, 5, 7, 4)" in msg and "padded" in msg


def test_conv_single_step_array_result():
    msg = fails(variant("conv_single_step", ("Z = float(np.sum(s)) + b.item()", "Z = np.sum(s) + b")),
                "conv_single_step")
    assert "should be a scalar" in msg and "shape (1, 1, 1)" in msg and "b.item()" in msg


def test_conv_single_step_forgotten_bias():
    msg = fails(variant("conv_single_step", ("Z = float(np.sum(s)) + b.item()", "Z = float(np.sum(s))")),
                "conv_single_step")
    assert "expected: -6.999089450680221" in msg and "the bias was not added" in msg


def test_zero_pad_pads_every_axis():
    msg = fails(variant("zero_pad", ("((0, 0), (pad, pad), (pad, pad), (0, 0))", "pad")), "zero_pad")
    assert "expected shape: (4, 9, 9, 2)" in msg and "got shape:      (10, 9, 9, 8)" in msg
    assert "(4, 3 + 2*3, 3 + 2*3, 2)" in msg


def test_zero_pad_changing_input_is_caught():
    def zero_pad(X, pad):
        X *= 1.0
        X[0, 0, 0, 0] = 0.0
        return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    msg = fails(zero_pad, "zero_pad")
    assert "changed its input X in place" in msg and "entry [0, 0, 0, 0]" in msg


def test_conv_backward_pad_zero_slice():
    wrong = variant("conv_backward", ("dA_prev = dA_prev_pad[:, pad:pad + n_H_prev, pad:pad + n_W_prev, :]",
                                      "dA_prev = dA_prev_pad[:, pad:-pad, pad:-pad, :]"))
    checks.check_case(wrong, "conv_backward", "canonical", quiet=True)
    msg = fails(wrong, "conv_backward", "pad0_stride1")
    assert "dA_prev has the wrong shape" in msg and "got shape:      (2, 0, 0, 3)" in msg
    assert "X[pad:-pad] is empty when pad = 0" in msg


def test_conv_backward_ignoring_stride():
    wrong = variant("conv_backward", ("vert_start = h * stride", "vert_start = h"),
                    ("horiz_start = w * stride", "horiz_start = w"))
    msg = fails(wrong, "conv_backward")
    assert "dA_prev has the right shape" in msg and "dW has the right shape" in msg and "db" not in msg.split("dW")[0]


def test_pool_forward_halving_rule():
    msg = fails(variant("pool_forward", ("n_H = (n_H_prev - f) // stride + 1", "n_H = n_H_prev // 2"),
                        ("n_W = (n_W_prev - f) // stride + 1", "n_W = n_W_prev // 2")),
                "pool_forward", "canonical_stride1_max")
    assert "expected shape: (2, 3, 3, 3)" in msg and "halves an even side with stride = 2 and f = 2 (or f = 1), not in general" in msg


def test_pool_backward_ignoring_stride_hidden_by_stride_1():
    wrong = variant("pool_backward", ("vert_start = h * stride", "vert_start = h"),
                    ("horiz_start = w * stride", "horiz_start = w"))
    checks.check_case(wrong, "pool_backward", "canonical_max", quiet=True)      # the source's bug, hidden at stride 1
    checks.check_case(wrong, "pool_backward", "canonical_average", quiet=True)
    for case in ("stride2_max", "stride2_overlap_average", "stride3_max", "stride3_average"):
        msg = fails(wrong, "pool_backward", case)
        assert "dA_prev has the right shape" in msg and "must use the stride" in msg


def test_distribute_value_without_division():
    msg = fails(variant("distribute_value", ("average = dz / (f_H * f_W)", "average = dz")), "distribute_value")
    assert "expected: 0.5\n" in msg and "got:      2.0\n" in msg and "np.float64" not in msg


def test_mask_of_floats():
    msg = fails(variant("create_mask_from_window", ("mask = x == np.max(x)", "mask = (x == np.max(x)) * 1.0")),
                "create_mask_from_window")
    assert "should be a boolean array (dtype bool); got dtype float64" in msg


def test_relu_backward_at_zero():
    msg = fails(variant("relu_backward", ("np.where(Z > 0, dA, 0.0)", "np.where(Z >= 0, dA, 0.0)")),
                "relu_backward", "at_zero")
    assert "use Z > 0, not Z >= 0" in msg


def test_relu_integer_output():
    msg = fails(variant("relu", ("A = np.maximum(0.0, Z)", "A = np.maximum(0, Z).astype(int)")), "relu")
    assert "should have dtype float64; got dtype int64" in msg


def test_filter2d_true_convolution_is_diagnosed():
    msg = fails(variant("filter2d", ("np.sum(kernel * padded", "np.sum(kernel[::-1, ::-1] * padded")), "filter2d")
    assert "you computed true convolution" in msg and "cross-correlation" in msg


def test_filter2d_valid_only():
    def filter2d(image, kernel):
        k = kernel.shape[0]
        H, W = image.shape
        return np.array([[np.sum(kernel * image[i:i + k, j:j + k]) for j in range(W - k + 1)]
                         for i in range(H - k + 1)])
    msg = fails(filter2d, "filter2d")
    assert "expected shape: (6, 7)" in msg and "got shape:      (4, 5)" in msg


def test_to_grayscale_uint8_overflow():
    msg = fails(variant("to_grayscale", ("image = image.astype(np.float64)\n    ", ""),
                        ("0.299 * image[:, :, 0] + 0.587 * image[:, :, 1] + 0.114 * image[:, :, 2]",
                         "(image[:, :, 0] + image[:, :, 1] + image[:, :, 2]) / 3")), "to_grayscale", "bright_uint8")
    assert "wrong values" in msg and "wraps around above 255" in msg


def test_sobel_kernels_swapped():
    msg = fails(variant("sobel_kernels", ("return Kx, Ky", "return Ky, Kx")), "sobel_kernels")
    assert "Kx has the right shape (3, 3) but wrong values" in msg and "responds to vertical edges" in msg


def test_wrong_tuple_length():
    def conv_backward(dZ, cache):
        return np.zeros(cache[0].shape), np.zeros(cache[1].shape)
    assert "should return 3 values (dA_prev, dW, db); got a tuple of length 2" in fails(conv_backward, "conv_backward")


def test_single_value_expected_not_tuple():
    assert "should return one value (X_pad); got a tuple of 2" in fails(lambda X, pad: (X, pad), "zero_pad")


def test_stub_raises_not_implemented_unchanged():
    def zero_pad(X, pad):
        raise NotImplementedError()
    with pytest.raises(NotImplementedError):
        checks.check_function(zero_pad, "zero_pad")


# ----------------------------------------------------------------- gradient checks
def test_gradient_check_passes_and_fails(reference, capsys):
    errs = gradcheck.check_conv_gradients(reference["conv_forward"], reference["conv_backward"], stride=2, pad=1)
    assert max(errs.values()) < 1e-7 and "relative error" in capsys.readouterr().out
    wrong = variant("conv_backward", ("db[:, :, :, c] += dZ[i, h, w, c]", "db[:, :, :, c] += 2 * dZ[i, h, w, c]"))
    with pytest.raises(AssertionError, match=r"gradient check of db FAILED: relative error 3\.3"):
        gradcheck.check_conv_gradients(reference["conv_forward"], wrong)


def test_pool_gradient_check_catches_missing_stride(reference):
    wrong = variant("pool_backward", ("vert_start = h * stride", "vert_start = h"),
                    ("horiz_start = w * stride", "horiz_start = w"))
    gradcheck.check_pool_gradients(reference["pool_forward"], wrong, mode="max", f=2, stride=1)
    with pytest.raises(AssertionError, match="gradient check of dA_prev FAILED"):
        gradcheck.check_pool_gradients(reference["pool_forward"], wrong, mode="average", f=2, stride=3)


def test_activation_gradient_check(reference):
    assert gradcheck.check_activation_gradient(reference["relu"], reference["relu_backward"]) < 1e-9
    with pytest.raises(AssertionError, match="FAILED"):
        gradcheck.check_activation_gradient(reference["relu"], lambda dA, Z: dA)


# ----------------------------------------------------------------- helpers reject bad input clearly
@pytest.mark.parametrize("call,expected", [
    (lambda: plots.show_padding(np.zeros((3, 3)), np.zeros((5, 5))), r"x must have shape \(m, n_H, n_W, n_C\)"),
    (lambda: plots.show_padding(np.zeros((1, 3, 3, 1)), np.zeros((1, 4, 5, 1))), r"x_pad must have shape"),
    (lambda: plots.show_batch(np.zeros((3, 3, 3))), r"batch must have shape \(m, n_H, n_W, n_C\)"),
    (lambda: plots.show_channels(np.zeros((4, 4, 2))), r"image must have shape \(H, W, 3\)"),
    (lambda: plots.show_edges(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((3, 4)), np.zeros((4, 4))),
     r"gy must have the image's shape \(4, 4\)"),
    (lambda: plots.show_pooling(np.zeros((5, 5)), np.zeros((2, 2)), np.zeros((3, 3)), 3, 1),
     r"A_max must have shape \(3, 3\)"),
    (lambda: plots.show_activation(np.zeros(3), np.zeros(4), np.zeros(3)), r"same shape"),
    (lambda: plots.show_matrix(np.array([["a", "b"]])), r"must hold numbers"),
    (lambda: plots.show_sliding_window(np.zeros((1, 5, 5, 1)), 3, 0, 0, 0, 0), r"stride must be a positive integer"),
    (lambda: plots.show_receptive_field([("conv", 3, 1), ("pool", 2, 0)], 8), r"stride of layer 1 must be a positive"),
    (lambda: plots.show_receptive_field([("conv", 5, 1), ("conv", 5, 1)], 8), r"'conv' \(f = 5\) does not fit its "
                                                                              r"input of size 4"),
    (lambda: plots.show_receptive_field([3, 1], 8), r"layer 0 must be a \(label, f, stride\) tuple"),
    (lambda: gradcheck.numerical_gradient(lambda x: 0.0, np.zeros(3, dtype=np.float32)), r"must be float64"),
    (lambda: gradcheck.relative_error(np.zeros(3), np.zeros(4)), r"same shape"),
    (lambda: gradcheck.check_pool_gradients(None, None, mode="min"), r"mode must be 'max' or 'average'"),
    (lambda: load_case("conv_forward", "nope"), r"no case 'nope' for conv_forward; available: canonical"),
    (lambda: load_case("conv_fwd"), r"no reference cases for 'conv_fwd'"),
    (lambda: load_photo(size=(0, 3)), r"size must be \(width, height\)"),
    (lambda: checks.check_case(np.zeros, "nope"), r"unknown function 'nope'"),
    (lambda: checks.check_case(3, "relu"), r"must be your function relu"),
])
def test_bad_input_raises_value_error(call, expected):
    with pytest.raises(ValueError, match=expected):
        call()


def test_receptive_field_formula_and_figure():
    """r_L = r_{L-1} + (f_L - 1) * (product of the strides before L), and the figure colours exactly r input cells."""
    from matplotlib.patches import Rectangle

    layers = [("conv", 3, 1), ("conv", 3, 1), ("pool", 2, 2), ("conv", 3, 1), ("pool", 2, 2)]
    assert plots.receptive_fields(layers) == [(1, 1), (3, 1), (5, 1), (6, 2), (10, 2), (12, 4)]
    assert plots.receptive_fields([("pool", 2, 2)] * 3)[-1] == (8, 8)     # three 2 x 2 poolings tile 8 pixels
    fig = plots.show_receptive_field(layers, n=24)
    cells = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    bottom = [p for p in cells if p.get_y() < 0]
    assert len(bottom) == 24 and len({tuple(p.get_facecolor()) for p in bottom}) == 2
    red = [p for p in bottom if tuple(p.get_facecolor()) != tuple(bottom[0].get_facecolor())]   # cell 0 is outside
    assert len(red) == 12, f"the middle unit of the last layer depends on 12 input pixels, {len(red)} coloured"
    assert plots.show_receptive_field(layers, n=24, unit=0) is not None


def test_figures_draw_from_arrays():
    fig = plots.show_padding(np.ones((1, 3, 3, 1)), np.pad(np.ones((1, 3, 3, 1)), ((0, 0), (2, 2), (2, 2), (0, 0))))
    assert fig is not None and len(fig.axes) == 2
    fig = plots.show_image_as_matrix(load_photo(), 10, 10, 8)
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert len(texts) == 64 and all(0 <= int(t) <= 255 for t in texts)


# ----------------------------------------------------------------- check_loops (notebook 09)
def test_check_loops_passes_the_fast_references_and_names_every_other_loop(reference, capsys):
    from helpers.checks import check_loops

    for name in ("conv_forward_fast", "conv_backward_fast", "pool_forward_fast", "pool_backward_fast"):
        check_loops(variant(name))                            # a function defined from source, as in a cell
        assert "no Python loop but the f x f offsets" in capsys.readouterr().out
    with pytest.raises(AssertionError) as err:
        check_loops(variant("conv_forward"))                  # the loop version of notebook 03
    msg = str(err.value)
    assert "`for i in range(m):` is a loop over something else than an offset" in msg
    assert "`for c in range(n_C):`" in msg and "Where to look: notebook 09" in msg
    wrong = variant("pool_forward_fast", ("A = np.max(windows, axis=(4, 5))",
                                          "A = np.array([np.max(w, axis=(3, 4)) for w in windows])"))
    with pytest.raises(AssertionError, match=r"holds a comprehension, a Python loop in one line"):
        check_loops(wrong)
    wrong = variant("pool_backward_fast", ("for v in range(f):", "for v in range(n_W):"))
    with pytest.raises(AssertionError, match=r"`for v in range\(n_W\):` is a loop over something else"):
        check_loops(wrong)


def test_check_loops_on_a_stub_raises_not_implemented():
    from helpers.checks import check_loops

    src = "def stub(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    ns: dict = {}
    import linecache
    linecache.cache["<stub cell>"] = (len(src), None, src.splitlines(True), "<stub cell>")
    exec(compile(src, "<stub cell>", "exec"), ns)
    with pytest.raises(NotImplementedError, match="still raises NotImplementedError"):
        check_loops(ns["stub"])
