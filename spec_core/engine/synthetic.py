"""Seeded synthetic embedding pairs with a known answer, for tests and benchmarks (numpy only)."""

from __future__ import annotations

import numpy as np


def merged_pair(
    n: int = 1500,
    dim: int = 32,
    groups: int = 10,
    *,
    merged: int = 3,
    shrink: float = 30.0,
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, labels): A has `groups` Gaussian clusters; B is a linear distortion of A that
    merges `merged` pairs of them (groups 0/1, 2/3, ...): the direction between the two centres
    of each pair is shrunk `shrink`-fold, then everything is rotated at random, plus a little
    noise. A keeps those groups apart, B does not: SPEC finds A-not-B modes there, and a linear
    map can undo the distortion (what SPEC-align should learn). float32, labels as strings."""
    if 2 * merged > groups:
        raise ValueError(f"merged={merged} pairs need at least {2 * merged} groups")
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim)) * 3.0
    labels = rng.integers(0, groups, n)
    a = centres[labels] + rng.normal(size=(n, dim))
    between = np.stack([centres[2 * i + 1] - centres[2 * i] for i in range(merged)])
    basis, _ = np.linalg.qr(between.T)
    distortion = np.eye(dim) - (1.0 - 1.0 / shrink) * basis @ basis.T
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    b = a @ distortion @ rotation + noise * rng.normal(size=(n, dim))
    return a.astype(np.float32), b.astype(np.float32), labels.astype(str)
