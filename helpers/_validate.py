"""Input validation shared by the helpers: wrong input gets a ValueError that names what was expected."""
from __future__ import annotations

import numpy as np


def require_array(func: str, name: str, value, *, ndim: int | tuple[int, ...] | None = None,
                  layout: str | None = None, dtype_kind: str | None = "biuf") -> np.ndarray:
    """Return ``value`` as an ndarray, or raise ValueError saying what ``func`` expected.

    ``layout`` is the human description of the expected shape, e.g. ``"(m, n_H, n_W, n_C)"``.
    ``dtype_kind`` lists the accepted numpy dtype kinds (``"biuf"``: bool, int, unsigned, float).
    """
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise ValueError(f"{func}: {name} must be a numpy array, got {type(value).__name__}") from exc
        if value.dtype == object:
            raise ValueError(f"{func}: {name} must be a numpy array of numbers, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            want = layout or " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{func}: {name} must have shape {want} ({' or '.join(map(str, allowed))} dimensions); "
                             f"got shape {value.shape}")
    if dtype_kind is not None and value.dtype.kind not in dtype_kind:
        raise ValueError(f"{func}: {name} must hold numbers (dtype kinds {dtype_kind!r}); got dtype {value.dtype}")
    return value


def require_positive_int(func: str, name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        shown = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"{func}: {name} must be a positive integer, got {shown!r}")
    return int(value)
