"""2-D views of an embedding for the UMAP page: PCA (instant) and UMAP (seconds)."""

from __future__ import annotations

import numpy as np


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components (centred, by SVD), float32 (n, 2)."""
    centred = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    if centred.shape[1] == 1:
        return np.hstack([centred, np.zeros_like(centred)]).astype(np.float32)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[:2].T).astype(np.float32)


def umap_2d(x: np.ndarray, *, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """UMAP (McInnes et al., 2018) to 2-D with a fixed seed; cosine metric, float32 (n, 2).
    Falls back to PCA for fewer than 5 rows, where UMAP is undefined."""
    if x.shape[0] < 5:
        return pca_2d(x)
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, x.shape[0] - 1),
                        metric="cosine", random_state=seed, n_jobs=1)  # fmt: skip
    return reducer.fit_transform(np.asarray(x, dtype=np.float32)).astype(np.float32)


def classical_mds(distances: np.ndarray, dims: int = 2) -> np.ndarray:
    """Points in `dims` dimensions whose distances match `distances` (a symmetric matrix with a
    zero diagonal) as well as a Euclidean map can: classical (Torgerson) MDS, the top
    eigenvectors of B = -1/2 J D^2 J (J centres) scaled by the square roots of their
    eigenvalues. Directions with a negative eigenvalue (what no Euclidean map can show) are
    left out as 0, so the answer is finite for any dissimilarities. Each axis is signed so that
    its largest |coordinate| is positive (deterministic). float64 (N, dims)."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances must be a square matrix, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("distances must be finite")
    d = (d + d.T) / 2
    n = d.shape[0]
    centring = np.eye(n) - 1.0 / n
    inner = -0.5 * centring @ (d**2) @ centring
    values, vectors = np.linalg.eigh((inner + inner.T) / 2)
    order = np.argsort(values)[::-1][:dims]
    coords = np.zeros((n, dims))
    for axis, index in enumerate(order):
        if values[index] > 1e-12 * max(float(np.abs(values).max()), 1e-300):
            column = vectors[:, index] * np.sqrt(values[index])
            peak = int(np.argmax(np.abs(column)))
            coords[:, axis] = column if column[peak] >= 0 else -column
    return coords
