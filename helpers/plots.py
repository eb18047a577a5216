"""Figures for the lessons, drawn from real arrays.

Each ``show_*`` function draws one figure. In a notebook it displays the figure and returns
``None`` (so the figure is shown once); elsewhere (tests, scripts) it returns the ``Figure``.
Inputs are validated: a wrong shape raises ``ValueError`` naming the expected shape.
matplotlib is imported when the first figure is drawn, and while ``cnn-course autograde`` grades
(``CNN_COURSE_GRADING=1``) every ``show_*`` returns at once: no grade depends on a figure.
"""
from __future__ import annotations

import numpy as np

from ._mode import demonstration
from ._validate import require_array, require_positive_int


class _LazyPyplot:
    """``matplotlib.pyplot``, imported when the first figure is drawn (it costs about 0.5 s)."""

    def __getattr__(self, name):
        import matplotlib.pyplot as pyplot

        return getattr(pyplot, name)


plt = _LazyPyplot()


def Rectangle(*args, **kwargs):  # noqa: N802 - matplotlib's class, imported on first use
    from matplotlib.patches import Rectangle as _Rectangle

    return _Rectangle(*args, **kwargs)

PAD_COLOR = "#f4a261"
WINDOW_COLOR = "#e63946"
OUT_COLOR = "#2a9d8f"


@demonstration
def demo(fn):
    """Run a lesson demonstration, ``fn()``: a function of the cell that computes on the photograph
    with your functions and draws the result. While the grader grades it returns at once (no grade
    depends on it, and it is the slowest part of a notebook)."""
    return fn()


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
        ip = get_ipython()
        return ip is not None and "IPKernelApp" in ip.config
    except Exception:
        return False


def _finish(fig):
    fig.tight_layout()
    if _in_notebook():
        from IPython.display import display
        display(fig)
        plt.close(fig)
        return None
    return fig


def _grid(ax, M, *, annotate=True, fmt="{:.2g}", cmap="viridis", title=None, vmin=None, vmax=None, fontsize=None):
    """Draw a 2-D array as a grid of cells, with its values written in when small enough."""
    M = np.asarray(M, dtype=float)
    im = ax.imshow(M, cmap=cmap, vmin=vmin, vmax=vmax)
    h, w = M.shape
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="both", length=0)
    ax.set_xticks(range(w) if w <= 12 else [])
    ax.set_yticks(range(h) if h <= 12 else [])
    if annotate and h * w <= 144:
        for i in range(h):
            for j in range(w):
                r, g, b, _ = im.cmap(im.norm(M[i, j]))
                light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5   # text colour from the cell's brightness
                ax.text(j, i, fmt.format(M[i, j] + 0.0), ha="center", va="center",
                        fontsize=fontsize or (9 if h * w <= 49 else 7), color="black" if light else "white")
    if title:
        ax.set_title(title)
    return im


@demonstration
def show_matrix(M, title: str = "", fmt: str = "{:.2g}", cmap: str = "viridis"):
    """One 2-D array as an annotated grid."""
    M = require_array("show_matrix", "M", M, ndim=2, layout="(rows, cols)")
    fig, ax = plt.subplots(figsize=(max(3, M.shape[1] * 0.55), max(2.5, M.shape[0] * 0.55)))
    _grid(ax, M, fmt=fmt, cmap=cmap, title=title)
    return _finish(fig)


@demonstration
def show_matrices(mats: dict, fmt: str = "{:.2g}", cmap: str = "viridis", suptitle: str = "",
                  symmetric: bool = False, share_scale: bool = False):
    """Several 2-D arrays side by side, each titled by its key.

    ``symmetric`` centres each colour scale on 0 (use with a diverging map such as ``"RdBu_r"``);
    ``share_scale`` gives every panel the same scale, so that colours compare across panels.
    """
    if not isinstance(mats, dict) or not mats:
        raise ValueError("show_matrices: expected a non-empty dict {title: 2-D array}")
    arrays = {k: require_array("show_matrices", k, v, ndim=2, layout="(rows, cols)") for k, v in mats.items()}
    widths = [a.shape[1] for a in arrays.values()]
    fig, axes = plt.subplots(1, len(arrays), figsize=(max(4, 0.5 * sum(widths) + 1.2 * len(arrays)), 3.4),
                             gridspec_kw={"width_ratios": widths})
    both = np.concatenate([a.ravel().astype(float) for a in arrays.values()])
    for ax, (title, a) in zip(np.atleast_1d(axes), arrays.items()):
        vals = both if share_scale else a.astype(float)
        if symmetric:
            lim = float(np.abs(vals).max()) or 1.0
            vmin, vmax = -lim, lim
        else:
            vmin, vmax = (float(vals.min()), float(vals.max())) if share_scale else (None, None)
        _grid(ax, a, fmt=fmt, cmap=cmap, title=title, vmin=vmin, vmax=vmax)
    if suptitle:
        fig.suptitle(suptitle)
    return _finish(fig)


# --------------------------------------------------------------------------- notebook 01
@demonstration
def show_image_as_matrix(image, top: int = 0, left: int = 0, size: int = 8, channel: int | None = None):
    """The photograph with a small square marked, and that square's pixel values (0-255) as a grid."""
    image = require_array("show_image_as_matrix", "image", image, ndim=(2, 3), layout="(H, W) or (H, W, 3)")
    size = require_positive_int("show_image_as_matrix", "size", size)
    H, W = image.shape[:2]
    if not (0 <= top <= H - size and 0 <= left <= W - size):
        raise ValueError(f"show_image_as_matrix: the {size}x{size} square at ({top}, {left}) must lie inside the "
                         f"{H}x{W} image")
    patch = image[top:top + size, left:left + size]
    if patch.ndim == 3:
        patch = patch[..., 0 if channel is None else channel]
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1, 1.15]})
    a0.imshow(image, cmap=None if image.ndim == 3 else "gray")
    a0.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec=WINDOW_COLOR, lw=2))
    a0.annotate("this square", xy=(left + size, top + size / 2), xytext=(left + size + 0.25 * W, top - 0.08 * H),
                color=WINDOW_COLOR, fontsize=10, fontweight="bold",
                arrowprops={"arrowstyle": "->", "color": WINDOW_COLOR, "lw": 2})
    a0.set_title(f"the photo, {H} x {W} pixels" + (f" x {image.shape[2]} channels" if image.ndim == 3 else ""))
    a0.axis("off")
    cname = "" if image.ndim == 2 else f", {'RGB'[0 if channel is None else channel]} channel"
    _grid(a1, patch, fmt="{:.0f}", cmap="gray", vmin=0, vmax=255,
          title=f"rows {top}-{top + size - 1}, columns {left}-{left + size - 1}{cname}", fontsize=8)
    return _finish(fig)


@demonstration
def show_channels(image):
    """The three colour channels of an RGB image side by side, each as its own gray image."""
    image = require_array("show_channels", "image", image, ndim=3, layout="(H, W, 3)")
    if image.shape[2] != 3:
        raise ValueError(f"show_channels: image must have shape (H, W, 3); got {image.shape}")
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    axes[0].imshow(image)
    axes[0].set_title(f"image {image.shape}")
    for c, (ax, name) in enumerate(zip(axes[1:], ("red", "green", "blue"))):
        ax.imshow(image[..., c], cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
        ax.set_title(f"image[:, :, {c}]  ({name})")
    for ax in axes:
        ax.axis("off")
    return _finish(fig)


@demonstration
def show_batch(batch):
    """A batch ``(m, n_H, n_W, n_C)`` as m images in a row, each titled with its index."""
    batch = require_array("show_batch", "batch", batch, ndim=4, layout="(m, n_H, n_W, n_C)")
    m = batch.shape[0]
    fig, axes = plt.subplots(1, m, figsize=(2.6 * m, 2.9))
    for i, ax in enumerate(np.atleast_1d(axes)):
        img = batch[i]
        ax.imshow(img if img.shape[2] == 3 else img[..., 0], cmap=None if img.shape[2] == 3 else "gray")
        ax.set_title(f"batch[{i}]  {img.shape}")
        ax.axis("off")
    fig.suptitle(f"one array of shape (m, n_H, n_W, n_C) = {batch.shape}", y=1.0)
    return _finish(fig)


@demonstration
def show_padding(x, x_pad, example: int = 0, channel: int = 0):
    """One channel of one example before and after zero padding, with the added border shaded."""
    x = require_array("show_padding", "x", x, ndim=4, layout="(m, n_H, n_W, n_C)")
    x_pad = require_array("show_padding", "x_pad", x_pad, ndim=4, layout="(m, n_H + 2 pad, n_W + 2 pad, n_C)")
    pad2 = x_pad.shape[1] - x.shape[1]
    if pad2 < 0 or pad2 % 2 or x_pad.shape[2] - x.shape[2] != pad2 or x_pad.shape[::3] != x.shape[::3]:
        raise ValueError(f"show_padding: x_pad must have shape (m, n_H + 2 pad, n_W + 2 pad, n_C) for x of shape "
                         f"{x.shape}; got {x_pad.shape}")
    pad = pad2 // 2
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(9, 4.3), gridspec_kw={"width_ratios": [x.shape[2], x_pad.shape[2]]})
    vmin, vmax = x_pad[example, ..., channel].min(), x_pad[example, ..., channel].max()
    _grid(a0, x[example, ..., channel], title=f"x[{example}, :, :, {channel}]  {x.shape[1:3]}", vmin=vmin, vmax=vmax)
    _grid(a1, x_pad[example, ..., channel], title=f"x_pad[{example}, :, :, {channel}]  {x_pad.shape[1:3]}, pad = {pad}",
          vmin=vmin, vmax=vmax)
    if pad:
        H, W = x_pad.shape[1:3]
        a1.add_patch(Rectangle((pad - 0.5, pad - 0.5), W - 2 * pad, H - 2 * pad, fill=False, ec=PAD_COLOR, lw=2.5))
    return _finish(fig)


# --------------------------------------------------------------------------- notebooks 02-04
@demonstration
def show_sliding_window(A_prev, f: int, stride: int, pad: int, h: int, w: int, example: int = 0, channel: int = 0):
    """Where output position (h, w) reads from: the f x f window on the padded input, with its corners.

    Draws the padded input (one channel), the window at ``vert_start = h * stride``,
    ``horiz_start = w * stride``, and the output grid with cell (h, w) marked.
    """
    A_prev = require_array("show_sliding_window", "A_prev", A_prev, ndim=4, layout="(m, n_H_prev, n_W_prev, n_C_prev)")
    f = require_positive_int("show_sliding_window", "f", f)
    stride = require_positive_int("show_sliding_window", "stride", stride)
    if pad < 0:
        raise ValueError(f"show_sliding_window: pad must be >= 0, got {pad}")
    n_H = (A_prev.shape[1] + 2 * pad - f) // stride + 1
    n_W = (A_prev.shape[2] + 2 * pad - f) // stride + 1
    if not (0 <= h < n_H and 0 <= w < n_W):
        raise ValueError(f"show_sliding_window: (h, w) must index the {n_H} x {n_W} output; got ({h}, {w})")
    plane = np.pad(A_prev[example, ..., channel], pad)
    vs, hs = h * stride, w * stride
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [plane.shape[1], n_W + 1]})
    label = f"padded input, channel {channel} (pad = {pad})" if pad else f"input, channel {channel}"
    _grid(a0, plane, title=label, cmap="Blues", annotate=plane.size <= 100)
    if pad:
        a0.add_patch(Rectangle((pad - 0.5, pad - 0.5), A_prev.shape[2], A_prev.shape[1], fill=False, ec=PAD_COLOR,
                               lw=1.5, ls="--"))
    a0.add_patch(Rectangle((hs - 0.5, vs - 0.5), f, f, fill=False, ec=WINDOW_COLOR, lw=3))
    a0.annotate(f"vert_start = h*stride = {vs}\nhoriz_start = w*stride = {hs}", xy=(hs - 0.5, vs - 0.5),
                xytext=(0.02, -0.16), textcoords="axes fraction", color=WINDOW_COLOR, fontsize=9)
    a0.annotate(f"vert_end = {vs + f}, horiz_end = {hs + f}", xy=(hs + f - 0.5, vs + f - 0.5),
                xytext=(0.55, -0.16), textcoords="axes fraction", color=WINDOW_COLOR, fontsize=9)
    out = np.zeros((n_H, n_W))
    out[h, w] = 1
    _grid(a1, out, annotate=False, cmap="Greens", title=f"output {n_H} x {n_W}: cell (h={h}, w={w})")
    return _finish(fig)


@demonstration
def show_filter_step(a_slice, W, b=0.0, Z=None):
    """One step of convolution on one channel: the window, the filter, their product, and the sum."""
    a_slice = require_array("show_filter_step", "a_slice", a_slice, ndim=(2, 3), layout="(f, f) or (f, f, n_C)")
    W = require_array("show_filter_step", "W", W, ndim=(2, 3), layout="(f, f) or (f, f, n_C)")
    if a_slice.shape != W.shape:
        raise ValueError(f"show_filter_step: a_slice and W must have the same shape; got {a_slice.shape} and "
                         f"{W.shape}")
    a2 = a_slice if a_slice.ndim == 2 else a_slice[..., 0]
    w2 = W if W.ndim == 2 else W[..., 0]
    prod = a2 * w2
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    _grid(axes[0], a2, title="window a_slice_prev" + ("" if a_slice.ndim == 2 else "[:, :, 0]"), cmap="Blues")
    _grid(axes[1], w2, title="filter W" + ("" if W.ndim == 2 else "[:, :, 0]"), cmap="Oranges")
    _grid(axes[2], prod, title="element-wise product", cmap="Purples")
    b_val = float(np.asarray(b).reshape(-1)[0]) if np.size(b) else 0.0
    text = f"sum of products over all {a_slice.size} entries + b ({b_val:.3g})"
    if Z is not None:
        text += f"  =  Z = {float(Z):.6g}"
    fig.suptitle(text)
    return _finish(fig)


@demonstration
def show_feature_maps(Z, example: int = 0, max_maps: int = 8, title: str = "Z"):
    """The output channels (feature maps) of one example, side by side."""
    Z = require_array("show_feature_maps", "Z", Z, ndim=4, layout="(m, n_H, n_W, n_C)")
    n = min(Z.shape[3], max_maps)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.6))
    lim = float(np.abs(Z[example]).max()) or 1.0   # one scale centred on 0: white means zero
    for c, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(Z[example, ..., c], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{title}[{example}, :, :, {c}]", fontsize=9)
        ax.axis("off")
    return _finish(fig)


@demonstration
def show_gradient_spread(W_c, dz: float, f: int, stride: int, h: int, w: int, shape: tuple):
    """How one dZ[h, w] spreads back: dz * W_c is added to the window of dA_prev that (h, w) read."""
    W_c = require_array("show_gradient_spread", "W_c", W_c, ndim=2, layout="(f, f)")
    if W_c.shape != (f, f):
        raise ValueError(f"show_gradient_spread: W_c must have shape ({f}, {f}); got {W_c.shape}")
    canvas = np.zeros(shape)
    vs, hs = h * stride, w * stride
    if vs + f > shape[0] or hs + f > shape[1]:
        raise ValueError(f"show_gradient_spread: the window at ({vs}, {hs}) does not fit in {shape}")
    canvas[vs:vs + f, hs:hs + f] = W_c * dz
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(9, 4))
    _grid(a0, W_c, title="filter W[:, :, 0, c]", cmap="Oranges")
    lim = float(np.abs(canvas).max()) or 1.0
    _grid(a1, canvas, title=f"contribution of dZ[h={h}, w={w}] = {dz:.3g} to dA_prev_pad", cmap="RdBu_r",
          vmin=-lim, vmax=lim)
    a1.add_patch(Rectangle((hs - 0.5, vs - 0.5), f, f, fill=False, ec=WINDOW_COLOR, lw=3))
    return _finish(fig)


# --------------------------------------------------------------------------- notebooks 05-06
@demonstration
def show_pooling(x, A_max, A_avg, f: int, stride: int):
    """The same 2-D input pooled by max and by average, with the first window marked."""
    x = require_array("show_pooling", "x", x, ndim=2, layout="(n_H_prev, n_W_prev)")
    A_max = require_array("show_pooling", "A_max", A_max, ndim=2, layout="(n_H, n_W)")
    A_avg = require_array("show_pooling", "A_avg", A_avg, ndim=2, layout="(n_H, n_W)")
    n_H, n_W = (x.shape[0] - f) // stride + 1, (x.shape[1] - f) // stride + 1
    for name, a in (("A_max", A_max), ("A_avg", A_avg)):
        if a.shape != (n_H, n_W):
            raise ValueError(f"show_pooling: {name} must have shape ({n_H}, {n_W}) = floor((n - f) / stride) + 1 for "
                             f"x {x.shape}, f {f}, stride {stride}; got {a.shape}")
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), gridspec_kw={"width_ratios": [x.shape[1], n_W, n_W]})
    _grid(axes[0], x, title=f"input {x.shape}, f = {f}, stride = {stride}", cmap="Blues")
    axes[0].add_patch(Rectangle((-0.5, -0.5), f, f, fill=False, ec=WINDOW_COLOR, lw=3))
    if n_W > 1:
        axes[0].add_patch(Rectangle((stride - 0.5, -0.5), f, f, fill=False, ec=WINDOW_COLOR, lw=1.5, ls="--"))
    _grid(axes[1], A_max, title=f"max pooling {A_max.shape}", cmap="Reds")
    _grid(axes[2], A_avg, title=f"average pooling {A_avg.shape}", cmap="Greens")
    return _finish(fig)


def receptive_fields(layers) -> list[tuple[int, int]]:
    """``[(r, jump), ...]`` for the input and after each layer of ``layers`` ((label, f, stride) tuples):
    ``r_L = r_{L-1} + (f_L - 1) * jump_{L-1}`` with ``jump_{L-1}`` the product of the strides before layer L."""
    out, r, jump = [(1, 1)], 1, 1
    for _label, f, s in layers:
        r, jump = r + (f - 1) * jump, jump * s
        out.append((r, jump))
    return out


@demonstration
def show_receptive_field(layers, n: int, unit: int | None = None):
    """Which input pixels one unit of the last layer sees, through a stack of convolution and pooling layers.

    ``layers`` is a list of ``(label, f, stride)``, first layer first, with no padding; ``n`` is the input's
    size along one axis (the other axis works the same way). Each row is one layer's output along that
    axis, drawn under the middle of the input pixels it sees; the cells that the chosen ``unit`` of the
    last layer depends on are coloured, and the right-hand labels give r and the spacing of the units in
    input pixels (the product of the strides so far).
    Introduced in notebook 05, section "The receptive field".
    """
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError("show_receptive_field: layers must be a non-empty list of (label, f, stride) tuples")
    checked = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or len(layer) != 3:
            raise ValueError(f"show_receptive_field: layer {i} must be a (label, f, stride) tuple; got {layer!r}")
        label, f, s = layer
        checked.append((str(label), require_positive_int("show_receptive_field", f"f of layer {i}", f),
                        require_positive_int("show_receptive_field", f"stride of layer {i}", s)))
    n = require_positive_int("show_receptive_field", "n", n)
    sizes = [n]
    for label, f, s in checked:
        if sizes[-1] < f:
            raise ValueError(f"show_receptive_field: layer {label!r} (f = {f}) does not fit its input of size "
                             f"{sizes[-1]}; start from a larger n")
        sizes.append((sizes[-1] - f) // s + 1)
    unit = sizes[-1] // 2 if unit is None else int(unit)
    if not 0 <= unit < sizes[-1]:
        raise ValueError(f"show_receptive_field: unit must index the last layer's {sizes[-1]} outputs; got {unit}")
    fields = receptive_fields(checked)
    spans = [(unit, unit)]                                   # top-down: the cells the unit depends on
    for (_label, f, s) in reversed(checked):
        lo, hi = spans[-1]
        spans.append((lo * s, hi * s + f - 1))
    spans = spans[::-1]                                      # spans[L]: the cells of level L
    levels = ["input"] + [f"{label}  (f = {f}, s = {s})" for label, f, s in checked]
    margin = 0.16 * max(len(t) for t in levels)
    fig, ax = plt.subplots(figsize=(0.36 * (n + margin + 9), 0.36 * len(levels) + 1.0))
    cone_left, cone_right = [], []
    for L, size in enumerate(sizes):
        r, jump = fields[L]                  # unit k of this level sees input pixels k * jump ... k * jump + r - 1
        lo, hi = spans[L]
        for k in range(size):
            x, inside = k * jump + (r - 1) / 2, lo <= k <= hi
            ax.add_patch(Rectangle((x - 0.4, L - 0.3), 0.8, 0.6, fc=WINDOW_COLOR if inside else "#dee2e6", ec="white"))
        ax.text(-1.0, L, levels[L], ha="right", va="center", fontsize=9)
        ax.text(n + 0.5, L, f"r = {r}" + (f",  units {jump} pixel{'s' if jump > 1 else ''} apart" if L else ""), ha="left", va="center",
                fontsize=9, color=WINDOW_COLOR if L == len(sizes) - 1 else "black")
        cone_left.append((lo * jump + (r - 1) / 2 - 0.5, L))
        cone_right.append((hi * jump + (r - 1) / 2 + 0.5, L))
    from matplotlib.patches import Polygon

    ax.add_patch(Polygon(cone_left + cone_right[::-1], closed=True, fc=WINDOW_COLOR, alpha=0.08, ec=WINDOW_COLOR,
                         lw=0.8))
    ax.set_xlim(-1.5 - margin, n + 7.5)
    ax.set_ylim(-0.6, len(sizes) - 0.4)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"one unit of the last layer sees {fields[-1][0]} input pixels along each axis "
                 f"(input size {n}, coloured: what it depends on)", fontsize=10)
    return _finish(fig)


@demonstration
def show_mask(x, mask):
    """A window and the boolean mask that marks its maximum."""
    x = require_array("show_mask", "x", x, ndim=2, layout="(f, f)")
    mask = require_array("show_mask", "mask", mask, ndim=2, layout="(f, f)")
    if mask.shape != x.shape:
        raise ValueError(f"show_mask: mask must have the shape of x, {x.shape}; got {mask.shape}")
    return show_matrices({"window x": x, "mask (x == max)": mask.astype(float)}, fmt="{:.3g}")


@demonstration
def show_pool_backward(dA_prev_max, dA_prev_avg, example: int = 0, channel: int = 0):
    """Where the gradient lands in max and in average pooling, for one channel of one example."""
    dA_prev_max = require_array("show_pool_backward", "dA_prev_max", dA_prev_max, ndim=4, layout="(m, n_H, n_W, n_C)")
    dA_prev_avg = require_array("show_pool_backward", "dA_prev_avg", dA_prev_avg, ndim=4, layout="(m, n_H, n_W, n_C)")
    return show_matrices({f"max: dA_prev[{example}, :, :, {channel}]": dA_prev_max[example, ..., channel],
                          f"average: dA_prev[{example}, :, :, {channel}]": dA_prev_avg[example, ..., channel]},
                         cmap="RdBu_r", symmetric=True)


# --------------------------------------------------------------------------- notebook 07
@demonstration
def show_activation(z, a, dz, name: str = "ReLU"):
    """An activation and its derivative, drawn from arrays the learner's functions computed."""
    z = require_array("show_activation", "z", z, ndim=1, layout="(n,)")
    a = require_array("show_activation", "a", a, ndim=1, layout="(n,)")
    dz = require_array("show_activation", "dz", dz, ndim=1, layout="(n,)")
    if not (z.shape == a.shape == dz.shape):
        raise ValueError(f"show_activation: z, a and dz must have the same shape (n,); got {z.shape}, {a.shape}, "
                         f"{dz.shape}")
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    a0.plot(z, a, color=OUT_COLOR, lw=2.5)
    a0.set_title(f"{name}(z)")
    a1.plot(z, dz, color=WINDOW_COLOR, lw=2.5, drawstyle="steps-mid")
    a1.set_title(f"d{name}/dz (upstream gradient 1)")
    for ax in (a0, a1):
        ax.axhline(0, color="gray", lw=0.8)
        ax.axvline(0, color="gray", lw=0.8)
        ax.set_xlabel("z")
        ax.grid(alpha=0.3)
    return _finish(fig)


# --------------------------------------------------------------------------- notebook 08
@demonstration
def show_kernels(Kx, Ky):
    """The two Sobel kernels with their values."""
    Kx = require_array("show_kernels", "Kx", Kx, ndim=2, layout="(3, 3)")
    Ky = require_array("show_kernels", "Ky", Ky, ndim=2, layout="(3, 3)")
    return show_matrices({"Kx (vertical edges)": Kx, "Ky (horizontal edges)": Ky}, fmt="{:.0f}", cmap="RdBu_r",
                         symmetric=True)


@demonstration
def show_edges(image, gx, gy, magnitude):
    """The photograph beside its vertical edges (gx), horizontal edges (gy) and edge magnitude."""
    image = require_array("show_edges", "image", image, ndim=(2, 3), layout="(H, W) or (H, W, 3)")
    H, W = image.shape[:2]
    arrays = {}
    for name, arr in (("gx", gx), ("gy", gy), ("magnitude", magnitude)):
        arr = require_array("show_edges", name, arr, ndim=2, layout=f"({H}, {W})")
        if arr.shape != (H, W):
            raise ValueError(f"show_edges: {name} must have the image's shape ({H}, {W}); got {arr.shape}")
        arrays[name] = arr
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.6))
    axes[0].imshow(image, cmap=None if image.ndim == 3 else "gray")
    axes[0].set_title("photograph")
    lim = max(np.abs(arrays["gx"]).max(), np.abs(arrays["gy"]).max()) or 1.0
    axes[1].imshow(arrays["gx"], cmap="RdBu_r", vmin=-lim / 2, vmax=lim / 2)
    axes[1].set_title("gx = image ⋆ Kx  (vertical edges)")
    axes[2].imshow(arrays["gy"], cmap="RdBu_r", vmin=-lim / 2, vmax=lim / 2)
    axes[2].set_title("gy = image ⋆ Ky  (horizontal edges)")
    axes[3].imshow(arrays["magnitude"], cmap="gray_r", vmax=np.percentile(arrays["magnitude"], 99.5) or None)
    axes[3].set_title("magnitude  sqrt(gx² + gy²)")
    for ax in axes:
        ax.axis("off")
    return _finish(fig)


@demonstration
def show_flip_difference(corr, conv):
    """Cross-correlation against true convolution with the same kernel, on the same image."""
    corr = require_array("show_flip_difference", "corr", corr, ndim=2, layout="(H, W)")
    conv = require_array("show_flip_difference", "conv", conv, ndim=2, layout="(H, W)")
    if corr.shape != conv.shape:
        raise ValueError(f"show_flip_difference: both results must have the same shape; got {corr.shape} and "
                         f"{conv.shape}")
    lim = max(np.abs(corr).max(), np.abs(conv).max()) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.3))
    for ax, M, t in zip(axes, (corr, conv), ("cross-correlation (what CNNs compute)", "true convolution (kernel flipped)")):
        ax.imshow(M, cmap="RdBu_r", vmin=-lim / 2, vmax=lim / 2)
        ax.set_title(t)
        ax.axis("off")
    return _finish(fig)


# --------------------------------------------------------------------------- notebook 10: the digits network
def _digit_axes(ax, image, title=None, fontsize=9):
    ax.imshow(np.asarray(image, dtype=float).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize)


@demonstration
def show_digits(X, y, n: int = 20):
    """The first ``n`` digits of ``X`` (m, 8, 8, 1), with their labels ``y`` (notebook 10)."""
    X = require_array("show_digits", "X", X, ndim=4, layout="(m, 8, 8, 1)")
    n = min(require_positive_int("show_digits", "n", n), len(X))
    cols = min(n, 10)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.6 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < n:
            _digit_axes(ax, X[k], f"{int(y[k])}", 11)
        else:
            ax.axis("off")
    fig.suptitle("8 x 8 handwritten digits (grey levels 0-16, scaled to [0, 1]) and their labels", fontsize=10)
    return _finish(fig)


@demonstration
def show_training_curves(losses, steps_per_epoch: int, train_accuracy=(), test_accuracy=()):
    """The loss at every step (and its mean per epoch), and the accuracy after every epoch (notebook 10)."""
    losses = require_array("show_training_curves", "losses", losses, ndim=1, layout="(steps,)")
    steps_per_epoch = require_positive_int("show_training_curves", "steps_per_epoch", steps_per_epoch)
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 3.8))
    steps = np.arange(1, len(losses) + 1)
    a0.plot(steps, losses, color="#bbbbbb", linewidth=0.8, label="one batch")
    n_ep = len(losses) // steps_per_epoch
    if n_ep:
        means = losses[:n_ep * steps_per_epoch].reshape(n_ep, steps_per_epoch).mean(axis=1)
        a0.plot(np.arange(1, n_ep + 1) * steps_per_epoch, means, "o-", color=OUT_COLOR, label="mean over the epoch")
    a0.set_yscale("log")
    a0.set_xlabel("SGD step")
    a0.set_ylabel("cross-entropy loss (log scale)")
    a0.set_title("loss")
    a0.legend()
    if len(train_accuracy) or len(test_accuracy):
        for acc, label, color in ((train_accuracy, "training set", "#457b9d"), (test_accuracy, "test set", WINDOW_COLOR)):
            if len(acc):
                a1.plot(np.arange(1, len(acc) + 1), 100 * np.asarray(acc, dtype=float), "o-", label=label, color=color)
        a1.set_xlabel("epoch")
        a1.set_ylabel("accuracy (%)")
        a1.set_title("accuracy after each epoch")
        a1.legend()
        a1.grid(alpha=0.3)
    else:
        a1.text(0.5, 0.5, "no accuracies recorded\n(train_cnn calls callback(epoch, params)\nafter each epoch)",
                ha="center", va="center", transform=a1.transAxes)
        a1.axis("off")
    return _finish(fig)


@demonstration
def show_filters(W, title: str = "first-layer filters"):
    """The filters of a convolution with one input channel, W (f, f, 1, n_C), each on its own scale
    centred on 0 (red positive, blue negative) (notebook 10)."""
    W = require_array("show_filters", "W", W, ndim=4, layout="(f, f, 1, n_C)")
    n = W.shape[3]
    cols = min(n, 8)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.8 * rows), squeeze=False)
    for c, ax in enumerate(axes.flat):
        if c < n:
            k = W[:, :, 0, c]
            lim = float(np.abs(k).max()) or 1.0
            ax.imshow(k, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(f"filter {c}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _finish(fig)


@demonstration
def show_confusion(y_true, y_pred, n_classes: int = 10):
    """The confusion matrix: row = true label, column = predicted label, with the counts (notebook 10)."""
    y_true = require_array("show_confusion", "y_true", y_true, ndim=1, layout="(m,)").astype(int)
    y_pred = require_array("show_confusion", "y_pred", y_pred, ndim=1, layout="(m,)").astype(int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"show_confusion: y_true and y_pred must have the same shape; got {y_true.shape} and "
                         f"{y_pred.shape}")
    M = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(M, (y_true, y_pred), 1)
    fig, ax = plt.subplots(figsize=(5.6, 5))
    _grid(ax, np.log1p(M), annotate=False, cmap="Blues")
    for i in range(n_classes):
        for j in range(n_classes):
            if M[i, j]:
                ax.text(j, i, str(M[i, j]), ha="center", va="center", fontsize=9,
                        color="white" if i == j else ("#b00020" if i != j else "black"))
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    errors = int(M.sum() - np.trace(M))
    ax.set_title(f"confusion matrix: {errors} of {M.sum()} wrong ({100 * np.trace(M) / max(M.sum(), 1):.1f}% right)")
    return _finish(fig)


@demonstration
def show_misclassified(X, y_true, y_pred, probabilities=None, max_n: int = 12):
    """The digits the network got wrong, with the true and the predicted label (notebook 10)."""
    X = require_array("show_misclassified", "X", X, ndim=4, layout="(m, 8, 8, 1)")
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:max_n]
    if not len(wrong):
        print("No test digit is misclassified.")
        return None
    cols = min(len(wrong), 6)
    rows = -(-len(wrong) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 2.0 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(wrong):
            i = wrong[k]
            extra = "" if probabilities is None else f" ({100 * float(np.asarray(probabilities)[i].max()):.0f}%)"
            _digit_axes(ax, X[i], f"true {int(y_true[i])}, said {int(y_pred[i])}{extra}", 8)
        else:
            ax.axis("off")
    fig.suptitle("misclassified test digits: the true label, the network's answer (and its probability)", fontsize=10)
    return _finish(fig)


@demonstration
def show_digit_through_network(x, caches, probabilities, max_maps: int = 8):
    """One digit through the network: the input, the ReLU outputs of both convolutions, both pooled
    maps, and the ten output probabilities. ``caches`` is what ``cnn_forward`` returned for a batch
    whose first example is ``x`` (the layers' caches: conv1, relu1, pool1, conv2, relu2, pool2, dense)
    (notebook 10)."""
    x = require_array("show_digit_through_network", "x", x, layout="(8, 8, 1)")
    layers = [("ReLU(conv1)", np.maximum(np.asarray(caches["relu1"])[0], 0)),
              ("pool1", np.asarray(caches["conv2"][0])[0]),
              ("ReLU(conv2)", np.maximum(np.asarray(caches["relu2"])[0], 0)),
              ("pool2", np.asarray(caches["dense"][0])[0].reshape(np.asarray(caches["pool2"][0]).shape[1] // 2,
                                                                  -1, np.asarray(caches["relu2"]).shape[3]))]
    rows = len(layers) + 1
    fig, axes = plt.subplots(rows, max_maps, figsize=(1.35 * max_maps, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _digit_axes(axes[0, 0], x, "input 8 x 8")
    axes[0, 0].axis("on")
    p = np.asarray(probabilities, dtype=float).ravel()
    gs = axes[0, 2].get_gridspec()
    bar = fig.add_subplot(gs[0, 2:])
    bar.bar(range(len(p)), p, color=[WINDOW_COLOR if k == int(np.argmax(p)) else "#8d99ae" for k in range(len(p))])
    bar.set_xticks(range(len(p)))
    bar.set_ylim(0, 1)
    bar.set_title("softmax probabilities", fontsize=9)
    for r, (name, maps) in enumerate(layers, start=1):
        lim = float(maps.max()) or 1.0
        for c in range(min(max_maps, maps.shape[-1])):
            ax = axes[r, c]
            ax.imshow(maps[:, :, c], cmap="magma", vmin=0, vmax=lim)
            ax.set_title(f"{name} [{c}]" if c == 0 else f"[{c}]", fontsize=8)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{maps.shape[0]} x {maps.shape[1]}", fontsize=8)
    fig.suptitle(f"one digit through the network (the first {max_maps} channels of each layer)", fontsize=10)
    return _finish(fig)


# --------------------------------------------------------------------------- notebook 09
_WINDOW_COLORS = ("#e63946", "#2a9d8f", "#e9c46a", "#6a4c93")


@demonstration
def show_im2col(A_prev, W, stride: int = 1, pad: int = 0, example: int = 0, mark: tuple = (0, 1)):
    """im2col as a picture: every window of one example as a row of a matrix, the filters as the columns
    of another, and the convolution as their product.

    ``A_prev`` is (m, n_H_prev, n_W_prev, n_C_prev) and ``W`` is (f, f, n_C_prev, n_C). The windows
    listed in ``mark`` (row numbers of the windows matrix, in reading order) are outlined in the input
    and coloured in the matrix. The figure builds its matrices with plain loops, one window at a time:
    it shows the layout, it is not a fast layer.
    """
    A_prev = require_array("show_im2col", "A_prev", A_prev, ndim=4, layout="(m, n_H_prev, n_W_prev, n_C_prev)")
    W = require_array("show_im2col", "W", W, ndim=4, layout="(f, f, n_C_prev, n_C)")
    stride = require_positive_int("show_im2col", "stride", stride)
    f, _, n_C_prev, n_C = W.shape
    if A_prev.shape[3] != n_C_prev:
        raise ValueError(f"show_im2col: A_prev has {A_prev.shape[3]} channels but W expects n_C_prev = {n_C_prev}")
    plane = np.pad(A_prev[example], ((pad, pad), (pad, pad), (0, 0)))
    n_H, n_W = (plane.shape[0] - f) // stride + 1, (plane.shape[1] - f) // stride + 1
    if n_H * n_W > 36 or f * f * n_C_prev > 36:
        raise ValueError(f"show_im2col: this picture is for small layers (at most 36 windows of at most 36 entries); "
                         f"got {n_H * n_W} windows of {f * f * n_C_prev}")
    rows = []
    for h in range(n_H):
        for w in range(n_W):
            rows.append(plane[h * stride:h * stride + f, w * stride:w * stride + f, :].reshape(-1))
    cols, Wm = np.array(rows), W.reshape(f * f * n_C_prev, n_C)
    fig, axes = plt.subplots(1, 4, figsize=(14, 4.8),
                             gridspec_kw={"width_ratios": [plane.shape[1] + 1, cols.shape[1], n_C + 1, n_C + 1]})
    _grid(axes[0], plane[..., 0], cmap="Blues", fmt="{:.1f}", fontsize=7,
          title=f"input {example}, channel 0\n(f = {f}, stride = {stride}, pad = {pad})")
    _grid(axes[1], cols, cmap="Blues", fmt="{:.1f}", annotate=False,
          title=f"windows as rows: {n_H * n_W} x {f}*{f}*{n_C_prev}")
    _grid(axes[2], Wm, cmap="Oranges", annotate=False, title=f"filters as columns:\n{f}*{f}*{n_C_prev} x {n_C}")
    _grid(axes[3], cols @ Wm, cmap="RdBu_r", annotate=False, title=f"product = Z[{example}]\nreshaped {n_H * n_W} x {n_C}")
    for k, r in enumerate(mark):
        if not 0 <= r < n_H * n_W:
            continue
        color = _WINDOW_COLORS[k % len(_WINDOW_COLORS)]
        h, w = divmod(r, n_W)
        axes[0].add_patch(Rectangle((w * stride - 0.5, h * stride - 0.5), f, f, fill=False, ec=color, lw=3))
        for ax, width in ((axes[1], cols.shape[1]), (axes[3], n_C)):
            ax.add_patch(Rectangle((-0.5, r - 0.5), width, 1, fill=False, ec=color, lw=2.5))
        axes[1].annotate(f"window (h={h}, w={w})", xy=(cols.shape[1] - 0.5, r), xytext=(3, 0),
                         textcoords="offset points", color=color, fontsize=8, va="center")
    axes[1].set_xlabel("entries of the window: (u, v, k) in reading order")
    axes[2].set_xlabel("filter c")
    fig.suptitle("im2col: Z = (windows as rows) @ (filters as columns), one matrix product for the whole layer")
    return _finish(fig)


@demonstration
def show_race(results: dict, flops: float, peak: float | None = None, title: str = ""):
    """The speed race: wall times on a log scale, and the GFLOP/s each contestant reached.

    ``results`` is ``{name: {"forward": seconds, "backward": seconds}}`` (what ``speed.race`` returns),
    ``flops`` the forward pass's operation count (the backward pass does twice as many), and ``peak``
    this machine's float64 GEMM rate in GFLOP/s (``speed.gemm_peak()``), drawn as a line.
    """
    if not isinstance(results, dict) or not results:
        raise ValueError("show_race: expected {name: {'forward': seconds, 'backward': seconds}}")
    for name, t in results.items():
        if not isinstance(t, dict) or not all(float(t.get(k, 0)) > 0 for k in ("forward", "backward")):
            raise ValueError(f"show_race: results[{name!r}] must hold positive 'forward' and 'backward' times")
    names = list(results)
    y = np.arange(len(names))
    passes = (("forward", 1.0, "#457b9d"), ("backward", 2.0, "#e76f51"))
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 1.2 + 0.9 * len(names)))
    for k, (kind, factor, color) in enumerate(passes):
        times = np.array([results[n][kind] for n in names])
        rates = factor * flops / times / 1e9
        for ax, values, unit in ((a0, times * 1e3, " ms"), (a1, rates, "")):
            bars = ax.barh(y + (k - 0.5) * 0.38, values, height=0.36, color=color, label=kind)
            for bar, v in zip(bars, values):
                text = f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
                ax.text(bar.get_width() * 1.08, bar.get_y() + bar.get_height() / 2, text + unit, va="center",
                        fontsize=8)
    a0.set_xscale("log")
    a0.set_xlabel("wall time (ms, log scale): shorter is faster")
    a1.set_xscale("log")
    a1.set_xlabel("GFLOP/s reached (log scale)")
    if peak:
        a1.axvline(peak, color="black", ls="--", lw=1.2)
        a1.text(peak, -0.62, f"float64 GEMM peak of this machine: {peak:.3g} GFLOP/s ", fontsize=8, va="bottom",
                ha="right")
    for ax in (a0, a1):
        ax.set_yticks(y)
        ax.set_yticklabels(names)
        ax.set_ylim(len(names) - 0.4, -0.75)
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo, hi * 8)
    a0.legend(loc="lower right", fontsize=8)
    fig.suptitle(title or f"the race: forward {flops / 1e6:.1f} MFLOP, backward {2 * flops / 1e6:.1f} MFLOP")
    return _finish(fig)
