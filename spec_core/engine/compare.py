"""The SPEC comparison: Lambda = (K_A - eta K_B) / n and the ends of its spectrum.

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

Centring (`centre=True`) compares the centred kernels H K H (H = I - 1 1^T / n): on the feature
route, Psi minus its column means (C - mu mu^T, u = Psi v - mu^T v). It removes the "global"
direction that a kernel with a large common component puts first (near-uniform scores that say
nothing about any group); `centre=False` is the paper's definition.

The engine never writes to its inputs: rows reach the device through spec_core.engine.rows, which
copies them; every in-place operation here is on memory the engine allocated.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spec_core import checks as v
from spec_core.config import DEFAULTS, check_parameters
from spec_core.data import arrays
from spec_core.engine.backends import FeatureJob, add_gram, check_backend
from spec_core.engine.evidence import STABILITY_POOL_ROWS, ModeEvidence, evidence_for_modes
from spec_core.engine.features import NystroemFeatures, RandomFourierFeatures
from spec_core.engine.kernels import (
    SIGMA_SAMPLE_ROWS,
    bandwidth,
    check_bandwidth,
    get_kernel,
    sample_distances,
    sample_rows,
)
from spec_core.engine.linalg import extreme_eigh, gram_signed_eigh, symmetric_eigh
from spec_core.engine.metrics import knn_overlap_t, linear_cka_t
from spec_core.engine.result import ContextMetrics, Mode, SpecParams, SpecResult
from spec_core.engine.rows import KernelRows
from spec_core.limits import CAPS, check_budget

if TYPE_CHECKING:
    import torch

#: Callback for long work: progress(stage, done, total).
Progress = Callable[[str, int, int], None]

#: method="auto" uses the exact route for the Gaussian kernel up to this many rows (n^2 memory):
#: on the CPU, and on a CUDA device (where the n x n products are cheap; kept below the size at
#: which cuSOLVER's dense eigh, the solver's fallback, fails: ~25k rows).
AUTO_EXACT_MAX_ROWS = 6000
AUTO_EXACT_MAX_ROWS_CUDA = 20000
#: Feature blocks are kept between the two passes of the feature route up to this many bytes.
KEEP_FEATURES_BYTES = 512 * 2**20
#: Rows used to measure the approximation's noise floor and the context metrics.
NOISE_FLOOR_ROWS = 1000
CONTEXT_ROWS = 5000
#: The second, independent draw of a feature map for the noise floor uses seed + this.
NOISE_SEED_OFFSET = 1_000_003
#: Defaults of the choices that bench_legibility.py measured (see the README's table); every
#: default lives in spec_core.config.DEFAULTS.
DEFAULT_CENTRE = DEFAULTS.centre
DEFAULT_SIGMA_RULE = DEFAULTS.sigma_rule
DEFAULT_MEMBERS = DEFAULTS.members


def resolve_device(device: str) -> torch.device:
    import torch

    v.check_choice("device", device, v.DEVICES)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA device is available; use 'cpu'")
    return torch.device(device)


def compare(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    *,
    kernel: str = DEFAULTS.kernel,
    sigma_a: float | None = DEFAULTS.sigma_a,
    sigma_b: float | None = DEFAULTS.sigma_b,
    sigma_rule: str = DEFAULTS.sigma_rule,
    sigma_scale: float = DEFAULTS.sigma_scale,
    centre: bool = DEFAULTS.centre,
    eta: float = DEFAULTS.eta,
    method: str = DEFAULTS.method,
    n_features: int = DEFAULTS.n_features,
    n_modes: int = DEFAULTS.n_modes,
    top_k: int = DEFAULTS.top_k,
    n_eigenvalues: int = DEFAULTS.n_eigenvalues,
    seed: int = DEFAULTS.seed,
    device: str = DEFAULTS.device,
    dtype: str = DEFAULTS.dtype,
    context: bool = DEFAULTS.context,
    stability: bool = DEFAULTS.stability,
    members: str = DEFAULTS.members,
    labels: Sequence[str] | None = None,
    knn_k: int = DEFAULTS.knn_k,
    block_rows: int | None = None,
    progress: Progress | None = None,
    backend: str = "local",
    ray_address: str | None = None,
) -> SpecResult:
    """Compare two embeddings of the same n samples (row i of A and of B is the same sample).

    The inputs are only read, never written (read-only memory maps are fine), in any float,
    integer or bool dtype and any memory layout. Every number in the result is finite; an input
    or a parameter that would make one NaN or infinite is refused with a ValueError naming it.

    kernel: "gaussian" (a bandwidth per embedding, in that embedding's units; when not given,
        `sigma_scale` x the data-driven value of `sigma_rule`, see kernels.bandwidth) or
        "cosine".
    centre: compare the centred kernels H K H (default; see the module docstring) or, False,
        the kernels themselves (the paper's definition).
    method: "exact", "rff", "nystrom", or "auto" (exact for the cosine kernel and for the
        Gaussian kernel up to AUTO_EXACT_MAX_ROWS rows, AUTO_EXACT_MAX_ROWS_CUDA on a CUDA
        device, Nystroem beyond).
    n_features: the dimension of each embedding's feature map for rff / nystrom.
    n_modes: modes returned per direction; n_eigenvalues: eigenvalues computed per end.
    top_k: the most member rows listed per mode; members "cut" (default) lists a mode's top
        round(size) rows (at least 5, at most top_k), "top_k" always top_k rows.
    seed: every random draw (deterministic per seed).
    stability: rerun the eigenproblem on resamples of the rows to measure each mode's
        stability (spec_core.engine.evidence). labels: one per row, for each mode's purity.
    backend: "local", or "ray": the feature route's two passes over the rows (the Gram reduce
        and the score projection) run as Ray tasks, one per shard or share of the rows, on the
        cluster at `ray_address` or a local Ray (engine.backends). The kernel route (exact,
        Gaussian) runs here either way; `params.backend` says where the passes ran.
    """
    import torch

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    report = progress or (lambda stage, done, total: None)

    check_parameters(
        kernel=kernel,
        method=method,
        dtype=dtype,
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        sigma_rule=sigma_rule,
        sigma_scale=sigma_scale,
        members=members,
        eta=eta,
        n_features=n_features,
        n_modes=n_modes,
        top_k=top_k,
        n_eigenvalues=n_eigenvalues,
        knn_k=knn_k,
        seed=seed,
        block_rows=block_rows,
    )
    check_backend(backend, ray_address)
    emb_a = arrays.check_embedding(emb_a, "A", max_dim=CAPS.max_dim, max_rows=CAPS.max_rows)
    emb_b = arrays.check_embedding(emb_b, "B", max_dim=CAPS.max_dim, max_rows=CAPS.max_rows)
    arrays.check_pair(emb_a, emb_b)
    n = emb_a.shape[0]
    if 2 * n_modes > n:
        raise ValueError(
            f"n_modes={n_modes} is larger than possible: {n} rows allow at most {n // 2} "
            "modes per direction"
        )
    if top_k > n:
        raise ValueError(f"top_k={top_k} is larger than the number of rows ({n})")
    if labels is not None:
        labels = [str(label) for label in labels]  # any iterable, generators included
        if len(labels) != n:
            raise ValueError(f"labels: {len(labels)} labels for {n} rows")
    kernel_obj = get_kernel(kernel)
    kernel_obj.check_rows(emb_a, "A")
    kernel_obj.check_rows(emb_b, "B")
    arrays.check_not_constant(emb_a, "A")
    arrays.check_not_constant(emb_b, "B")
    n_features, n_modes, top_k, knn_k = int(n_features), int(n_modes), int(top_k), int(knn_k)
    n_eigenvalues, seed, eta = max(int(n_eigenvalues), n_modes), int(seed), float(eta)
    torch_device = resolve_device(device)
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32

    if method == "auto":
        limit = AUTO_EXACT_MAX_ROWS_CUDA if torch_device.type == "cuda" else AUTO_EXACT_MAX_ROWS
        exact_map = not kernel_obj.approximations  # an exact finite map: exact at any n
        method = "exact" if (exact_map or n <= limit) else "nystrom"
    route = "kernel"
    wide = n > emb_a.shape[1] + emb_b.shape[1]  # more rows than the exact map's features
    if method != "exact" or (not kernel_obj.approximations and wide):
        route = "features"
    _check_memory(n, emb_a.shape[1], emb_b.shape[1], route, method, kernel, n_features, dtype)

    used_rule = None
    if kernel_obj.bandwidth:
        sigmas = []
        for name, emb, given in (("sigma_a", emb_a, sigma_a), ("sigma_b", emb_b, sigma_b)):
            distances, scale = sample_distances(emb, max_rows=SIGMA_SAMPLE_ROWS, seed=seed)
            if given is None:
                given = sigma_scale * bandwidth(
                    emb, sigma_rule, distances=distances, scale=scale, seed=seed
                )
                used_rule = sigma_rule
            check_bandwidth(name, float(given), distances, scale, dtype)
            sigmas.append(float(given))
        sigma_a, sigma_b = sigmas
    else:
        sigma_a = sigma_b = None
    rows_a = KernelRows.prepare(emb_a, kernel, sigma_a, torch_device, torch_dtype)
    rows_b = KernelRows.prepare(emb_b, kernel, sigma_b, torch_device, torch_dtype)
    timings["prepare"] = time.perf_counter() - clock

    solve = _solve_kernel if route == "kernel" else _solve_features
    runner = None
    if backend == "ray" and route == "features":
        from spec_core.engine.backends import RayRunner

        runner = RayRunner(ray_address)
    try:
        with _solver_errors():
            spectrum = solve(
                rows_a,
                rows_b,
                method=method,
                eta=float(eta),
                centre=centre,
                n_features=n_features,
                n_eigenvalues=n_eigenvalues,
                n_modes=n_modes,
                seed=seed,
                block_rows=block_rows,
                report=report,
                timings=timings,
                runner=runner,
            )
    finally:
        if runner is not None:
            runner.close()

    noise_floor = spectrum.noise_floor
    if noise_floor is None:
        noise_floor = _numeric_floor(torch_dtype, eta)

    values_np = spectrum.values.double().cpu().numpy()
    vectors_np = spectrum.vectors.double().cpu().numpy()
    clock = time.perf_counter()
    evidence = evidence_for_modes(
        values_np,
        vectors_np,
        spectrum.operator,
        rows_a=rows_a,
        rows_b=rows_b,
        n_modes=n_modes,
        top_k=top_k,
        labels=labels,
        stability=stability,
        seed=seed,
        report=report,
        members=members,
    )
    timings["evidence"] = time.perf_counter() - clock
    modes = _modes(values_np, evidence, noise_floor, n)
    spec_diff = float(np.abs(values_np).max()) if values_np.size else 0.0

    ctx = None
    if context:
        clock = time.perf_counter()
        report("context metrics", 0, 1)
        ctx = _context(emb_a, emb_b, kernel=kernel, k=knn_k, seed=seed, device=torch_device)
        report("context metrics", 1, 1)
        timings["context"] = time.perf_counter() - clock

    maps = spectrum.maps
    params = SpecParams(
        kernel=kernel,
        method=method,
        route=route,
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        sigma_rule=None if used_rule is None else _rule_text(used_rule, sigma_scale),
        centre=bool(centre),
        eta=float(eta),
        n_features_a=getattr(maps[0], "n_features_", None),
        n_features_b=getattr(maps[1], "n_features_", None),
        n_modes=n_modes,
        top_k=top_k,
        members=members,
        n_eigenvalues=n_eigenvalues,
        seed=seed,
        device=str(torch_device),
        dtype=dtype,
        n_rows=n,
        dim_a=emb_a.shape[1],
        dim_b=emb_b.shape[1],
        eigen_solver=spectrum.solver,
        n_resamples=evidence.n_resamples,
        stability_rows=evidence.pool_rows,
        backend="ray" if runner is not None else "local",
    )
    result = SpecResult(
        eigenvalues=values_np,
        spec_diff=spec_diff,
        modes=modes,
        params=params,
        noise_floor=noise_floor,
        timings=timings,
        context=ctx,
    )
    _check_finite(result)
    return result


def _rule_text(rule: str, scale: float) -> str:
    """What params.sigma_rule says: the rule, its factor and its sample."""
    from spec_core.engine.kernels import RULE_FACTORS

    factor = RULE_FACTORS[rule] * scale
    what = {
        "median": "the median distance between rows",
        "knn": "the median distance to the k-th nearest neighbour (k = 5% of the rows)",
    }[rule]
    return f"{rule}: {factor:.3g} x {what} (seeded sample of <= 1000 rows)"


@contextlib.contextmanager
def _solver_errors():
    """A linear-algebra failure (LAPACK not converging on a degenerate input) is a message."""
    try:
        yield
    except RuntimeError as err:
        if "linalg" not in type(err).__name__.lower() and "linalg" not in str(err):
            raise
        raise ValueError(
            "the eigensolver did not converge on these inputs (they may be degenerate: nearly "
            f"all rows alike, or values near the limits of the number format): {err}"
        ) from None


def _check_memory(n, dim_a, dim_b, route, method, kernel, n_features, dtype) -> None:
    """Refuse up front a comparison this machine cannot hold (see spec_core.limits)."""
    item = 8 if dtype == "float64" else 4
    dims = dim_a + dim_b
    sample = SIGMA_SAMPLE_ROWS * max(dim_a, dim_b) * 8 * 2 + 3 * SIGMA_SAMPLE_ROWS**2 * 8
    ctx_rows = min(n, CONTEXT_ROWS)
    context = ctx_rows * dims * 4 + 3 * min(max(dim_a, dim_b), ctx_rows) ** 2 * 8
    pool = min(n, STABILITY_POOL_ROWS)
    if route == "kernel":
        krylov = 3 * n * min(1250, n) * item
        resample = (0.8 * pool) ** 2 * item  # one principal submatrix at a time
        need = 4 * n * n * item + 3 * n * dims * 8 + krylov + 3 * 2**24 * item + resample
        advice = "use method='nystrom' (linear in n) or fewer rows"
    else:
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
        advice = "lower n_features or reduce the embeddings' dimension (e.g. with PCA)"
    need += sample + context
    check_budget(
        int(need),
        f"This comparison ({n:,} rows, {dim_a:,} + {dim_b:,} columns, {method} on the "
        f"{route} route)",
        advice,
    )


def _default_block_rows(width: int) -> int:
    """Rows per block so that one block of `width` float32 columns is about 64 MB."""
    return int(np.clip(2**24 // max(width, 1), 256, 65536))


@dataclass
class Spectrum:
    """What a route returns: the computed eigenvalues (descending), unit score vectors for the
    ones that can become modes (other columns zero), the feature maps (None on the kernel
    route) and the operator that resamples rows for the stability evidence."""

    values: torch.Tensor
    vectors: torch.Tensor
    solver: str
    maps: tuple
    operator: object
    noise_floor: float | None = None  # the approximation's (None: exact, round-off only)


def _solve_kernel(
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

    from spec_core.engine.evidence import DenseOperator

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
    return Spectrum(
        eigs.values, eigs.vectors, eigs.solver, (None, None), DenseOperator(lam, centre, seed=seed)
    )


def _centre_dense(lam: torch.Tensor) -> None:
    """lam <- H lam H in place (lam is the engine's own), H = I - 1 1^T / n."""
    means = lam.mean(dim=1, dtype=lam.dtype)
    total = means.mean()
    lam.sub_(means[:, None]).sub_(means[None, :]).add_(total)


#: Solver tolerances (residual / spec-diff) for approximate methods: the eigenvalue errors they
#: allow (<= 1e-3 and 3e-3 x spec-diff) sit well under the approximation's own noise floor.
APPROX_TOL, APPROX_VALUE_TOL = 1e-3, 3e-3
#: ... and never tighter than these shares of that noise floor (mode vectors / other values):
#: an error of a twentieth of the floor is invisible next to the floor itself.
FLOOR_VECTOR_SHARE, FLOOR_VALUE_SHARE = 0.05, 0.2


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


def _solve_features(
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

    from spec_core.engine.evidence import DenseOperator, FeatureOperator

    clock = time.perf_counter()
    n, device, dtype = rows_a.n_rows, rows_a.device, rows_a.dtype
    maps = (_fit_map(rows_a, method, n_features, seed), _fit_map(rows_b, method, n_features, seed))
    timings["features"] = time.perf_counter() - clock
    approx = method in ("rff", "nystrom")
    floor, solver_floor = None, {}
    if approx:  # first: the solver need not resolve eigenvalues far below it
        clock = time.perf_counter()
        report("noise floor", 0, 1)
        floor = _approximation_floor(rows_a, rows_b, maps, eta=eta, centre=centre, seed=seed)
        report("noise floor", 1, 1)
        timings["noise_floor"] = time.perf_counter() - clock
        solver_floor = {
            "abs_tol": FLOOR_VECTOR_SHARE * floor,
            "abs_value_tol": FLOOR_VALUE_SHARE * floor,
        }
    clock = time.perf_counter()
    dim_a, dim_b = maps[0].n_features_, maps[1].n_features_
    width = dim_a + dim_b
    root_eta = eta**0.5

    job = FeatureJob(rows_a, rows_b, maps, root_eta, approx)
    features = job.features

    def features_at(rows: np.ndarray) -> torch.Tensor:
        return torch.cat(
            [maps[0].transform(rows_a.take(rows)), maps[1].transform(rows_b.take(rows)) * root_eta],
            1,
        )

    step = block_rows or _default_block_rows(width + rows_a.dim + rows_b.dim)
    keep = runner is None and n * width * torch.finfo(dtype).bits // 8 <= KEEP_FEATURES_BYTES
    small_n = keep and n <= width  # fewer rows than features: n x n is the smaller problem
    kept: list[torch.Tensor] = []
    if runner is not None:
        gram, sums = runner.gram(job, step, report)
    else:
        gram = None if small_n else torch.zeros(width, width, device=device, dtype=torch.float64)
        sums = torch.zeros(width, device=device, dtype=torch.float64)
        for start in range(0, n, step):
            report("features", start, n)
            psi = features(start, min(start + step, n))
            sums += psi.sum(dim=0, dtype=torch.float64)
            if gram is not None:  # exact: float64 products (S C is near-defective for similar
                # inputs, so float32 round-off in C would become sqrt(1e-7) ~ 3e-4 in eigenvalues)
                add_gram(gram, psi if approx else psi.double(), dim_a)
            if keep:
                kept.append(psi)
    report("features", n, n)
    timings["features"] += time.perf_counter() - clock
    mean = sums / n  # mu = Psi^T 1 / n

    if small_n:
        clock = time.perf_counter()
        psi = torch.cat(kept)
        kept.clear()
        if centre:
            psi -= mean.to(dtype)  # the engine's own concatenation
        lam = psi[:, :dim_a] @ psi[:, :dim_a].T - psi[:, dim_a:] @ psi[:, dim_a:].T
        lam /= n
        eigs = _dense_extremes(
            lam, n_eigenvalues, n_modes, dtype, device, seed, report, approx, **solver_floor
        )
        timings["eigen"] = time.perf_counter() - clock
        operator = DenseOperator(lam, centre, seed=seed)
        return Spectrum(eigs.values, eigs.vectors, eigs.solver, maps, operator, floor)

    clock = time.perf_counter()
    gram /= n
    if centre:  # Psi_c^T Psi_c / n = C - mu mu^T
        gram -= torch.outer(mean, mean)
    report("eigendecomposition", 0, 1)
    # S C is self-adjoint in the C-inner product: Krylov on it directly, no factorisation of C
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
        **solver_floor,
    )
    report("eigendecomposition", 1, 1)
    timings["eigen"] = time.perf_counter() - clock

    # Map back to the samples, only for the eigenpairs that can become modes.
    clock = time.perf_counter()
    values = eigs.values
    wanted = torch.zeros(len(values), dtype=torch.bool, device=values.device)
    wanted[:n_modes] = True
    wanted[-n_modes:] = True
    coeffs = eigs.vectors[:, wanted]  # u = Psi v: Psi already holds the sqrt(eta)
    # scores are normalised below: scale each column first, so that a near-null direction's
    # long C-normalised vector cannot overflow the compute dtype
    coeffs = coeffs / coeffs.abs().amax(dim=0).clamp_min(1e-300)
    offset = (mean @ coeffs).to(dtype) if centre else None  # u = (Psi - 1 mu^T) v
    coeffs = coeffs.to(dtype)
    if runner is not None:
        scores = runner.scores(job, coeffs, step, report)
    else:
        scores = torch.empty(n, coeffs.shape[1], device=device, dtype=dtype)
        for i, start in enumerate(range(0, n, step)):
            report("scores", start, n)
            psi = kept[i] if keep else features(start, min(start + step, n))
            scores[start : start + psi.shape[0]] = psi @ coeffs
    report("scores", n, n)
    if offset is not None:
        scores -= offset
    scores /= scores.norm(dim=0).clamp_min(torch.finfo(dtype).tiny)
    vectors = torch.zeros(n, len(values), device=device, dtype=dtype)
    vectors[:, wanted] = scores
    timings["scores"] = time.perf_counter() - clock
    operator = FeatureOperator.build(
        kept, features_at, n, dim_a, centre=centre, seed=seed, pool_bytes=KEEP_FEATURES_BYTES
    )
    kept.clear()
    return Spectrum(values, vectors, eigs.solver, maps, operator, floor)


def _numeric_floor(dtype: torch.dtype, eta: float) -> float:
    """Exact route: eigenvalues this small are round-off (float32 ~1e-6, float64 ~1e-12)."""
    import torch

    return (1e-6 if dtype == torch.float32 else 1e-12) * (1.0 + eta)


def _approximation_floor(rows_a, rows_b, maps, *, eta, centre, seed) -> float:
    """The size of spurious eigenvalues the approximation alone produces.

    For each embedding, two independent draws of its feature map on a seeded sample of rows:
    the operator norm of (Phi_1 Phi_1^T - Phi_2 Phi_2^T) / m (both centred when the comparison
    is) is what comparing the embedding with itself would report. The floor is the larger of
    A's and eta x B's.
    """
    import torch

    rows = sample_rows(rows_a.n_rows, NOISE_FLOOR_ROWS, seed)
    floors = []
    for kernel_rows, fmap, weight in ((rows_a, maps[0], 1.0), (rows_b, maps[1], eta)):
        sample = kernel_rows.take(rows)
        other_seed = fmap.seed + NOISE_SEED_OFFSET
        other = _fit_map(kernel_rows, _method_of(fmap), fmap.n_features, other_seed)
        phis = [fmap.transform(sample).float(), other.transform(sample).float()]
        if centre:
            phis = [phi - phi.mean(dim=0) for phi in phis]
        phi_1, phi_2 = phis
        diff = (phi_1 @ phi_1.T - phi_2 @ phi_2.T) / len(rows)
        eigs = extreme_eigh(
            lambda x, _, d=diff: d @ x,
            len(rows),
            k_top=1,
            k_bottom=1,
            dense=lambda d=diff: symmetric_eigh(d),
            dtype=torch.float32,
            device=kernel_rows.device,
            tol=1e-2,  # a floor needs two digits, not ten
        )
        floors.append(weight * float(eigs.values.abs().max()))
    return max(floors)


def _method_of(fmap) -> str:
    return "rff" if isinstance(fmap, RandomFourierFeatures) else "nystrom"


def _modes(values, evidence: ModeEvidence, noise_floor: float, n: int) -> tuple[Mode, ...]:
    """Both directions' strongest eigenvectors as modes, with their evidence."""
    modes = []
    for item in evidence.modes:
        above = bool(abs(values[item.index]) > noise_floor)
        modes.append(
            Mode(
                direction=item.direction,
                rank=item.rank,
                eigenvalue=float(values[item.index]),
                members=item.members,
                scores=item.scores[item.members].astype(np.float32),
                sample_scores=item.scores.astype(np.float32),
                above_noise_floor=above,
                size=item.size,
                contrast=item.contrast,
                baseline=item.baseline,
                stability=item.stability,
                stability_hits=item.stability_hits,
                purity=item.purity,
                majority_label=item.majority_label,
                weak_reasons=item.weak_reasons(above_noise_floor=above, n_rows=n),
            )
        )
    return tuple(modes)


def _context(emb_a, emb_b, *, kernel: str, k: int, seed: int, device) -> ContextMetrics:
    """Linear CKA and kNN overlap on a seeded sample of rows. Both are invariant to translation
    and to a positive scale, so the rows are centred and scaled first (finite for any units)."""
    rows = sample_rows(emb_a.shape[0], CONTEXT_ROWS, seed)
    a, b = (_unit_rows(emb, rows, device) for emb in (emb_a, emb_b))
    k = min(k, len(rows) - 1)
    overlap = knn_overlap_t(a, b, k, metric=get_kernel(kernel).metric)
    return ContextMetrics(
        linear_cka=linear_cka_t(a, b),
        knn_k=k,
        knn_overlap_mean=float(overlap.mean()),
        knn_overlap=overlap.astype(np.float32),
        rows=rows,
    )


def _unit_rows(emb: np.ndarray, rows: np.ndarray, device) -> torch.Tensor:
    """Rows of `emb`, centred and divided by their largest |value| (float64 first), float32."""
    import torch

    sample = np.array(emb[rows], dtype=np.float64)
    for _ in range(2):  # scaled, centred, scaled again: no overflow near the float64 limit
        peak = float(np.abs(sample).max())
        if peak > 0:
            sample /= peak
        sample -= sample.mean(axis=0)
    return torch.from_numpy(sample).to(device=device, dtype=torch.float32)


def _check_finite(result: SpecResult) -> None:
    """The last line of defence: no NaN or infinity leaves the engine (the checks above should
    have named the cause already)."""
    numbers = [result.spec_diff, result.noise_floor, *result.eigenvalues.tolist()]
    for mode in result.modes:
        numbers += [mode.eigenvalue, mode.size, *mode.contrast.values()]
        if not np.isfinite(mode.sample_scores).all():
            numbers.append(float("nan"))
    if result.context is not None:
        numbers += [result.context.linear_cka, result.context.knn_overlap_mean]
    if not all(math.isfinite(x) for x in numbers):
        raise ValueError(
            "the comparison produced non-finite numbers (NaN or infinity); the inputs' values "
            "or the bandwidths are outside the range this computation can represent: rescale "
            "the embeddings or leave the bandwidths to the data-driven rule"
        )
