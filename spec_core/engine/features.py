"""Explicit feature maps phi with K ~ phi phi^T, the scalable path's building block.

Small stateful classes in the scikit-learn style: the constructor only stores parameters,
`fit` validates and draws all randomness from `seed`, fitted attributes end in `_`.
Inputs and outputs are torch tensors; the random draws happen on the CPU with a seeded
generator, so a given seed gives the same map on every device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from spec_core.checks import check_positive, check_positive_int
from spec_core.engine.kernels import gaussian_kernel_t

if TYPE_CHECKING:
    import torch


class RandomFourierFeatures:
    """phi(x) = sqrt(1/r) [cos(x W), sin(x W)], W ~ N(0, sigma^-2 I), D = 2r = n_features.

    Rahimi & Recht (2007). Unbiased for the Gaussian kernel; the error of phi phi^T shrinks
    like 1/sqrt(r). An odd n_features is rounded down to the even D actually used.
    """

    def __init__(self, *, n_features: int, sigma: float, seed: int = 0):
        self.n_features = n_features
        self.sigma = sigma
        self.seed = seed

    def fit(self, x: torch.Tensor, *, device=None, dtype=None) -> RandomFourierFeatures:
        """Draw the frequencies for inputs of x's width (only x.shape[1] is used)."""
        return self.fit_dim(int(x.shape[1]), device=device or x.device, dtype=dtype or x.dtype)

    def fit_dim(self, dim: int, *, device, dtype) -> RandomFourierFeatures:
        """Draw the frequencies for inputs of `dim` columns."""
        import torch

        check_positive_int("n_features", self.n_features)
        check_positive("sigma", self.sigma, allow_none=False)
        if self.n_features < 2:
            raise ValueError(f"n_features must be at least 2 for rff, got {self.n_features}")
        n_freq = self.n_features // 2
        gen = torch.Generator().manual_seed(int(self.seed))
        w = torch.randn(dim, n_freq, generator=gen, dtype=torch.float64) / self.sigma
        self.weights_ = w.to(device=device, dtype=dtype)
        self.scale_ = (1.0 / n_freq) ** 0.5
        self.n_features_ = 2 * n_freq
        self.dtype_ = self.weights_.dtype
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        proj = x @ self.weights_
        return torch.cat([proj.cos(), proj.sin_()], dim=1).mul_(self.scale_)


class NystroemFeatures:
    """phi(x) = k(x, L) U diag(s)^-1/2 for m landmarks L drawn from the data (K_LL = U diag(s) U^T).

    Williams & Seeger (2001). Exact on the span of the landmarks; for spectra dominated by a few
    large eigenvalues it is far more accurate than random Fourier features of the same D.
    A jitter of `rcond` x trace(K_LL) keeps the factorisation stable with duplicate or
    near-duplicate landmarks; D = min(n_features, n).
    """

    def __init__(self, *, n_features: int, sigma: float, seed: int = 0, rcond: float = 1e-6):
        self.n_features = n_features
        self.sigma = sigma
        self.seed = seed
        self.rcond = rcond

    def landmark_rows(self, n: int) -> np.ndarray:
        """The seeded, sorted rows (of n) that become the landmarks: min(n_features, n)."""
        import torch

        check_positive_int("n_features", self.n_features)
        gen = torch.Generator().manual_seed(int(self.seed))
        return torch.randperm(n, generator=gen)[: min(self.n_features, n)].sort().values.numpy()

    def fit(self, x: torch.Tensor, *, device=None, dtype=None) -> NystroemFeatures:
        """Draw the landmarks from the rows of x; only they are moved to `device` / `dtype`."""
        rows = self.landmark_rows(x.shape[0])
        landmarks = x[torch_index(rows, x.device)]
        return self.fit_landmarks(
            landmarks, rows=rows, device=device or x.device, dtype=dtype or x.dtype
        )

    def fit_landmarks(
        self, landmarks: torch.Tensor, *, rows: np.ndarray, device, dtype
    ) -> NystroemFeatures:
        """Fit on given landmark rows (those of `landmark_rows`, already in the input's units)."""
        import torch

        check_positive_int("n_features", self.n_features)
        check_positive("sigma", self.sigma, allow_none=False)
        m = landmarks.shape[0]
        self.landmark_rows_ = rows
        self.landmarks_ = landmarks.to(device=device, dtype=dtype)
        k_ll = gaussian_kernel_t(self.landmarks_.double(), self.landmarks_.double(), self.sigma)
        # K_LL + jitter = R R^T (Cholesky), phi = k(x, L) R^-T: phi phi^T = k K_LL^-1 k^T.
        # The jitter (rcond x trace) shrinks only directions of K_LL below it, like truncation.
        k_ll.diagonal().add_(self.rcond * m)
        chol, info = torch.linalg.cholesky_ex(k_ll)
        if int(info) == 0:
            eye = torch.eye(m, dtype=chol.dtype, device=chol.device)
            projection = torch.linalg.solve_triangular(chol, eye, upper=False).T
        else:  # not positive definite even with jitter: truncated eigendecomposition
            evals, evecs = torch.linalg.eigh(k_ll)
            keep = evals > self.rcond * evals[-1]
            projection = evecs[:, keep] / evals[keep].sqrt()
        self.projection_ = projection.to(self.landmarks_.dtype)
        self.n_features_ = int(projection.shape[1])
        self.dtype_ = self.landmarks_.dtype
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_kernel_t(x, self.landmarks_, self.sigma) @ self.projection_


def torch_index(rows: np.ndarray, device) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(device)
