"""Context metrics shown beside SPEC: linear CKA and per-row k-nearest-neighbour overlap.

Each metric is measured on a seeded sample of rows (CONTEXT_ROWS). What one embedding
contributes (its rows centred and scaled, its own kernel's norm, its neighbours) is a
`ContextSide`, computed once: `compare` makes two, `compare_many` one per model for every pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from spec_core.engine.result import ContextMetrics

#: Rows used to measure the context metrics.
CONTEXT_ROWS = 5000
#: Up to this many rows, the kNN search keeps every pair's inner product (n^2 floats).
SYMMETRIC_ROWS = CONTEXT_ROWS


class CkaSide:
    """One embedding's part of linear CKA: its rows centred and scaled (`_centred_unit`), and
    the Frobenius norm of its centred linear kernel, from the d x d product (`gram=False`) or
    the n x n one, each computed once when first asked."""

    def __init__(self, x: torch.Tensor):
        self.x = _centred_unit(x)
        self._norms: dict[bool, torch.Tensor] = {}

    def norm(self, gram: bool) -> torch.Tensor:
        if gram not in self._norms:
            x = self.x
            self._norms[gram] = ((x @ x.T) if gram else (x.T @ x)).square().sum().sqrt()
        return self._norms[gram]


def linear_cka_t(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al., 2019): <K_A, K_B>_F / (||K_A|| ||K_B||) for the centred
    linear kernels. Computed in feature space (d x d products, O(n d^2)) or, when an embedding
    is wider than there are rows, through the n x n Gram matrices: never a d x d matrix for
    wide d. The inputs are centred and scaled first (CKA ignores both), so values of any size
    give a finite answer. Raises ValueError when an embedding has no variance (undefined)."""
    return linear_cka_sides(CkaSide(a), CkaSide(b))


def linear_cka_sides(side_a: CkaSide, side_b: CkaSide) -> float:
    """linear_cka_t from each embedding's CkaSide (its norm computed once for every pair)."""
    a, b = side_a.x, side_b.x
    n, width = a.shape[0], max(a.shape[1], b.shape[1])
    gram = n < width  # wider than there are rows: through the n x n Gram matrices
    cross = ((a @ a.T) * (b @ b.T)).sum() if gram else (a.T @ b).square().sum()
    norm = side_a.norm(gram) * side_b.norm(gram)
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
    """Indices of each row's k nearest other rows (itself excluded by index, not by distance;
    ranked by the squared distance less the row's own squared norm, the same order). Up to
    SYMMETRIC_ROWS rows the inner products of every pair come from linalg.signed_gram (about
    half the products of the square); beyond, by row blocks against every row."""
    import torch

    from spec_core.engine.kernels import normalize_rows_t
    from spec_core.engine.linalg import signed_gram

    if metric == "cosine":
        x = normalize_rows_t(x)
    n = x.shape[0]
    gram = signed_gram(x) if n <= SYMMETRIC_ROWS else None
    norms = (x * x).sum(dim=1)
    out = []
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        # gram's rows are this function's own: ranked in place
        dist = x[start:stop] @ x.T if gram is None else gram[start:stop]
        if metric == "cosine":
            dist.neg_()
        else:  # ||x_j||^2 - 2 <x_i, x_j>: row i's distances less its own ||x_i||^2
            dist.mul_(-2.0).add_(norms[None, :])
        self_cols = torch.arange(start, stop, device=x.device)
        dist[torch.arange(stop - start, device=x.device), self_cols] = float("inf")
        out.append(dist.topk(k, dim=1, largest=False).indices)
    return torch.cat(out)


def knn_overlap_t(a: torch.Tensor, b: torch.Tensor, k: int, *, metric: str) -> np.ndarray:
    """Per row, |kNN_A(i) & kNN_B(i)| / k, in [0, 1]."""
    nn_a = knn_indices_t(a, k, metric=metric)
    nn_b = knn_indices_t(b, k, metric=metric)
    return neighbour_overlap(nn_a, nn_b, k)


def neighbour_overlap(nn_a: torch.Tensor, nn_b: torch.Tensor, k: int) -> np.ndarray:
    """Per row, the share of its k neighbour indices (knn_indices_t) that A and B share."""
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


# ---------------------------------------------------------------------------------------------
# The context metrics of a comparison


class ContextSide:
    """One embedding's share of the context metrics on the sampled `rows`: its CKA part and
    each row's k nearest neighbours (`metric`: the kernel's), computed once."""

    def __init__(self, emb, rows: np.ndarray, *, k: int, metric: str, device):
        unit = unit_rows(emb, rows, device)
        self.cka = CkaSide(unit)
        self.neighbours = knn_indices_t(unit, k, metric=metric)


def context_plan(n: int, k: int, seed: int) -> tuple[np.ndarray, int]:
    """The seeded sample of rows (at most CONTEXT_ROWS of n) and the neighbours per row that
    the context metrics use."""
    from spec_core.engine.kernels import sample_rows

    rows = sample_rows(n, CONTEXT_ROWS, seed)
    return rows, min(k, len(rows) - 1)


def pair_context(side_a: ContextSide, side_b: ContextSide, rows, k: int) -> ContextMetrics:
    """The context metrics of two embeddings from their sides."""
    from spec_core.engine.result import ContextMetrics

    overlap = neighbour_overlap(side_a.neighbours, side_b.neighbours, k)
    return ContextMetrics(
        linear_cka=linear_cka_sides(side_a.cka, side_b.cka),
        knn_k=k,
        knn_overlap_mean=float(overlap.mean()),
        knn_overlap=overlap.astype(np.float32),
        rows=rows,
    )


def context_metrics(emb_a, emb_b, *, kernel: str, k: int, seed: int, device) -> ContextMetrics:
    """Linear CKA and kNN overlap on a seeded sample of rows. Both are invariant to translation
    and to a positive scale, so the rows are centred and scaled first (finite for any units)."""
    from spec_core.engine.kernels import get_kernel

    rows, k = context_plan(emb_a.shape[0], k, seed)
    metric = get_kernel(kernel).metric
    side_a, side_b = (
        ContextSide(emb, rows, k=k, metric=metric, device=device) for emb in (emb_a, emb_b)
    )
    return pair_context(side_a, side_b, rows, k)


def unit_rows(emb: np.ndarray, rows: np.ndarray, device) -> torch.Tensor:
    """Rows of `emb`, centred and divided by their largest |value| (float64 first), float32."""
    import torch

    sample = np.array(emb[rows], dtype=np.float64)
    for _ in range(2):  # scaled, centred, scaled again: no overflow near the float64 limit
        peak = float(np.abs(sample).max())
        if peak > 0:
            sample /= peak
        sample -= sample.mean(axis=0)
    return torch.from_numpy(sample).to(device=device, dtype=torch.float32)
