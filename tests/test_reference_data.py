"""data/reference_outputs.h5: written by the reference solutions, and matching the published values."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from helpers.data import REFERENCE_FILE, load_case
from helpers.instructor.cases import CASES
from helpers.instructor.refdata import write_reference


def test_regenerated_file_is_identical(tmp_path, reference):
    fresh = write_reference(tmp_path / "fresh.h5", reference)
    seen = []
    with h5py.File(fresh) as a, h5py.File(REFERENCE_FILE) as b:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                seen.append(name)
                assert name in b, f"{name} is missing from {REFERENCE_FILE}; run `cnn-course refdata`"
                x, y = obj[()], b[name][()]
                assert np.array_equal(x, y), f"{name} differs from the committed file; run `cnn-course refdata`"
        a.visititems(visit)
        extra = []
        b.visititems(lambda n, o: extra.append(n) if isinstance(o, h5py.Dataset) and n not in a else None)
    assert not extra, f"the committed file has datasets no reference case writes: {extra[:5]}"
    assert len(seen) > 100


def test_every_case_is_stored():
    for func, cases in CASES.items():
        for name, spec in cases.items():
            if not spec.stored:      # judged by a rule at grading time: nothing to store
                with pytest.raises(ValueError, match=f"no case '{name}'"):
                    load_case(func, name)
                continue
            c = load_case(func, name)
            assert c.visible == spec.visible and c.description == spec.description
    assert [n for n, s in CASES["train_cnn"].items() if not s.stored] == ["full_training"]


def close(x, y):
    return np.allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), atol=5e-9, rtol=0)


def test_published_zero_pad():
    c = load_case("zero_pad")
    assert c.outputs["X_pad"].shape == (4, 9, 9, 2)
    assert close(c.args[0][1, 1], [[0.90085595, -0.68372786], [-0.12289023, -0.93576943], [-0.26788808, 0.53035547]])
    assert c.args[1] == 3


def test_published_conv_single_step():
    assert load_case("conv_single_step").outputs["Z"] == pytest.approx(-6.999089450680221, abs=1e-13)


def test_published_conv_forward():
    c = load_case("conv_forward")
    Z = c.outputs["Z"]
    assert np.mean(Z) == pytest.approx(0.5511276474566768, abs=1e-13)
    assert close(Z[0, 2, 1], [-2.17796037, 8.07171329, -0.5772704, 3.36286738, 4.48113645, -2.89198428,
                              10.99288867, 3.03171932])
    assert close(c.args[0][1][2][3], [-1.1191154, 1.9560789, -0.3264995, -1.34267579])  # cache[0] is A_prev
    assert c.args[3] == {"pad": 1, "stride": 2}


@pytest.mark.parametrize("case,index,expected", [
    ("canonical_stride1_max", (1, 1), [[1.96710175, 0.84616065, 1.27375593], [1.96710175, 0.84616065, 1.23616403],
                                       [1.62765075, 1.12141771, 1.2245077]]),
    ("canonical_stride1_average", (1, 1), [[0.44497696, -0.00261695, -0.31040307],
                                           [0.50811474, -0.23493734, -0.23961183],
                                           [0.11872677, 0.17255229, -0.22112197]]),
    ("canonical_stride2_max", (0,), [[[1.74481176, 0.90159072, 1.65980218], [1.74481176, 1.6924546, 1.65980218]],
                                     [[1.13162939, 1.51981682, 2.18557541], [1.13162939, 1.6924546, 2.18557541]]]),
    ("canonical_stride2_average", (1,), [[[-0.17313416, 0.32377198, -0.34317572],
                                          [0.02030094, 0.14141479, -0.01231585]],
                                         [[0.42944926, 0.08446996, -0.27290905],
                                          [0.15077452, 0.28911175, 0.00123239]]]),
])
def test_published_pool_forward(case, index, expected):
    assert close(load_case("pool_forward", case).outputs["A"][index], expected)


def test_published_pool_backward():
    mx = load_case("pool_backward", "canonical_max")
    av = load_case("pool_backward", "canonical_average")
    assert mx.args[0].shape == (5, 4, 2, 2) and mx.args[1][0].shape == (5, 5, 3, 2)
    assert close(mx.outputs["dA_prev"][1, 1], [[0, 0], [5.05844394, -1.68282702], [0, 0]])
    assert close(av.outputs["dA_prev"][1, 1], [[0.08485462, 0.2787552], [1.26461098, -0.25749373],
                                               [1.17975636, -0.53624893]])


def test_published_distribute_and_mask():
    assert close(load_case("distribute_value").outputs["a"], [[0.5, 0.5], [0.5, 0.5]])
    mask = load_case("create_mask_from_window").outputs["mask"]
    assert mask.dtype == bool and mask.sum() == 1 and mask[2, 1]


def test_sobel_kernel_orientation():
    c = load_case("sobel_kernels")
    assert close(c.outputs["Kx"], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    assert close(c.outputs["Ky"], np.asarray(c.outputs["Kx"]).T)
    step = load_case("filter2d", "sobel_on_step")
    inner = step.outputs["out"][1:-1, 1:-1]
    assert inner.max() > 0 and (inner >= 0).all(), "Kx must respond positively to a dark-to-bright vertical edge"


LOOP_VERSION = {"conv_forward_fast": "conv_forward", "conv_backward_fast": "conv_backward",
                "pool_forward_fast": "pool_forward", "pool_backward_fast": "pool_backward"}


@pytest.mark.parametrize("fast", sorted(LOOP_VERSION))
def test_fast_layers_equal_the_loop_versions_on_every_case(fast, reference):
    """Notebook 09's stored outputs (from the fast reference solutions) are the loop versions' outputs
    (notebooks 03 to 06) on every case, the ties of max pooling included: an independent implementation."""
    from helpers.instructor.outofkernel.judge import expected

    cases = CASES[fast]
    assert {"ties_max"} <= set(CASES["pool_forward_fast"]) and "ties_overlap_max" in CASES["pool_backward_fast"]
    for name in cases:
        c = load_case(fast, name)
        loop = expected(reference, LOOP_VERSION[fast], c.args)
        assert set(loop) == set(c.outputs), f"{fast}/{name}: outputs {sorted(c.outputs)}, loop version {sorted(loop)}"
        for key, value in loop.items():
            assert value.shape == c.outputs[key].shape and np.allclose(value, c.outputs[key], rtol=1e-12, atol=1e-12), \
                f"{fast}/{name}: {key} differs from the loop version {LOOP_VERSION[fast]}'s"
        if name.startswith("ties"):
            A_prev = c.args[0] if fast == "pool_forward_fast" else c.args[1][0]
            f = (c.args[1] if fast == "pool_forward_fast" else c.args[1][1])["f"]
            windows = np.lib.stride_tricks.sliding_window_view(A_prev, (f, f), axis=(1, 2))
            ties = (windows == windows.max(axis=(-2, -1), keepdims=True)).sum(axis=(-2, -1)) > 1
            assert ties.sum() >= 5, f"{fast}/{name}: the case should have windows with ties, has {ties.sum()}"
