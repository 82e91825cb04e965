"""The pieces `compare_many` computes once per model, and every pair's spectrum from them.

Built from the pairwise routes' own steps (spec_core.engine.solve), so that a pair solved here
is the pair `compare` solves:

- kernel route (exact): each model's n x n kernel matrix once (the same row blocks as
  solve_kernel, upper triangle mirrored); a pair's Lambda = (K_A - eta K_B) / n from two of
  them, then its extreme eigenpairs. Each pair's matrix is made, solved and dropped in turn.
- feature route: each model's feature map once (the same seeded map `compare` draws for it,
  whatever it is compared with) and its approximation floor once; then ONE pass over the row
  blocks computes every model's features and the joint Gram Phi^T Phi of all of them (only the
  blocks the pairs use; each block the same matrix product a pair's Gram pass makes). A pair's
  C is four blocks of it (B's scaled by eta, the cross blocks by sqrt(eta)); its small
  eigenproblem is solve._solve_gram's. A second shared pass projects the rows on every pair's
  eigenvectors at once (the scores); a pair with fewer rows than features takes the n x n
  route from the shared features, as `compare` would.

With eta = 1 and the same row blocks (`block_rows`), a feature-route pair's C, and so its
eigenvalues, are the very numbers `compare` computes; with other blocks they agree to the
round-off of the float32 products (the blocks are summed in another order).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from spec_core.config import APPROXIMATIONS
from spec_core.engine.backends import JointFeatureJob, add_joint_gram, pair_scores, stack_pair
from spec_core.engine.evidence import DenseOperator, FeatureOperator
from spec_core.engine.rows import KernelRows
from spec_core.engine.solve import (
    FLOOR_VALUE_SHARE,
    FLOOR_VECTOR_SHARE,
    KEEP_FEATURES_BYTES,
    Spectrum,
    _centre_dense,
    _default_block_rows,
    _dense_extremes,
    _fit_map,
    _lambda_from_rows,
    _numeric_floor,
    _solve_gram,
    finish_scores,
    map_floor,
    score_coeffs,
)

if TYPE_CHECKING:
    import torch

#: compare_many keeps every model's features between its two passes up to this many bytes in
#: all (else the score pass computes them again, one block at a time).
KEEP_MANY_BYTES = 2 * KEEP_FEATURES_BYTES


# ---------------------------------------------------------------------------------------------
# Kernel route


def kernel_matrix(rows: KernelRows, *, block_rows: int | None, report, name: str) -> torch.Tensor:
    """One model's n x n kernel matrix, by the row blocks solve_kernel uses (the upper triangle
    mirrored; each diagonal square exactly symmetric)."""
    import torch

    n = rows.n_rows
    data = rows.all()
    matrix = torch.empty(n, n, device=rows.device, dtype=rows.dtype)
    step = block_rows or _default_block_rows(n)
    total, done = n * (n + 1) // 2, 0
    for start in range(0, n, step):
        stop = min(start + step, n)
        report(f"kernel matrix {name}", done, total)
        block = rows.matrix(data[start:stop], data[start:])
        matrix[start:stop, start:] = block
        matrix[start:, start:stop] = block.T
        square = matrix[start:stop, start:stop]
        matrix[start:stop, start:stop] = (square + square.T) / 2
        done += (stop - start) * (n - start)
    report(f"kernel matrix {name}", total, total)
    return matrix


def kernel_pair(
    matrix_a, matrix_b, *, eta, centre, n_eigenvalues, n_modes, seed, report
) -> Spectrum:
    """A pair's spectrum on the kernel route from the two models' kernel matrices."""
    import torch

    n, dtype, device = matrix_a.shape[0], matrix_a.dtype, matrix_a.device
    lam = torch.sub(matrix_a, matrix_b, alpha=eta).div_(n)
    if centre:
        _centre_dense(lam)
    eigs = _dense_extremes(lam, n_eigenvalues, n_modes, dtype, device, seed, report)
    operator = DenseOperator(lam, centre, seed=seed)
    floor = _numeric_floor(dtype, eta)
    return Spectrum(eigs.values, eigs.vectors, eigs.solver, (None, None), operator, floor)


# ---------------------------------------------------------------------------------------------
# Feature route


@dataclass
class SharedFeatures:
    """The feature route's shared pieces: the job over the models on this route (`models`: their
    positions among all models), each model's approximation floor (None when exact), the joint
    Gram (float64; None when no pair needs it) and column means, the kept feature blocks
    (`kept[b][m]`: block b of model m; empty when not kept) and the rows per block."""

    job: JointFeatureJob
    models: tuple[int, ...]
    floors: tuple[float | None, ...]
    gram: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    kept: list[list[torch.Tensor]] = field(default_factory=list)
    step: int = 0

    def position(self, model: int) -> int:
        return self.models.index(model)

    @property
    def n_rows(self) -> int:
        return self.job.rows_a.n_rows


def fit_models(rows: Sequence[KernelRows], models, *, method, n_features, centre, seed, report):
    """Each model's feature map (solve._fit_map: the map `compare` draws for it) and, for an
    approximation, its own noise floor (solve.map_floor)."""
    maps, floors = [], []
    for done, model in enumerate(models):
        report("feature maps", done, len(models))
        fmap = _fit_map(rows[model], method, n_features, seed)
        maps.append(fmap)
        floor = None
        if method in APPROXIMATIONS:
            floor = map_floor(rows[model], fmap, centre=centre, seed=seed)
        floors.append(floor)
    report("feature maps", len(models), len(models))
    return tuple(maps), tuple(floors)


def joint_pass(shared: SharedFeatures, runner, report, *, keep: bool, with_gram: bool) -> None:
    """The first pass over the rows: every model's features once per block, the joint Gram's
    blocks (with_gram) and the column sums; the feature blocks kept when `keep`."""
    import torch

    job, n = shared.job, shared.n_rows
    device = job.rows_a.device
    if runner is not None:
        gram, sums = runner.gram(job, shared.step, report)
    else:
        shape = (job.width, job.width)
        gram = torch.zeros(shape, device=device, dtype=torch.float64)
        sums = torch.zeros(job.width, device=device, dtype=torch.float64)
        full = job if with_gram else JointFeatureJob(job.rows, job.maps, job.approx, ())
        for start in range(0, n, shared.step):
            report("features and joint Gram", start, n)
            phis = job.features(start, min(start + shared.step, n))
            add_joint_gram(full, gram, sums, phis)
            if keep:
                shared.kept.append(phis)
    report("features and joint Gram", n, n)
    shared.gram = gram if with_gram else None
    shared.mean = sums / n


@dataclass
class FeaturePair:
    """One pair on the feature route while it is solved: its models' positions in the shared
    job, sqrt(eta), its noise floor, whether `compare` would keep its features (`keep`) and
    take the n x n route (`small_n`), and what solving it gave: a finished Spectrum (n x n
    route), or the eigenpairs whose scores the shared score pass computes."""

    a: int
    b: int
    root_eta: float
    floor: float
    keep: bool
    small_n: bool
    eigs: object = None
    wanted: object = None
    coeffs: object = None
    offset: object = None
    spectrum: Spectrum | None = None


def plan_pair(shared: SharedFeatures, model_a: int, model_b: int, *, eta, dtype_bytes, runner):
    """A FeaturePair with the choices `compare` makes for it (solve.solve_features)."""
    a, b = shared.position(model_a), shared.position(model_b)
    maps = shared.job.maps
    width = int(maps[a].n_features_) + int(maps[b].n_features_)
    n = shared.n_rows
    keep = runner is None and n * width * dtype_bytes <= KEEP_FEATURES_BYTES
    floors = shared.floors
    if floors[a] is None:
        floor = _numeric_floor(shared.job.rows_a.dtype, eta)
    else:
        floor = max(floors[a], eta * floors[b])
    return FeaturePair(a, b, eta**0.5, floor, keep, keep and n <= width)


def solve_pair(shared: SharedFeatures, pair: FeaturePair, *, config, report) -> None:
    """The pair's eigenproblem from the shared pieces: its C (four blocks of the joint Gram) and
    solve._solve_gram, or on the n x n route its Lambda from the shared features."""
    import torch

    job, n = shared.job, shared.n_rows
    device, dtype = job.rows_a.device, job.rows_a.dtype
    approx = job.approx
    floors = {}
    if approx:
        floors = {
            "abs_tol": FLOOR_VECTOR_SHARE * pair.floor,
            "abs_value_tol": FLOOR_VALUE_SHARE * pair.floor,
        }
    ends = job.offsets
    span_a, span_b = slice(ends[pair.a], ends[pair.a + 1]), slice(ends[pair.b], ends[pair.b + 1])
    dim_a = span_a.stop - span_a.start
    mean = torch.cat([shared.mean[span_a], pair.root_eta * shared.mean[span_b]])
    common = {
        "n_eigenvalues": config.n_eigenvalues,
        "n_modes": config.n_modes,
        "seed": config.seed,
        "report": report,
    }
    maps = (job.maps[pair.a], job.maps[pair.b])
    if pair.small_n:
        blocks = [stack_pair(phis[pair.a], phis[pair.b], pair.root_eta) for phis in _blocks(shared)]
        lam = _lambda_from_rows(blocks, mean, dim_a, centre=config.centre)
        eigs = _dense_extremes(
            lam,
            config.n_eigenvalues,
            config.n_modes,
            dtype,
            device,
            config.seed,
            report,
            approx,
            **floors,
        )
        operator = DenseOperator(lam, config.centre, seed=config.seed)
        pair.spectrum = Spectrum(eigs.values, eigs.vectors, eigs.solver, maps, operator, pair.floor)
        return
    gram, eta = shared.gram, pair.root_eta**2
    cross = gram[span_a, span_b] * pair.root_eta
    pair_gram = torch.cat(
        [
            torch.cat([gram[span_a, span_a], cross], 1),
            torch.cat([cross.T, gram[span_b, span_b] * eta], 1),
        ]
    )
    pair.eigs = _solve_gram(
        pair_gram,
        mean,
        dim_a,
        n,
        centre=config.centre,
        approx=approx,
        dtype=dtype,
        device=device,
        **common,
        **floors,
    )
    pair.wanted, pair.coeffs, pair.offset = score_coeffs(
        pair.eigs, mean, n_modes=config.n_modes, centre=config.centre, dtype=dtype
    )


def _blocks(shared: SharedFeatures):
    """Every model's features, block by block: the kept ones, else computed again."""
    if shared.kept:
        yield from shared.kept
        return
    n = shared.n_rows
    for start in range(0, n, shared.step):
        yield shared.job.features(start, min(start + shared.step, n))


def score_pass(shared: SharedFeatures, pairs: Sequence[FeaturePair], runner, report) -> None:
    """The second pass over the rows, shared: every pair's unit score vectors u = Psi v at
    once (each model's features computed once per block, or kept), then each pair's
    Spectrum with the operator its stability resamples use."""
    import torch

    todo = [pair for pair in pairs if pair.spectrum is None]
    if not todo:
        return
    job, n = shared.job, shared.n_rows
    coeffs = tuple((p.a, p.b, p.root_eta, p.coeffs) for p in todo)
    if runner is not None:
        together = runner.scores(job, coeffs, shared.step, report)
        widths = [int(p.coeffs.shape[1]) for p in todo]
        parts = list(torch.split(together, widths, dim=1))
    else:
        device, dtype = job.rows_a.device, job.rows_a.dtype
        parts = [torch.empty(n, p.coeffs.shape[1], device=device, dtype=dtype) for p in todo]
        start = 0
        for phis in _blocks(shared):
            report("scores", start, n)
            stop = start + phis[0].shape[0]
            for part, scores in zip(parts, pair_scores(phis, coeffs), strict=True):
                part[start:stop] = scores
            start = stop
    report("scores", n, n)
    for pair, scores in zip(todo, parts, strict=True):
        vectors = finish_scores(scores.contiguous(), pair.offset, pair.wanted)
        maps = (job.maps[pair.a], job.maps[pair.b])
        pair.spectrum = Spectrum(
            pair.eigs.values, vectors, pair.eigs.solver, maps, None, pair.floor
        )


def pair_operator(shared: SharedFeatures, pair: FeaturePair, *, centre: bool, seed: int):
    """The stability resamples' operator of a feature-route pair, over the pool of rows
    `compare` would draw (FeatureOperator.pool_for), from the shared features."""
    import torch

    job, n = shared.job, shared.n_rows
    maps = job.maps
    width = int(maps[pair.a].n_features_) + int(maps[pair.b].n_features_)
    pool = FeatureOperator.pool_for(
        n, None if pair.keep else width, seed=seed, pool_bytes=KEEP_FEATURES_BYTES
    )
    if shared.kept:
        index = None if pool is None else torch.from_numpy(pool).to(job.rows_a.device)
        phis = []
        for model in (pair.a, pair.b):
            every = torch.cat([block[model] for block in shared.kept])
            phis.append(every if index is None else every[index])
    else:
        rows = range(n) if pool is None else pool
        phis = [maps[m].transform(job.rows[m].take(rows)) for m in (pair.a, pair.b)]
    psi = stack_pair(phis[0], phis[1], pair.root_eta)
    return FeatureOperator(psi, int(maps[pair.a].n_features_), centre, pool)


def timed(timings: dict[str, float], stage: str):
    """A context manager adding the seconds of its block to timings[stage]."""
    import contextlib

    @contextlib.contextmanager
    def clock():
        start = time.perf_counter()
        try:
            yield
        finally:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start

    return clock()
