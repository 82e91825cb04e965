"""The two routes to the ends of Lambda = (K_A - eta K_B) / n's spectrum, and their memory.

Two routes compute the same eigenpairs:

- kernel route (method "exact"): the n x n matrix itself, built block by block on the device,
  and its extreme eigenpairs (spec_core.engine.linalg). O(n^2 d) time, n^2 memory: the ground truth.
- feature route ("rff", "nystrom", and "exact" for the cosine kernel at large n): feature maps
  with K ~ phi phi^T, stacked as Psi = [phi_A, sqrt(eta) phi_B], so Lambda = Psi S Psi^T / n with
  S = diag(I, -I). Its non-zero eigenvalues are those of S C, C = Psi^T Psi / n, a
  (D_A + D_B)-square matrix built with one Gram product per row block (three of its four blocks:
  it is symmetric). S C is self-adjoint in the C-inner product <x, y> = x^T C y, so a block Krylov
  method finds its extreme eigenpairs with products by C alone: no factorisation of C, whose ridge
  would move the eigenvalues by O(sqrt(ridge)) (the dense fallback factors C = F F^T from its
  eigendecomposition with the null space dropped, and takes eigh of the symmetric F^T S F).
  An eigenvector v maps to the samples as u = Psi v = phi_A v_A + sqrt(eta) phi_B v_B. Linear in
  n; memory beyond the inputs is one row block of features, C, and one score vector per mode.
  With fewer rows than features (n <= D_A + D_B) the n x n matrix Psi S Psi^T / n is the smaller
  problem and is used instead.

Centring compares H K H (H = I - 1 1^T / n): on the kernel route H Lambda H, on the feature route
Psi minus its column means (C - mu mu^T, u = Psi v - mu^T v).

Rows reach the device through spec_core.engine.rows, which copies them; every in-place operation
here is on memory the engine allocated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spec_core.config import APPROXIMATIONS
from spec_core.engine.backends import FeatureJob, add_gram
from spec_core.engine.evidence import STABILITY_POOL_ROWS, DenseOperator, FeatureOperator
from spec_core.engine.features import NystroemFeatures, RandomFourierFeatures
from spec_core.engine.kernels import get_kernel, sample_rows
from spec_core.engine.linalg import (
    ExtremeEigs,
    extreme_eigh,
    gram_signed_eigh,
    signed_gram,
    symmetric_eigh,
)
from spec_core.engine.rows import KernelRows

if TYPE_CHECKING:
    import torch

#: Feature blocks are kept between the two passes of the feature route up to this many bytes.
KEEP_FEATURES_BYTES = 512 * 2**20
#: Lambda from the kept features (fewer rows than features) is built in about this many row
#: blocks of its upper triangle: the products cost (1 + 1 / LAMBDA_BLOCKS) / 2 of the square's.
LAMBDA_BLOCKS = 8
#: Rows used to measure the approximation's noise floor.
NOISE_FLOOR_ROWS = 1000
#: The second, independent draw of a feature map for the noise floor uses seed + this.
NOISE_SEED_OFFSET = 1_000_003
#: Solver tolerances (residual / spec-diff) for approximate methods: the eigenvalue errors they
#: allow (<= 1e-3 and 3e-3 x spec-diff) sit well under the approximation's own noise floor.
APPROX_TOL, APPROX_VALUE_TOL = 1e-3, 3e-3
#: ... and never tighter than these shares of that noise floor (mode vectors / other values):
#: an error of a twentieth of the floor is invisible next to the floor itself.
FLOOR_VECTOR_SHARE, FLOOR_VALUE_SHARE = 0.05, 0.2


@dataclass(frozen=True)
class Spectrum:
    """What a route returns: the computed eigenvalues (descending), unit score vectors for the
    ones that can become modes (other columns zero), the feature maps (None on the kernel
    route), the operator that resamples rows for the stability evidence, and the noise floor
    (eigenvalues this small say nothing: the approximation's own, or round-off when exact)."""

    values: torch.Tensor
    vectors: torch.Tensor
    solver: str
    maps: tuple
    operator: object
    noise_floor: float


def solve_kernel(
    rows_a: KernelRows,
    rows_b: KernelRows,
    *,
    runner=None,  # the kernel route runs here
    eta,
    centre,
    n_eigenvalues,
    n_modes,
    seed,
    block_rows,
    report,
    timings,
    **_unused,
) -> Spectrum:
    """Exact route: the dense n x n Lambda, then its extreme eigenpairs."""
    import torch

    clock = time.perf_counter()
    n, device, dtype = rows_a.n_rows, rows_a.device, rows_a.dtype
    a, b = rows_a.all(), rows_b.all()
    lam = torch.empty(n, n, device=device, dtype=dtype)
    step = block_rows or _default_block_rows(n)
    done = 0
    for start in range(0, n, step):  # the upper triangle by row blocks, mirrored: half the work
        stop = min(start + step, n)
        report("kernel matrix", done, n * (n + 1) // 2)
        here_a, here_b, cols_a, cols_b = a[start:stop], b[start:stop], a[start:], b[start:]
        block_a = rows_a.matrix(here_a, cols_a)  # rows in the kernel's units (sigma = 1)
        block_b = rows_b.matrix(here_b, cols_b)
        block = block_a.sub_(block_b, alpha=eta).div_(n)  # both are this loop's own tensors
        lam[start:stop, start:] = block
        lam[start:, start:stop] = block.T
        square = lam[start:stop, start:stop]  # exactly symmetric, whatever the round-off
        lam[start:stop, start:stop] = (square + square.T) / 2
        done += (stop - start) * (n - start)
    del a, b
    if centre:
        _centre_dense(lam)
    report("kernel matrix", n * (n + 1) // 2, n * (n + 1) // 2)
    timings["kernel"] = time.perf_counter() - clock

    clock = time.perf_counter()
    eigs = _dense_extremes(lam, n_eigenvalues, n_modes, dtype, device, seed, report)
    timings["eigen"] = time.perf_counter() - clock
    operator = DenseOperator(lam, centre, seed=seed)
    floor = _numeric_floor(dtype, eta)
    return Spectrum(eigs.values, eigs.vectors, eigs.solver, (None, None), operator, floor)


def _centre_dense(lam: torch.Tensor) -> None:
    """lam <- H lam H in place (lam is the engine's own), H = I - 1 1^T / n."""
    means = lam.mean(dim=1, dtype=lam.dtype)
    total = means.mean()
    lam.sub_(means[:, None]).sub_(means[None, :]).add_(total)


def _dense_extremes(
    lam, n_eigenvalues, n_modes, dtype, device, seed, report, approx=False, **floors
):
    """Extreme eigenpairs of a dense symmetric n x n Lambda (unit eigenvectors); `floors`:
    extreme_eigh's absolute tolerances (from the approximation's noise floor)."""
    report("eigendecomposition", 0, 1)
    eigs = extreme_eigh(
        lambda x, _: lam @ x,
        lam.shape[0],
        k_top=n_eigenvalues,
        k_bottom=n_eigenvalues,
        k_vectors=n_modes,
        dense=lambda: symmetric_eigh(lam),
        dtype=dtype,
        device=device,
        seed=seed,
        **({"tol": APPROX_TOL, "value_tol": APPROX_VALUE_TOL} if approx else {}),
        **floors,
    )
    report("eigendecomposition", 1, 1)
    return eigs


def solve_features(
    rows_a: KernelRows,
    rows_b: KernelRows,
    *,
    method,
    eta,
    centre,
    n_features,
    n_eigenvalues,
    n_modes,
    seed,
    block_rows,
    report,
    timings,
    runner=None,
) -> Spectrum:
    """Feature route: C = Psi^T Psi / n by row blocks (here, or by `runner`'s tasks), then the
    extreme eigenpairs of S C, then the scores u = Psi v."""
    import torch

    n, device, dtype = rows_a.n_rows, rows_a.device, rows_a.dtype
    approx = method in APPROXIMATIONS
    maps, floor = _fit_maps(
        rows_a,
        rows_b,
        method=method,
        n_features=n_features,
        eta=eta,
        centre=centre,
        seed=seed,
        report=report,
        timings=timings,
    )
    solver_floor = {}  # the solver need not resolve eigenvalues far below the noise floor
    if approx:
        solver_floor = {
            "abs_tol": FLOOR_VECTOR_SHARE * floor,
            "abs_value_tol": FLOOR_VALUE_SHARE * floor,
        }

    clock = time.perf_counter()
    job = FeatureJob(rows_a, rows_b, maps, eta**0.5, approx)
    step = block_rows or _default_block_rows(job.width + rows_a.dim + rows_b.dim)
    keep = runner is None and n * job.width * torch.finfo(dtype).bits // 8 <= KEEP_FEATURES_BYTES
    small_n = keep and n <= job.width  # fewer rows than features: n x n is the smaller problem
    gram, mean, kept = _gram_pass(job, step, runner, report, keep=keep, with_gram=not small_n)
    timings["features"] += time.perf_counter() - clock

    if small_n:
        clock = time.perf_counter()
        lam = _lambda_from_rows(kept, mean, job.dim_a, centre=centre)
        eigs = _dense_extremes(
            lam, n_eigenvalues, n_modes, dtype, device, seed, report, approx, **solver_floor
        )
        timings["eigen"] = time.perf_counter() - clock
        operator = DenseOperator(lam, centre, seed=seed)
        return Spectrum(eigs.values, eigs.vectors, eigs.solver, maps, operator, floor)

    clock = time.perf_counter()
    eigs = _solve_gram(
        gram,
        mean,
        job.dim_a,
        n,
        centre=centre,
        approx=approx,
        dtype=dtype,
        device=device,
        n_eigenvalues=n_eigenvalues,
        n_modes=n_modes,
        seed=seed,
        report=report,
        **solver_floor,
    )
    timings["eigen"] = time.perf_counter() - clock

    clock = time.perf_counter()
    vectors = _score_pass(
        job, eigs, mean, kept, step, runner, report, n_modes=n_modes, centre=centre
    )
    timings["scores"] = time.perf_counter() - clock
    operator = FeatureOperator.build(
        kept,
        job.features_at,
        n,
        job.dim_a,
        centre=centre,
        seed=seed,
        pool_bytes=KEEP_FEATURES_BYTES,
    )
    kept.clear()
    return Spectrum(eigs.values, vectors, eigs.solver, maps, operator, floor)


def _fit_maps(rows_a, rows_b, *, method, n_features, eta, centre, seed, report, timings):
    """Both embeddings' feature maps, and the noise floor of a comparison through them: measured
    for an approximation (first: the solver is told not to resolve eigenvalues far below it),
    round-off for an exact map."""
    clock = time.perf_counter()
    report("feature maps", 0, 2)
    map_a = _fit_map(rows_a, method, n_features, seed)
    report("feature maps", 1, 2)
    maps = (map_a, _fit_map(rows_b, method, n_features, seed))
    report("feature maps", 2, 2)
    timings["features"] = time.perf_counter() - clock
    if method not in APPROXIMATIONS:
        return maps, _numeric_floor(rows_a.dtype, eta)
    clock = time.perf_counter()
    report("noise floor", 0, 1)
    floor = _approximation_floor(rows_a, rows_b, maps, eta=eta, centre=centre, seed=seed)
    report("noise floor", 1, 1)
    timings["noise_floor"] = time.perf_counter() - clock
    return maps, floor


def _gram_pass(job: FeatureJob, step: int, runner, report, *, keep: bool, with_gram: bool):
    """The first pass over the rows: (Psi^T Psi in float64, or None without `with_gram`; the
    column means mu = Psi^T 1 / n; the feature blocks themselves when `keep`, else [])."""
    import torch

    n, device = job.rows_a.n_rows, job.rows_a.device
    kept: list[torch.Tensor] = []
    if runner is not None:
        gram, sums = runner.gram(job, step, report)
    else:
        shape = (job.width, job.width)
        gram = torch.zeros(shape, device=device, dtype=torch.float64) if with_gram else None
        sums = torch.zeros(job.width, device=device, dtype=torch.float64)
        for start in range(0, n, step):
            report("features", start, n)
            psi = job.features(start, min(start + step, n))
            sums += psi.sum(dim=0, dtype=torch.float64)
            if gram is not None:  # exact: float64 products (S C is near-defective for similar
                # inputs, so float32 round-off in C would become sqrt(1e-7) ~ 3e-4 in eigenvalues)
                add_gram(gram, psi if job.approx else psi.double(), job.dim_a)
            if keep:
                kept.append(psi)
    report("features", n, n)
    return gram, sums / n, kept


def _lambda_from_rows(kept, mean, dim_a, *, centre) -> torch.Tensor:
    """Fewer rows than features: the n x n Lambda = Psi S Psi^T / n from the kept feature
    blocks (consumed: the list is emptied), centred with the column means `mean`. Built by
    row blocks of its upper triangle (linalg.signed_gram: Lambda is symmetric, about half the
    products of the whole square)."""
    import torch

    psi = torch.cat(kept)
    kept.clear()
    if centre:
        psi -= mean.to(psi.dtype)  # the engine's own concatenation
    lam = signed_gram(psi[:, :dim_a], psi[:, dim_a:], blocks=LAMBDA_BLOCKS)
    return lam.div_(psi.shape[0])


def _solve_gram(
    gram,
    mean,
    dim_a,
    n,
    *,
    centre,
    approx,
    dtype,
    device,
    n_eigenvalues,
    n_modes,
    seed,
    report,
    **floors,
) -> ExtremeEigs:
    """Extreme eigenpairs of S C, C = gram / n (centred: C - mu mu^T; `gram` is scaled in
    place), by block Krylov in the C-inner product: no factorisation of C."""
    import torch

    gram /= n
    if centre:  # Psi_c^T Psi_c / n = C - mu mu^T
        gram -= torch.outer(mean, mean)
    report("eigendecomposition", 0, 1)
    width = gram.shape[0]
    signs = torch.ones(width, device=device, dtype=torch.float64)
    signs[dim_a:] = -1.0
    # float64 throughout: C-normalised vectors can be long where C is nearly singular (Nystroem),
    # and float32 round-off there would swamp the residuals
    eigs = extreme_eigh(
        lambda x, cx: signs[:, None] * cx,
        width,
        k_top=n_eigenvalues,
        k_bottom=n_eigenvalues,
        k_vectors=n_modes,
        dense=lambda: gram_signed_eigh(gram, signs),
        inner=lambda x: gram @ x,
        dtype=torch.float64,
        tol=APPROX_TOL if approx else (1e-5 if dtype == torch.float32 else 1e-9),
        value_tol=APPROX_VALUE_TOL if approx else 1e-3,
        device=device,
        seed=seed,
        **floors,
    )
    report("eigendecomposition", 1, 1)
    return eigs


def _score_pass(job: FeatureJob, eigs, mean, kept, step, runner, report, *, n_modes, centre):
    """The second pass over the rows: the unit score vectors u = Psi v (centred: minus mu^T v)
    of the eigenpairs that can become modes, n x len(values) with the other columns zero."""
    import torch

    n, device, dtype = job.rows_a.n_rows, job.rows_a.device, job.rows_a.dtype
    wanted, coeffs, offset = score_coeffs(eigs, mean, n_modes=n_modes, centre=centre, dtype=dtype)
    if runner is not None:
        scores = runner.scores(job, coeffs, step, report)
    else:
        scores = torch.empty(n, coeffs.shape[1], device=device, dtype=dtype)
        for i, start in enumerate(range(0, n, step)):
            report("scores", start, n)
            psi = kept[i] if kept else job.features(start, min(start + step, n))
            scores[start : start + psi.shape[0]] = psi @ coeffs
    report("scores", n, n)
    return finish_scores(scores, offset, wanted)


def score_coeffs(eigs: ExtremeEigs, mean, *, n_modes: int, centre: bool, dtype):
    """What the score pass multiplies the features by: (the eigenpairs that can become modes, as
    a mask over eigs.values; their vectors scaled to a largest entry of 1, in `dtype`; the
    centring offset mu^T v, or None). u = Psi v: Psi already holds the sqrt(eta)."""
    import torch

    values = eigs.values
    wanted = torch.zeros(len(values), dtype=torch.bool, device=values.device)
    wanted[:n_modes] = True
    wanted[-n_modes:] = True
    coeffs = eigs.vectors[:, wanted]
    # scores are normalised below: scale each column first, so that a near-null direction's
    # long C-normalised vector cannot overflow the compute dtype
    coeffs = coeffs / coeffs.abs().amax(dim=0).clamp_min(1e-300)
    offset = (mean @ coeffs).to(dtype) if centre else None  # u = (Psi - 1 mu^T) v
    return wanted, coeffs.to(dtype), offset


def finish_scores(scores, offset, wanted) -> torch.Tensor:
    """The score pass's Psi v (n x wanted columns, the engine's own tensor: changed in place)
    centred and normalised, placed among zero columns for the other eigenvalues."""
    import torch

    if offset is not None:
        scores -= offset
    scores /= scores.norm(dim=0).clamp_min(torch.finfo(scores.dtype).tiny)
    vectors = torch.zeros(scores.shape[0], len(wanted), device=scores.device, dtype=scores.dtype)
    vectors[:, wanted] = scores
    return vectors


def _fit_map(rows: KernelRows, method: str, n_features: int, seed: int):
    """The feature map of one embedding's kernel, on rows already in the kernel's units (the
    Gaussian bandwidth is 1 there). Both embeddings use the same seed: with equal dimensions
    the two maps coincide (common random numbers), so identical inputs give zero."""
    exact = get_kernel(rows.kernel).exact_map(rows.take([0]), rows.dtype)
    if exact is not None:
        return exact
    if method == "rff":
        fmap = RandomFourierFeatures(n_features=n_features, sigma=1.0, seed=seed)
        return fmap.fit_dim(rows.dim, device=rows.device, dtype=rows.dtype)
    fmap = NystroemFeatures(n_features=n_features, sigma=1.0, seed=seed)
    landmarks = fmap.landmark_rows(rows.n_rows)
    return fmap.fit_landmarks(
        rows.take(landmarks), rows=landmarks, device=rows.device, dtype=rows.dtype
    )


def _numeric_floor(dtype: torch.dtype, eta: float) -> float:
    """Exact route: eigenvalues this small are round-off (float32 ~1e-6, float64 ~1e-12)."""
    import torch

    return (1e-6 if dtype == torch.float32 else 1e-12) * (1.0 + eta)


def _approximation_floor(rows_a, rows_b, maps, *, eta, centre, seed) -> float:
    """The size of spurious eigenvalues the approximation alone produces: the larger of A's
    and eta x B's own floor (map_floor)."""
    floor_a = map_floor(rows_a, maps[0], centre=centre, seed=seed)
    floor_b = map_floor(rows_b, maps[1], centre=centre, seed=seed)
    return max(floor_a, eta * floor_b)


def map_floor(kernel_rows: KernelRows, fmap, *, centre: bool, seed: int) -> float:
    """One embedding's approximation floor: two independent draws of its feature map on a
    seeded sample of rows; the operator norm of (Phi_1 Phi_1^T - Phi_2 Phi_2^T) / m (both
    centred when the comparison is) is what comparing the embedding with itself would report.
    It depends on the embedding alone, not on the one it is compared with."""
    import torch

    rows = sample_rows(kernel_rows.n_rows, NOISE_FLOOR_ROWS, seed)
    sample = kernel_rows.take(rows)
    other_seed = fmap.seed + NOISE_SEED_OFFSET
    other = _fit_map(kernel_rows, _method_of(fmap), fmap.n_features, other_seed)
    phis = [fmap.transform(sample).float(), other.transform(sample).float()]
    if centre:
        phis = [phi - phi.mean(dim=0) for phi in phis]
    diff = signed_gram(*phis).div_(len(rows))
    eigs = extreme_eigh(
        lambda x, _: diff @ x,
        len(rows),
        k_top=1,
        k_bottom=1,
        dense=lambda: symmetric_eigh(diff),
        dtype=torch.float32,
        device=kernel_rows.device,
        tol=1e-2,  # a floor needs two digits, not ten
    )
    return float(eigs.values.abs().max())


def _method_of(fmap) -> str:
    return "rff" if isinstance(fmap, RandomFourierFeatures) else "nystrom"


def _default_block_rows(width: int) -> int:
    """Rows per block so that one block of `width` float32 columns is about 64 MB."""
    return int(np.clip(2**24 // max(width, 1), 256, 65536))


def route_bytes(n, dim_a, dim_b, route, method, kernel, n_features, dtype) -> tuple[float, str]:
    """About how many bytes a route needs for n rows (its matrices, feature blocks, eigensolver
    and stability resamples), and the advice when that is too much (spec_core.limits)."""
    item = 8 if dtype == "float64" else 4
    dims = dim_a + dim_b
    pool = min(n, STABILITY_POOL_ROWS)
    if route == "kernel":
        krylov = 3 * n * min(1250, n) * item
        resample = (0.8 * pool) ** 2 * item  # one principal submatrix at a time
        need = 4 * n * n * item + 3 * n * dims * 8 + krylov + 3 * 2**24 * item + resample
        return need, "use method='nystrom' (linear in n) or fewer rows"
    if not get_kernel(kernel).approximations:  # the exact map: the rows themselves
        width, maps = dims, 0
    elif method == "rff":
        width = 2 * (n_features // 2)
        maps = (n_features // 2) * dims * (8 + item)
        width *= 2
    else:
        m = min(n_features, n)
        width = 2 * m
        maps = m * dims * (8 + item) + 2 * 3 * m * m * 8
    keep = n * width * item if n * width * item <= KEEP_FEATURES_BYTES else 0
    small_n = keep and n <= width  # the n x n route: no Gram matrix
    gram = 0 if small_n else 4 * width * width * 8  # C, and the dense fallback's copies
    rows = min(n, _default_block_rows(width + dims))
    block = rows * (width + dims) * (3 * item + 8)
    small = 3 * n * n * item if small_n else 0
    resample = min(pool * width * item, KEEP_FEATURES_BYTES) * 2  # the pool and a resample
    need = maps + 2 * keep + gram + block + small + n * 64 * item + resample
    return need, "lower n_features or reduce the embeddings' dimension (e.g. with PCA)"
