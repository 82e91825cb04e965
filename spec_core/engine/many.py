"""SPEC between every pair of several embeddings of the same rows, each model's pieces computed
once: `compare_many({"clip": A, "dino": B, "siglip": C})`.

Five models are ten pairs. Compared one pair at a time, every model's kernel features (or its
kernel matrix) and its own block of the Gram would be computed four times; here they are
computed once (spec_core.engine.many_solve): each model's bandwidth, feature map, noise floor,
kernel matrix (exact route) and context-metric side; ONE pass over the row blocks for the joint
Gram of all feature maps; then each pair's small eigenproblem from its blocks, one shared pass
for every pair's scores, and each pair's evidence as `compare` measures it. With the same seed,
each pair is the pairwise `compare` of its two models (A = the one listed first): on the
feature routes the same maps give the same C (bit for bit with eta = 1 and the same
`block_rows`), on the exact route Lambda differs from compare's only in the order of its
float32 operations (eigenvalues within 1e-6 relative).

Works on shards (spec_core.data.shards) and with backend "ray" (the feature route's two passes
as Ray tasks, spec_core.engine.backends), like `compare`. Memory is checked up front: the
joint Gram of N maps is (sum of their widths)^2 float64, the kernel route holds one n x n
matrix per model; a comparison that would not fit is refused before any work, saying what to
lower.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spec_core.config import APPROXIMATIONS, DEFAULTS, SpecConfig
from spec_core.data import arrays
from spec_core.engine.backends import JointFeatureJob, check_backend
from spec_core.engine.compare import (
    Progress,
    Resolved,
    _rule_text,
    assemble,
    check_config,
    checked_counts,
    embedding_bandwidth,
    method_and_route,
    resolve_device,
    settled,
    solver_errors,
)
from spec_core.engine.kernels import get_kernel
from spec_core.engine.many_result import ManyParams, ManyResult, ModelPiece
from spec_core.engine.many_solve import (
    KEEP_MANY_BYTES,
    SharedFeatures,
    fit_models,
    joint_pass,
    kernel_matrix,
    kernel_pair,
    pair_operator,
    plan_pair,
    score_pass,
    solve_pair,
    timed,
)
from spec_core.engine.metrics import CONTEXT_ROWS, ContextSide, context_plan, pair_context
from spec_core.engine.projection import classical_mds
from spec_core.engine.rows import KernelRows
from spec_core.engine.solve import _default_block_rows, route_bytes
from spec_core.limits import CAPS, check_budget, format_bytes

if TYPE_CHECKING:
    import torch

__all__ = ["compare_many"]


def compare_many(
    embeddings: Mapping[str, np.ndarray],
    *,
    kernel: str = DEFAULTS.kernel,
    sigmas: Mapping[str, float] | None = None,
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
) -> ManyResult:
    """Compare every pair of 2 to CAPS.max_models embeddings of the same n rows.

    embeddings: {name: matrix} (arrays or ShardedMatrix), all with the same rows in the same
        order; the order of the mapping orders the models (a pair's A is the earlier one).
    sigmas: Gaussian bandwidths by model name, in each model's units; a model not named gets
        `sigma_scale` x its data-driven bandwidth (`sigma_rule`), as in `compare`.
    Every other parameter means what it means for `compare` (eta weighs each pair's B, the
    later model), and is shared by every pair. The inputs are only read, never written.
    Returns a ManyResult: every pair's SpecResult, the SPEC-diff, linear CKA and kNN overlap
    matrices, a 2-D map of the models (classical MDS of SPEC-diff) and each model's pieces.
    """
    clock = time.perf_counter()
    config = SpecConfig(
        kernel=kernel,
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
    plan = _resolve(
        embeddings,
        config,
        sigmas=sigmas,
        labels=labels,
        block_rows=block_rows,
        backend=backend,
        ray_address=ray_address,
        report=report,
    )
    timings = {"prepare": time.perf_counter() - clock}
    results, pieces = _solve_all(plan, report, timings)
    return _result(plan, results, pieces, timings)


@dataclass(frozen=True)
class ManyPlan:
    """compare_many ready to solve: the models (names, checked inputs, rows prepared for the
    kernel on the device, bandwidths and the rule that set them), the pairs (positions, i < j)
    and each pair's route, the settled parameters (`config.method` never "auto") and where the
    passes run."""

    config: SpecConfig
    names: tuple[str, ...]
    embeddings: tuple
    rows: tuple[KernelRows, ...]
    sigmas: tuple[float | None, ...]
    rules: tuple[str | None, ...]
    pairs: tuple[tuple[int, int], ...]
    routes: tuple[str, ...]
    labels: list[str] | None
    torch_device: torch.device
    torch_dtype: torch.dtype
    block_rows: int | None
    backend: str
    ray_address: str | None

    @property
    def n_rows(self) -> int:
        return int(self.embeddings[0].shape[0])

    def models_on(self, route: str) -> tuple[int, ...]:
        """The models some pair on `route` uses, in order."""
        used = {
            m for pair, r in zip(self.pairs, self.routes, strict=True) if r == route for m in pair
        }
        return tuple(sorted(used))

    def resolved(self, k: int) -> Resolved:
        """Pair k as compare's Resolved (A = the earlier model)."""
        i, j = self.pairs[k]
        rule = self.rules[j] or self.rules[i]
        return Resolved(
            config=self.config.replace(sigma_a=self.sigmas[i], sigma_b=self.sigmas[j]),
            emb_a=self.embeddings[i],
            emb_b=self.embeddings[j],
            labels=self.labels,
            route=self.routes[k],
            bandwidth_rule=rule,
            torch_device=self.torch_device,
            torch_dtype=self.torch_dtype,
            rows_a=self.rows[i],
            rows_b=self.rows[j],
            block_rows=self.block_rows,
            backend=self.backend,
            ray_address=self.ray_address,
        )


def _resolve(embeddings, config, *, sigmas, labels, block_rows, backend, ray_address, report):
    """Check every parameter and input (the error names the first bad one, and the model by
    its name), then make every choice and prepare each model's rows once."""
    import torch

    check_config(config, block_rows)
    check_backend(backend, ray_address)
    kernel = get_kernel(config.kernel)
    names, matrices = _checked_models(embeddings, kernel)
    sigmas = _checked_sigmas(sigmas, names, kernel)
    labels = checked_counts(matrices[0].shape[0], labels, config)
    config = settled(config)
    torch_device = resolve_device(config.device)
    torch_dtype = torch.float64 if config.dtype == "float64" else torch.float32
    n = matrices[0].shape[0]
    pairs = tuple((i, j) for i in range(len(names)) for j in range(i + 1, len(names)))
    routes, methods = [], set()
    for i, j in pairs:
        dims = matrices[i].shape[1] + matrices[j].shape[1]
        method, route = method_and_route(kernel, config.method, n, dims, torch_device)
        methods.add(method)
        routes.append(route)
    method = methods.pop()  # "auto" depends on the rows and the kernel only: one method
    _check_memory(names, matrices, pairs, routes, method, config, backend)
    chosen, rules = [], []
    for done, (name, matrix) in enumerate(zip(names, matrices, strict=True)):
        report("bandwidths", done, len(names))
        sigma, rule = None, None
        if kernel.bandwidth:
            sigma, rule = embedding_bandwidth(f"sigma of {name}", matrix, sigmas.get(name), config)
        chosen.append(sigma)
        rules.append(rule)
    report("bandwidths", len(names), len(names))
    config = config.replace(method=method, device=str(torch_device))
    rows = tuple(
        KernelRows.prepare(matrix, config.kernel, sigma, torch_device, torch_dtype)
        for matrix, sigma in zip(matrices, chosen, strict=True)
    )
    return ManyPlan(
        config=config,
        names=names,
        embeddings=matrices,
        rows=rows,
        sigmas=tuple(chosen),
        rules=tuple(rules),
        pairs=pairs,
        routes=tuple(routes),
        labels=labels,
        torch_device=torch_device,
        torch_dtype=torch_dtype,
        block_rows=block_rows,
        backend=backend,
        ray_address=ray_address,
    )


def _checked_models(embeddings, kernel) -> tuple[tuple[str, ...], tuple]:
    """The names (distinct, non-empty text) and each matrix checked like compare's inputs,
    every one with the first one's rows; a ValueError names the model."""
    if not isinstance(embeddings, Mapping):
        raise ValueError(
            "embeddings must be a mapping {name: matrix} (e.g. a dict), got "
            f"{type(embeddings).__name__}"
        )
    names = tuple(embeddings)
    if not 2 <= len(names) <= CAPS.max_models:
        raise ValueError(f"compare_many needs 2 to {CAPS.max_models} embeddings, got {len(names)}")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"each embedding needs a name (non-empty text), got {name!r}")
    matrices = []
    for name in names:
        matrix = arrays.check_embedding(
            embeddings[name], name, max_dim=CAPS.max_dim, max_rows=CAPS.max_rows
        )
        if matrices and matrix.shape[0] != matrices[0].shape[0]:
            raise ValueError(
                f"{name} has {matrix.shape[0]} rows but {names[0]} has {matrices[0].shape[0]}: "
                "every embedding must describe the same samples, row for row"
            )
        matrices.append(matrix)
    arrays.check_pair(matrices[0], matrices[1])  # at least 3 rows
    for name, matrix in zip(names, matrices, strict=True):
        kernel.check_rows(matrix, name)
        arrays.check_not_constant(matrix, name)
    return names, tuple(matrices)


def _checked_sigmas(sigmas, names, kernel) -> dict[str, float]:
    """The hand-set bandwidths, by model name (each a positive number, for a known model)."""
    if not sigmas:
        return {}
    if not isinstance(sigmas, Mapping):
        raise ValueError("sigmas must be a mapping {model name: bandwidth}")
    if not kernel.bandwidth:
        raise ValueError("sigmas are Gaussian bandwidths; the cosine kernel has none")
    unknown = [name for name in sigmas if name not in names]
    if unknown:
        raise ValueError(
            f"sigmas names {', '.join(map(repr, unknown))}, not among the models "
            f"({', '.join(names)})"
        )
    from spec_core import checks

    out = {}
    for name, value in sigmas.items():
        if value is not None:
            checks.check_positive(f"sigma of {name}", value, allow_none=False)
            out[name] = float(value)
    return out


def _check_memory(names, matrices, pairs, routes, method, config, backend) -> None:
    """Refuse up front what this machine cannot hold (spec_core.limits): the kernel route's
    n x n matrix per model, the feature route's joint Gram (its total width squared, float64),
    kept features and every pair's scores, the largest pair's own work, and the context
    metrics' samples."""
    n, item = matrices[0].shape[0], 8 if config.dtype == "float64" else 4
    dims = [int(m.shape[1]) for m in matrices]
    on_kernel = {m for pair, r in zip(pairs, routes, strict=True) if r == "kernel" for m in pair}
    on_features = {m for p, r in zip(pairs, routes, strict=True) if r == "features" for m in p}
    widths = [_map_width(d, n, method, config) for d in dims]
    width = sum(widths[m] for m in on_features)
    gram = width * width * 8 * (2 if backend == "ray" else 1)  # Ray: the sum and a part
    kernels = len(on_kernel) * n * n * item
    feature_pairs = sum(1 for r in routes if r == "features")
    scores = feature_pairs * n * 2 * config.n_modes * item
    kept = n * width * item if n * width * item <= KEEP_MANY_BYTES else 0
    largest = max(
        route_bytes(n, dims[i], dims[j], r, method, config.kernel, config.n_features, config.dtype)[
            0
        ]
        for (i, j), r in zip(pairs, routes, strict=True)
    )
    rows = min(n, CONTEXT_ROWS)
    context = len(dims) * rows * (12 * max(dims) + 8 * config.knn_k) if config.context else 0
    need = kernels + gram + kept + scores + largest + context
    parts = [f"{len(names)} embeddings of {n:,} rows, {len(pairs)} pairs, {method}"]
    if width:
        parts.append(
            f"the joint Gram of their feature maps is {width:,} x {width:,} float64 "
            f"({format_bytes(width * width * 8)})"
        )
    if kernels:
        parts.append(f"{len(on_kernel)} kernel matrices of {n:,} x {n:,}")
    check_budget(
        int(need),
        f"Comparing {'; '.join(parts)},",
        "lower n_features, compare fewer models at once, use fewer rows or reduce the "
        "embeddings' dimension (e.g. with PCA)",
    )


def _map_width(dim: int, n: int, method: str, config: SpecConfig) -> int:
    """The width of one model's feature map (its exact map: its columns)."""
    if not get_kernel(config.kernel).approximations or method == "exact":
        return dim
    if method == "rff":
        return 2 * (config.n_features // 2)
    return min(config.n_features, n)


def _result(plan: ManyPlan, results: list, pieces: list[ModelPiece], timings) -> ManyResult:
    """The matrices, the map and the shared parameters around the pairs' results."""
    count = len(plan.names)
    spec_diff = np.zeros((count, count))
    with_context = plan.config.context
    cka = np.eye(count) if with_context else None
    overlap = np.eye(count) if with_context else None
    pairs = {}
    for (i, j), result in zip(plan.pairs, results, strict=True):
        pairs[(plan.names[i], plan.names[j])] = result
        spec_diff[i, j] = spec_diff[j, i] = result.spec_diff
        if with_context:
            cka[i, j] = cka[j, i] = result.context.linear_cka
            overlap[i, j] = overlap[j, i] = result.context.knn_overlap_mean
    config = plan.config
    rule = next((r for r in plan.rules if r is not None), None)
    params = ManyParams(
        kernel=config.kernel,
        method=config.method,
        centre=bool(config.centre),
        eta=config.eta,
        n_modes=config.n_modes,
        top_k=config.top_k,
        n_eigenvalues=config.n_eigenvalues,
        seed=config.seed,
        device=config.device,
        dtype=config.dtype,
        n_rows=plan.n_rows,
        sigma_rule=None if rule is None else _rule_text(rule, config.sigma_scale),
        backend=results[0].params.backend if results else "local",
        block_rows=plan.block_rows,
    )
    return ManyResult(
        names=plan.names,
        models=tuple(pieces),
        pairs=pairs,
        spec_diff=spec_diff,
        linear_cka=cka,
        knn_overlap=overlap,
        model_map=classical_mds(spec_diff),
        params=params,
        timings=timings,
    )


def context_sides(plan: ManyPlan, report) -> tuple[np.ndarray, int, list[ContextSide]] | None:
    """Each model's side of the context metrics (its sampled rows and neighbours), once."""
    if not plan.config.context:
        return None
    config = plan.config
    rows, k = context_plan(plan.n_rows, config.knn_k, config.seed)
    metric = get_kernel(config.kernel).metric
    sides = []
    for done, matrix in enumerate(plan.embeddings):
        report("context metrics", done, len(plan.embeddings))
        sides.append(ContextSide(matrix, rows, k=k, metric=metric, device=plan.torch_device))
    report("context metrics", len(plan.embeddings), len(plan.embeddings))
    return rows, k, sides


def pair_result(plan: ManyPlan, k: int, spectrum, sides, report, timings):
    """Pair k's SpecResult (compare's assemble: evidence, modes, parameters), its context
    metrics from the models' shared sides."""
    context = None
    if sides is not None:
        rows, knn, every = sides
        i, j = plan.pairs[k]
        context = pair_context(every[i], every[j], rows, knn)
    with solver_errors():
        return assemble(plan.resolved(k), spectrum, report, timings, context=context)


# ---------------------------------------------------------------------------------------------
# Solving every pair from the shared pieces


def _solve_all(plan: ManyPlan, report, timings) -> tuple[list, list[ModelPiece]]:
    """Every pair's SpecResult (in plan.pairs order) and each model's pieces: the kernel
    route's pairs first (one kernel matrix per model, then pair by pair), then the feature
    route's (shared maps, one joint pass, pair by pair, one shared score pass)."""
    with timed(timings, "context"):
        sides = context_sides(plan, report)
    results: list = [None] * len(plan.pairs)
    computed: dict[int, list[str]] = {m: [] for m in range(len(plan.names))}
    kernel_pairs = [k for k, route in enumerate(plan.routes) if route == "kernel"]
    if kernel_pairs:
        _solve_kernel_pairs(plan, kernel_pairs, sides, report, timings, results)
        for m in plan.models_on("kernel"):
            computed[m].append("kernel matrix")
    maps, floors = {}, {}
    feature_pairs = [k for k, route in enumerate(plan.routes) if route == "features"]
    if feature_pairs:
        maps, floors = _solve_feature_pairs(plan, feature_pairs, sides, report, timings, results)
        for m in plan.models_on("features"):
            computed[m].append("features")
    timings["pairs"] = sum(sum(r.timings.values()) for r in results)
    pieces = [
        ModelPiece(
            name=name,
            dim=int(plan.embeddings[m].shape[1]),
            sigma=plan.sigmas[m],
            computed=tuple(computed[m]),
            n_features=int(maps[m].n_features_) if m in maps else None,
            noise_floor=floors.get(m),
        )
        for m, name in enumerate(plan.names)
    ]
    return results, pieces


def _solve_kernel_pairs(plan: ManyPlan, todo, sides, report, timings, results) -> None:
    """The kernel route: each model's n x n kernel matrix once, then each pair's Lambda from
    two of them, solved and assembled in turn (one pair's matrix in memory at a time)."""
    config = plan.config
    matrices = {}
    with timed(timings, "kernel matrices"):
        for m in plan.models_on("kernel"):
            matrices[m] = kernel_matrix(
                plan.rows[m], block_rows=plan.block_rows, report=report, name=plan.names[m]
            )
    for done, k in enumerate(todo):
        i, j = plan.pairs[k]
        report("pairs", done, len(todo))
        own: dict[str, float] = {}
        with timed(own, "eigen"), solver_errors():
            spectrum = kernel_pair(
                matrices[i],
                matrices[j],
                eta=config.eta,
                centre=config.centre,
                n_eigenvalues=config.n_eigenvalues,
                n_modes=config.n_modes,
                seed=config.seed,
                report=report,
            )
        results[k] = pair_result(plan, k, spectrum, sides, report, own)
    report("pairs", len(todo), len(todo))


def _solve_feature_pairs(plan: ManyPlan, todo, sides, report, timings, results):
    """The feature route: each model's map and floor once, the joint pass, every pair's
    eigenproblem, the shared score pass, then each pair's evidence. Returns the maps and
    floors by model."""
    import torch

    config = plan.config
    models = plan.models_on("features")
    with timed(timings, "feature maps"):
        maps, floors = fit_models(
            plan.rows,
            models,
            method=config.method,
            n_features=config.n_features,
            centre=config.centre,
            seed=config.seed,
            report=report,
        )
    cross = {_positions(models, plan.pairs[k]) for k in todo}  # (a, b), a < b: models sorted
    blocks = sorted(cross | {(a, a) for pair in cross for a in pair})
    job = JointFeatureJob(
        tuple(plan.rows[m] for m in models), maps, config.method in APPROXIMATIONS, tuple(blocks)
    )
    dims = sum(plan.rows[m].dim for m in models)
    step = plan.block_rows or _default_block_rows(job.width + dims)
    shared = SharedFeatures(job, models, floors, step=step)
    item = torch.finfo(plan.torch_dtype).bits // 8
    runner = None
    if plan.backend == "ray":
        from spec_core.engine.backends import RayRunner

        runner = RayRunner(plan.ray_address)
    try:
        pairs = [
            plan_pair(shared, *plan.pairs[k], eta=config.eta, dtype_bytes=item, runner=runner)
            for k in todo
        ]
        fits = plan.n_rows * job.width * item <= KEEP_MANY_BYTES
        keep = runner is None and (fits or any(p.small_n for p in pairs))
        with timed(timings, "features and joint Gram"):
            joint_pass(
                shared, runner, report, keep=keep, with_gram=not all(p.small_n for p in pairs)
            )
        own = [{} for _ in todo]
        for done, (pair, clock) in enumerate(zip(pairs, own, strict=True)):
            report("pairs", done, len(todo))
            with timed(clock, "eigen"), solver_errors():
                solve_pair(shared, pair, config=config, report=report)
        with timed(timings, "scores"):
            score_pass(shared, pairs, runner, report)
    finally:
        if runner is not None:
            runner.close()
    for k, pair, clock in zip(todo, pairs, own, strict=True):
        spectrum = pair.spectrum
        if spectrum.operator is None and config.stability:
            operator = pair_operator(shared, pair, centre=config.centre, seed=config.seed)
            spectrum = dataclasses.replace(spectrum, operator=operator)
        results[k] = pair_result(plan, k, spectrum, sides, report, clock)
        pair.spectrum = None  # its score vectors and operator go with it
    report("pairs", len(todo), len(todo))
    return dict(zip(models, maps, strict=True)), dict(zip(models, floors, strict=True))


def _positions(models: tuple[int, ...], pair: tuple[int, int]) -> tuple[int, int]:
    return models.index(pair[0]), models.index(pair[1])
