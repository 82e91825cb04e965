"""The SPEC comparison: Lambda = (K_A - eta K_B) / n and the ends of its spectrum.

Two routes compute the same eigenpairs:

- kernel route (method "exact"): the n x n matrix itself, built block by block on the device,
  and its extreme eigenpairs (spec_core.linalg). O(n^2 d) time, n^2 memory: the ground truth.
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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from spec_core import _validation as v
from spec_core.features import CosineFeatures, NystroemFeatures, RandomFourierFeatures
from spec_core.kernels import gaussian_kernel_t, median_sigma, normalize_rows_t
from spec_core.linalg import extreme_eigh, gram_signed_eigh, symmetric_eigh
from spec_core.metrics import knn_overlap_t, linear_cka_t
from spec_core.result import ContextMetrics, Mode, SpecParams, SpecResult

if TYPE_CHECKING:
    import torch

#: Callback for long work: progress(stage, done, total).
Progress = Callable[[str, int, int], None]

#: method="auto" uses the exact route for the Gaussian kernel up to this many rows (n^2 memory).
AUTO_EXACT_MAX_ROWS = 6000
#: Feature blocks are kept between the two passes of the feature route up to this many bytes.
KEEP_FEATURES_BYTES = 512 * 2**20
#: Rows used to measure the approximation's noise floor and the context metrics.
NOISE_FLOOR_ROWS = 1000
CONTEXT_ROWS = 5000
#: The second, independent draw of a feature map for the noise floor uses seed + this.
NOISE_SEED_OFFSET = 1_000_003


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
    kernel: str = "gaussian",
    sigma_a: float | None = None,
    sigma_b: float | None = None,
    eta: float = 1.0,
    method: str = "auto",
    n_features: int = 2000,
    n_modes: int = 5,
    top_k: int = 20,
    n_eigenvalues: int = 20,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "float32",
    context: bool = True,
    knn_k: int = 10,
    block_rows: int | None = None,
    progress: Progress | None = None,
) -> SpecResult:
    """Compare two embeddings of the same n samples (row i of A and of B is the same sample).

    kernel: "gaussian" (a bandwidth per embedding, in that embedding's units; when not given,
        `median_sigma`: half the median pairwise distance of a seeded sample) or "cosine".
    method: "exact", "rff", "nystrom", or "auto" (exact for the cosine kernel and for the
        Gaussian kernel up to AUTO_EXACT_MAX_ROWS rows, Nystroem beyond).
    n_features: the dimension of each embedding's feature map for rff / nystrom.
    n_modes: modes returned per direction; n_eigenvalues: eigenvalues computed per end.
    top_k: member rows listed per mode. seed: every random draw (deterministic per seed).
    """
    import torch

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    report = progress or (lambda stage, done, total: None)

    v.check_choice("kernel", kernel, v.KERNELS)
    v.check_choice("method", method, v.METHODS)
    v.check_choice("dtype", dtype, v.DTYPES)
    v.check_positive("sigma_a", sigma_a)
    v.check_positive("sigma_b", sigma_b)
    if not np.isfinite(eta) or eta < 0:
        raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
    for name, value in (
        ("n_features", n_features),
        ("n_modes", n_modes),
        ("top_k", top_k),
        ("n_eigenvalues", n_eigenvalues),
        ("knn_k", knn_k),
    ):
        v.check_positive_int(name, value)
    if kernel == "cosine" and method in ("rff", "nystrom"):
        raise ValueError(
            f"method={method!r} approximates the Gaussian kernel; the cosine kernel has an exact "
            "feature map, so use method='exact' or 'auto'"
        )
    emb_a = v.check_embedding(emb_a, "A")
    emb_b = v.check_embedding(emb_b, "B")
    v.check_pair(emb_a, emb_b)
    n = emb_a.shape[0]
    if 2 * n_modes > n:
        raise ValueError(
            f"n_modes={n_modes} is larger than possible: {n} rows allow at most {n // 2} "
            "modes per direction"
        )
    if top_k > n:
        raise ValueError(f"top_k={top_k} is larger than the number of rows ({n})")
    if kernel == "cosine":
        v.check_no_zero_rows(emb_a, "A")
        v.check_no_zero_rows(emb_b, "B")
    n_eigenvalues = max(n_eigenvalues, n_modes)
    torch_device = resolve_device(device)
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32

    sigma_rule = None
    if kernel == "gaussian" and (sigma_a is None or sigma_b is None):
        sigma_rule = "0.5 x median pairwise distance (seeded sample of <= 1000 rows)"
        sigma_a = sigma_a or median_sigma(emb_a, seed=seed)
        sigma_b = sigma_b or median_sigma(emb_b, seed=seed)
    if kernel == "cosine":
        sigma_a = sigma_b = None

    if method == "auto":
        method = "exact" if (kernel == "cosine" or n <= AUTO_EXACT_MAX_ROWS) else "nystrom"
    route = "kernel"
    if method != "exact" or (kernel == "cosine" and n > emb_a.shape[1] + emb_b.shape[1]):
        route = "features"
    timings["prepare"] = time.perf_counter() - clock

    solve = _solve_kernel if route == "kernel" else _solve_features
    spectrum = solve(
        emb_a,
        emb_b,
        kernel=kernel,
        method=method,
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        eta=float(eta),
        n_features=n_features,
        n_eigenvalues=n_eigenvalues,
        n_modes=n_modes,
        seed=seed,
        device=torch_device,
        dtype=torch_dtype,
        block_rows=block_rows,
        report=report,
        timings=timings,
    )

    clock = time.perf_counter()
    if method == "exact":
        noise_floor = _numeric_floor(torch_dtype, eta)
    else:
        report("noise floor", 0, 1)
        noise_floor = _approximation_floor(
            emb_a, emb_b, spectrum["maps"], eta=float(eta), seed=seed, device=torch_device
        )
        report("noise floor", 1, 1)
    timings["noise_floor"] = time.perf_counter() - clock

    values = spectrum["values"]
    modes = _modes(values, spectrum["vectors"], n_modes, top_k, noise_floor)
    values_np = values.double().cpu().numpy()
    spec_diff = float(np.abs(values_np).max()) if values_np.size else 0.0

    ctx = None
    if context:
        clock = time.perf_counter()
        report("context metrics", 0, 1)
        ctx = _context(emb_a, emb_b, kernel=kernel, k=knn_k, seed=seed, device=torch_device)
        report("context metrics", 1, 1)
        timings["context"] = time.perf_counter() - clock

    maps = spectrum["maps"]
    params = SpecParams(
        kernel=kernel,
        method=method,
        route=route,
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        sigma_rule=sigma_rule,
        eta=float(eta),
        n_features_a=getattr(maps[0], "n_features_", None),
        n_features_b=getattr(maps[1], "n_features_", None),
        n_modes=n_modes,
        top_k=top_k,
        n_eigenvalues=n_eigenvalues,
        seed=seed,
        device=str(torch_device),
        dtype=dtype,
        n_rows=n,
        dim_a=emb_a.shape[1],
        dim_b=emb_b.shape[1],
        eigen_solver=spectrum["solver"],
    )
    return SpecResult(
        eigenvalues=values_np,
        spec_diff=spec_diff,
        modes=modes,
        params=params,
        noise_floor=noise_floor,
        timings=timings,
        context=ctx,
    )


def host_tensor(x: np.ndarray) -> torch.Tensor:
    """A torch view of a NumPy array without a copy (read-only memory maps included: the
    engine never writes to its inputs)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(x))


def _to_device(x: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return host_tensor(x).to(device=device, dtype=dtype)


def _column_mean(x: np.ndarray) -> np.ndarray:
    """Column means in float64, by row blocks. The Gaussian kernel is translation invariant;
    centring first keeps ||x||^2 + ||y||^2 - 2<x, y> accurate in float32 for embeddings that
    sit far from the origin (CLIP's share a large common component)."""
    step = max(1, 2**24 // x.shape[1])
    total = np.zeros(x.shape[1])
    for start in range(0, x.shape[0], step):
        total += x[start : start + step].sum(axis=0, dtype=np.float64)
    return total / x.shape[0]


def _default_block_rows(width: int) -> int:
    """Rows per block so that one block of `width` float32 columns is about 64 MB."""
    return int(np.clip(2**24 // max(width, 1), 256, 65536))


def _solve_kernel(
    emb_a,
    emb_b,
    *,
    kernel,
    sigma_a,
    sigma_b,
    eta,
    n_eigenvalues,
    n_modes,
    seed,
    device,
    dtype,
    block_rows,
    report,
    timings,
    **_,
) -> dict:
    """Exact route: the dense n x n Lambda, then its extreme eigenpairs."""
    import torch

    clock = time.perf_counter()
    n = emb_a.shape[0]
    if kernel == "cosine":
        a = normalize_rows_t(_to_device(emb_a, device, dtype))
        b = normalize_rows_t(_to_device(emb_b, device, dtype))
    else:
        a = _to_device(emb_a - _column_mean(emb_a), device, dtype)
        b = _to_device(emb_b - _column_mean(emb_b), device, dtype)
    lam = torch.empty(n, n, device=device, dtype=dtype)
    step = block_rows or _default_block_rows(n)
    done = 0
    for start in range(0, n, step):  # the upper triangle by row blocks, mirrored: half the work
        stop = min(start + step, n)
        report("kernel matrix", done, n * (n + 1) // 2)
        rows_a, rows_b, cols_a, cols_b = a[start:stop], b[start:stop], a[start:], b[start:]
        if kernel == "cosine":
            block_a, block_b = rows_a @ cols_a.T, rows_b @ cols_b.T
        else:
            block_a = gaussian_kernel_t(rows_a, cols_a, sigma_a)
            block_b = gaussian_kernel_t(rows_b, cols_b, sigma_b)
        block = block_a.sub_(block_b, alpha=eta).div_(n)
        lam[start:stop, start:] = block
        lam[start:, start:stop] = block.T
        square = lam[start:stop, start:stop]  # exactly symmetric, whatever the round-off
        lam[start:stop, start:stop] = (square + square.T) / 2
        done += (stop - start) * (n - start)
    report("kernel matrix", n * (n + 1) // 2, n * (n + 1) // 2)
    timings["kernel"] = time.perf_counter() - clock

    clock = time.perf_counter()
    eigs = _dense_extremes(lam, n_eigenvalues, n_modes, dtype, device, seed, report)
    timings["eigen"] = time.perf_counter() - clock
    return {
        "values": eigs.values,
        "vectors": eigs.vectors,
        "solver": eigs.solver,
        "maps": (None, None),
    }


#: Solver tolerances (residual / spec-diff) for approximate methods: the eigenvalue errors they
#: allow (<= 1e-3 and 3e-3 x spec-diff) sit well under the approximation's own noise floor.
APPROX_TOL, APPROX_VALUE_TOL = 1e-3, 3e-3


def _dense_extremes(lam, n_eigenvalues, n_modes, dtype, device, seed, report, approx=False):
    """Extreme eigenpairs of a dense symmetric n x n Lambda (unit eigenvectors)."""
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
    )
    report("eigendecomposition", 1, 1)
    return eigs


def _fit_maps(emb_a, emb_b, *, kernel, method, sigma_a, sigma_b, n_features, seed, device, dtype):
    """One feature map per embedding. Both use the same seed: with equal dimensions and
    bandwidths the two maps coincide (common random numbers), so identical inputs give zero."""
    import torch

    maps, shifts = [], []
    for emb, sigma in ((emb_a, sigma_a), (emb_b, sigma_b)):
        shift = None if kernel == "cosine" else torch.from_numpy(_column_mean(emb))
        if kernel == "cosine":
            fmap = CosineFeatures()
        elif method == "rff":
            fmap = RandomFourierFeatures(n_features=n_features, sigma=sigma, seed=seed)
        else:
            fmap = NystroemFeatures(n_features=n_features, sigma=sigma, seed=seed)
        # from_numpy shares memory: only the rows a map needs (landmarks) are copied to the device
        maps.append(fmap.fit(host_tensor(emb), device=device, dtype=dtype, shift=shift))
        shifts.append(None if shift is None else shift.to(device=device, dtype=dtype))
    return maps, shifts


def _solve_features(
    emb_a,
    emb_b,
    *,
    kernel,
    method,
    sigma_a,
    sigma_b,
    eta,
    n_features,
    n_eigenvalues,
    n_modes,
    seed,
    device,
    dtype,
    block_rows,
    report,
    timings,
) -> dict:
    """Feature route: C = Psi^T Psi / n by row blocks, then the symmetric F^T S F."""
    import torch

    clock = time.perf_counter()
    n = emb_a.shape[0]
    maps, shifts = _fit_maps(
        emb_a,
        emb_b,
        kernel=kernel,
        method=method,
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        n_features=n_features,
        seed=seed,
        device=device,
        dtype=dtype,
    )
    dim_a, dim_b = maps[0].n_features_, maps[1].n_features_
    width = dim_a + dim_b
    root_eta = eta**0.5

    def rows(emb: np.ndarray, shift, start: int, stop: int) -> torch.Tensor:
        block = _to_device(emb[start:stop], device, dtype)
        return block if shift is None else block.sub_(shift)

    def features(start: int, stop: int) -> torch.Tensor:
        block_a = maps[0].transform(rows(emb_a, shifts[0], start, stop))
        block_b = maps[1].transform(rows(emb_b, shifts[1], start, stop))
        return torch.cat([block_a, block_b.mul_(root_eta)], dim=1)

    step = block_rows or _default_block_rows(width + emb_a.shape[1] + emb_b.shape[1])
    keep = n * width * torch.finfo(dtype).bits // 8 <= KEEP_FEATURES_BYTES
    small_n = keep and n <= width  # fewer rows than features: n x n is the smaller problem
    approx = method in ("rff", "nystrom")
    kept: list[torch.Tensor] = []
    gram = None if small_n else torch.zeros(width, width, device=device, dtype=torch.float64)
    for start in range(0, n, step):
        report("features", start, n)
        psi = features(start, min(start + step, n))
        if gram is not None:
            _add_gram(gram, psi, dim_a)
        if keep:
            kept.append(psi)
    report("features", n, n)
    timings["features"] = time.perf_counter() - clock

    if small_n:
        clock = time.perf_counter()
        psi = torch.cat(kept)
        lam = psi[:, :dim_a] @ psi[:, :dim_a].T - psi[:, dim_a:] @ psi[:, dim_a:].T
        eigs = _dense_extremes(
            lam.div_(n), n_eigenvalues, n_modes, dtype, device, seed, report, approx=approx
        )
        timings["eigen"] = time.perf_counter() - clock
        return {"values": eigs.values, "vectors": eigs.vectors, "solver": eigs.solver, "maps": maps}

    clock = time.perf_counter()
    gram /= n
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
    )
    report("eigendecomposition", 1, 1)
    timings["eigen"] = time.perf_counter() - clock

    # Map back to the samples, only for the eigenpairs that can become modes.
    clock = time.perf_counter()
    values = eigs.values
    wanted = torch.zeros(len(values), dtype=torch.bool, device=values.device)
    wanted[:n_modes] = True
    wanted[-n_modes:] = True
    coeffs = eigs.vectors[:, wanted].to(dtype)  # u = Psi v: Psi already holds the sqrt(eta)
    scores = torch.empty(n, coeffs.shape[1], device=device, dtype=dtype)
    for i, start in enumerate(range(0, n, step)):
        report("scores", start, n)
        psi = kept[i] if keep else features(start, min(start + step, n))
        scores[start : start + psi.shape[0]] = psi @ coeffs
    report("scores", n, n)
    scores /= scores.norm(dim=0).clamp_min(torch.finfo(dtype).tiny)
    vectors = torch.zeros(n, len(values), device=device, dtype=dtype)
    vectors[:, wanted] = scores
    timings["scores"] = time.perf_counter() - clock
    return {"values": values, "vectors": vectors, "solver": eigs.solver, "maps": maps}


def _add_gram(gram: torch.Tensor, psi: torch.Tensor, dim_a: int) -> None:
    """gram += Psi^T Psi for one row block: the two diagonal blocks and one off-diagonal block
    (3/4 of a full product; C is symmetric), each a single matrix product."""
    psi_a, psi_b = psi[:, :dim_a], psi[:, dim_a:]
    cross = (psi_a.T @ psi_b).double()
    gram[:dim_a, :dim_a] += (psi_a.T @ psi_a).double()
    gram[dim_a:, dim_a:] += (psi_b.T @ psi_b).double()
    gram[:dim_a, dim_a:] += cross
    gram[dim_a:, :dim_a] += cross.T


def _numeric_floor(dtype: torch.dtype, eta: float) -> float:
    """Exact route: eigenvalues this small are round-off (float32 ~1e-6, float64 ~1e-12)."""
    import torch

    return (1e-6 if dtype == torch.float32 else 1e-12) * (1.0 + eta)


def _approximation_floor(emb_a, emb_b, maps, *, eta, seed, device) -> float:
    """The size of spurious eigenvalues the approximation alone produces.

    For each embedding, two independent draws of its feature map on a seeded sample of rows:
    the operator norm of (Phi_1 Phi_1^T - Phi_2 Phi_2^T) / m is what comparing the embedding with
    itself would report. The floor is the larger of A's and eta x B's.
    """
    import torch

    n = emb_a.shape[0]
    rows = np.arange(n)
    if n > NOISE_FLOOR_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(n, NOISE_FLOOR_ROWS, replace=False))
    floors = []
    for emb, fmap, weight in ((emb_a, maps[0], 1.0), (emb_b, maps[1], eta)):
        shift = torch.from_numpy(_column_mean(emb))
        sample = _to_device(emb[rows] - shift.numpy(), device, torch.float32)
        other = type(fmap)(
            n_features=fmap.n_features, sigma=fmap.sigma, seed=fmap.seed + NOISE_SEED_OFFSET
        )
        other.fit(host_tensor(emb), device=device, dtype=torch.float32, shift=shift)
        phis = [fmap.transform(sample.to(fmap.dtype_)).float(), other.transform(sample)]
        phi_1, phi_2 = phis
        diff = (phi_1 @ phi_1.T - phi_2 @ phi_2.T) / len(rows)
        eigs = extreme_eigh(
            lambda x, _, d=diff: d @ x,
            len(rows),
            k_top=1,
            k_bottom=1,
            dense=lambda d=diff: symmetric_eigh(d),
            dtype=torch.float32,
            device=device,
            tol=1e-2,  # a floor needs two digits, not ten
        )
        floors.append(weight * float(eigs.values.abs().max()))
    return max(floors)


def _modes(values, vectors, n_modes: int, top_k: int, noise_floor: float) -> tuple[Mode, ...]:
    """Both directions' strongest eigenvectors as modes, each signed so its group scores > 0."""
    values_np = values.double().cpu().numpy()
    modes = []
    for direction in ("A", "B"):
        order = np.arange(len(values_np))
        if direction == "B":
            order = order[::-1]
        picked = [i for i in order if (values_np[i] > 0 if direction == "A" else values_np[i] < 0)]
        for rank, idx in enumerate(picked[:n_modes]):
            scores = vectors[:, idx].double().cpu().numpy()
            cubes = float(np.sum(scores**3))
            if cubes < 0 or (cubes == 0 and scores[np.argmax(np.abs(scores))] < 0):
                scores = -scores
            members = np.argsort(-scores, kind="stable")[:top_k]
            modes.append(
                Mode(
                    direction=direction,
                    rank=rank,
                    eigenvalue=float(values_np[idx]),
                    members=members,
                    scores=scores[members].astype(np.float32),
                    sample_scores=scores.astype(np.float32),
                    above_noise_floor=bool(abs(values_np[idx]) > noise_floor),
                )
            )
    return tuple(modes)


def _context(emb_a, emb_b, *, kernel: str, k: int, seed: int, device) -> ContextMetrics:
    import torch

    n = emb_a.shape[0]
    rows = np.arange(n)
    if n > CONTEXT_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(n, CONTEXT_ROWS, replace=False))
    a = _to_device(emb_a[rows], device, torch.float32)
    b = _to_device(emb_b[rows], device, torch.float32)
    k = min(k, len(rows) - 1)
    metric = "cosine" if kernel == "cosine" else "euclidean"
    overlap = knn_overlap_t(a, b, k, metric=metric)
    return ContextMetrics(
        linear_cka=linear_cka_t(a, b),
        knn_k=k,
        knn_overlap_mean=float(overlap.mean()),
        knn_overlap=overlap.astype(np.float32),
        rows=rows,
    )
