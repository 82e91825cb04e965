"""The closed-form start of the linear adapter: the least-squares map of B onto A, turned by
orthogonal Procrustes towards B.

A linear map g(B) = B W + c that undoes a linear distortion makes g(B) = A up to what the
kernels ignore (a rotation and an overall scale; for the Gaussian kernel also a shift). The
least-squares fit of A's kernel features (standardised A for the Gaussian kernel, its unit rows
for the cosine) from B on the train rows gives one such map; of all the rotations and scales of
it, which the kernels cannot tell apart, the one closest to B itself (Procrustes) changes B the
least, so the keep term starts small. Computed in float64 on the fit rows (at most
START_ROWS of them, seeded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spec_core.align.splits import sample_rows

#: The least-squares start is fitted on at most this many train rows (a seeded sample).
START_ROWS = 20_000
#: Ridge of the least-squares fit, relative to the mean eigenvalue of B's covariance: keeps the
#: fit defined when B has fewer independent directions than columns (a deleted direction).
RIDGE = 1e-6


def least_squares_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, mean_x, mean_y) of the ridge-light least-squares fit y ~ (x - mean_x) M + mean_y."""
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    xc = x - mean_x
    gram = xc.T @ xc
    ridge = RIDGE * max(float(np.trace(gram)) / len(gram), 1e-300)
    m = np.linalg.solve(gram + ridge * np.eye(len(gram)), xc.T @ (y - mean_y))
    return m, mean_x, mean_y


def least_squares_start(
    data: Any, emb_a: np.ndarray, kernel: str, seed: int
) -> dict[str, np.ndarray]:
    """The linear adapter's weight and bias (torch.nn.Linear's: out = x W^T + b, x B
    standardised) of the least-squares map of B onto A, rotated and scaled (Procrustes) to stay
    closest to B. `data`: prepare.PreparedData. float64."""
    rows = sample_rows(data.fit_rows, seed, START_ROWS)
    x = data.b_std[rows].double().cpu().numpy()
    offset = data.offset.double().cpu().numpy()
    if kernel == "cosine":  # the cosine kernel sees A's rows' directions and out + offset
        a = np.asarray(emb_a[rows], dtype=np.float64)
        x_seen, y = x + offset, a / np.abs(a).max()
    else:  # the Gaussian kernel ignores shifts: centred fits
        x_seen, y = x, data.a[rows].double().cpu().numpy()
    m, mean_x, mean_y = least_squares_fit(x_seen, y)
    if kernel != "cosine":
        mean_y = np.zeros_like(mean_y)
    predicted = (x_seen - mean_x) @ m + mean_y
    # Procrustes: the rotation Q (d_A x d_B) and scale s with s predicted Q closest to B
    left, sizes, right = np.linalg.svd(predicted.T @ x_seen, full_matrices=False)
    rotation = left @ right
    scale = float(sizes.sum()) / max(float((predicted**2).sum()), 1e-300)
    weight_t = scale * m @ rotation  # out = x weight_t + bias
    if kernel == "cosine":  # out + offset = scale (x + offset - mean_x) m Q + scale mean_y Q
        bias = scale * ((offset - mean_x) @ m + mean_y) @ rotation - offset
    else:  # out keeps B's centre (0 on the train rows): the shift costs nothing
        bias = mean_x - mean_x @ weight_t
    return {"weight": weight_t.T.copy(), "bias": bias}
