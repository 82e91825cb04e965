"""Operators that resample rows for the stability of the modes (spec_core.engine.evidence):
a dense Lambda's principal submatrices, or the kept features' rows, on a seeded pool of at
most STABILITY_POOL_ROWS rows; resample.solve_resamples runs their eigenproblems."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: Stability is measured over at most this many rows (a seeded sample beyond).
STABILITY_POOL_ROWS = 20_000
#: The seed of the resamples is the comparison's seed plus this.
STABILITY_SEED_OFFSET = 7_919


class DenseOperator:
    """Resamples of a dense n x n Lambda (the engine's own tensor): principal submatrices.
    Beyond STABILITY_POOL_ROWS rows, resamples are drawn from a seeded pool of that many."""

    def __init__(self, lam: torch.Tensor, centre: bool, *, seed: int):
        import torch

        self.lam = lam
        self.centre = centre
        n = int(lam.shape[0])
        self.pool = None if n <= STABILITY_POOL_ROWS else _pool_rows(n, STABILITY_POOL_ROWS, seed)
        self._pool_t = None if self.pool is None else torch.from_numpy(self.pool).to(lam.device)

    @property
    def size(self) -> int:
        return int(self.lam.shape[0]) if self.pool is None else len(self.pool)

    @property
    def dtype(self):
        return self.lam.dtype

    @property
    def device(self):
        return self.lam.device

    def _rows(self, subset: torch.Tensor) -> torch.Tensor:
        return subset if self._pool_t is None else self._pool_t[subset]

    @property
    def batched(self) -> bool:
        """Whether the resamples are solved together (resample.solve_resamples): when the pool
        is every row, so that a pool-tall product is a product by Lambda itself."""
        return self.pool is None

    def multiply_pool(self, wide: torch.Tensor) -> torch.Tensor:
        return self.lam @ wide

    def submatrix_op(self, subset: torch.Tensor, *, lazy: bool = False):
        """(op, dense) of the principal submatrix on `subset` (its centred form when the
        comparison is centred); `lazy`: the submatrix is gathered only if dense() is called."""
        rows = self._rows(subset)
        sub = None if lazy else self.lam[rows[:, None], rows]  # one gather
        if not self.centre:
            return (lambda x, _=None: sub @ x), (lambda: _symmetric(self.lam[rows[:, None], rows]))

        def centred(x, _=None):  # H_S (H Lambda H)_SS H_S = H_S Lambda_SS H_S, H on thin blocks
            out = sub @ (x - x.mean(dim=0))
            return out - out.mean(dim=0)

        def dense():
            square = self.lam[rows[:, None], rows]
            _centre_square(square)
            return _symmetric(square)

        return centred, dense

    def extend(self, subset: torch.Tensor, vectors: torch.Tensor, values: torch.Tensor):
        """The eigen-equation u = Lambda[:, S] u_S / theta, for every row of the pool."""
        full = vectors.new_zeros(int(self.lam.shape[0]), vectors.shape[1])
        full[self._rows(subset)] = vectors
        out = (self.lam @ full) / values
        if self._pool_t is not None:
            out = out[self._pool_t]
        return out - out.mean(dim=0) if self.centre else out


class FeatureOperator:
    """Resamples of Lambda = Psi S Psi^T / n through the feature rows Psi of a pool of rows."""

    def __init__(self, psi: torch.Tensor, dim_a: int, centre: bool, pool: np.ndarray | None):
        self.psi = psi
        self.dim_a = dim_a
        self.centre = centre
        self.pool = pool  # the rows of the pool (None: every row)

    @classmethod
    def build(cls, kept, features_at, n, dim_a, *, centre, seed, pool_bytes):
        """From the kept feature blocks (every row), or else the features of a seeded sample."""
        import torch

        width = None if kept else features_at(np.arange(1)).shape[1]
        rows = cls.pool_for(n, width, seed=seed, pool_bytes=pool_bytes)
        if kept:
            psi = torch.cat(kept)
            if rows is None:
                return cls(psi, dim_a, centre, None)
            return cls(psi[torch.from_numpy(rows).to(psi.device)], dim_a, centre, rows)
        return cls(features_at(rows), dim_a, centre, rows)

    @staticmethod
    def pool_for(n: int, width: int | None, *, seed: int, pool_bytes: int) -> np.ndarray | None:
        """The rows the resamples are drawn from: with every row's features kept (`width`
        None), all rows up to STABILITY_POOL_ROWS (None) or a seeded sample of that many; else
        a seeded sample whose features of `width` columns fit in `pool_bytes`."""
        if width is None:
            return None if n <= STABILITY_POOL_ROWS else _pool_rows(n, STABILITY_POOL_ROWS, seed)
        limit = max(200, min(STABILITY_POOL_ROWS, pool_bytes // max(width * 4, 1)))
        return _pool_rows(n, limit, seed)

    @property
    def size(self) -> int:
        return int(self.psi.shape[0])

    @property
    def dtype(self):
        return self.psi.dtype

    @property
    def device(self):
        return self.psi.device

    #: the resamples are solved together (resample.solve_resamples)
    batched = True

    def multiply_pool(self, wide: torch.Tensor) -> torch.Tensor:
        """Psi S Psi^T times a pool-tall matrix (Psi: the pool's features)."""
        coeffs = self.psi.T @ wide.to(self.psi.dtype)
        coeffs[self.dim_a :] *= -1
        return self.psi @ coeffs

    def submatrix_op(self, subset: torch.Tensor, *, lazy: bool = False):
        """(op, dense) of the resample on `subset`, through its features (`lazy`: taken only
        when op or dense is called)."""
        taken: list = [] if lazy else [self._part(subset)]

        def halves():
            if not taken:
                taken.append(self._part(subset))
            part = taken[0]
            return part[:, : self.dim_a], part[:, self.dim_a :]

        def op(x, _=None):
            pa, pb = halves()
            x = x.to(pa.dtype)
            return pa @ (pa.T @ x) - pb @ (pb.T @ x)

        def dense():
            pa, pb = halves()
            return _symmetric(pa @ pa.T - pb @ pb.T)

        return op, dense

    def _part(self, subset: torch.Tensor) -> torch.Tensor:
        """The subset's features (centred on it when the comparison is)."""
        part = self.psi.index_select(0, subset)
        return part - part.mean(dim=0) if self.centre else part

    def extend(self, subset: torch.Tensor, vectors: torch.Tensor, values: torch.Tensor):
        part = self.psi.index_select(0, subset)
        if self.centre:
            part = part - part.mean(dim=0)
        coeffs = part.T @ vectors.to(part.dtype)  # Psi_S^T u_S, then the signs of S
        coeffs[self.dim_a :] *= -1
        out = (self.psi @ coeffs) / values.to(part.dtype)
        return out - out.mean(dim=0) if self.centre else out


def _pool_rows(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed + STABILITY_SEED_OFFSET)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _centre_square(matrix: torch.Tensor) -> None:
    means = matrix.mean(dim=1)
    matrix.sub_(means[:, None]).sub_(means[None, :]).add_(means.mean())


def _symmetric(matrix: torch.Tensor):
    from spec_core.engine.linalg import symmetric_eigh

    return symmetric_eigh((matrix + matrix.T) / 2)
