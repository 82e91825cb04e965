"""The SPEC comparison: Lambda = (K_A - eta K_B) / n and the ends of its spectrum.

`compare` resolves the inputs and parameters (every check, the method and route, the bandwidths,
both embeddings' rows on the device), solves on one of two routes (spec_core.engine.solve: the
exact n x n matrix, or feature maps that make the work linear in n), and assembles a SpecResult:
each mode with its evidence (spec_core.engine.evidence) and the context metrics.

Centring (`centre=True`) compares the centred kernels H K H (H = I - 1 1^T / n). It removes the
"global" direction that a kernel with a large common component puts first (near-uniform scores
that say nothing about any group); `centre=False` is the paper's definition.

The engine never writes to its inputs: rows reach the device through spec_core.engine.rows, which
copies them; every in-place operation is on memory the engine allocated.
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
from spec_core.config import DEFAULTS, SpecConfig, check_parameters
from spec_core.data import arrays
from spec_core.engine.backends import check_backend
from spec_core.engine.evidence import ModeEvidence, evidence_for_modes
from spec_core.engine.kernels import (
    RULE_FACTORS,
    SIGMA_SAMPLE_ROWS,
    Kernel,
    bandwidth,
    check_bandwidth,
    get_kernel,
    sample_distances,
)
from spec_core.engine.metrics import CONTEXT_ROWS, context_metrics
from spec_core.engine.result import ContextMetrics, Mode, SpecParams, SpecResult
from spec_core.engine.rows import KernelRows
from spec_core.engine.solve import Spectrum, route_bytes, solve_features, solve_kernel
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


def resolve_device(device: str) -> torch.device:
    """The torch device for "auto" (CUDA when there is one, else the CPU), "cpu" or "cuda"."""
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
    groups: str = DEFAULTS.groups,
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
    clock = time.perf_counter()
    config = SpecConfig(
        kernel=kernel,
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        sigma_rule=sigma_rule,
        sigma_scale=sigma_scale,
        centre=centre,
        eta=eta,
        method=method,
        n_features=n_features,
        n_modes=n_modes,
        top_k=top_k,
        n_eigenvalues=n_eigenvalues,
        seed=seed,
        device=device,
        dtype=dtype,
        context=context,
        stability=stability,
        members=members,
        knn_k=knn_k,
        groups=groups,
    )
    report = progress or (lambda stage, done, total: None)
    run = _resolve(
        emb_a,
        emb_b,
        config,
        labels=labels,
        block_rows=block_rows,
        backend=backend,
        ray_address=ray_address,
        report=report,
    )
    timings = {"prepare": time.perf_counter() - clock}
    spectrum = _solve(run, report, timings)
    return assemble(run, spectrum, report, timings)


@dataclass(frozen=True)
class Resolved:
    """A comparison ready to solve: the checked inputs, the parameters with every choice made
    (`config.method` never "auto", the bandwidths in each embedding's units or None for a
    kernel without one, n_eigenvalues >= n_modes, `config.device` the device used), the route
    ("kernel" or "features"), the rule that set a bandwidth (None: both were given), and both
    embeddings' rows prepared on `torch_device` in `torch_dtype`."""

    config: SpecConfig
    emb_a: np.ndarray
    emb_b: np.ndarray
    labels: list[str] | None
    route: str
    bandwidth_rule: str | None
    torch_device: torch.device
    torch_dtype: torch.dtype
    rows_a: KernelRows
    rows_b: KernelRows
    block_rows: int | None
    backend: str
    ray_address: str | None

    @property
    def n_rows(self) -> int:
        return int(self.emb_a.shape[0])

    @property
    def on_ray(self) -> bool:
        """Whether the row passes run as Ray tasks (the feature route only)."""
        return self.backend == "ray" and self.route == "features"


def _resolve(emb_a, emb_b, config: SpecConfig, *, labels, block_rows, backend, ray_address, report):
    """Check every parameter and input (in this order: the error names the first bad one),
    then make each choice `compare` leaves open and prepare the rows: a Resolved. Each stage
    is reported before it starts (a long run is never silent)."""
    report("checking inputs", 0, 1)
    import torch

    check_config(config, block_rows)
    check_backend(backend, ray_address)
    kernel = get_kernel(config.kernel)
    emb_a, emb_b, labels = _checked_inputs(emb_a, emb_b, labels, kernel, config)
    report("checking inputs", 1, 1)
    n = emb_a.shape[0]
    config = settled(config)
    torch_device = resolve_device(config.device)
    torch_dtype = torch.float64 if config.dtype == "float64" else torch.float32
    dims = emb_a.shape[1] + emb_b.shape[1]
    method, route = method_and_route(kernel, config.method, n, dims, torch_device)
    _check_memory(n, emb_a.shape[1], emb_b.shape[1], route, method, config)
    sigma_a, sigma_b, rule = _bandwidths(kernel, emb_a, emb_b, config, report)
    config = config.replace(
        method=method, sigma_a=sigma_a, sigma_b=sigma_b, device=str(torch_device)
    )
    report("preparing rows", 0, 2)
    rows_a = KernelRows.prepare(emb_a, config.kernel, sigma_a, torch_device, torch_dtype)
    report("preparing rows", 1, 2)
    rows_b = KernelRows.prepare(emb_b, config.kernel, sigma_b, torch_device, torch_dtype)
    report("preparing rows", 2, 2)
    return Resolved(
        config=config,
        emb_a=emb_a,
        emb_b=emb_b,
        labels=labels,
        route=route,
        bandwidth_rule=rule,
        torch_device=torch_device,
        torch_dtype=torch_dtype,
        rows_a=rows_a,
        rows_b=rows_b,
        block_rows=block_rows,
        backend=backend,
        ray_address=ray_address,
    )


def check_config(config: SpecConfig, block_rows: int | None) -> None:
    """Every parameter a comparison checks first, in this order (the error names the first bad
    one)."""
    check_parameters(
        kernel=config.kernel,
        method=config.method,
        dtype=config.dtype,
        sigma_a=config.sigma_a,
        sigma_b=config.sigma_b,
        sigma_rule=config.sigma_rule,
        sigma_scale=config.sigma_scale,
        members=config.members,
        eta=config.eta,
        n_features=config.n_features,
        n_modes=config.n_modes,
        top_k=config.top_k,
        n_eigenvalues=config.n_eigenvalues,
        knn_k=config.knn_k,
        seed=config.seed,
        groups=config.groups,
        block_rows=block_rows,
    )


def settled(config: SpecConfig) -> SpecConfig:
    """The checked parameters as the engine uses them: plain ints and floats, at least
    n_modes eigenvalues per end."""
    n_modes = int(config.n_modes)
    return config.replace(
        n_features=int(config.n_features),
        n_modes=n_modes,
        top_k=int(config.top_k),
        knn_k=int(config.knn_k),
        n_eigenvalues=max(int(config.n_eigenvalues), n_modes),
        seed=int(config.seed),
        eta=float(config.eta),
    )


def _checked_inputs(emb_a, emb_b, labels, kernel: Kernel, config: SpecConfig):
    """The two embeddings checked (arrays.check_embedding: 2-D, numeric, finite, within the
    caps; the same rows; usable by the kernel; not constant) and the labels as strings."""
    emb_a = arrays.check_embedding(emb_a, "A", max_dim=CAPS.max_dim, max_rows=CAPS.max_rows)
    emb_b = arrays.check_embedding(emb_b, "B", max_dim=CAPS.max_dim, max_rows=CAPS.max_rows)
    arrays.check_pair(emb_a, emb_b)
    labels = checked_counts(emb_a.shape[0], labels, config)
    kernel.check_rows(emb_a, "A")
    kernel.check_rows(emb_b, "B")
    arrays.check_not_constant(emb_a, "A")
    arrays.check_not_constant(emb_b, "B")
    return emb_a, emb_b, labels


def checked_counts(n: int, labels, config: SpecConfig) -> list[str] | None:
    """The modes and members that n rows allow (a ValueError beyond), and the labels as
    strings, one per row."""
    n_modes, top_k = config.n_modes, config.top_k
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
    return labels


def method_and_route(kernel: Kernel, method: str, n: int, dims: int, device) -> tuple[str, str]:
    """(method, route) for n rows of dim_a + dim_b = `dims` columns: "auto" made concrete, and
    the route that computes it. The feature route for an approximation, and for a kernel with
    an exact finite map once there are more rows than its features (that map is then the
    smaller problem)."""
    if method == "auto":
        limit = AUTO_EXACT_MAX_ROWS_CUDA if device.type == "cuda" else AUTO_EXACT_MAX_ROWS
        exact_map = not kernel.approximations  # an exact finite map: exact at any n
        method = "exact" if (exact_map or n <= limit) else "nystrom"
    route = "kernel"
    wide = n > dims  # more rows than the exact map's features
    if method != "exact" or (not kernel.approximations and wide):
        route = "features"
    return method, route


def _bandwidths(kernel: Kernel, emb_a, emb_b, config: SpecConfig, report: Progress):
    """(sigma_a, sigma_b, rule): each Gaussian bandwidth as given, or else `sigma_scale` x the
    data-driven value of `sigma_rule` (then `rule` names it), checked against the data's
    distances; (None, None, None) for a kernel without one."""
    if not kernel.bandwidth:
        return None, None, None
    report("bandwidths", 0, 2)
    sigma_a, rule_a = embedding_bandwidth("sigma_a", emb_a, config.sigma_a, config)
    report("bandwidths", 1, 2)
    sigma_b, rule_b = embedding_bandwidth("sigma_b", emb_b, config.sigma_b, config)
    report("bandwidths", 2, 2)
    return sigma_a, sigma_b, rule_b or rule_a


def embedding_bandwidth(name: str, emb, given: float | None, config: SpecConfig):
    """(sigma, rule) of one embedding: `given`, or else `sigma_scale` x the data-driven value of
    `sigma_rule` (then `rule` names it; else None), checked against the embedding's distances
    (a ValueError naming `name` when it would make the kernel degenerate). It depends on that
    embedding alone, not on the one it is compared with."""
    distances, scale = sample_distances(emb, max_rows=SIGMA_SAMPLE_ROWS, seed=config.seed)
    rule = None
    if given is None:
        given = config.sigma_scale * bandwidth(
            emb, config.sigma_rule, distances=distances, scale=scale, seed=config.seed
        )
        rule = config.sigma_rule
    check_bandwidth(name, float(given), distances, scale, config.dtype)
    return float(given), rule


def _check_memory(n, dim_a, dim_b, route, method, config: SpecConfig) -> None:
    """Refuse up front a comparison this machine cannot hold (see spec_core.limits): the route's
    own need (solve.route_bytes), the bandwidths' sample and the context metrics."""
    need, advice = route_bytes(
        n, dim_a, dim_b, route, method, config.kernel, config.n_features, config.dtype
    )
    dims = dim_a + dim_b
    sample = SIGMA_SAMPLE_ROWS * max(dim_a, dim_b) * 8 * 2 + 3 * SIGMA_SAMPLE_ROWS**2 * 8
    ctx_rows = min(n, CONTEXT_ROWS)
    context = ctx_rows * dims * 4 + 3 * min(max(dim_a, dim_b), ctx_rows) ** 2 * 8
    need += sample + context
    check_budget(
        int(need),
        f"This comparison ({n:,} rows, {dim_a:,} + {dim_b:,} columns, {method} on the "
        f"{route} route)",
        advice,
    )


def _solve(run: Resolved, report: Progress, timings: dict[str, float]) -> Spectrum:
    """The extreme eigenpairs on the resolved route; on the feature route with backend "ray",
    its passes over the rows run as Ray tasks."""
    config = run.config
    solve = solve_kernel if run.route == "kernel" else solve_features
    runner = None
    if run.on_ray:
        from spec_core.engine.backends import RayRunner

        runner = RayRunner(run.ray_address)
    try:
        with solver_errors():
            return solve(
                run.rows_a,
                run.rows_b,
                method=config.method,
                eta=config.eta,
                centre=config.centre,
                n_features=config.n_features,
                n_eigenvalues=config.n_eigenvalues,
                n_modes=config.n_modes,
                seed=config.seed,
                block_rows=run.block_rows,
                report=report,
                timings=timings,
                runner=runner,
            )
    finally:
        if runner is not None:
            runner.close()


@contextlib.contextmanager
def solver_errors():
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


def assemble(
    run: Resolved,
    spectrum: Spectrum,
    report: Progress,
    timings,
    *,
    context: ContextMetrics | None = None,
) -> SpecResult:
    """The result: the eigenvalues, each mode with its evidence, the context metrics (measured
    here unless `context` gives them) and the parameters as run, every number checked
    finite."""
    config = run.config
    values = spectrum.values.double().cpu().numpy()
    vectors = spectrum.vectors.double().cpu().numpy()
    clock = time.perf_counter()
    report("mode evidence", 0, 1)
    evidence = evidence_for_modes(
        values,
        vectors,
        spectrum.operator,
        rows_a=run.rows_a,
        rows_b=run.rows_b,
        n_modes=config.n_modes,
        top_k=config.top_k,
        labels=run.labels,
        stability=config.stability,
        seed=config.seed,
        report=report,
        members=config.members,
        noise_floor=spectrum.noise_floor,
        grouping=_grouping(run),
    )
    timings["evidence"] = time.perf_counter() - clock

    if config.context and context is None:
        clock = time.perf_counter()
        report("context metrics", 0, 1)
        context = context_metrics(
            run.emb_a,
            run.emb_b,
            kernel=config.kernel,
            k=config.knn_k,
            seed=config.seed,
            device=run.torch_device,
        )
        report("context metrics", 1, 1)
        timings["context"] = time.perf_counter() - clock

    result = SpecResult(
        eigenvalues=values,
        spec_diff=float(np.abs(values).max()) if values.size else 0.0,
        modes=_modes(values, evidence, spectrum.noise_floor, run.n_rows),
        params=_params(run, spectrum, evidence),
        noise_floor=spectrum.noise_floor,
        timings=timings,
        context=context if config.context else None,
    )
    _check_finite(result)
    return result


def _grouping(run: Resolved) -> str:
    """The grouping of this comparison's modes (spec_core.engine.groups.grouping_for)."""
    from spec_core.engine.groups import grouping_for

    config = run.config
    return grouping_for(
        config.groups, centre=config.centre, data_driven=run.bandwidth_rule is not None
    )


def _params(run: Resolved, spectrum: Spectrum, evidence: ModeEvidence) -> SpecParams:
    """The parameters as run: every choice made, the route, the solver and the resamples."""
    config, maps = run.config, spectrum.maps
    rule = run.bandwidth_rule
    return SpecParams(
        kernel=config.kernel,
        method=config.method,
        route=run.route,
        sigma_a=config.sigma_a,
        sigma_b=config.sigma_b,
        sigma_rule=None if rule is None else _rule_text(rule, config.sigma_scale),
        centre=bool(config.centre),
        eta=config.eta,
        n_features_a=getattr(maps[0], "n_features_", None),
        n_features_b=getattr(maps[1], "n_features_", None),
        n_modes=config.n_modes,
        top_k=config.top_k,
        members=config.members,
        n_eigenvalues=config.n_eigenvalues,
        seed=config.seed,
        device=config.device,
        dtype=config.dtype,
        n_rows=run.n_rows,
        dim_a=run.emb_a.shape[1],
        dim_b=run.emb_b.shape[1],
        eigen_solver=spectrum.solver,
        n_resamples=evidence.n_resamples,
        stability_rows=evidence.pool_rows,
        backend="ray" if run.on_ray else "local",
        grouping=_grouping(run),
    )


def _rule_text(rule: str, scale: float) -> str:
    """What params.sigma_rule says: the rule, its factor and its sample."""
    factor = RULE_FACTORS[rule] * scale
    what = {
        "median": "the median distance between rows",
        "knn": "the median distance to the k-th nearest neighbour (k = 5% of the rows)",
    }[rule]
    return f"{rule}: {factor:.3g} x {what} (seeded sample of <= 1000 rows)"


def _modes(values, evidence: ModeEvidence, noise_floor: float, n: int) -> tuple[Mode, ...]:
    """Both directions' strongest eigenvectors as modes, with their evidence."""
    modes = []
    for item in evidence.modes:
        value = values[item.index] if item.value is None else item.value  # groups.py: quotient
        above = bool(abs(value) > noise_floor)
        modes.append(
            Mode(
                direction=item.direction,
                rank=item.rank,
                eigenvalue=float(value),
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
                notes=item.notes(n_rows=n),
            )
        )
    return tuple(modes)


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
