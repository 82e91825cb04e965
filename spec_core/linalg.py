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
    seed: int = 0,
    tol: float | None = None,
    max_basis: int = 800,
) -> ExtremeEigs:
    """The `k_top` largest and `k_bottom` smallest eigenpairs of A (dim x dim).

    inner(X) returns C X (None: C = I). op(X, CX) returns A X; it gets CX so that A = S C costs
    no extra product. dense() returns every eigenpair (ascending values, vectors as columns),
    used for small dim and as the fallback. Converged means each returned pair has
    ||A v - theta v||_C <= tol * max|theta|. When k_top + k_bottom >= dim, every eigenpair is
    returned once.
    """
    import torch

    if tol is None:
        tol = 1e-5 if dtype == torch.float32 else 1e-9
    wanted = k_top + k_bottom
    if dim <= FULL_EIGH_MAX_DIM or 3 * wanted >= dim:
        return _pick(*dense(), k_top, k_bottom, "full")
    apply_inner = inner or (lambda x: x)

    block = wanted + 10
    gen = torch.Generator().manual_seed(int(seed))
    start = torch.randn(dim, block, generator=gen, dtype=torch.float64).to(device, dtype)
    basis, inner_basis = _orthonormalize(start, apply_inner(start), dtype)
    bases, inner_bases, images = [basis], [inner_basis], []
    while True:
        images.append(op(bases[-1], inner_bases[-1]))
        q_all = torch.cat(bases, dim=1)
        cq_all = torch.cat(inner_bases, dim=1)
        aq_all = torch.cat(images, dim=1)
        projected = cq_all.T @ aq_all
        ritz_vals, ritz_vecs = torch.linalg.eigh((projected + projected.T) / 2)
        keep = _ends(len(ritz_vals), k_top, k_bottom)
        values, coeffs = ritz_vals[keep], ritz_vecs[:, keep]
        vectors = q_all @ coeffs
        residual = aq_all @ coeffs - vectors * values
        norms = (residual * apply_inner(residual)).sum(dim=0).clamp_min(0).sqrt()
        scale = values.abs().max()
        if scale == 0 or bool((norms <= tol * scale).all()):
            return _sorted(values, vectors, "block-krylov")
        if q_all.shape[1] + block > min(max_basis, dim // 2):
            return _pick(*dense(), k_top, k_bottom, "full-fallback")
        nxt = images[-1]
        for _ in range(2):  # classical Gram-Schmidt twice is enough in floating point
            nxt = nxt - q_all @ (cq_all.T @ nxt)
        new, inner_new = _orthonormalize(nxt, apply_inner(nxt), dtype)
        if new.shape[1] == 0:  # the Krylov space is invariant: the Ritz pairs are exact
            return _sorted(values, vectors, "block-krylov")
        bases.append(new)
        inner_bases.append(inner_new)


def _orthonormalize(x, cx, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """C-orthonormal basis of span(x) (and C times it), dropping numerically dependent
    directions: eigendecomposition of the small Gram x^T C x (SVQB, Stathopoulos & Wu 2002)."""
    import torch

    gram = x.T @ cx
    evals, evecs = torch.linalg.eigh((gram + gram.T) / 2)
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
    import torch

    return torch.linalg.eigh(matrix)


def gram_signed_eigh(
    gram: torch.Tensor, signs: torch.Tensor, *, rcond: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """All eigenpairs of S C with their eigenvectors v (v^T C v = 1), for C = gram PSD.

    C = V diag(c) V^T with the directions c <= rcond * max(c) dropped (exactly C's null space and
    round-off), F = V diag(sqrt(c)) so C = F F^T; the symmetric F^T S F = W diag(l) W^T; then
    S C (S F w) = l (S F w). The dense fallback of the feature route: O(D^3).
    """
    import torch

    c_vals, c_vecs = torch.linalg.eigh(gram)
    keep = c_vals > rcond * max(float(c_vals[-1]), 0.0)
    factor = c_vecs[:, keep] * c_vals[keep].sqrt()
    values, small = torch.linalg.eigh(factor.T @ (signs[:, None] * factor))
    vectors = signs[:, None] * (factor @ small)
    # v = S F w has v^T C v = w^T (F^T S F)^2 w = l^2: rescale to unit C-norm (l = 0: leave)
    norms = (vectors * (gram @ vectors)).sum(dim=0).clamp_min(1e-300).sqrt()
    return values, vectors / norms
