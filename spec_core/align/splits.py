"""Which rows train and which validate, and the seeded samples of rows that are measured: shared
by SPEC-align (`align`) and its fine-tuning variant (`finetune`)."""

from __future__ import annotations

import numpy as np

#: Both splits need at least this many rows.
MIN_SPLIT_ROWS = 10


def split_rows(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / validation split of n rows, both sorted."""
    n_val = round(val_fraction * n)
    if n_val < MIN_SPLIT_ROWS or n - n_val < MIN_SPLIT_ROWS:
        raise ValueError(
            f"{n} rows with val_fraction={val_fraction:g} leave {n - n_val} train and {n_val} "
            f"validation rows; each needs at least {MIN_SPLIT_ROWS}"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def sample_rows(rows: np.ndarray, seed: int, count: int) -> np.ndarray:
    """`rows` when there are at most `count`, else a seeded sample of `count` of them, sorted
    (the metrics' cost stays bounded on large splits; the same seed measures the same rows)."""
    if len(rows) <= count:
        return rows
    return np.sort(np.random.default_rng(seed + 17).choice(rows, count, replace=False))
