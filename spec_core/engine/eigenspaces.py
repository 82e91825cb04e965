"""Near-repeated eigenvalues and the most localised basis of their eigenspace: k equal groups
give one k-fold eigenvalue, whose eigenvectors a solver returns mixed (see `localize`)."""

from __future__ import annotations

import numpy as np

#: Eigenvalues of one sign within this share of each other (or within the noise floor) form one
#: near-repeated eigenvalue (its eigenvectors are rotated to their most localised basis,
#: see `localize`).
REPEATED_GAP = 0.02


def near_repeated(values: np.ndarray, floor: float = 0.0) -> list[np.ndarray]:
    """The runs of eigenvalues of one sign that form one near-repeated eigenvalue: sorted by
    value, each run's eigenvalues within REPEATED_GAP (relative) of its first, or within
    `floor` (the noise floor: eigenvalues closer than the approximation's own error are not
    told apart) of it. Runs of two or more."""
    runs = []
    for sign in (1.0, -1.0):
        idx = np.flatnonzero(np.sign(values) == sign)
        idx = idx[np.argsort(-sign * values[idx], kind="stable")]
        start = 0
        for i in range(1, len(idx) + 1):
            if i == len(idx) or not _close(values[idx[start]], values[idx[i]], floor):
                if i - start >= 2:
                    runs.append(idx[start:i])
                start = i
    return runs


def _close(first: float, second: float, floor: float) -> bool:
    gap = abs(first - second)
    return gap <= floor or gap <= REPEATED_GAP * abs(first)


def localize(values: np.ndarray, vectors: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """The eigenvectors with each near-repeated eigenvalue's vectors rotated to their most
    localised basis (quartimax: the orthogonal rotation with the largest sum of fourth powers,
    i.e. the smallest participation ratios). The eigenvectors of a repeated eigenvalue are any
    basis of its eigenspace; a solver returns an arbitrary one, mixing k equal groups into
    vectors that each spread over several of them (ten planted groups of 200 rows read as
    400-1,400 rows). The rotated vectors span the same space; each takes the run's positions
    in the order of its Rayleigh quotient. vectors is only read."""
    out = np.array(vectors, dtype=np.float64, copy=True)
    for run in near_repeated(values, floor):
        basis = out[:, run]
        rotation = _quartimax(basis)
        rotated = basis @ rotation
        quotients = values[run] @ rotation**2  # u^T Lambda u of each rotated vector
        order = np.argsort(-np.sign(values[run[0]]) * quotients, kind="stable")
        out[:, run] = rotated[:, order]
    return out


def _quartimax(basis: np.ndarray, steps: int = 200, tol: float = 1e-9) -> np.ndarray:
    """The orthogonal k x k rotation R that maximises sum((basis @ R) ** 4) (the SVD iteration
    of varimax with gamma = 0). Each step needs basis^T (basis R)^3; for a few vectors
    (k <= MOMENT_MAX_K) it comes from the fourth moments of the rows, computed once (k^4 numbers),
    so the steps no longer pass over the n rows: the same iteration, to round-off."""
    k = basis.shape[1]
    cubed = _moment_gradient(basis) if k <= MOMENT_MAX_K else None
    rotation = np.eye(k)
    previous = 0.0
    for _ in range(steps):
        gradient = basis.T @ (basis @ rotation) ** 3 if cubed is None else cubed(rotation)
        u, s, vt = np.linalg.svd(gradient)
        rotation = u @ vt
        total = float(s.sum())
        if previous and total <= previous * (1 + tol):
            break
        previous = total
    return rotation


#: _quartimax uses the rows' fourth moments (k^4 numbers) up to this many vectors: they cost
#: one pass of n (k (k + 1) / 2)^2 products, then nothing per step that grows with n (measured
#: at n = 300,000 and k = 20: 1.35 s once, then 0.001 s a step against 0.55 s a direct step).
MOMENT_MAX_K = 32


def _moment_gradient(basis: np.ndarray, block_rows: int = 16_384):
    """R -> basis^T (basis R)^3 from M[a, b, c, d] = sum_i x_ia x_ib x_ic x_id (x = the rows of
    basis): column j is M contracted three times with R's column j. M is summed from the
    products of the distinct pairs (x_ia x_ib, a <= b) and filled in by its symmetry."""
    n, k = basis.shape
    first, second = np.triu_indices(k)
    moments = np.zeros((len(first), len(first)))
    for start in range(0, n, block_rows):
        columns = np.ascontiguousarray(basis[start : start + block_rows].T)
        pairs = columns[first] * columns[second]  # pairs x rows: contiguous gathers
        moments += pairs @ pairs.T
    position = np.empty((k, k), dtype=np.int64)
    position[first, second] = position[second, first] = np.arange(len(first))
    flat = position.ravel()
    full = moments[np.ix_(flat, flat)].reshape(k, k, k, k)

    def gradient(rotation: np.ndarray) -> np.ndarray:
        last = (full.reshape(k**3, k) @ rotation).reshape(k, k, k, k)  # [a, b, c, j]
        middle = np.einsum("abcj,cj->abj", last, rotation)
        return np.einsum("abj,bj->aj", middle, rotation)

    return gradient
