"""SPEC-align's data, made ready to train on: the seeded split, A and B in ranges float32 holds,
the rows each step may use, A's bandwidth, all on the torch device.

B is standardised by its train rows (x standardised to unit mean square per coordinate, in
float64 and scaled first, so values near the float limits stay finite): the adapter works in
those units and the keep term measures B's change in units of B's own spread. Rows far from the
rest (more than FAR_SPREADS spreads) count in neither the centre and spread nor the training:
the adapter maps them, the before/after metrics include them. A is brought to a safe range
(kernels are scale-free here: the Gaussian bandwidths are measured on the same scaled rows;
cosine ignores scale). Inputs are only read, never written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spec_core.align.adapter import MLP_HIDDEN
from spec_core.align.measure import METRIC_ROWS, scaled_copy
from spec_core.align.settings import AlignSettings
from spec_core.align.splits import MIN_SPLIT_ROWS, split_rows
from spec_core.data import arrays

if TYPE_CHECKING:
    import torch

#: The validation loss during training is measured on at most this many validation rows.
VAL_LOSS_ROWS = 1024
#: Rows of B further than this many spreads from the rest (see _centre_and_spread) are left
#: out of B's centre and spread, of training and of early stopping: in a batch they would own
#: the keep term and lose their kernel values to float32 rounding. The adapter still maps them,
#: and the before/after metrics (the engine's) include them.
FAR_SPREADS = 1e3
#: Standardised B stays within this (float32 holds it, with room for the adapter's weights).
MAX_STANDARDISED = 1e30


@dataclass(frozen=True)
class PreparedData:
    """What training needs, on the torch device. Rows are indices into A and B."""

    train_rows: np.ndarray  # the seeded split, sorted
    val_rows: np.ndarray
    fit_rows: np.ndarray  # train rows within FAR_SPREADS of the rest in A and B: trained on
    val_loss_rows: np.ndarray  # such validation rows (at most VAL_LOSS_ROWS): early stopping's
    far_rows: int  # rows of either split left out for being far
    a: torch.Tensor  # A, every row, float32 in a safe range (standardised for the Gaussian)
    b_std: torch.Tensor  # B, every row, standardised by centre_b and spread_b (float32)
    offset: torch.Tensor  # centre_b / spread_b: the cosine kernel sees g(B) / spread as out + it
    centre_b: np.ndarray  # B's column means on the near train rows (float64)
    spread_b: float  # B's root-mean-square deviation per coordinate there
    sigma_a: float | None  # A's Gaussian bandwidth (median rule on the fit rows); None: cosine
    batch: int  # rows per training step: batch_size, or every fit row when fewer
    device: torch.device
    #: The seeded generator (after drawing val_loss_rows): training draws its batches from it.
    rng: np.random.Generator


def prepare(emb_a: np.ndarray, emb_b: np.ndarray, settings: AlignSettings) -> PreparedData:
    """Split the checked rows of A and B (seeded), refuse what cannot be trained or held, and
    bring both to the device in the units training works in."""
    import torch

    from spec_core.engine.compare import resolve_device

    kernel, seed = settings.kernel, settings.seed
    n = emb_a.shape[0]
    train_rows, val_rows = split_rows(n, float(settings.val_fraction), seed)
    _check_splits_vary(emb_a, emb_b, train_rows, val_rows)
    check_align_memory(n, emb_a.shape[1], emb_b.shape[1], settings.adapter, settings.batch_size)
    torch_device = resolve_device(settings.device)

    # For the Gaussian kernel A is standardised as B is, so one far row of A does not shrink the
    # rest either.
    centre_b, spread = _centre_and_spread(emb_b, train_rows, "B")
    if kernel == "gaussian":
        a_all = _standardised(emb_a, *_centre_and_spread(emb_a, train_rows, "A"))
    else:
        a_all = scaled_copy(emb_a, kernel)
    a_t = torch.from_numpy(a_all).to(torch_device)
    b_std = torch.from_numpy(_standardised(emb_b, centre_b, spread)).to(torch_device)
    # the cosine kernel sees g(B) / scale = outputs + centre / scale
    offset = torch.from_numpy((centre_b / spread).astype(np.float32)).to(torch_device)
    if kernel == "cosine":
        arrays.check_no_zero_rows(
            (b_std + offset).cpu().numpy(), "B (in float32, after dividing by its spread)"
        )
    rng = np.random.default_rng(seed)
    fit_rows, val_loss_rows = _near_split_rows(a_t, b_std, train_rows, val_rows)
    far_rows = n - len(fit_rows) - len(val_loss_rows)
    sigma_a = None
    if kernel == "gaussian":
        sigma_a = _gaussian_sigma_a(a_all[fit_rows], settings.sigma_scale, seed)
    if len(val_loss_rows) > VAL_LOSS_ROWS:
        val_loss_rows = np.sort(rng.choice(val_loss_rows, VAL_LOSS_ROWS, replace=False))
    return PreparedData(
        train_rows=train_rows,
        val_rows=val_rows,
        fit_rows=fit_rows,
        val_loss_rows=val_loss_rows,
        far_rows=far_rows,
        a=a_t,
        b_std=b_std,
        offset=offset,
        centre_b=centre_b,
        spread_b=spread,
        sigma_a=sigma_a,
        batch=min(int(settings.batch_size), len(fit_rows)),
        device=torch_device,
        rng=rng,
    )


def _check_splits_vary(emb_a, emb_b, train_rows: np.ndarray, val_rows: np.ndarray) -> None:
    """Refuse a split whose rows of A or of B are all the same row: nothing to measure there."""
    for split, rows in (("train", train_rows), ("validation", val_rows)):
        for name, emb in (("A", emb_a), ("B", emb_b)):
            if not (emb[rows] != emb[rows[0]]).any():
                raise ValueError(
                    f"the {len(rows)} {split} rows of {name} are all identical: nothing to "
                    "measure there; use another seed or val_fraction, or more distinct rows"
                )


def check_align_memory(n: int, dim_a: int, dim_b: int, adapter: str, batch: int) -> None:
    """Refuse up front what this machine cannot hold: the float32 copies of A and B (scaled,
    standardised, aligned), the adapter with its gradient, two Adam moments and a snapshot, and
    the batch's m x m matrices."""
    from spec_core.limits import check_budget

    params = dim_b * dim_b + dim_b
    if adapter == "mlp":
        hidden = min(MLP_HIDDEN, 2 * dim_b)
        params = 2 * dim_b * hidden + hidden + dim_b
    m = min(batch, n)
    need = 4 * n * (dim_a + 3 * dim_b) + 4 * 5 * params + 8 * 12 * m * m
    need += 8 * METRIC_ROWS * (dim_a + 3 * dim_b) + 8 * 4 * METRIC_ROWS**2  # the metrics
    check_budget(
        need,
        f"aligning {n:,} rows of {dim_a:,} and {dim_b:,} columns with a {adapter} adapter",
        "use fewer rows or columns (e.g. PCA), or the linear adapter",
    )


def _centre_and_spread(
    emb: np.ndarray, rows: np.ndarray, name: str = "B"
) -> tuple[np.ndarray, float]:
    """Column means and the root-mean-square deviation per coordinate of `rows`, leaving
    out rows further than FAR_SPREADS typical deviations from the column medians (typical: the
    median row's RMS deviation; the overall RMS when more than half the rows sit on the
    medians). With every row counted, one row at 1e30 dragged the centre to ~1e30 / n and the
    spread to ~1e30 / sqrt(n), and every other row became the same float32 after standardising;
    data without such rows get the plain mean and RMS as before. The spread is at least
    2 x B's largest |value| (all rows) / MAX_STANDARDISED, so every standardised value of every
    row fits float32. Scale-safe: the rows are divided by their largest |value| first
    (float64)."""
    from spec_core.engine.kernels import column_centre

    x = np.asarray(emb[rows], dtype=np.float64)
    peak = float(np.abs(x).max())
    if not peak > 0:
        raise ValueError(f"{name} is zero on every train row: nothing to align")
    x = x / peak
    deviation = np.sqrt(((x - column_centre(x)) ** 2).mean(axis=1))
    typical = float(np.median(deviation)) or float(np.sqrt((deviation**2).mean()))
    x = x[deviation <= FAR_SPREADS * typical]
    centre = x.mean(axis=0)
    spread = float(np.sqrt(((x - centre) ** 2).mean()))
    if not spread > 0:
        raise ValueError(f"{name} does not vary across the train rows: nothing to align")
    step = max(1, 2**24 // emb.shape[1])  # in blocks: no n x d temporary
    peak_all = max(float(np.abs(emb[i : i + step]).max()) for i in range(0, emb.shape[0], step))
    return centre * peak, max(spread * peak, peak_all / (MAX_STANDARDISED / 2))


def _standardised(
    emb: np.ndarray, centre: np.ndarray, scale: float, block_rows: int = 65536
) -> np.ndarray:
    """(emb - centre) / scale as float32, computed in float64 by blocks (Aligner.standardise)."""
    out = np.empty(emb.shape, dtype=np.float32)
    for start in range(0, emb.shape[0], block_rows):
        block = np.asarray(emb[start : start + block_rows], dtype=np.float64)
        out[start : start + block_rows] = ((block - centre) / scale).astype(np.float32)
    return out


def _near_split_rows(
    a: torch.Tensor, b_std: torch.Tensor, train_rows: np.ndarray, val_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The train and the validation rows near the rest in both A and B. Rows far from the rest
    of A or of B are mapped, and measured by the engine, but not trained on (A's cosine rows
    are each scaled to at most 1: none is far). Refuses a split left with too few."""
    fit_rows, val_loss_rows = (
        np.intersect1d(_near_rows(b_std, rows), _near_rows(a, rows))
        for rows in (train_rows, val_rows)
    )
    for split, near, rows in (("train", fit_rows, train_rows), ("val", val_loss_rows, val_rows)):
        if len(near) < MIN_SPLIT_ROWS:
            raise ValueError(
                f"only {len(near)} of the {len(rows)} {split} rows are within {FAR_SPREADS:g} "
                "spreads of the rest in both A and B; use another seed or val_fraction"
            )
    return fit_rows, val_loss_rows


def _near_rows(standardised: torch.Tensor, rows: np.ndarray) -> np.ndarray:
    """The `rows` of a standardised embedding within FAR_SPREADS spreads of its centre
    (root-mean-square deviation per coordinate)."""
    import torch

    near = []
    for start in range(0, len(rows), 65536):  # in blocks: no float64 copy of every row
        block = torch.from_numpy(rows[start : start + 65536]).to(standardised.device)
        deviation = standardised.index_select(0, block).double().square().mean(dim=1).sqrt()
        near.append((deviation <= FAR_SPREADS).cpu().numpy())
    return rows[np.concatenate(near)]


def _gaussian_sigma_a(a_fit: np.ndarray, sigma_scale: float, seed: int) -> float:
    """A's Gaussian bandwidth, fixed for the whole training: the engine's median rule on the
    rows trained on (sigma_scale x it), refused when float32 cannot resolve it."""
    from spec_core.engine.kernels import bandwidth, check_bandwidth, sample_distances

    distances, scale = sample_distances(a_fit, seed=seed)
    sigma_a = sigma_scale * bandwidth(a_fit, "median", seed=seed)
    check_bandwidth("sigma_a", sigma_a, distances, scale, "float32")
    return sigma_a
