"""An independent oracle: every reference solution with a PyTorch counterpart agrees with PyTorch to 1e-9.

The reference solutions are the source notebooks' solution cells (the ``reference`` fixture). PyTorch
computes the same blocks in float64 with its own kernels (``F.pad``, ``F.conv2d``, ``F.max_pool2d``,
``F.avg_pool2d``, ``torch.relu``) and its own autograd for the backward passes. Runs wherever torch is
installed, and so in CI, where ``make install`` installs the extra ``frameworks``.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = 1e-9


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def weights_torch(W):
    """(f, f, n_C_prev, n_C) -> (n_C, n_C_prev, f, f)."""
    return torch.from_numpy(W).permute(3, 2, 0, 1)


def close(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, PyTorch gives {want.shape}"
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    assert diff <= TOL, f"{what}: largest difference from PyTorch {diff:.3e} > {TOL}"


# ------------------------------------------------------------------ zero_pad
PAD_CASES = [((4, 3, 3, 2), 3), ((1, 5, 7, 1), 0), ((2, 4, 6, 3), 1), ((3, 2, 5, 4), 2), ((1, 1, 1, 1), 4)]


@pytest.mark.parametrize("shape,pad", PAD_CASES)
def test_zero_pad_matches_F_pad(reference, shape, pad):
    x = np.random.default_rng(sum(shape) + pad).standard_normal(shape)
    want = nhwc(F.pad(nchw(x), (pad, pad, pad, pad)))
    close(reference["zero_pad"](x, pad), want, f"zero_pad {shape}, pad {pad}")


# ------------------------------------------------------------------ conv_single_step
@pytest.mark.parametrize("f,n_c", [(4, 3), (1, 1), (3, 7), (5, 2)])
def test_conv_single_step_matches_conv2d_on_one_window(reference, f, n_c):
    rng = np.random.default_rng(10 * f + n_c)
    a, W, b = rng.standard_normal((f, f, n_c)), rng.standard_normal((f, f, n_c)), rng.standard_normal((1, 1, 1))
    want = F.conv2d(nchw(a[None]), weights_torch(W[:, :, :, None]), bias=torch.from_numpy(b.reshape(1)))
    got = reference["conv_single_step"](a, W, b)
    assert np.ndim(got) == 0
    close(got, want[0, 0, 0, 0].item(), f"conv_single_step f={f}, n_C_prev={n_c}")


# ------------------------------------------------------------------ conv_forward
# (m, n_H_prev, n_W_prev, n_C_prev, f, n_C, stride, pad): pad 0, non-square, strides 1-3, f = 1, a batch of one
CONV_CASES = [
    (2, 5, 7, 4, 3, 8, 2, 1),     # the canonical case
    (2, 6, 6, 3, 3, 2, 1, 0),
    (1, 7, 9, 2, 3, 4, 3, 0),
    (3, 8, 5, 3, 2, 5, 2, 0),
    (1, 6, 4, 5, 1, 3, 1, 0),     # f = 1
    (2, 5, 5, 2, 1, 2, 2, 1),
    (1, 9, 11, 3, 5, 2, 3, 2),
    (2, 4, 6, 1, 3, 1, 1, 1),
    (1, 10, 7, 2, 4, 3, 3, 1),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "m{}_{}x{}x{}_f{}_nC{}_s{}_p{}".format(*c))
def test_conv_forward_matches_F_conv2d(reference, case):
    m, nh, nw, ncp, f, nc, s, p = case
    rng = np.random.default_rng(sum(case))
    A, W, b = rng.standard_normal((m, nh, nw, ncp)), rng.standard_normal((f, f, ncp, nc)), rng.standard_normal((1, 1, 1, nc))
    want = nhwc(F.conv2d(nchw(A), weights_torch(W), bias=torch.from_numpy(b.reshape(-1)), stride=s, padding=p))
    Z, cache = reference["conv_forward"](A, W, b, {"stride": s, "pad": p})
    close(Z, want, f"conv_forward {case}")


# ------------------------------------------------------------------ conv_backward
CONV_BACK_CASES = [
    (10, 4, 4, 3, 2, 8, 2, 2),    # the canonical shapes
    (2, 7, 8, 3, 3, 2, 2, 0),     # stride 2, pad 0
    (1, 9, 7, 2, 3, 3, 3, 0),     # stride 3, pad 0, rows left out by the floor
    (2, 6, 5, 2, 2, 4, 3, 1),
    (1, 5, 5, 1, 1, 2, 2, 0),     # f = 1, a batch of one
    (2, 5, 6, 3, 3, 2, 1, 1),
]


@pytest.mark.parametrize("case", CONV_BACK_CASES, ids=lambda c: "m{}_{}x{}x{}_f{}_nC{}_s{}_p{}".format(*c))
def test_conv_backward_matches_autograd(reference, case):
    m, nh, nw, ncp, f, nc, s, p = case
    rng = np.random.default_rng(100 + sum(case))
    A, W, b = rng.standard_normal((m, nh, nw, ncp)), rng.standard_normal((f, f, ncp, nc)), rng.standard_normal((1, 1, 1, nc))
    n_H, n_W = (nh + 2 * p - f) // s + 1, (nw + 2 * p - f) // s + 1
    dZ = rng.standard_normal((m, n_H, n_W, nc))
    x = nchw(A).clone().requires_grad_(True)
    w = weights_torch(W).clone().requires_grad_(True)
    bias = torch.from_numpy(b.reshape(-1)).clone().requires_grad_(True)
    F.conv2d(x, w, bias=bias, stride=s, padding=p).backward(nchw(dZ))
    dA, dW, db = reference["conv_backward"](dZ, (A, W, b, {"stride": s, "pad": p}))
    close(dA, nhwc(x.grad), f"conv_backward dA_prev {case}")
    close(dW, w.grad.permute(2, 3, 1, 0).numpy(), f"conv_backward dW {case}")
    close(db, bias.grad.reshape(1, 1, 1, -1).numpy(), f"conv_backward db {case}")


# ------------------------------------------------------------------ pool_forward / pool_backward
POOL_CASES = [
    (2, 5, 5, 3, 3, 1),     # canonical, stride 1
    (2, 5, 5, 3, 3, 2),     # canonical, stride 2
    (1, 7, 9, 2, 2, 2),
    (2, 8, 6, 3, 3, 3),
    (1, 7, 7, 1, 2, 3),     # gaps between windows
    (3, 4, 5, 2, 1, 1),     # f = 1
]


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "m{}_{}x{}x{}_f{}_s{}".format(*c))
def test_pool_forward_matches_torch_pooling(reference, case, mode):
    m, nh, nw, nc, f, s = case
    A = np.random.default_rng(200 + sum(case)).standard_normal((m, nh, nw, nc))
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    out, cache = reference["pool_forward"](A, {"f": f, "stride": s}, mode)
    close(out, nhwc(pool(nchw(A), kernel_size=f, stride=s)), f"pool_forward {mode} {case}")


POOL_BACK_CASES = [
    (5, 5, 3, 2, 2, 1),     # the canonical shapes, stride 1
    (2, 6, 8, 3, 2, 2),     # stride 2, side by side
    (2, 7, 7, 2, 3, 2),     # stride 2, overlapping, a dropped row
    (1, 9, 8, 3, 3, 3),     # stride 3
    (2, 8, 7, 2, 2, 3),     # stride 3, gaps
]


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_BACK_CASES, ids=lambda c: "m{}_{}x{}x{}_f{}_s{}".format(*c))
def test_pool_backward_matches_autograd(reference, case, mode):
    m, nh, nw, nc, f, s = case
    rng = np.random.default_rng(300 + sum(case))
    A = rng.standard_normal((m, nh, nw, nc))          # continuous: no ties for a window's maximum
    n_H, n_W = (nh - f) // s + 1, (nw - f) // s + 1
    dA = rng.standard_normal((m, n_H, n_W, nc))
    x = nchw(A).clone().requires_grad_(True)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    pool(x, kernel_size=f, stride=s).backward(nchw(dA))
    close(reference["pool_backward"](dA, (A, {"f": f, "stride": s}), mode), nhwc(x.grad), f"pool_backward {mode} {case}")


# ------------------------------------------------------------------ relu / relu_backward
@pytest.mark.parametrize("shape", [(2, 4, 4, 3), (1, 3, 5, 2), (7,)])
def test_relu_and_relu_backward_match_torch(reference, shape):
    rng = np.random.default_rng(len(shape) + sum(shape))
    Z, dA = rng.standard_normal(shape), rng.standard_normal(shape)
    Z.flat[::3] = 0.0                                  # exact zeros: PyTorch's gradient there is 0, like ours
    z = torch.from_numpy(Z.copy()).requires_grad_(True)
    a = torch.relu(z)
    a.backward(torch.from_numpy(dA))
    close(reference["relu"](Z), a.detach().numpy(), f"relu {shape}")
    close(reference["relu_backward"](dA, Z), z.grad.numpy(), f"relu_backward {shape}")


# ------------------------------------------------------------------ filter2d (Sobel)
@pytest.mark.parametrize("kernel", ["sobel_x", "sobel_y", "random3", "random5", "one"])
def test_filter2d_matches_conv2d_with_the_kernel_as_given(reference, kernel):
    rng = np.random.default_rng(len(kernel))
    image = rng.standard_normal((9, 12))
    Kx, Ky = reference["sobel_kernels"]()
    K = {"sobel_x": Kx, "sobel_y": Ky, "random3": rng.standard_normal((3, 3)),
         "random5": rng.standard_normal((5, 5)), "one": rng.standard_normal((1, 1))}[kernel]
    k = K.shape[0]
    want = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(np.ascontiguousarray(K))[None, None], padding=k // 2)
    close(reference["filter2d"](image, K), want[0, 0].numpy(), f"filter2d with {kernel}")


def test_sobel_edges_match_conv2d(reference):
    gray = np.random.default_rng(8).uniform(0, 255, (10, 13))
    Kx, Ky = reference["sobel_kernels"]()
    x = torch.from_numpy(gray)[None, None]
    gx = F.conv2d(x, torch.from_numpy(Kx)[None, None], padding=1)[0, 0].numpy()
    gy = F.conv2d(x, torch.from_numpy(np.ascontiguousarray(Ky))[None, None], padding=1)[0, 0].numpy()
    got = reference["sobel_edges"](gray)
    close(got[0], gx, "sobel_edges gx")
    close(got[1], gy, "sobel_edges gy")
    close(got[2], np.hypot(gx, gy), "sobel_edges magnitude")


def test_the_oracle_can_fail(reference):
    """The comparison is sharp: a flipped Sobel kernel (true convolution) and a stride-1 pool_backward at stride 2 fail it."""
    image = np.random.default_rng(9).standard_normal((6, 7))
    Kx, _ = reference["sobel_kernels"]()
    want = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(Kx)[None, None], padding=1)[0, 0].numpy()
    with pytest.raises(AssertionError, match="largest difference"):
        close(reference["filter2d"](image, np.ascontiguousarray(np.flip(Kx))), want, "flipped kernel")
    A = np.random.default_rng(10).standard_normal((1, 6, 6, 1))
    dA = np.ones((1, 3, 3, 1))
    x = nchw(A).clone().requires_grad_(True)
    F.max_pool2d(x, kernel_size=2, stride=2).backward(nchw(dA))
    stride1_windows = reference["pool_backward"](np.ones((1, 5, 5, 1))[:, :3, :3], (A, {"f": 2, "stride": 1}), "max")
    with pytest.raises(AssertionError, match="largest difference"):
        close(stride1_windows, nhwc(x.grad), "windows without the stride")
