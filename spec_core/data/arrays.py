"""Embedding matrices as users give them: checked to be 2-D, numeric and finite, with rows that
tell the samples apart, before any work starts.

Every check raises a ValueError that names the matrix ("A", "B", a file), the first bad row and
what was expected, so the CLI and the app can show it as it is. Inputs are only read: a float32
or float64 array comes back as the same object (never copied, never written).
"""

from __future__ import annotations

import numpy as np

from spec_core.data.shards import ShardedMatrix

#: dtype kinds accepted as numbers: float, signed and unsigned integer, bool (not timedelta
#: "m", datetime "M", complex "c", strings, bytes or objects).
NUMERIC_KINDS = "fiub"


def check_embedding(
    x: object, name: str, *, max_dim: int | None = None, max_rows: int | None = None
) -> np.ndarray:
    """Return `x` as a 2-D float array with finite values, or raise naming the first bad row.

    float32 and float64 arrays are returned as they are (a view: never copied, never written);
    other numeric dtypes (float16, integers, bool) become a float32 copy."""
    if isinstance(x, ShardedMatrix):  # read by row blocks, never made into one array
        _check_shape(x, name, max_dim=max_dim, max_rows=max_rows)
        _check_finite_rows(x, name)
        return x
    if isinstance(x, np.ma.MaskedArray):  # masked entries are missing values: NaN, refused
        x = np.ma.filled(x.astype(np.float64), np.nan) if x.dtype.kind in "fiub" else x.data
    try:
        arr = x if type(x) is np.ndarray else np.asarray(x).view(np.ndarray)  # np.matrix too
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} is not an array of numbers ({err})") from None
    if arr.dtype.kind not in NUMERIC_KINDS:
        what = {"m": "time deltas", "M": "dates", "c": "complex numbers", "O": "Python objects"}
        raise ValueError(
            f"{name} must hold real numbers (float, integer or bool), got dtype {arr.dtype}"
            + (f" ({what[arr.dtype.kind]})" if arr.dtype.kind in what else "")
        )
    _check_shape(arr, name, max_dim=max_dim, max_rows=max_rows)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32) if arr.dtype.itemsize <= 4 else arr.astype(np.float64)
    _check_finite_rows(arr, name)
    return arr


def _check_shape(arr, name: str, *, max_dim: int | None, max_rows: int | None) -> None:
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (rows = samples, columns = features), got shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no feature columns (shape {arr.shape})")
    if max_dim is not None and arr.shape[1] > max_dim:
        raise ValueError(
            f"{name} has {arr.shape[1]:,} columns, more than the {max_dim:,} this tool accepts; "
            "reduce the dimension first (e.g. with PCA)"
        )
    if max_rows is not None and arr.shape[0] > max_rows:
        raise ValueError(
            f"{name} has {arr.shape[0]:,} rows, more than the {max_rows:,} this tool accepts"
        )


def _check_finite_rows(arr, name: str) -> None:
    step = max(1, 2**24 // arr.shape[1])  # checked in blocks: no n x d temporary
    first, count = None, 0
    for start in range(0, arr.shape[0], step):
        bad = ~np.isfinite(arr[start : start + step]).all(axis=1)
        if bad.any():
            first = start + int(np.argmax(bad)) if first is None else first
            count += int(bad.sum())
    if first is not None:
        raise ValueError(
            f"{name} has NaN or infinite values in {count} row(s); the first is row {first}"
        )


def check_not_constant(x: np.ndarray, name: str) -> None:
    """Every row the same: the embedding does not tell the samples apart."""
    step = max(1, 2**24 // x.shape[1])
    first = x[0]
    for start in range(0, x.shape[0], step):
        if not (x[start : start + step] == first).all():
            return
    raise ValueError(
        f"{name}: all {x.shape[0]} rows are identical, so the embedding does not tell the "
        "samples apart; nothing to compare"
    )


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
    step = max(1, 2**24 // x.shape[1])  # in blocks: no n x d temporary
    first, count = None, 0
    for start in range(0, x.shape[0], step):
        zero = ~(np.abs(x[start : start + step]) > 0).any(axis=1)
        if zero.any():
            first = start + int(np.argmax(zero)) if first is None else first
            count += int(zero.sum())
    if first is not None:
        raise ValueError(
            f"{name} row {first} is all zeros, which the cosine kernel cannot normalise "
            f"({count} such row(s)); drop them or use kernel='gaussian'"
        )
