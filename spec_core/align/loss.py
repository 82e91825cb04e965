"""The differentiable SPEC-diff of a mini-batch: SPEC-align's loss.

On a mini-batch of m rows (the same samples in A and in B, row for row) SPEC-diff is the largest
|eigenvalue| of the m x m difference matrix

    Lambda = H (K_A - eta K_B) H / m          (H the centring matrix when centre=True)

with the engine's kernels and bandwidth rule (spec_core.compare on the same rows gives the
same number). Two ways to differentiate it (align's `solver`):

- "eigh" (`batch_spec_diff`): torch.linalg.eigvalsh of the m x m matrix. The gradient of an
  eigenvalue is u u^T (u its unit eigenvector): no 1 / (lambda_i - lambda_j) terms, so it is
  stable even when eigenvalues cluster. Any kernel.
- "power" (`PowerSpecDiff`): the paper's route, for the cosine kernel: power iteration on the
  feature-space matrix S C (C = Psi^T Psi / m, Psi = [phi_A, phi_B], S = diag(I, -I)),
  warm-started from the last step's eigenvector under no_grad, then the eigenvalue
  lambda = (v^T C S C v) / (v^T C v) (left eigenvector C v, right v) with the gradient through
  C. benchmarks/bench_align.py measures both.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: Power iterations: the first step, and each warm-started step after it (the paper: 1000, 20).
POWER_FIRST_STEPS = 200
POWER_STEPS = 20


def _sq_distances(x: torch.Tensor) -> torch.Tensor:
    sq = (x * x).sum(dim=1, keepdim=True)
    return (sq + sq.T - 2.0 * (x @ x.T)).clamp(min=0.0)


def batch_bandwidth(x: torch.Tensor, sigma_scale: float = 1.0) -> torch.Tensor:
    """The engine's median rule on the rows of x: sigma_scale x 0.3 x the median distance
    between distinct rows (no gradient flows through it)."""
    import torch

    from spec_core.engine.kernels import SIGMA_MEDIAN_FACTOR

    with torch.no_grad():
        dist = _sq_distances(x.detach())
        m = dist.shape[0]
        upper = dist[np.triu_indices(m, 1)]
        upper = upper[upper > 0]
        if upper.numel() == 0:
            return dist.new_tensor(1.0)
        return sigma_scale * SIGMA_MEDIAN_FACTOR * upper.median().sqrt()


def batch_kernel(x: torch.Tensor, kernel: str, sigma: float | torch.Tensor | None = None):
    """The kernel matrix of the rows of x, differentiable in x. Gaussian: sigma None uses the
    median rule on x (batch_bandwidth). Cosine: on the L2-normalised rows."""
    if kernel == "cosine":
        unit = x / x.norm(dim=1, keepdim=True)
        return unit @ unit.T
    if sigma is None:
        sigma = batch_bandwidth(x)
    return (-0.5 * _sq_distances(x) / sigma**2).exp()


def _centred(matrix: torch.Tensor) -> torch.Tensor:
    rows = matrix.mean(dim=1, keepdim=True)
    return matrix - rows - rows.T + rows.mean()


def batch_lambda(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    kernel: str = "gaussian",
    sigma_a=None,
    sigma_b=None,
    centre: bool = True,
    eta: float = 1.0,
) -> torch.Tensor:
    """Lambda = (K_A - eta K_B) / m on the m rows of a and b (H Lambda H when centre)."""
    lam = (batch_kernel(a, kernel, sigma_a) - eta * batch_kernel(b, kernel, sigma_b)) / a.shape[0]
    return _centred(lam) if centre else lam


def batch_spec_diff(
    a: torch.Tensor, b: torch.Tensor, *, n_top: int = 1, side: str = "both", **lambda_args
) -> torch.Tensor:
    """SPEC-diff(A, B) = max |eigenvalue of Lambda| on these rows, differentiable in a and b
    (n_top > 1: the sum of the n_top largest |eigenvalues|). side "a-not-b": the largest
    positive eigenvalues only (what A captures and B misses). `lambda_args`: batch_lambda's
    keyword arguments (kernel, sigma_a, sigma_b, centre, eta).
    """
    import torch

    lam = batch_lambda(a, b, **lambda_args)
    values = torch.linalg.eigvalsh((lam + lam.T) / 2)
    size = values.clamp(min=0) if side == "a-not-b" else values.abs()
    return size.topk(min(n_top, values.numel())).values.sum()


class PowerSpecDiff:
    """The paper's route (cosine kernel): the eigenvalue of S C of largest |value| by power
    iteration in feature space, warm-started across calls; differentiable through C."""

    def __init__(self, *, centre: bool = True, eta: float = 1.0):
        self.centre, self.eta, self.v = centre, eta, None

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        import torch

        phi_a = a / a.norm(dim=1, keepdim=True)
        phi_b = math.sqrt(self.eta) * b / b.norm(dim=1, keepdim=True)
        psi = torch.cat([phi_a, phi_b], dim=1)
        if self.centre:
            psi = psi - psi.mean(dim=0)
        gram = psi.T @ psi / psi.shape[0]
        sign = torch.ones(psi.shape[1], dtype=psi.dtype, device=psi.device)
        sign[phi_a.shape[1] :] = -1.0
        with torch.no_grad():
            vec = self._power_iterations(gram.detach(), sign)
        cv = gram @ vec
        return ((cv * sign) @ cv / (vec @ cv)).abs()

    def _power_iterations(self, gram: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """The unit eigenvector of S C of largest |eigenvalue|: POWER_FIRST_STEPS iterations
        from a seeded start, then POWER_STEPS from the last call's vector (kept in self.v)."""
        import torch

        steps = POWER_STEPS
        if self.v is None or self.v.shape[0] != gram.shape[0]:
            gen = torch.Generator(device="cpu").manual_seed(0)
            self.v = torch.randn(gram.shape[0], generator=gen, dtype=gram.dtype).to(gram.device)
            steps = POWER_FIRST_STEPS
        vec = self.v.to(dtype=gram.dtype, device=gram.device)
        for _ in range(steps):
            vec = sign * (gram @ vec)
            vec = vec / vec.norm().clamp(min=1e-30)
        self.v = vec
        return vec
