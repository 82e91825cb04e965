"""Rows of a dataset picked by a user: a mode's full ranking, nearest neighbours of one row in an
embedding, a text search, and the table / CSV of any set of rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranked_rows(scores: np.ndarray) -> np.ndarray:
    """Every row, highest score first (ties in row order): a mode's full member list."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def nearest(
    matrix: np.ndarray, row: int, k: int, *, metric: str = "euclidean"
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` rows nearest to `row` (itself excluded), nearest first, with their distances:
    Euclidean, or cosine distance 1 - cos (the geometry of the Gaussian / cosine kernel)."""
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric={metric!r} is not one of euclidean, cosine")
    x = np.asarray(matrix, dtype=np.float32)
    n = x.shape[0]
    if not 0 <= row < n:
        raise ValueError(f"row {row} is not a row of a {n}-row matrix")
    k = max(0, min(int(k), n - 1))
    query = x[row].astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1).astype(np.float64) * max(np.linalg.norm(query), 1e-30)
        distance = 1.0 - (x @ query) / np.maximum(norms, 1e-30)
    else:
        distance = np.sqrt(np.maximum(((x - query) ** 2).sum(axis=1, dtype=np.float64), 0.0))
    distance[row] = np.inf
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    part = np.argpartition(distance, k - 1)[:k]
    order = part[np.lexsort((part, distance[part]))]
    return order.astype(np.int64), distance[order]


def search(
    query: str, ids: Sequence[str], texts: Sequence[str] | None = None, *, limit: int = 500
) -> list[int]:
    """Rows whose id or text contains `query` (case-insensitive), in row order, at most
    `limit`."""
    needle = query.strip().casefold()
    if not needle:
        return []
    found = []
    for row, row_id in enumerate(ids):
        text = texts[row] if texts is not None else ""
        if needle in str(row_id).casefold() or needle in str(text).casefold():
            found.append(row)
            if len(found) >= limit:
                break
    return found
