"""Kernel functions and the data-driven bandwidth rule.

The public functions take and return NumPy arrays; the engine uses the `*_t` torch versions,
which run on whatever device their inputs live on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from spec_core.checks import check_positive
from spec_core.config import APPROXIMATIONS_OF

if TYPE_CHECKING:
    import torch

#: The default bandwidth is this multiple of the median pairwise distance. Measured by
#: benchmarks/bench_legibility.py: with centred kernels, 0.3 gives modes that are real groups
#: (label purity 0.77 on average over seven labelled cases, against 0.65 at 0.5) without
#: falling apart into pairs of near-duplicates (0.25).
SIGMA_MEDIAN_FACTOR = 0.3
#: The median is taken over the pairs of at most this many rows (a seeded sample).
SIGMA_SAMPLE_ROWS = 1000


def squared_distances_t(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 for every pair, clamped at 0 against round-off."""
    x_sq = (x * x).sum(dim=1, keepdim=True)
    y_sq = (y * y).sum(dim=1, keepdim=True)
    dist = x_sq + y_sq.T - 2.0 * (x @ y.T)
    return dist.clamp_(min=0.0)


def gaussian_kernel_t(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    dist = squared_distances_t(x, y)
    return dist.mul_(-0.5 / sigma**2).exp_()


def normalize_rows_t(x: torch.Tensor) -> torch.Tensor:
    """x / ||x|| per row, scale-safely: each row is first divided by its largest |value|, so
    ||x||^2 neither overflows (values ~1e30 in float32) nor underflows (~1e-30). Out of place."""
    import torch

    peak = x.abs().amax(dim=1, keepdim=True)
    x = x / peak.where(peak > 0, torch.ones_like(peak))
    return x / x.norm(dim=1, keepdim=True)


def gaussian_kernel(x: np.ndarray, y: np.ndarray | None = None, *, sigma: float) -> np.ndarray:
    """k(u, v) = exp(-||u - v||^2 / (2 sigma^2)); sigma is in the embedding's own units."""
    import torch

    check_positive("sigma", sigma, allow_none=False)
    xt = torch.from_numpy(np.asarray(x))
    yt = xt if y is None else torch.from_numpy(np.asarray(y))
    return gaussian_kernel_t(xt, yt, sigma).numpy()


def cosine_kernel(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """k(u, v) = <u/||u||, v/||v||>."""
    import torch

    xt = normalize_rows_t(torch.from_numpy(np.asarray(x)))
    yt = xt if y is None else normalize_rows_t(torch.from_numpy(np.asarray(y)))
    return (xt @ yt.T).numpy()


def median_sigma(
    x: np.ndarray,
    *,
    factor: float = SIGMA_MEDIAN_FACTOR,
    max_rows: int = SIGMA_SAMPLE_ROWS,
    seed: int = 0,
) -> float:
    """`factor` x the median distance between distinct rows of a seeded sample of `x`.

    The authors pick sigma by hand so that each embedding's own kernel shows separated top
    eigenvalues (3.5 for CLIP ViT-B/32, 25-28 for DINOv2), about half the median distance on
    those embeddings; a smaller factor (0.3, the default) makes the groups SPEC names tighter
    (see SIGMA_MEDIAN_FACTOR). Falls back to 1.0 when all rows coincide.
    """
    distances, scale = sample_distances(x, max_rows=max_rows, seed=seed)
    return _median_rule(distances, scale, factor)


def _median_rule(distances: np.ndarray, scale: float, factor: float = SIGMA_MEDIAN_FACTOR):
    upper = distances[np.triu_indices(len(distances), 1)]
    upper = upper[upper > 0]
    if upper.size == 0:
        return 1.0
    return float(factor * np.median(upper) * scale)


#: The "knn" rule's neighbour: the k-th nearest, k = this share of the sample's rows (>= 5).
KNN_RULE_SHARE = 0.05
#: Each rule's bandwidth as a multiple of the distance it measures.
RULE_FACTORS = {"median": SIGMA_MEDIAN_FACTOR, "knn": 1.0}


def bandwidth(
    x: np.ndarray,
    rule: str = "median",
    *,
    distances: np.ndarray | None = None,
    scale: float | None = None,
    seed: int = 0,
) -> float:
    """A data-driven Gaussian bandwidth for embedding `x` (in its own units).

    rule "median": 0.3 x the median distance between distinct rows (`median_sigma`): a global
    scale. rule "knn": the median over rows of the distance to the k-th nearest neighbour,
    k = 5% of the sampled rows: a local scale, the size of a neighbourhood that holds a
    twentieth of the data, so that groups of about that size stand out. Both on a seeded
    sample of <= 1000 rows; `distances` / `scale` are `sample_distances(x)` when already known.
    """
    if distances is None or scale is None:
        distances, scale = sample_distances(x, seed=seed)
    if rule == "median":
        return _median_rule(distances, scale)
    if rule == "knn":
        m = len(distances)
        k = min(max(5, round(KNN_RULE_SHARE * m)), m - 1)
        ranked = np.sort(distances, axis=1)[:, k]  # column 0 is the row itself
        positive = ranked[ranked > 0]
        if positive.size == 0:
            return _median_rule(distances, scale)
        return float(np.median(positive) * scale)
    raise ValueError(f"sigma_rule={rule!r} is not supported; choose one of median, knn")


def sample_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """All rows, or a seeded sorted sample of `max_rows` of them."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def sample_distances(
    x: np.ndarray, *, max_rows: int = SIGMA_SAMPLE_ROWS, seed: int = 0
) -> tuple[np.ndarray, float]:
    """The square matrix of distances between the rows of a seeded sample of `x`, in units of
    `scale` (returned): the sample is centred and divided by its largest |value| in float64
    first, so values of any size (1e300, 1e-300) give finite distances."""
    import torch

    rows = sample_rows(x.shape[0], max_rows, seed)
    sample = np.array(x[rows], dtype=np.float64)  # a copy: the caller's array is never written
    peak = float(np.abs(sample).max()) if sample.size else 0.0
    if peak > 0:  # scaled before centring: values near the float64 limit cannot overflow
        sample /= peak
    sample -= sample.mean(axis=0)
    scale = float(np.abs(sample).max()) if sample.size else 0.0
    if scale > 0:
        sample /= scale
    else:
        scale = 1.0
    scale *= peak if peak > 0 else 1.0
    tensor = torch.from_numpy(sample)
    return squared_distances_t(tensor, tensor).sqrt_().numpy(), scale


#: A kernel value this close to 1 for every pair, or exactly 0 for every distinct pair, carries
#: no information: the bandwidth is refused with the reason. "Close to 1" is where the compute
#: dtype rounds every value to 1: exp(-r^2 / 2) > 1 - eps / 2.
ALL_ONE_RATIO = {"float64": 1.5e-8, "float32": 2.4e-4}
ALL_ZERO_RATIO = 38.6  # exp(-r^2 / 2) underflows to 0 in float64


def check_bandwidth(
    name: str, sigma: float, distances: np.ndarray, scale: float, dtype: str = "float64"
) -> None:
    """Refuse a Gaussian bandwidth that makes the kernel degenerate on this data.

    `distances` (in units of `scale`) are those of `sample_distances`. Too small a sigma makes
    every off-diagonal kernel value 0 (K = I, and distances / sigma overflow float32); too large
    a sigma makes every value 1 (K = 1 1^T). Both are a message naming the cause, not NaN.
    """
    positive = distances[np.triu_indices(len(distances), 1)]
    positive = positive[positive > 0]
    if positive.size == 0 or not np.isfinite(sigma) or sigma <= 0:
        return
    log_ratio = np.log(positive) + np.log(scale) - np.log(sigma)  # no overflow for any size
    closest, farthest = float(log_ratio.min()), float(log_ratio.max())
    median = float(np.median(positive) * scale)
    advice = (
        f"the data-driven bandwidth is {SIGMA_MEDIAN_FACTOR * median:.3g} "
        f"(leave {name} unset to use it)"
    )
    if closest > np.log(ALL_ZERO_RATIO):
        raise ValueError(
            f"{name} = {sigma:.3g} makes every off-diagonal kernel value 0: the closest distinct "
            f"rows of a sample are {_power(closest)} bandwidths apart; {advice}"
        )
    if farthest < np.log(ALL_ONE_RATIO.get(dtype, ALL_ONE_RATIO["float64"])):
        raise ValueError(
            f"{name} = {sigma:.3g} makes every kernel value 1 in {dtype}: the farthest rows of a "
            f"sample are only {_power(farthest)} bandwidths apart, so the kernel sees no "
            f"difference between rows; {advice}"
        )


def _power(log_value: float) -> str:
    """e**log_value for a message, exact where a float holds it, else as a power of ten."""
    if -700 < log_value < 700:
        return f"{np.exp(log_value):.3g}"
    return f"10^{log_value / np.log(10):.0f}"


# ---------------------------------------------------------------------------------------------
# Kernels as objects: what the engine needs to know of a kernel, in one place per kernel


class Kernel:
    """One kernel, as the engine uses it (rows are first put in the kernel's own units by
    `prepare`, see spec_core.engine.rows).

    name: its name in parameters; bandwidth: whether it has a per-embedding bandwidth (sigma);
    approximations: the feature-map methods that approximate it ("rff", "nystrom"), empty when
    it has an exact finite map; metric: the neighbour metric of its context metrics.
    """

    name = ""
    bandwidth = False
    approximations: tuple[str, ...] = ()
    metric = "euclidean"

    def shift(self, data: np.ndarray) -> np.ndarray | None:
        """The float64 centre subtracted from the rows (None: none)."""
        return None

    def prepare(self, rows: torch.Tensor, shift, sigma) -> torch.Tensor:
        """float64 rows in the kernel's units (out of place)."""
        raise NotImplementedError

    def matrix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The kernel between prepared rows x and y."""
        raise NotImplementedError

    def exact_map(self, rows, dtype):
        """The fitted exact feature map of the prepared rows, or None when there is none."""
        return None

    def check_rows(self, emb: np.ndarray, name: str) -> None:
        """Refuse rows the kernel cannot take (a ValueError naming the row)."""


class GaussianKernel(Kernel):
    """exp(-||u - v||^2 / (2 sigma^2)); rows prepared as (x - centre) / sigma, so sigma = 1."""

    name = "gaussian"
    bandwidth = True
    approximations = APPROXIMATIONS_OF["gaussian"]

    def shift(self, data):
        return column_centre(data)

    def prepare(self, rows, shift, sigma):
        import torch

        # divided first: values near the float64 limit cannot overflow the subtraction
        return rows / sigma - torch.from_numpy(shift / sigma)

    def matrix(self, x, y):
        return gaussian_kernel_t(x, y, 1.0)


class CosineKernel(Kernel):
    """<u / ||u||, v / ||v||>; its exact feature map is the normalised row."""

    name = "cosine"
    metric = "cosine"

    def prepare(self, rows, shift, sigma):
        return normalize_rows_t(rows)

    def matrix(self, x, y):
        return x @ y.T

    def exact_map(self, rows, dtype):
        return CosineFeatures().fit(rows, dtype=dtype)

    def check_rows(self, emb, name):
        from spec_core.data.arrays import check_no_zero_rows

        check_no_zero_rows(emb, name)


KERNELS: dict[str, Kernel] = {k.name: k for k in (GaussianKernel(), CosineKernel())}


def get_kernel(name: str) -> Kernel:
    """The kernel called `name`; a ValueError lists the valid names."""
    if name not in KERNELS:
        raise ValueError(f"kernel={name!r} is not supported; choose one of {', '.join(KERNELS)}")
    return KERNELS[name]


#: The centre of a Gaussian kernel's rows is the column median of this many sampled rows.
CENTRE_SAMPLE_ROWS = 10_000


def column_centre(x: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """A robust centre of the rows (float64): the column medians of a seeded sample. The
    Gaussian kernel is translation invariant, so any centre gives the same kernel; one near the
    bulk of the rows keeps their float32 values precise. (The mean would not: one outlier row
    at 1e8 would shift every row by 1e8 / n and float32 would lose their differences.)"""
    rows = sample_rows(x.shape[0], CENTRE_SAMPLE_ROWS, seed)
    return np.median(np.asarray(x[rows], dtype=np.float64), axis=0)


class CosineFeatures:
    """The exact feature map of the cosine kernel: the L2-normalised rows (D = d)."""

    def fit(self, x: torch.Tensor, *, device=None, dtype=None) -> CosineFeatures:
        self.n_features_ = int(x.shape[1])
        self.dtype_ = dtype or x.dtype
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_rows_t(x)
