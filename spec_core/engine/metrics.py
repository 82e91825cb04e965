"""Context metrics shown beside SPEC: linear CKA and per-row k-nearest-neighbour overlap."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def linear_cka_t(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al., 2019): <K_A, K_B>_F / (||K_A|| ||K_B||) for the centred
    linear kernels. Computed in feature space (d x d products, O(n d^2)) or, when an embedding
    is wider than there are rows, through the n x n Gram matrices: never a d x d matrix for
    wide d. The inputs are centred and scaled first (CKA ignores both), so values of any size
    give a finite answer. Raises ValueError when an embedding has no variance (undefined)."""
    a, b = (_centred_unit(x) for x in (a, b))
    n, width = a.shape[0], max(a.shape[1], b.shape[1])
    if n < width:
        gram_a, gram_b = a @ a.T, b @ b.T
        cross = (gram_a * gram_b).sum()
        norm = gram_a.square().sum().sqrt() * gram_b.square().sum().sqrt()
    else:
        cross = (a.T @ b).square().sum()
        norm = (a.T @ a).square().sum().sqrt() * (b.T @ b).square().sum().sqrt()
    if not norm > 0:
        raise ValueError("linear CKA is undefined: an embedding has no variance across rows")
    return float(cross / norm)


def _centred_unit(x: torch.Tensor) -> torch.Tensor:
    """x centred and scaled to a largest |value| of 1 (scaled first: no overflow)."""
    x = x.double()
    peak = x.abs().max()
    x = x / peak if peak > 0 else x
    x = x - x.mean(dim=0)
    peak = x.abs().max()
    return x / peak if peak > 0 else x


def knn_indices_t(x: torch.Tensor, k: int, *, metric: str, block_rows: int = 2048) -> torch.Tensor:
    """Indices of each row's k nearest other rows (itself excluded by index, not by distance)."""
    import torch

    from spec_core.engine.kernels import normalize_rows_t, squared_distances_t

    if metric == "cosine":
        x = normalize_rows_t(x)
    out = []
    for start in range(0, x.shape[0], block_rows):
        rows = x[start : start + block_rows]
        dist = -(rows @ x.T) if metric == "cosine" else squared_distances_t(rows, x)
        self_cols = torch.arange(start, start + rows.shape[0], device=x.device)
        dist[torch.arange(rows.shape[0], device=x.device), self_cols] = float("inf")
        out.append(dist.topk(k, dim=1, largest=False).indices)
    return torch.cat(out)


def knn_overlap_t(a: torch.Tensor, b: torch.Tensor, k: int, *, metric: str) -> np.ndarray:
    """Per row, |kNN_A(i) & kNN_B(i)| / k, in [0, 1]."""
    nn_a = knn_indices_t(a, k, metric=metric)
    nn_b = knn_indices_t(b, k, metric=metric)
    shared = (nn_a[:, :, None] == nn_b[:, None, :]).any(dim=2).sum(dim=1)
    return (shared.double() / k).cpu().numpy()


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    import torch

    return linear_cka_t(torch.from_numpy(np.asarray(a)), torch.from_numpy(np.asarray(b)))


def knn_overlap(a: np.ndarray, b: np.ndarray, *, k: int = 10, metric: str = "euclidean"):
    """Per-row kNN overlap of two embeddings of the same rows (metric: euclidean or cosine)."""
    import torch

    if not 0 < k < len(a):
        raise ValueError(f"k must be between 1 and n_rows - 1 = {len(a) - 1}, got {k}")
    a_t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    b_t = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
    return knn_overlap_t(a_t, b_t, k, metric=metric)
