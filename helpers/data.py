"""Data for the course: the photograph, the handwritten digits, and the reference cases stored in HDF5.

The reference file ``data/reference_outputs.h5`` holds, for each graded function and each case,
the arguments it is called with and the outputs the reference solutions give. It is written by
``cnn-course refdata`` from the solution cells of the source notebooks; nothing here computes it.

Layout of the file::

    /<function>/<case>            attrs: description, visible (bool)
    /<function>/<case>/args/0..n  the positional arguments, in order
    /<function>/<case>/outputs/<name>

A value is stored as a dataset (array, int, float, str) or, for a tuple or a dict, as a group
whose ``kind`` attribute says which; see :func:`write_value` and :func:`read_value`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np


DATA_DIR = Path(os.environ.get("CNN_COURSE_DATA", Path(__file__).resolve().parent.parent / "data"))
REFERENCE_FILE = DATA_DIR / "reference_outputs.h5"
PHOTO_FILE = DATA_DIR / "grace_hopper.jpg"
DIGITS_FILE = DATA_DIR / "digits.h5"

#: The fixed split of the digits (notebook 10): a permutation drawn with this seed, the first
#: ``DIGITS_TEST_SIZE`` images of it held out for testing, the other 1,437 for training.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360


# --------------------------------------------------------------------------- HDF5 values
def write_value(group: h5py.Group, key: str, value) -> None:
    """Store ``value`` under ``group[key]``: arrays, numbers, strings, tuples/lists and dicts."""
    if isinstance(value, dict):
        sub = group.create_group(key)
        sub.attrs["kind"] = "dict"
        for k, v in value.items():
            write_value(sub, str(k), v)
    elif isinstance(value, (tuple, list)):
        sub = group.create_group(key)
        sub.attrs["kind"] = "tuple"
        for i, v in enumerate(value):
            write_value(sub, str(i), v)
    elif isinstance(value, str):
        ds = group.create_dataset(key, data=value)
        ds.attrs["kind"] = "str"
    elif isinstance(value, (bool, np.bool_)):
        ds = group.create_dataset(key, data=bool(value))
        ds.attrs["kind"] = "bool"
    elif isinstance(value, (int, np.integer)):
        ds = group.create_dataset(key, data=int(value))
        ds.attrs["kind"] = "int"
    elif isinstance(value, (float, np.floating)):
        ds = group.create_dataset(key, data=float(value))
        ds.attrs["kind"] = "float"
    else:
        ds = group.create_dataset(key, data=np.asarray(value))
        ds.attrs["kind"] = "array"


def read_value(obj):
    """Inverse of :func:`write_value`."""
    kind = obj.attrs.get("kind", "array")
    if isinstance(obj, h5py.Group):
        keys = list(obj.keys())
        if kind == "tuple":
            return tuple(read_value(obj[str(i)]) for i in range(len(keys)))
        return {k: read_value(obj[k]) for k in keys}
    if kind == "str":
        raw = obj[()]
        return raw.decode() if isinstance(raw, bytes) else str(raw)
    if kind == "int":
        return int(obj[()])
    if kind == "float":
        return float(obj[()])
    if kind == "bool":
        return bool(obj[()])
    return np.array(obj[()])


@dataclass
class Case:
    """One stored call of a graded function: its arguments and the reference outputs."""

    function: str
    name: str
    description: str
    visible: bool
    args: tuple
    outputs: dict = field(default_factory=dict)


def load_case(function: str, case: str = "canonical", path: Path | str | None = None) -> Case:
    """Load one reference case from the HDF5 file.

    Raises ``ValueError`` naming the available functions or cases when the name is unknown.
    """
    path = Path(path) if path is not None else REFERENCE_FILE
    if not path.exists():
        raise FileNotFoundError(f"reference file {path} is missing; instructors rebuild it with `cnn-course refdata`")
    with h5py.File(path, "r") as h5:
        if function not in h5:
            raise ValueError(f"no reference cases for {function!r}; the file has: {', '.join(sorted(h5))}")
        if case not in h5[function]:
            raise ValueError(f"no case {case!r} for {function}; available: {', '.join(sorted(h5[function]))}")
        g = h5[function][case]
        args = read_value(g["args"])
        outputs = {k: read_value(g["outputs"][k]) for k in g["outputs"]}
        return Case(function, case, str(g.attrs.get("description", "")), bool(g.attrs.get("visible", False)),
                    args, outputs)


def list_cases(function: str | None = None, path: Path | str | None = None) -> dict[str, list[str]]:
    """Map each function (or just ``function``) to its case names."""
    path = Path(path) if path is not None else REFERENCE_FILE
    with h5py.File(path, "r") as h5:
        names = [function] if function else sorted(h5)
        return {f: sorted(h5[f]) for f in names if f in h5}


# --------------------------------------------------------------------------- images
def load_photo(path: Path | str | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Load the course photograph as a ``(H, W, 3)`` uint8 RGB array, read with Pillow.

    The default is the Grace Hopper portrait in ``data/`` (public domain; see ``data/README.md``).
    ``size=(width, height)`` resizes it. Used from notebook 01 (an image as a matrix) on.
    """
    from PIL import Image

    path = Path(path) if path is not None else PHOTO_FILE
    if not path.exists():
        raise FileNotFoundError(f"photo {path} is missing")
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None:
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"load_photo: size must be (width, height) with positive ints, got {size!r}")
            im = im.resize(tuple(int(s) for s in size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8).copy()


def load_digits(path: Path | str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The UCI handwritten digits, split once and for all: ``(X_train, y_train, X_test, y_test)``.

    ``X_*`` are float64 arrays ``(m, 8, 8, 1)`` (channels-last, one grey channel) with values in
    [0, 1] (the 17 grey levels 0-16 divided by 16); ``y_*`` are int64 labels 0-9. The split is fixed:
    ``np.random.default_rng(DIGITS_SPLIT_SEED).permutation(1797)`` (seed 0), whose first 360 images
    are the test set and the other 1,437 the training set, so every learner and the grader see the
    same two sets. The file ``data/digits.h5`` is written once by ``scripts/make_digits.py`` from the
    copy that scikit-learn bundles (licence CC BY 4.0, see ``data/README.md``). Notebook 10.
    """
    path = Path(path) if path is not None else DIGITS_FILE
    if not path.exists():
        raise FileNotFoundError(f"digits file {path} is missing; instructors write it with "
                                "`python scripts/make_digits.py` (needs scikit-learn once)")
    with h5py.File(path, "r") as h5:
        images = np.asarray(h5["images"][()])
        labels = np.asarray(h5["labels"][()])
    if images.ndim != 3 or images.shape[1:] != (8, 8) or labels.shape != images.shape[:1]:
        raise ValueError(f"{path}: expected images (m, 8, 8) and labels (m,); got {images.shape} and {labels.shape}")
    X = (images.astype(np.float64) / 16.0)[..., np.newaxis]
    y = labels.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(y))
    test, train = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    return X[train], y[train], X[test], y[test]


# Top-left corners (row, column) of interesting 128 x 128 regions of the photograph:
# the eyes and glasses, the cap badge, the mouth and collar, a flag star.
PHOTO_REGIONS = ((150, 170), (20, 180), (250, 180), (40, 20), (420, 290), (200, 330))


def photo_batch(m: int = 4, size: int = 64) -> np.ndarray:
    """A batch ``(m, size, size, 3)`` of float64 crops of the photograph, values in [0, 1].

    Each crop is one of the regions in ``PHOTO_REGIONS`` (128 x 128 pixels), resized to ``size``.
    Notebook 01 uses it to show a batch of images as one 4-D array ``(m, n_H, n_W, n_C)``.
    """
    from PIL import Image

    if not 1 <= m <= len(PHOTO_REGIONS) or size < 1:
        raise ValueError(f"photo_batch: need 1 <= m <= {len(PHOTO_REGIONS)} and size >= 1, got m={m}, size={size}")
    photo = load_photo()
    crops = []
    for top, left in PHOTO_REGIONS[:m]:
        region = Image.fromarray(photo[top:top + 128, left:left + 128])
        crops.append(np.asarray(region.resize((size, size), Image.Resampling.BILINEAR)) / 255.0)
    return np.stack(crops).astype(np.float64)


def vertical_line_image(n: int = 8, width: int = 2) -> np.ndarray:
    """An ``n x n`` float image of zeros with a ``width``-pixel vertical line of ones in the middle.

    The line-detector example of notebook 08.
    """
    if n < 1 or width < 1 or width > n:
        raise ValueError(f"vertical_line_image: need 1 <= width <= n, got n={n}, width={width}")
    img = np.zeros((n, n))
    start = (n - width) // 2
    img[:, start:start + width] = 1.0
    return img
