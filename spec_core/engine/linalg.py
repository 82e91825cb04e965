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
    op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], dim: int, **options
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
    The options are krylov_steps' (k_top, k_bottom, dense, dtype and device are required).
    """
    return drive(krylov_steps(dim, **options), op)


def drive(steps, op) -> ExtremeEigs:
    """Run one solver (`krylov_steps`) to its answer, multiplying by `op` as it asks."""
    try:
        request = next(steps)
        while True:
            request = steps.send(op(*request))
    except StopIteration as done:
        return done.value


def drive_together(solvers: list, batch_op) -> list[ExtremeEigs]:
    """Run several solvers (`krylov_steps`) in lockstep: at each round every solver still
    running asks for one product, and `batch_op([(index, block, C block), ...])` returns them
    all at once (one wide product instead of many narrow ones). Each solver does exactly what
    it would do alone (`drive`); only the products are grouped."""
    answers: list[ExtremeEigs | None] = [None] * len(solvers)
    pending: dict[int, tuple] = {}
    for index, steps in enumerate(solvers):
        try:
            pending[index] = next(steps)
        except StopIteration as done:
            answers[index] = done.value
    while pending:
        order = list(pending)
        products = batch_op([(index, *pending[index]) for index in order])
        for index, product in zip(order, products, strict=True):
            try:
                pending[index] = solvers[index].send(product)
            except StopIteration as done:
                answers[index] = done.value
                del pending[index]
    return answers  # type: ignore[return-value]


def krylov_steps(
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
):
    """extreme_eigh as a generator: it yields (X, C X) each time it needs A X, is sent A X,
    and returns the ExtremeEigs (the parameters are extreme_eigh's)."""
    import torch

    if tol is None:
        tol = 1e-5 if dtype == torch.float32 else 1e-9
    wanted = k_top + k_bottom
    if dim <= FULL_EIGH_MAX_DIM or 3 * wanted >= dim:
        return _pick(*dense(), k_top, k_bottom, "full")
    apply_inner = inner or (lambda x: x)
    k_vectors = max(k_top, k_bottom) if k_vectors is None else k_vectors
    limits = _ResidualLimits(tol, value_tol, abs_tol, abs_value_tol, k_bottom, k_vectors)

    block = wanted + 10
    # the basis is restarted from its best Ritz vectors when it reaches restart_cols (thick
    # restart): the projected eigenproblem, solved at every step, stays small
    restart_cols = min(max_basis, dim // 2, max(RESTART_BLOCKS * block, 2 * block + wanted))
    basis = _KrylovBasis(dim, restart_cols + block, device, dtype)
    new, inner_new = _first_block(dim, block, start, seed, apply_inner, device, dtype)
    restarts = 0
    steps = 0
    while True:
        basis.extend(new, inner_new, (yield new, inner_new))
        ritz_vals, ritz_vecs = basis.ritz_pairs()
        keep = _ends(len(ritz_vals), k_top, k_bottom)
        values, coeffs = ritz_vals[keep], ritz_vecs[:, keep]
        vectors = basis.q @ coeffs
        residual = basis.aq @ coeffs - vectors * values
        converged = limits.converged(residual, apply_inner(residual), values)
        if values.abs().max() == 0 or bool(converged.all()):
            return _sorted(values, vectors, "block-krylov")
        steps += 1
        if max_steps is not None and steps > max_steps:
            return _sorted(values, vectors, "block-krylov-capped")
        if basis.cols + block > restart_cols:
            restarts += 1
            if restarts > MAX_RESTARTS:
                return _pick(*dense(), k_top, k_bottom, "full-fallback")
            # thick restart: keep the Ritz vectors of both ends (a margin beyond the wanted
            # ones), whose projection is diagonal; expand from the unconverged residuals
            kept = _ends(len(ritz_vals), k_top + RESTART_MARGIN, k_bottom + RESTART_MARGIN)
            basis.restart(ritz_vals[kept], ritz_vecs[:, kept])
            nxt = residual[:, ~converged]
        else:
            nxt = basis.last_aq
        new, inner_new = basis.complement(nxt, apply_inner, dtype)
        if new.shape[1] == 0:  # the Krylov space is invariant: the Ritz pairs are exact
            return _sorted(values, vectors, "block-krylov")


def _first_block(dim, block, start, seed, apply_inner, device, dtype):
    """The seeded random first block (its leading columns the warm `start` when given),
    C-orthonormalised, and C times it."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    first = torch.randn(dim, block, generator=gen, dtype=torch.float64).to(device, dtype)
    if start is not None:
        first[:, : min(block, start.shape[1])] = start[:, :block].to(device, dtype)
    return _orthonormalize(first, apply_inner(first), dtype)


@dataclass(frozen=True)
class _ResidualLimits:
    """When a Ritz pair has converged: its residual's C-norm is at most tol (the `k_vectors`
    outermost pairs at each end) or value_tol (the others) times the largest |value|, and never
    needs to be below abs_tol / abs_value_tol."""

    tol: float
    value_tol: float
    abs_tol: float
    abs_value_tol: float
    k_bottom: int
    k_vectors: int

    def converged(self, residual, inner_residual, values) -> torch.Tensor:
        """One bool per pair (values ascending: the bottom end, then the top end)."""
        import torch

        norms = (residual * inner_residual).sum(dim=0).clamp_min(0).sqrt()
        scale = values.abs().max()
        n_low = min(self.k_bottom, len(values))
        rank = torch.tensor(
            [*range(n_low), *range(len(values) - n_low - 1, -1, -1)], device=values.device
        )  # distance from the nearer end: 0 for the outermost pair
        outer = rank < self.k_vectors
        limit = torch.maximum(
            torch.where(outer, self.tol, self.value_tol) * scale,
            torch.where(outer, self.abs_tol, self.abs_value_tol).to(scale),
        )
        return norms <= limit


class _KrylovBasis:
    """The basis Q (C-orthonormal columns), C Q, A Q and the projection Q^T C A Q, grown a block
    at a time in buffers of `capacity` columns (the first `cols` in use)."""

    def __init__(self, dim: int, capacity: int, device, dtype):
        import torch

        self._q = torch.empty(dim, capacity, device=device, dtype=dtype)
        self._cq = torch.empty_like(self._q)
        self._aq = torch.empty_like(self._q)
        self._projected = torch.zeros(capacity, capacity, device=device, dtype=dtype)
        self.cols = 0
        self._last = 0  # the width of the last block added

    @property
    def q(self) -> torch.Tensor:
        return self._q[:, : self.cols]

    @property
    def aq(self) -> torch.Tensor:
        return self._aq[:, : self.cols]

    @property
    def last_aq(self) -> torch.Tensor:
        """A times the last block added: the next Krylov block, once orthogonalised."""
        return self._aq[:, self.cols - self._last : self.cols]

    def extend(self, new, inner_new, product) -> None:
        """Add a C-orthonormal block `new` (inner_new = C new) and `product` = A new, and grow
        the projection by the block's rows and columns."""
        cols, width = self.cols, new.shape[1]
        self._q[:, cols : cols + width] = new
        self._cq[:, cols : cols + width] = inner_new
        self._aq[:, cols : cols + width] = product
        cross = self._cq[:, : cols + width].T @ self._aq[:, cols : cols + width]
        self._projected[: cols + width, cols : cols + width] = cross
        self._projected[cols : cols + width, : cols + width] = cross.T
        self.cols, self._last = cols + width, width

    def ritz_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every eigenpair of the (symmetrised) projection, ascending: the Ritz values and
        their coefficients in the basis."""
        projection = self._projected[: self.cols, : self.cols]
        return small_eigh((projection + projection.T) / 2)

    def restart(self, values, coeffs) -> None:
        """Thick restart: the basis becomes the Ritz vectors Q coeffs (values: their Ritz
        values), whose projection is diagonal."""
        q, cq, aq = self.q, self._cq[:, : self.cols], self.aq
        n_kept = coeffs.shape[1]
        self._q[:, :n_kept] = q @ coeffs
        self._cq[:, :n_kept] = cq @ coeffs
        self._aq[:, :n_kept] = aq @ coeffs
        self._projected.zero_()
        self._projected[range(n_kept), range(n_kept)] = values
        self.cols = n_kept

    def complement(self, block, apply_inner, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The part of span(block) C-orthogonal to the basis, C-orthonormalised (numerically
        dependent directions dropped), and C times it."""
        q, cq = self.q, self._cq[:, : self.cols]
        for _ in range(2):  # classical Gram-Schmidt twice is enough in floating point
            block = block - q @ (cq.T @ block)
        return _orthonormalize(block, apply_inner(block), dtype)


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


def signed_gram(
    first: torch.Tensor, second: torch.Tensor | None = None, *, blocks: int = 8
) -> torch.Tensor:
    """first first^T - second second^T (n x n; second None: first first^T), symmetric, by about
    `blocks` row blocks of its upper triangle, each mirrored: (1 + 1 / blocks) / 2 of the
    products of the whole square. Every diagonal square is made exactly symmetric."""
    import torch

    n = first.shape[0]
    out = torch.empty(n, n, device=first.device, dtype=first.dtype)
    step = max(256, -(-n // blocks))
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = out[start:stop, start:]
        torch.mm(first[start:stop], first[start:].T, out=block)
        if second is not None:
            block.addmm_(second[start:stop], second[start:].T, alpha=-1.0)
        out[stop:, start:stop] = block[:, stop - start :].T
        square = out[start:stop, start:stop]
        out[start:stop, start:stop] = (square + square.T) / 2
    return out


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
