"""Input checks shared by the engine and the command line.

Every check raises a ValueError that names the bad value, where it is, and what is allowed,
so the CLI and the app can show it to a user as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

KERNELS = ("gaussian", "cosine")
METHODS = ("auto", "exact", "rff", "nystrom")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")


def check_choice(name: str, value: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {', '.join(allowed)}")
    return value


def check_positive(name: str, value: float | None, *, allow_none: bool = True) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_embedding(x: object, name: str) -> np.ndarray:
    """Return `x` as a 2-D float array with finite values, or raise naming the first bad row."""
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (rows = samples, columns = features), got shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no feature columns (shape {arr.shape})")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    step = max(1, 2**24 // arr.shape[1])  # checked in blocks: no n x d temporary
    for start in range(0, arr.shape[0], step):
        bad = ~np.isfinite(arr[start : start + step]).all(axis=1)
        if bad.any():
            row = start + int(np.argmax(bad))
            count = int((~np.isfinite(arr).all(axis=1)).sum())
            raise ValueError(
                f"{name} has NaN or infinite values in {count} row(s); the first is row {row}"
            )
    return arr


def check_pair(emb_a: np.ndarray, emb_b: np.ndarray) -> None:
    if emb_a.shape[0] != emb_b.shape[0]:
        raise ValueError(
            f"A and B must describe the same samples, row for row: A has {emb_a.shape[0]} rows, "
            f"B has {emb_b.shape[0]}"
        )
    if emb_a.shape[0] < 3:
        raise ValueError(f"SPEC needs at least 3 rows (samples), got {emb_a.shape[0]}")


def check_no_zero_rows(x: np.ndarray, name: str) -> None:
    """The cosine kernel divides by the row norm: an all-zero row has no direction."""
    zero = ~(np.abs(x) > 0).any(axis=1)
    if zero.any():
        row = int(np.argmax(zero))
        raise ValueError(
            f"{name} row {row} is all zeros, which the cosine kernel cannot normalise "
            f"({int(zero.sum())} such row(s)); drop them or use kernel='gaussian'"
        )
