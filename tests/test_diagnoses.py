"""The visible checks catch the mistakes a careful reader found them letting through, and every
failure message names the mistake it sees (and only that one), in plain numbers.

Each wrong implementation is the reference solution (the source notebook's solution cell) with one
text change, or a wrapper around the reference function from the ``reference`` fixture.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from conftest import variant

import helpers
from helpers import checks, gradcheck
from helpers.data import list_cases, load_case
from helpers.instructor.cases import CASES
from helpers.instructor.course import GRADED_FUNCTIONS

NUMPY_REPR = re.compile(r"np\.(float|int|uint|bool|complex)\w*\(|np\.(True|False)_")


def visible_failure(fn, func: str) -> str:
    """The message of the visible check (every visible case, as the visible test cell runs it)."""
    with pytest.raises(AssertionError) as err:
        checks.check_function(fn, func)
    msg = str(err.value)
    assert "Where to look: notebook" in msg, msg
    assert not NUMPY_REPR.search(msg), msg
    return msg


def case_failure(fn, func: str, case: str) -> str:
    with pytest.raises(AssertionError) as err:
        checks.check_case(fn, func, case, quiet=True)
    msg = str(err.value)
    assert not NUMPY_REPR.search(msg), msg
    return msg


def passes(fn, func: str, case: str) -> None:
    checks.check_case(fn, func, case, quiet=True)


# ----------------------------------------------------------------- the reference still passes everything
@pytest.mark.parametrize("func", sorted(GRADED_FUNCTIONS))
def test_reference_passes_visible_and_hidden(func, reference, capsys):
    visible = [n for n, spec in CASES[func].items() if spec.visible]
    hidden = [n for n, spec in CASES[func].items() if not spec.visible and spec.stored]   # not: the rule cases
    checks.check_function(reference[func], func)                       # what the visible cell runs
    out = capsys.readouterr().out
    assert f"all {len(visible)} check(s) passed ({', '.join(sorted(visible))})" in out
    if hidden:
        checks.check_function(reference[func], func, hidden)
    assert sorted(list_cases(func)[func]) == sorted(visible + hidden)


def test_new_visible_cases_are_visible_and_small():
    for func, case in (("relu_backward", "exact_zero"), ("conv_backward", "pad0"),
                       ("distribute_value", "nonsquare_3x2")):
        c = load_case(func, case)
        assert c.visible and CASES[func][case].visible
    assert (load_case("relu_backward", "exact_zero").args[1] == 0).sum() == 4
    assert load_case("conv_backward", "pad0").args[1][3] == {"pad": 0, "stride": 1}
    assert load_case("distribute_value", "nonsquare_3x2").args[1] == (3, 2)


# ----------------------------------------------------------------- the three holes
def test_relu_backward_greater_equal_fails_the_visible_check():
    wrong = variant("relu_backward", ("np.where(Z > 0, dA, 0.0)", "np.where(Z >= 0, dA, 0.0)"))
    passes(wrong, "relu_backward", "canonical")                    # the canonical case has no exact zero
    msg = visible_failure(wrong, "relu_backward")
    assert "case 'exact_zero'" in msg and "use Z > 0, not Z >= 0" in msg


def test_relu_backward_greater_equal_fails_the_gradient_check(reference):
    wrong = variant("relu_backward", ("np.where(Z > 0, dA, 0.0)", "np.where(Z >= 0, dA, 0.0)"))
    with pytest.raises(AssertionError, match=r"FAILED at Z == 0: .*must be 0 there \(use Z > 0, not Z >= 0\)"):
        gradcheck.check_activation_gradient(reference["relu"], wrong)
    assert gradcheck.check_activation_gradient(reference["relu"], reference["relu_backward"]) < 1e-9


def test_activation_gradient_check_without_kink():
    def softplus(Z):
        return np.log1p(np.exp(Z))

    def softplus_backward(dA, Z):
        return dA / (1 + np.exp(-Z))
    assert gradcheck.check_activation_gradient(softplus, softplus_backward, kinks=0) < 1e-7
    with pytest.raises(AssertionError, match="FAILED"):
        gradcheck.check_activation_gradient(softplus, lambda dA, Z: dA, kinks=0)


def test_conv_backward_pad_slice_fails_the_visible_check():
    wrong = variant("conv_backward", ("dA_prev = dA_prev_pad[:, pad:pad + n_H_prev, pad:pad + n_W_prev, :]",
                                      "dA_prev = dA_prev_pad[:, pad:-pad, pad:-pad, :]"))
    passes(wrong, "conv_backward", "canonical")                    # pad 2 hides it
    msg = visible_failure(wrong, "conv_backward")
    assert "case 'pad0'" in msg and "got shape:      (2, 0, 0, 3)" in msg
    assert "Diagnosis: dA_prev is empty: with pad = 0, dA_prev_pad[:, pad:-pad, pad:-pad, :]" in msg
    assert "dA_prev_pad[:, pad:pad + n_H_prev, pad:pad + n_W_prev, :]" in msg


@pytest.mark.parametrize("changes,expect", [
    ((("(f_H, f_W) = shape\n    average = dz / (f_H * f_W)\n    a = np.full((f_H, f_W)",
       "n = shape[0]\n    average = dz / (n * n)\n    a = np.full((n, n)"),),
     ["got shape:      (3, 3)", "Diagnosis: a has shape (3, 3), a square: the window is shape = (3, 2)"]),
    ((("average = dz / (f_H * f_W)", "average = dz / (f_H * f_H)"),),
     ["expected: 0.25\n", "got:      0.16666666666666666\n",
      "Diagnosis: Every entry is dz / (f_H * f_H) = 1.5 / 9: the window is 3 x 2, not square. Divide by f_H * f_W = 6"]),
    ((("average = dz / (f_H * f_W)", "average = dz / (f_W * f_W)"),),
     ["Diagnosis: Every entry is dz / (f_W * f_W) = 1.5 / 4: the window is 3 x 2, not square"]),
], ids=["square_shape", "n_H_squared", "n_W_squared"])
def test_distribute_value_square_window_fails_the_visible_check(changes, expect):
    wrong = variant("distribute_value", *changes)
    passes(wrong, "distribute_value", "canonical")                 # a 2 x 2 window hides it
    msg = visible_failure(wrong, "distribute_value")
    assert "case 'nonsquare_3x2'" in msg
    for text in expect:
        assert text in msg


def test_distribute_value_without_division_is_named():
    msg = visible_failure(variant("distribute_value", ("average = dz / (f_H * f_W)", "average = dz")),
                          "distribute_value")
    assert "expected: 0.5\n" in msg and "got:      2.0\n" in msg
    assert "Diagnosis: Every entry is dz itself (2.0)" in msg and "divide by f_H * f_W = 4" in msg


# ----------------------------------------------------------------- to_grayscale
GRAY = "0.299 * image[:, :, 0] + 0.587 * image[:, :, 1] + 0.114 * image[:, :, 2]"
WRAP = "wraps around"


@pytest.mark.parametrize("changes,names", [
    (((GRAY, "0.2126 * image[:, :, 0] + 0.7152 * image[:, :, 1] + 0.0722 * image[:, :, 2]"),),
     "You used the ITU-R BT.709 weights (0.2126, 0.7152, 0.0722)"),
    (((GRAY, "0.299 * image[:, :, 2] + 0.587 * image[:, :, 1] + 0.114 * image[:, :, 0]"),),
     "R and B are exchanged"),
    (((GRAY, "(" + GRAY + ") / 255"),), "Your gray is the expected one divided by 255"),
    ((("image = image.astype(np.float64)", "image = image.astype(np.float64) / 255.0"),),
     "Your gray is the expected one divided by 255"),
    (((GRAY, "(image[:, :, 0] + image[:, :, 1] + image[:, :, 2]) / 3"),),
     "You took the plain mean of the three channels"),
], ids=["bt709", "swapped_rb", "divided_by_255", "scaled_to_unit", "float_mean"])
def test_to_grayscale_named_mistakes_are_not_blamed_on_uint8(changes, names):
    msg = visible_failure(variant("to_grayscale", *changes), "to_grayscale")
    assert "case 'canonical'" in msg and "uint8 crop" in msg          # the input is uint8 ...
    assert f"Diagnosis: {names}" in msg
    assert WRAP not in msg and "uint8" not in msg.split("Diagnosis:")[1]   # ... and that is not the mistake


@pytest.mark.parametrize("expr", ["(image[:, :, 0] + image[:, :, 1] + image[:, :, 2]) / 3",
                                  "(image[:, :, 0] + image[:, :, 1] + image[:, :, 2]) // 3",
                                  "(image[:, :, 0] + image[:, :, 1] + image[:, :, 2]) * (1 / 3)"])
def test_to_grayscale_uint8_wrap_is_named_when_it_wraps(expr):
    wrong = variant("to_grayscale", ("image = image.astype(np.float64)\n    ", ""), (GRAY, expr))
    for msg in (visible_failure(wrong, "to_grayscale"), case_failure(wrong, "to_grayscale", "bright_uint8")):
        assert f"Diagnosis: Your gray follows R + G + B added as uint8, which {WRAP}" in msg


def test_to_grayscale_bt709_on_float_input(reference):
    def to_grayscale(image):
        x = np.asarray(image, dtype=np.float64)
        return 0.2126 * x[:, :, 0] + 0.7152 * x[:, :, 1] + 0.0722 * x[:, :, 2]
    msg = case_failure(to_grayscale, "to_grayscale", "float_input")
    assert "BT.709" in msg and WRAP not in msg


# ----------------------------------------------------------------- pooling
def test_average_pool_not_divided_by_f_squared():
    wrong = variant("pool_forward", ("A[i, h, w, c] = np.mean(a_prev_slice)", "A[i, h, w, c] = np.sum(a_prev_slice)"))
    msg = visible_failure(wrong, "pool_forward")
    assert "case 'canonical_stride1_average'" in msg
    assert "Diagnosis: Every entry of A is exactly f*f = 9 times too large" in msg
    msg = case_failure(wrong, "pool_forward", "stride3_nonsquare_average")
    assert "exactly f*f = 4 times too large" in msg


def test_average_pool_divided_by_f_only():
    wrong = variant("pool_forward", ("A[i, h, w, c] = np.mean(a_prev_slice)",
                                     "A[i, h, w, c] = np.sum(a_prev_slice) / f"))
    assert "exactly f = 3 times too large: divide the window's sum by f*f = 9" in visible_failure(wrong, "pool_forward")


def test_pool_backward_average_not_divided():
    wrong = variant("pool_backward", ("average = dz / (f_H * f_W)", "average = dz"))
    msg = visible_failure(wrong, "pool_backward")
    assert "case 'canonical_average'" in msg and "exactly f*f = 4 times too large" in msg and "distribute_value" in msg


CORNERS = (("vert_start = h * stride", "vert_start = h"), ("horiz_start = w * stride", "horiz_start = w"))


def test_pool_forward_forgotten_stride_in_the_corners():
    msg = visible_failure(variant("pool_forward", *CORNERS), "pool_forward")
    assert "case 'canonical_stride2_average'" in msg
    assert "Diagnosis: A equals the stride-1 output cut to 2 x 2: the windows start at vert_start = h" in msg
    msg = case_failure(variant("pool_forward", *CORNERS), "pool_forward", "canonical_stride2_max")
    assert "A equals the stride-1 output cut to 2 x 2" in msg


def test_pool_forward_forgotten_stride_in_the_size():
    wrong = variant("pool_forward", *CORNERS, ("n_H = (n_H_prev - f) // stride + 1", "n_H = n_H_prev - f + 1"),
                    ("n_W = (n_W_prev - f) // stride + 1", "n_W = n_W_prev - f + 1"))
    msg = visible_failure(wrong, "pool_forward")
    assert "got shape:      (2, 3, 3, 3)" in msg
    assert "Diagnosis: A has the shape of a stride-1 output, (2, 3, 3, 3): the stride was left out" in msg
    assert "n_H = floor((5 - 3) / 2) + 1 = 2" in msg


# ----------------------------------------------------------------- conv_forward
def test_conv_forward_forgotten_stride_in_the_corners():
    msg = visible_failure(variant("conv_forward", *CORNERS), "conv_forward")
    assert "Diagnosis: Z equals the stride-1 output cut to 3 x 4: the windows start at vert_start = h" in msg
    assert "vert_start = h * stride" in msg.split("Diagnosis:")[1]
    assert "stride-1 output cut to 4 x 5: " in case_failure(variant("conv_forward", *CORNERS), "conv_forward",
                                                              "stride3_nonsquare")


def test_conv_forward_forgotten_stride_in_the_size(reference):
    def conv_forward(A_prev, W, b, hparameters):        # the stride ignored everywhere: a stride-1 layer
        Z, _ = reference["conv_forward"](A_prev, W, b, dict(hparameters, stride=1))
        return Z, (A_prev, W, b, hparameters)
    msg = visible_failure(conv_forward, "conv_forward")
    assert "got shape:      (2, 5, 7, 8)" in msg
    assert "Diagnosis: Z has the shape of a stride-1 output, (2, 5, 7, 8): the stride was left out" in msg
    assert "n_H = floor((5 + 2*1 - 3) / 2) + 1 = 3" in msg.split("Diagnosis:")[1]


def test_conv_forward_unpadded_slice():
    wrong = variant("conv_forward", ("a_prev_pad = A_prev_pad[i]", "a_prev_pad = A_prev[i]"))
    msg = visible_failure(wrong, "conv_forward")
    assert "Diagnosis: Z is what you get by taking the windows from A_prev itself: slice the padded input" in msg
    assert "stride-1" not in msg
    # on stride3_nonsquare a window cut short does not broadcast: the learner sees NumPy's own error
    assert "raised ValueError: operands could not be broadcast" in case_failure(wrong, "conv_forward",
                                                                                 "stride3_nonsquare")


def test_conv_forward_bias_diagnosis_still_first():
    msg = visible_failure(variant("conv_forward", (" + b[0, 0, 0, c]", "")), "conv_forward")
    assert "the bias was not added" in msg and "stride" not in msg.split("Diagnosis:")[1]


# ----------------------------------------------------------------- conv_param_count
COUNT = "count = f * f * n_C_prev * n_C + n_C"


@pytest.mark.parametrize("wrong,expect", [
    ("count = f * f * n_C_prev * n_C", "288 is the number of weights alone, f*f*n_C_prev*n_C = 3*3*4*8: the biases "
                                       "are missing"),
    ("count = f * f * n_C_prev * n_C + 1", "289 counts one bias for the whole layer"),
    ("count = (f * f + 1) * n_C", "80 = (f*f + 1)*n_C counts filters of one channel"),
    ("count = (f * n_C_prev + 1) * n_C", "104 = (f*n_C_prev + 1)*n_C: a filter is f x f, so it has f*f*n_C_prev = 36 "
                                          "weights, not f*n_C_prev = 12"),
    # no sharing: a set of filters at each of the 62 x 62 positions of the lesson's table
    ("count = 62 * 62 * (f * f * n_C_prev * n_C + n_C)", "1137824 is exactly 3844 times the right count, 296: as if "
                                                         "each of 3844 positions of the output had filters of its own"),
], ids=["no_biases", "one_bias", "no_input_channels", "f_not_squared", "no_sharing"])
def test_conv_param_count_mistakes_are_named(wrong, expect):
    msg = visible_failure(variant("conv_param_count", (COUNT, wrong)), "conv_param_count")
    assert "expected: 296" in msg and f"Diagnosis: {expect}" in msg, msg
    if "62 * 62" in wrong:
        assert "parameter sharing" in msg and "never on the size of the image" in msg


def test_conv_param_count_wants_a_whole_number():
    msg = visible_failure(variant("conv_param_count", (COUNT, "count = float(f * f * n_C_prev * n_C + n_C)")),
                          "conv_param_count")
    assert "should be a whole number, a Python int; got the float 296.0" in msg and "Diagnosis" not in msg
    msg = visible_failure(variant("conv_param_count", (COUNT, "count = (f * f * n_C_prev * n_C + n_C) > 0")),
                          "conv_param_count")
    assert "got bool True" in msg
    passes(variant("conv_param_count", (COUNT, "count = np.int64(f * f * n_C_prev * n_C + n_C)")),
           "conv_param_count", "canonical")


def test_conv_param_count_a_multiple_of_a_size_argument_is_not_called_sharing():
    """Multiplying by n_C once more is a multiple of the count too, but not a count per position."""
    msg = case_failure(variant("conv_param_count", (COUNT, "count = (f * f * n_C_prev * n_C + n_C) * n_C")),
                       "conv_param_count", "canonical")
    assert "expected: 296" in msg and "Diagnosis" not in msg


# ----------------------------------------------------------------- Sobel
@pytest.mark.parametrize("func,changes,expect", [
    ("sobel_edges", (("gx = filter2d(gray, Kx)", "gx = filter2d(gray, Kx[:, ::-1])"),),
     "gx has the opposite sign: Kx is flipped left to right"),
    ("sobel_edges", (("gy = filter2d(gray, Ky)", "gy = filter2d(gray, Ky[::-1, :])"),),
     "gy has the opposite sign: Ky is flipped upside down"),
    ("sobel_edges", (("Kx, Ky = sobel_kernels()", "Kx, Ky = (-k for k in sobel_kernels())"),),
     "gx and gy both have the opposite sign: both kernels are flipped by 180 degrees"),
    ("sobel_edges", (("np.sum(kernel * padded", "np.sum(kernel[::-1, ::-1] * padded"),),
     "gx and gy both have the opposite sign"),
    ("sobel_edges", (("Kx, Ky = sobel_kernels()", "Ky, Kx = sobel_kernels()"),), "gx and gy are exchanged"),
    ("sobel_edges", (("gx = filter2d(gray, Kx)", "gx = filter2d(gray, Ky)"), ("gy = filter2d(gray, Ky)",
                                                                             "gy = filter2d(gray, -Kx)")),
     "gx and gy are exchanged"),
    ("sobel_kernels", (("return Kx, Ky", "return Ky, Kx"),), "Kx and Ky are exchanged"),
    ("sobel_kernels", (("return Kx, Ky", "return Kx[:, ::-1], Ky"),), "Kx has the opposite sign (flipped)"),
], ids=["gx_flipped", "gy_flipped", "both_negated", "true_convolution", "swapped_kernels", "swapped_and_negated",
        "kernels_swapped", "kx_flipped"])
def test_sobel_flipped_or_exchanged_kernels(func, changes, expect):
    msg = visible_failure(variant(func, *changes), func)
    assert f"Diagnosis: {expect}" in msg


# ----------------------------------------------------------------- plain numbers everywhere
def test_messages_print_plain_numbers():
    msgs = [
        case_failure(variant("create_mask_from_window", ("mask = x == np.max(x)", "mask = x >= np.min(x)")),
                     "create_mask_from_window", "canonical"),
        case_failure(variant("relu", ("A = np.maximum(0.0, Z)", "A = np.abs(Z)")), "relu", "canonical"),
        case_failure(variant("conv_single_step", ("Z = float(np.sum(s)) + b.item()", "Z = np.float64(np.sum(s))")),
                     "conv_single_step", "canonical"),
    ]
    assert "expected: False\n" in msgs[0] and "got:      True\n" in msgs[0]

    def zero_pad(X, pad):
        X[0, 0, 0, 0] = np.float64(9.5)
        return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    msgs.append(case_failure(zero_pad, "zero_pad", "canonical"))
    assert "is now 9.5)" in msgs[-1]

    def conv_forward(A_prev, W, b, hparameters):
        n_H = (A_prev.shape[1] + 2 - 3) // 2 + 1
        n_W = (A_prev.shape[2] + 2 - 3) // 2 + 1
        return np.zeros((A_prev.shape[0], n_H, n_W, W.shape[3])), (A_prev, W, b, {"pad": np.int64(1),
                                                                                  "stride": np.int64(3)})
    msgs.append(case_failure(conv_forward, "conv_forward", "canonical"))
    assert "got {'pad': 1, 'stride': 3}" in msgs[-1]

    def relu_backward(dA, Z):
        return np.where(Z > 0, dA, 0.0).astype(np.float32)
    msgs.append(case_failure(relu_backward, "relu_backward", "canonical"))
    with pytest.raises(AssertionError) as err:
        checks.check_equal("n", np.int64(3), 4)
    msgs.append(str(err.value))
    assert msgs[-1] == "n: expected 4.0, got 3."
    for msg in msgs:
        assert not NUMPY_REPR.search(msg), msg


def test_show_formats_numpy_values_plainly():
    assert checks._show(np.float64(4.67)) == "4.67"
    assert checks._show(np.False_) == "False"
    assert checks._show(np.int64(7)) == "7"
    assert checks._show({"f": np.int64(2), "s": (np.float64(0.5),)}) == "{'f': 2, 's': (0.5,)}"


# ----------------------------------------------------------------- no solution to import
def test_helpers_export_no_graded_function():
    for name in GRADED_FUNCTIONS:
        assert not hasattr(helpers, name) and not hasattr(checks, name) and not hasattr(gradcheck, name)


def test_a_failing_diagnosis_never_hides_the_message(monkeypatch):
    def broken(fn, args, got, case):
        raise IndexError("a bug in a diagnosis")
    monkeypatch.setitem(checks.SPECS, "relu", dataclasses.replace(checks.SPECS["relu"], diagnose=broken))
    msg = case_failure(lambda Z: np.abs(Z), "relu", "canonical")
    assert "A has the right shape (2, 4, 4, 3) but wrong values" in msg and "Where to look: notebook 07" in msg
    assert "Diagnosis" not in msg and "IndexError" not in msg


# ----------------------------------------------------------------- notebook 10: the network's own pieces
def test_softmax_without_the_max_shift_overflows_on_large_logits():
    wrong = variant("softmax_cross_entropy",
                    ("shifted = logits - np.max(logits, axis=1, keepdims=True)", "shifted = logits"))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        passes(wrong, "softmax_cross_entropy", "canonical")     # small logits: the shift changes nothing
        msg = visible_failure(wrong, "softmax_cross_entropy")
    assert "case 'large_logits'" in msg and "np.exp overflows above about 709" in msg, msg
    assert "Subtract each row's maximum first" in msg, msg


def test_dense_backward_with_a_transposed_weight_gradient():
    wrong = variant("dense_backward", ("dW = A.T @ dZ", "dW = dZ.T @ A"))
    msg = visible_failure(wrong, "dense_backward")
    assert "dW has the wrong shape" in msg and "expected shape: (5, 3)" in msg and "got shape:      (3, 5)" in msg, msg
    assert "dW is the transpose of the weight gradient" in msg and "dW = A.T @ dZ" in msg, msg
    # a square W: the shape is right, the values are not, and the diagnosis still names it
    msg = case_failure(wrong, "dense_backward", "square")
    assert "right shape (4, 4) but wrong values" in msg and "dW is the transpose of the weight gradient" in msg, msg


def test_network_backward_that_skips_the_relu_mask():
    wrong = variant("cnn_backward", ('dZ2 = relu_backward(dA2, caches["relu2"])', "dZ2 = dA2"),
                    ('dZ1 = relu_backward(dA1, caches["relu1"])', "dZ1 = dA1"))
    msg = visible_failure(wrong, "cnn_backward")
    assert "case 'canonical'" in msg and "wrong values" in msg, msg
    assert "the backward pass skips the ReLU masks" in msg and "relu_backward(dA, Z)" in msg, msg


def test_network_backward_that_skips_one_relu_mask_fails_the_gradient_check(reference):
    wrong = variant("cnn_backward", ('dZ1 = relu_backward(dA1, caches["relu1"])', "dZ1 = dA1"))
    rng = np.random.default_rng(7)
    from helpers.network import init_params
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in init_params(1).items()}
    with pytest.raises(AssertionError, match=r"gradient check of .*dW1 FAILED"):
        gradcheck.check_network_gradients(reference["cnn_forward"], wrong, reference["softmax_cross_entropy"], params,
                                          rng.random((3, 8, 8, 1)), np.array([3, 0, 7]))


def test_sgd_step_up_the_gradient_is_named_and_training_says_the_loss_rises():
    wrong = variant("sgd_momentum_step", ("new_params[k] = params[k] - learning_rate * new_velocity[k]",
                                          "new_params[k] = params[k] + learning_rate * new_velocity[k]"))
    msg = visible_failure(wrong, "sgd_momentum_step")
    assert "moved by + learning_rate * v: up the gradient" in msg, msg


def test_training_with_the_sgd_sign_error_says_the_loss_rises():
    wrong = variant("train_cnn", ("new_params[k] = params[k] - learning_rate * new_velocity[k]",
                                  "new_params[k] = params[k] + learning_rate * new_velocity[k]"))
    with np.errstate(all="ignore"):
        msg = visible_failure(wrong, "train_cnn")
    assert "case 'first_steps'" in msg and "The loss rises over the first steps" in msg, msg
    assert "Check the sign in sgd_momentum_step" in msg, msg


def test_check_accuracy_fails_a_network_that_does_not_learn(reference):
    def lazy(X, y, params, num_epochs, batch_size, learning_rate, beta, seed, callback=None):
        return params, np.full(num_epochs * -(-len(y) // batch_size), 2.3)

    with pytest.raises(AssertionError) as err:
        checks.check_accuracy(lazy, "train_cnn", "full_training", predict=reference["cnn_forward"])
    msg = str(err.value)
    assert "expected at least 97%, got" in msg and "450 steps" in msg and "Where to look: notebook 10" in msg, msg
    assert not NUMPY_REPR.search(msg), msg


# ----------------------------------------------------------------- notebook 09: the fast layers' own mistakes
def test_fast_conv_with_a_forgotten_stride_is_named():
    wrong = variant("conv_forward_fast", ("[:, ::stride, ::stride]", ""))
    msg = visible_failure(wrong, "conv_forward_fast")
    assert "case 'canonical'" in msg and "expected shape: (2, 3, 4, 8)" in msg and "got shape:      (2, 5, 7, 8)" in msg
    assert "Z has the shape of a stride-1 output, (2, 5, 7, 8): the stride was forgotten" in msg
    assert "keep every stride-th one, windows[:, ::stride, ::stride]" in msg
    assert "floor((5 + 2*1 - 3) / 2) + 1 = 3 by 4 windows" in msg
    assert "Where to look: notebook 09" in msg
    passes(wrong, "conv_forward_fast", "pad0_stride1")             # at stride 1 the stride cannot show
    assert "the stride was forgotten" in case_failure(wrong, "conv_forward_fast", "stride3_nonsquare")


def test_fast_pool_with_a_forgotten_stride_is_named():
    wrong = variant("pool_forward_fast", ("[:, ::stride, ::stride]", ""))
    msg = visible_failure(wrong, "pool_forward_fast")
    assert "case 'canonical_stride2" in msg and "A has the shape of a stride-1 output, (2, 3, 3, 3)" in msg
    assert "windows[:, ::stride, ::stride]" in msg


def test_a_scatter_that_assigns_instead_of_adding_is_named_for_conv():
    wrong = variant("conv_backward_fast", ("dA_prev_pad[:, :, rows, cols] += dcolumns",
                                           "dA_prev_pad[:, :, rows, cols] = dcolumns"))
    passes(wrong, "conv_backward_fast", "canonical")               # f = stride = 2: no overlap, nothing lost
    msg = visible_failure(wrong, "conv_backward_fast")
    assert "case 'pad0'" in msg and "dA_prev has the right shape (2, 4, 4, 3) but wrong values" in msg
    assert "Diagnosis: dA_prev is what the scatter gives when each offset (u, v) assigns its share (=) instead of " \
           "adding it (+=). With f = 3 and stride 1 the windows overlap" in msg
    assert "dW has" not in msg and "db has" not in msg              # dW and db are right: only dA_prev is named
    assert "the scatter gives" in case_failure(wrong, "conv_backward_fast", "stride2_overlap")


def test_a_scatter_that_assigns_instead_of_adding_is_named_for_pooling():
    for mode, old, new in (("max", "dA_prev[:, rows, cols, :] += mask", "dA_prev[:, rows, cols, :] = mask"),
                           ("average", "dA_prev[:, rows, cols, :] += dA / (f * f)",
                            "dA_prev[:, rows, cols, :] = dA / (f * f)")):
        wrong = variant("pool_backward_fast", (old, new))
        msg = case_failure(wrong, "pool_backward_fast", f"canonical_{mode}")
        assert "Diagnosis: dA_prev is what the scatter gives when each offset (u, v) assigns its share (=) " \
               "instead of adding it (+=). With f = 2 and stride 1 the windows overlap" in msg, msg
        passes(wrong, "pool_backward_fast", "stride3_average" if mode == "average" else "stride3_max")   # no overlap


def test_an_average_pool_not_divided_by_f_squared_is_named():
    wrong = variant("pool_forward_fast", ("np.mean(windows, axis=(4, 5))", "np.sum(windows, axis=(4, 5))"))
    msg = visible_failure(wrong, "pool_forward_fast")
    assert "case 'canonical_stride1_average'" in msg
    assert "Every entry of A is exactly f*f = 9 times too large: you added up the window without dividing" in msg
    passes(wrong, "pool_forward_fast", "canonical_stride1_max")
    wrong = variant("pool_backward_fast", ("+= dA / (f * f)", "+= dA"))
    msg = visible_failure(wrong, "pool_backward_fast")
    assert "case 'canonical_average'" in msg
    assert "Every entry of dA_prev is exactly f*f = 4 times too large: the average of a window is its sum divided " \
           "by f*f, so each of its f*f entries receives dA / (f*f) = dA / 4, at every offset." in msg


def test_fast_pool_backward_that_breaks_ties_differently_fails_the_visible_tie_case():
    # a mask with one winner per window (the first maximum, as argmax picks it): right without ties only
    wrong = variant("pool_backward_fast", (
        "mask = windows == np.max(windows, axis=(4, 5), keepdims=True)",
        "flat = windows.reshape(windows.shape[:4] + (f * f,))\n"
        "        mask = (np.arange(f * f) == np.argmax(flat, axis=-1)[..., None]).reshape(windows.shape)"))
    passes(wrong, "pool_backward_fast", "canonical_max")
    msg = visible_failure(wrong, "pool_backward_fast")
    assert "case 'ties_max'" in msg and "wrong values" in msg
