"""Extreme eigenpairs: the few largest and the few smallest eigenvalues of a self-adjoint operator.

SPEC needs only the ends of the spectrum (A-not-B at the top, B-not-A at the bottom), so a full
O(dim^3) eigendecomposition is wasted work once dim is more than a few hundred. A seeded block
Krylov method (Rayleigh-Ritz on span{X, AX, A^2 X, ...}) finds both ends at once with a handful
of dense products, runs on any torch device, and checks its own residuals; when they are not
small enough it falls back to the full decomposition, so the answer is always the exact one.

The operator A may be self-adjoint in an inner product <x, y>_C = x^T C y with C positive
semi-definite rather than in the standard one. That is the feature route's S C: its eigenvalues
are those of Lambda = Psi S Psi^T / n, and working in the C-inner product needs no factorisation of
C (a ridge added to make C factorisable would move the eigenvalues by O(sqrt(ridge))).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Below this dimension a full eigendecomposition is cheaper than any iteration.
FULL_EIGH_MAX_DIM = 600
#: Thick restart: the basis grows to this many blocks, then restarts from the Ritz vectors of
#: both ends (the wanted ones plus this margin each); at most MAX_RESTARTS times, then the
#: full decomposition.
RESTART_BLOCKS = 6
RESTART_MARGIN = 10
MAX_RESTARTS = 60


@dataclass(frozen=True)
class ExtremeEigs:
    """Eigenvalues in descending order and their eigenvectors as columns (unit C-norm)."""

    values: torch.Tensor
    vectors: torch.Tensor
    solver: str


def extreme_eigh(
    op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    dim: int,
    *,
    k_top: int,
    k_bottom: int,
    dense: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    dtype: torch.dtype,
    device: torch.device,
    inner: Callable[[torch.Tensor], torch.Tensor] | None = None,
    k_vectors: int | None = None,
    seed: int = 0,
    tol: float | None = None,
    value_tol: float = 1e-3,
    max_basis: int = 1200,
    start: torch.Tensor | None = None,
    max_steps: int | None = None,
    abs_tol: float = 0.0,
    abs_value_tol: float = 0.0,
) -> ExtremeEigs:
    """The `k_top` largest and `k_bottom` smallest eigenpairs of A (dim x dim).

    inner(X) returns C X (None: C = I). op(X, CX) returns A X; it gets CX so that A = S C costs
    no extra product. dense() returns every eigenpair (ascending values, vectors as columns),
    used for small dim and as the fallback. Converged means the `k_vectors` outermost pairs at
    each end (default: all) have ||A v - theta v||_C <= tol * max|theta|, and the others
    value_tol * max|theta|: a residual r guarantees an eigenvalue within ||r|| of theta, so the
    further values are exact to plotting precision without resolving the dense bulk near zero
    to round-off. When k_top + k_bottom >= dim, every eigenpair is returned once.
    `start` (dim x s, optional): vectors near the wanted ones (a warm start, e.g. the answer of a
    nearby problem); the first block is them plus seeded random columns. `max_steps`: stop after
    this many expansions with the Ritz pairs as they are (solver "block-krylov-capped"; for
    approximate answers near a warm start, e.g. the resamples of spec_core.engine.evidence).
    `abs_tol` / `abs_value_tol`: absolute floors under the two limits (e.g. a share of an
    approximation's own noise floor: resolving eigenvalues far below it buys nothing).
    """
    import torch

    if tol is None:
        tol = 1e-5 if dtype == torch.float32 else 1e-9
    wanted = k_top + k_bottom
    if dim <= FULL_EIGH_MAX_DIM or 3 * wanted >= dim:
        return _pick(*dense(), k_top, k_bottom, "full")
    apply_inner = inner or (lambda x: x)
    k_vectors = max(k_top, k_bottom) if k_vectors is None else k_vectors

    block = wanted + 10
    # the basis is restarted from its best Ritz vectors when it reaches restart_cols (thick
    # restart): the projected eigenproblem, solved at every step, stays small
    restart_cols = min(max_basis, dim // 2, max(RESTART_BLOCKS * block, 2 * block + wanted))
    q_buf = torch.empty(dim, restart_cols + block, device=device, dtype=dtype)  # basis Q
    cq_buf = torch.empty_like(q_buf)  # C Q
    aq_buf = torch.empty_like(q_buf)  # A Q
    projected = torch.zeros(restart_cols + block, restart_cols + block, device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(int(seed))
    first = torch.randn(dim, block, generator=gen, dtype=torch.float64).to(device, dtype)
    if start is not None:
        first[:, : min(block, start.shape[1])] = start[:, :block].to(device, dtype)
    new, inner_new = _orthonormalize(first, apply_inner(first), dtype)
    cols = 0
    restarts = 0
    steps = 0
    while True:
        width = new.shape[1]
        q_buf[:, cols : cols + width] = new
        cq_buf[:, cols : cols + width] = inner_new
        aq_buf[:, cols : cols + width] = op(new, inner_new)
        # the projection Q^T C A Q, grown by the new block's rows and columns
        cross = cq_buf[:, : cols + width].T @ aq_buf[:, cols : cols + width]
        projected[: cols + width, cols : cols + width] = cross
        projected[cols : cols + width, : cols + width] = cross.T
        cols += width
        q_all, cq_all, aq_all = q_buf[:, :cols], cq_buf[:, :cols], aq_buf[:, :cols]
        block_t = projected[:cols, :cols]
        ritz_vals, ritz_vecs = small_eigh((block_t + block_t.T) / 2)
        keep = _ends(len(ritz_vals), k_top, k_bottom)
        values, coeffs = ritz_vals[keep], ritz_vecs[:, keep]
        vectors = q_all @ coeffs
        residual = aq_all @ coeffs - vectors * values
        norms = (residual * apply_inner(residual)).sum(dim=0).clamp_min(0).sqrt()
        scale = values.abs().max()
        n_low = min(k_bottom, len(values))
        rank = torch.tensor(
            [*range(n_low), *range(len(values) - n_low - 1, -1, -1)], device=values.device
        )  # distance from the nearer end: 0 for the outermost pair
        limit = torch.maximum(
            torch.where(rank < k_vectors, tol, value_tol) * scale,
            torch.where(rank < k_vectors, abs_tol, abs_value_tol).to(scale),
        )
        converged = norms <= limit
        if scale == 0 or bool(converged.all()):
            return _sorted(values, vectors, "block-krylov")
        steps += 1
        if max_steps is not None and steps > max_steps:
            return _sorted(values, vectors, "block-krylov-capped")
        if cols + block > restart_cols:
            restarts += 1
            if restarts > MAX_RESTARTS:
                return _pick(*dense(), k_top, k_bottom, "full-fallback")
            # thick restart: keep the Ritz vectors of both ends (a margin beyond the wanted
            # ones), whose projection is diagonal; expand from the unconverged residuals
            kept = _ends(len(ritz_vals), k_top + RESTART_MARGIN, k_bottom + RESTART_MARGIN)
            basis = ritz_vecs[:, kept]
            n_kept = len(kept)
            q_buf[:, :n_kept] = q_all @ basis
            cq_buf[:, :n_kept] = cq_all @ basis
            aq_buf[:, :n_kept] = aq_all @ basis
            projected.zero_()
            projected[range(n_kept), range(n_kept)] = ritz_vals[kept]
            cols = n_kept
            q_all, cq_all = q_buf[:, :cols], cq_buf[:, :cols]
            nxt = residual[:, ~converged]
        else:
            nxt = aq_buf[:, cols - width : cols]
        for _ in range(2):  # classical Gram-Schmidt twice is enough in floating point
            nxt = nxt - q_all @ (cq_all.T @ nxt)
        new, inner_new = _orthonormalize(nxt, apply_inner(nxt), dtype)
        if new.shape[1] == 0:  # the Krylov space is invariant: the Ritz pairs are exact
            return _sorted(values, vectors, "block-krylov")


#: cuSOLVER's dense eigh (syevd) fails beyond about 25k rows: larger dense problems are solved
#: on the CPU and the result moved back.
CUDA_DENSE_EIGH_MAX = 20000


def small_eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """eigh for the small projected problems. On the CPU, LAPACK through NumPy: torch's eigh
    costs 0.3-0.8 s for a 100-400 square matrix here, NumPy's 0.03 s."""
    import numpy as np
    import torch

    if matrix.device.type == "cuda" and matrix.shape[0] > CUDA_DENSE_EIGH_MAX:
        values, vectors = torch.linalg.eigh(matrix.cpu())
        return values.to(matrix.device), vectors.to(matrix.device)
    if matrix.device.type != "cpu" or matrix.shape[0] > 800:
        return torch.linalg.eigh(matrix)
    values, vectors = np.linalg.eigh(matrix.numpy())
    return torch.from_numpy(values), torch.from_numpy(vectors)


def _orthonormalize(x, cx, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """C-orthonormal basis of span(x) (and C times it), dropping numerically dependent
    directions: eigendecomposition of the small Gram x^T C x (SVQB, Stathopoulos & Wu 2002)."""
    import torch

    gram = x.T @ cx
    evals, evecs = small_eigh((gram + gram.T) / 2)
    top = float(evals[-1]) if len(evals) else 0.0
    keep = evals > max(top, 0.0) * 100 * torch.finfo(dtype).eps
    if top <= 0 or not bool(keep.any()):
        return x[:, :0], cx[:, :0]
    transform = evecs[:, keep] / evals[keep].sqrt()
    return x @ transform, cx @ transform


def _ends(size: int, k_top: int, k_bottom: int) -> list[int]:
    """Indices of the k_bottom smallest and k_top largest of `size` ascending values, no repeats."""
    bottom = list(range(min(k_bottom, size)))
    top = list(range(max(size - k_top, len(bottom)), size))
    return bottom + top


def _sorted(values, vectors, solver: str) -> ExtremeEigs:
    import torch

    order = torch.argsort(values, descending=True)
    return ExtremeEigs(values[order], vectors[:, order], solver)


def _pick(values, vectors, k_top: int, k_bottom: int, solver: str) -> ExtremeEigs:
    keep = _ends(len(values), k_top, k_bottom)
    return _sorted(values[keep], vectors[:, keep], solver)


def symmetric_eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All eigenpairs of a symmetric matrix, ascending (the dense() of a plain matrix)."""
    return small_eigh(matrix)


def gram_signed_eigh(
    gram: torch.Tensor, signs: torch.Tensor, *, rcond: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """All eigenpairs of S C with their eigenvectors v (v^T C v = 1), for C = gram PSD.

    C = V diag(c) V^T with the directions c <= rcond * max(c) dropped (exactly C's null space and
    round-off), F = V diag(sqrt(c)) so C = F F^T; the symmetric F^T S F = W diag(l) W^T; then
    S C (S F w) = l (S F w). The dense fallback of the feature route: O(D^3).
    """

    c_vals, c_vecs = small_eigh(gram)
    keep = c_vals > rcond * max(float(c_vals[-1]), 0.0)
    factor = c_vecs[:, keep] * c_vals[keep].sqrt()
    values, small = small_eigh(factor.T @ (signs[:, None] * factor))
    vectors = signs[:, None] * (factor @ small)
    # v = S F w has v^T C v = w^T (F^T S F)^2 w = l^2: rescale to unit C-norm (l = 0: leave)
    norms = (vectors * (gram @ vectors)).sum(dim=0).clamp_min(1e-300).sqrt()
    return values, vectors / norms
