"""The closed-form start of the linear adapter: the ridge least-squares map of B onto A, turned
by orthogonal Procrustes towards B, with the ridge penalty chosen on the validation rows.

A linear map g(B) = B W + c that undoes a linear distortion makes g(B) = A up to what the
kernels ignore (a rotation and an overall scale; for the Gaussian kernel also a shift). The
least-squares fit of A's kernel features (standardised A for the Gaussian kernel, its unit rows
for the cosine) from B on the train rows gives one such map; of all the rotations and scales of
it, which the kernels cannot tell apart, the one closest to B itself (Procrustes) changes B the
least, so the keep term starts small. Computed in float64 on the fit rows (at most
START_ROWS of them, seeded).

With fewer train rows than B's dimensions (or B near a lower-dimensional subspace plus noise)
the plain least-squares map interpolates the train rows and does not carry over to new rows;
a ridge penalty damps the directions the train rows barely span. `RidgeFit` solves the whole
grid PENALTIES through one decomposition of the centred train rows; `align` keeps the heaviest
penalty whose map's validation SPEC-diff is within PENALTY_SLACK of the best (pick_penalty,
train.py), and the verdict's best linear map uses it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from spec_core.align.splits import sample_rows

#: The least-squares start is fitted on at most this many train rows (a seeded sample).
START_ROWS = 20_000
#: The lightest ridge, relative to the mean eigenvalue of B's covariance: keeps the fit defined
#: when B has fewer independent directions than columns (a deleted direction).
RIDGE = 1e-6
#: The ridge penalties tried, relative to the mean eigenvalue of B's train covariance (chosen
#: with benchmarks/bench_align_planted.py, tuning set: the best closes 81-86% on a wide case
#: of low-rank groups plus noise where RIDGE alone closes 38-54%).
PENALTIES = (RIDGE, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1)


#: The penalty chosen: the heaviest whose validation SPEC-diff is within this share of B's own
#: of the best penalty's (a lighter one that is barely better has fitted the train rows' noise:
#: on the wide deleting case of the tests it kept a map that closed 3% and cut B's label
#: accuracy from 0.67 to 0.48).
PENALTY_SLACK = 0.02


def pick_penalty(values: dict[float, float], base: float) -> float:
    """The penalty to use, from each penalty's validation SPEC-diff (`values`) and B's own
    (`base`): the heaviest within PENALTY_SLACK x base of the smallest."""
    best = min(values.values())
    return max(p for p, value in values.items() if value <= best + PENALTY_SLACK * base)


class RidgeFit:
    """Ridge least squares y ~ (x - mean_x) M + mean_y for many penalties from one
    decomposition of the centred x (float64): with x's covariance directions V and their
    eigenvalues l (of x^T x), M(p) = V diag(1 / (l + p * mean eigenvalue)) V^T x^T (y - mean_y).
    The eigendecomposition of x^T x when x has more rows than columns (its cost is one n x d^2
    product, as the plain least squares before), the SVD of x otherwise. `x` and `y` are only
    read."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self.mean_x, self.mean_y = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - self.mean_x, y - self.mean_y
        if x.shape[0] > x.shape[1]:
            eigenvalues, self.directions = np.linalg.eigh(xc.T @ xc)
            self.eigenvalues = np.clip(eigenvalues, 0.0, None)
            self.projected = self.directions.T @ (xc.T @ yc)
        else:
            left, sizes, right = np.linalg.svd(xc, full_matrices=False)
            self.directions, self.eigenvalues = right.T, sizes**2
            self.projected = sizes[:, None] * (left.T @ yc)
        self.mean_eigenvalue = max(float(self.eigenvalues.sum()) / x.shape[1], 1e-300)

    def matrix(self, penalty: float) -> np.ndarray:
        """M for one relative penalty (> 0)."""
        factors = 1.0 / (self.eigenvalues + penalty * self.mean_eigenvalue)
        return self.directions @ (factors[:, None] * self.projected)

    def degrees_of_freedom(self, penalty: float) -> float:
        """The effective number of parameters per output column: sum l / (l + p mean
        eigenvalue) (= B's rank for a tiny penalty). A fit generalises when the rows it is
        fitted on are several times this."""
        squares = self.eigenvalues
        return float((squares / (squares + penalty * self.mean_eigenvalue)).sum())


def least_squares_fit(
    x: np.ndarray, y: np.ndarray, penalty: float = RIDGE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M, mean_x, mean_y) of the ridge least-squares fit y ~ (x - mean_x) M + mean_y, the
    ridge being `penalty` x the mean eigenvalue of x's covariance (x n)."""
    fit = RidgeFit(x, y)
    return fit.matrix(penalty), fit.mean_x, fit.mean_y


def start_candidates(
    data: Any, emb_a: np.ndarray, kernel: str, seed: int, penalties=PENALTIES
) -> Iterator[tuple[float, dict[str, np.ndarray], float]]:
    """(penalty, weights, degrees of freedom) for each penalty: the linear adapter's weight and
    bias (torch.nn.Linear's: out = x W^T + b, x B standardised) of the ridge least-squares map
    of B onto A, rotated and scaled (Procrustes) to stay closest to B. `data`:
    prepare.PreparedData. float64; one decomposition for all penalties."""
    rows = sample_rows(data.fit_rows, seed, START_ROWS)
    x = data.b_std[rows].double().cpu().numpy()
    offset = data.offset.double().cpu().numpy()
    if kernel == "cosine":  # the cosine kernel sees A's rows' directions and out + offset
        a = np.asarray(emb_a[rows], dtype=np.float64)
        x_seen, y = x + offset, a / np.abs(a).max()
    else:  # the Gaussian kernel ignores shifts: centred fits
        x_seen, y = x, data.a[rows].double().cpu().numpy()
    fit = RidgeFit(x_seen, y)
    for penalty in penalties:
        weights = _procrustes_weights(fit, fit.matrix(penalty), x_seen, offset, kernel)
        yield penalty, weights, fit.degrees_of_freedom(penalty)


class _Product:
    """The rotation Q = left @ right, applied as (v @ left) @ right: with fewer rows than
    dimensions, left and right are thin and Q is never formed (O(d^2 n), not O(d^3))."""

    def __init__(self, left: np.ndarray, right: np.ndarray):
        self.left, self.right = left, right

    def after(self, v: np.ndarray) -> np.ndarray:
        return (v @ self.left) @ self.right


def polar_factors(p: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(U, s, V^T) of p^T x (p: n x d_p, x: n x d_x) with its zero singular values left out
    when n < min(d_p, d_x): from thin SVDs of p and x and the SVD of an n x n core, instead of
    the d_p x d_x product's (an attack timed 96 s at 50 x 2,000, seven penalties). Where p's
    rows span the row space of the map applied after (m here: its rows lie in the span of the
    train rows' predictions), U V^T acts on it exactly as the full SVD's does."""
    n = p.shape[0]
    if n >= min(p.shape[1], x.shape[1]):
        return np.linalg.svd(p.T @ x, full_matrices=False)
    up, sp, vpt = np.linalg.svd(p, full_matrices=False)
    ux, sx, vxt = np.linalg.svd(x, full_matrices=False)
    core = (sp[:, None] * (up.T @ ux)) * sx[None, :]
    cl, cs, crt = np.linalg.svd(core)
    return vpt.T @ cl, cs, crt @ vxt


def _procrustes_weights(fit: RidgeFit, m, x_seen, offset, kernel: str) -> dict[str, np.ndarray]:
    """The adapter's weight and bias of the map x -> (x - mean_x) m + mean_y turned and scaled
    (Procrustes: the rotation Q, d_A x d_B, and scale s with s predicted Q closest to B)."""
    mean_x = fit.mean_x
    mean_y = fit.mean_y if kernel == "cosine" else np.zeros_like(fit.mean_y)
    predicted = (x_seen - mean_x) @ m + mean_y
    left, sizes, right = polar_factors(predicted, x_seen)
    rotation = _Product(left, right)
    scale = float(sizes.sum()) / max(float((predicted**2).sum()), 1e-300)
    weight_t = scale * rotation.after(m)  # out = x weight_t + bias
    if kernel == "cosine":  # out + offset = scale (x + offset - mean_x) m Q + scale mean_y Q
        bias = scale * rotation.after((offset - mean_x) @ m + mean_y) - offset
    else:  # out keeps B's centre (0 on the train rows): the shift costs nothing
        bias = mean_x - mean_x @ weight_t
    return {"weight": weight_t.T.copy(), "bias": bias}


def least_squares_start(
    data: Any, emb_a: np.ndarray, kernel: str, seed: int, penalty: float = RIDGE
) -> dict[str, np.ndarray]:
    """The linear adapter's weight and bias for one penalty (start_candidates)."""
    (_, weights, _), *_ = start_candidates(data, emb_a, kernel, seed, (penalty,))
    return weights
