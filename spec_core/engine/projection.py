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
