"""Write data/digits.h5 from the UCI optical-recognition handwritten digits that scikit-learn bundles.

Run once by an instructor (scikit-learn is needed for this script only, never at run time):

    pip install scikit-learn && python scripts/make_digits.py

The file holds the 1,797 images exactly as UCI publishes them (8 x 8, integer grey levels 0 to 16,
uint8) and their labels 0-9 (uint8), in scikit-learn's order, with the source and the licence
(CC BY 4.0) as attributes. ``helpers.data.load_digits`` splits and scales them.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import h5py
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "data" / "digits.h5"
SOURCE = ("UCI Machine Learning Repository, 'Optical Recognition of Handwritten Digits' (Alpaydin and Kaynak, "
          "1998), https://doi.org/10.24432/C50P49; the copy bundled in scikit-learn as sklearn.datasets.load_digits")
LICENCE = "CC BY 4.0 (Creative Commons Attribution 4.0 International), https://creativecommons.org/licenses/by/4.0/"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    args = parser.parse_args(argv)
    try:
        import sklearn
        from sklearn.datasets import load_digits
    except ImportError:
        parser.error("scikit-learn is needed to run this script once: pip install scikit-learn")
    digits = load_digits()
    images = np.asarray(digits.images)
    labels = np.asarray(digits.target)
    if images.shape != (1797, 8, 8) or labels.shape != (1797,) or images.min() < 0 or images.max() > 16 \
            or not np.array_equal(images, np.round(images)) or set(labels.tolist()) != set(range(10)):
        raise SystemExit(f"unexpected data from scikit-learn {sklearn.__version__}: images {images.shape}, "
                         f"labels {labels.shape}")
    images, labels = images.astype(np.uint8), labels.astype(np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset("images", data=images, compression="gzip", compression_opts=9, shuffle=True)
        h5.create_dataset("labels", data=labels, compression="gzip", compression_opts=9)
        h5.attrs["source"] = SOURCE
        h5.attrs["licence"] = LICENCE
        h5.attrs["written_by"] = f"scripts/make_digits.py with scikit-learn {sklearn.__version__}"
        h5.attrs["sha256_images_labels"] = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    tmp.replace(args.out)
    print(f"wrote {args.out}: {len(labels)} images {images.shape[1:]} (grey levels 0-16), labels 0-9, "
          f"{args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
