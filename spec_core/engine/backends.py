"""Where the feature route's two passes over the rows run: in this process, or as Ray tasks.

The feature route reads the rows twice (spec_core.engine.solve.solve_features):
1. the Gram reduce: C = sum over row blocks of Psi_block^T Psi_block, and the column sums of Psi;
2. the score projection: u = Psi v for the few eigenvectors that become modes.
Both are functions of a `FeatureJob` (the two embeddings' rows as the kernels see them, the
fitted feature maps, sqrt(eta)) and a row range, so any backend can run them anywhere: a job is
plain data (arrays, seeds, landmarks, shard paths) that pickles.

- "local": the engine's own loop (it also keeps the features between passes when they fit).
- "ray": one task per row range (a shard of a ShardedMatrix, or an equal share of the rows),
  on a running cluster (`ray_address`) or a local Ray started here; the Gram parts are summed
  as they arrive (float64), the score blocks placed in row order. The job goes into Ray's
  object store once; in-memory arrays are shared with the workers, shards are re-opened by
  each task from their files. Tasks use the job's device (a CUDA job asks for one GPU a task).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core import checks as v

if TYPE_CHECKING:
    import torch

    from spec_core.engine.rows import KernelRows

BACKENDS = ("local", "ray")
#: Without shards, the ray backend splits the rows into this many ranges per CPU of the cluster.
RANGES_PER_CPU = 2


@dataclass
class FeatureJob:
    """What a pass over rows start:stop needs: the rows of A and B, their fitted feature maps,
    sqrt(eta), whether the Gram is an approximation's (then kept in the compute dtype before the
    float64 sum) and the width of A's features."""

    rows_a: KernelRows
    rows_b: KernelRows
    maps: tuple[Any, Any]
    root_eta: float
    approx: bool

    @property
    def dim_a(self) -> int:
        return int(self.maps[0].n_features_)

    @property
    def width(self) -> int:
        return self.dim_a + int(self.maps[1].n_features_)

    def features(self, start: int, stop: int) -> torch.Tensor:
        """Psi of rows start:stop."""
        block_a, block_b = self.rows_a.block(start, stop), self.rows_b.block(start, stop)
        return self._stack(block_a, block_b)

    def features_at(self, rows: np.ndarray) -> torch.Tensor:
        """Psi at the given rows (indices), e.g. a seeded sample."""
        return self._stack(self.rows_a.take(rows), self.rows_b.take(rows))

    def _stack(self, prepared_a: torch.Tensor, prepared_b: torch.Tensor) -> torch.Tensor:
        """Psi = [phi_A, sqrt(eta) phi_B] of the same rows of A and B, prepared by KernelRows."""
        return stack_pair(
            self.maps[0].transform(prepared_a), self.maps[1].transform(prepared_b), self.root_eta
        )

    def gram_part(self, start: int, stop: int, step: int):
        return gram_part(self, start, stop, step)

    def score_part(self, coeffs, start: int, stop: int, step: int):
        return score_part(self, coeffs, start, stop, step)


def stack_pair(phi_a: torch.Tensor, phi_b: torch.Tensor, root_eta: float) -> torch.Tensor:
    """Psi = [phi_A, sqrt(eta) phi_B] of one block of rows."""
    import torch

    return torch.cat([phi_a, phi_b * root_eta], 1)


@dataclass
class JointFeatureJob:
    """What a pass over rows start:stop needs when several embeddings share it (compare_many):
    each one's rows and fitted feature map, whether the Gram is an approximation's (then kept in
    the compute dtype before the float64 sum, as FeatureJob's), and the blocks of the joint Gram
    that the pairs need ((i, j), i <= j, positions in `rows`)."""

    rows: tuple[KernelRows, ...]
    maps: tuple[Any, ...]
    approx: bool
    blocks: tuple[tuple[int, int], ...]

    @property
    def rows_a(self) -> KernelRows:
        """The first embedding's rows: where the ranges and the device come from."""
        return self.rows[0]

    @property
    def offsets(self) -> list[int]:
        """Where each embedding's features start in the joint Gram (and its width at the end)."""
        ends = np.cumsum([0] + [int(m.n_features_) for m in self.maps])
        return [int(x) for x in ends]

    @property
    def width(self) -> int:
        return self.offsets[-1]

    def features(self, start: int, stop: int) -> list[torch.Tensor]:
        """Each embedding's features phi of rows start:stop."""
        pairs = zip(self.rows, self.maps, strict=True)
        return [fmap.transform(rows.block(start, stop)) for rows, fmap in pairs]

    def gram_part(self, start: int, stop: int, step: int):
        """(the joint Gram's blocks Phi_i^T Phi_j, the column sums), over rows start:stop in
        blocks of `step` rows, float64 on the CPU (what a task returns)."""
        import torch

        device = self.rows_a.device
        gram = torch.zeros(self.width, self.width, device=device, dtype=torch.float64)
        sums = torch.zeros(self.width, device=device, dtype=torch.float64)
        for first in range(start, stop, step):
            add_joint_gram(self, gram, sums, self.features(first, min(first + step, stop)))
        return gram.cpu(), sums.cpu()

    def score_part(self, coeffs, start: int, stop: int, step: int):
        """Every pair's unnormalised scores over rows start:stop, side by side (`coeffs`: one
        (i, j, sqrt(eta), coefficients) per pair), on the CPU."""
        import torch

        parts = []
        for first in range(start, stop, step):
            phis = self.features(first, min(first + step, stop))
            parts.append(torch.cat(pair_scores(phis, coeffs), 1))
        return torch.cat(parts).cpu()


def add_joint_gram(job: JointFeatureJob, gram, sums, phis) -> None:
    """gram += the blocks Phi_i^T Phi_j the job names, and sums += the column sums, for one block
    of rows: each block one matrix product of the same shape and the same operands as
    add_gram's for a pair (so a pair's blocks are the ones `compare` sums)."""
    import torch

    psi = torch.cat(phis, 1)
    sums += psi.sum(dim=0, dtype=torch.float64)
    if not job.approx:  # exact maps: float64 products, as in the pair's Gram pass
        psi = psi.double()
    ends = job.offsets
    for i, j in job.blocks:
        rows_i, cols_j = slice(ends[i], ends[i + 1]), slice(ends[j], ends[j + 1])
        if i == j:  # as add_gram's diagonal blocks
            add_symmetric(gram[rows_i, rows_i], psi[:, rows_i])
            continue
        product = (psi[:, rows_i].T @ psi[:, cols_j]).double()
        gram[rows_i, cols_j] += product
        gram[cols_j, rows_i] += product.T


def pair_scores(phis, coeffs) -> list[torch.Tensor]:
    """Psi v of one block of rows for each pair (i, j, sqrt(eta), v) in `coeffs`."""
    return [stack_pair(phis[i], phis[j], root_eta) @ v for i, j, root_eta, v in coeffs]


def add_gram(gram: torch.Tensor, psi: torch.Tensor, dim_a: int) -> None:
    """gram += Psi^T Psi for one row block: the two diagonal blocks by their upper triangles
    (add_symmetric) and one off-diagonal block as a single product (C is symmetric)."""
    psi_a, psi_b = psi[:, :dim_a], psi[:, dim_a:]
    add_symmetric(gram[:dim_a, :dim_a], psi_a)
    add_symmetric(gram[dim_a:, dim_a:], psi_b)
    cross = (psi_a.T @ psi_b).double()
    gram[:dim_a, dim_a:] += cross
    gram[dim_a:, :dim_a] += cross.T


#: add_symmetric cuts the columns into about this many blocks (at least SYMMETRIC_MIN_COLUMNS
#: wide): (1 + 1 / blocks) / 2 of the whole product's work.
SYMMETRIC_BLOCKS = 8
SYMMETRIC_MIN_COLUMNS = 128


def add_symmetric(target: torch.Tensor, x: torch.Tensor) -> None:
    """target += x^T x (float64), by column blocks of its upper triangle, each mirrored."""
    width = x.shape[1]
    step = max(SYMMETRIC_MIN_COLUMNS, -(-width // SYMMETRIC_BLOCKS))
    for start in range(0, width, step):
        stop = min(start + step, width)
        part = (x[:, start:stop].T @ x[:, start:]).double()
        target[start:stop, start:] += part
        target[stop:, start:stop] += part[:, stop - start :].T


def gram_part(job: FeatureJob, start: int, stop: int, step: int):
    """(Psi^T Psi, Psi^T 1) over rows start:stop, in blocks of `step` rows, as float64 on the
    CPU (what a task returns)."""
    import torch

    device = job.rows_a.device
    gram = torch.zeros(job.width, job.width, device=device, dtype=torch.float64)
    sums = torch.zeros(job.width, device=device, dtype=torch.float64)
    for first in range(start, stop, step):
        psi = job.features(first, min(first + step, stop))
        sums += psi.sum(dim=0, dtype=torch.float64)
        add_gram(gram, psi if job.approx else psi.double(), job.dim_a)
    return gram.cpu(), sums.cpu()


def score_part(job: FeatureJob, coeffs: torch.Tensor, start: int, stop: int, step: int):
    """Psi @ coeffs over rows start:stop (the unnormalised scores), on the CPU."""
    import torch

    coeffs = coeffs.to(job.rows_a.device)
    parts = [job.features(f, min(f + step, stop)) @ coeffs for f in range(start, stop, step)]
    return torch.cat(parts).cpu()


def check_backend(backend: str, ray_address: str | None) -> None:
    v.check_choice("backend", backend, BACKENDS)
    if ray_address is not None and backend != "ray":
        raise ValueError("ray_address is only used with backend='ray'")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError(
                "backend='ray' needs Ray: pip install 'ray[data]' (or use backend='local')"
            ) from None


def row_ranges(rows: KernelRows, n_ranges: int) -> list[tuple[int, int]]:
    """The shards of a ShardedMatrix, or n_ranges equal shares of the rows."""
    from spec_core.data.shards import ShardedMatrix

    if isinstance(rows.data, ShardedMatrix):
        return [(first, end) for _, first, end in rows.data.ranges()]
    n = rows.n_rows
    bounds = np.linspace(0, n, max(1, min(n_ranges, n)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds.tolist()) if b > a]


class RayRunner:
    """Runs gram_part / score_part as Ray tasks. Connects to `address` (a running cluster), or
    starts a local Ray on this machine (and shuts it down on close)."""

    def __init__(self, address: str | None = None):
        import ray

        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if address is None:
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
                self.started = True
            else:
                ray.init(address=address, log_to_driver=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.n_ranges = max(1, cpus * RANGES_PER_CPU)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()

    def _options(self, job: FeatureJob) -> dict:
        return {"num_gpus": 1} if job.rows_a.device.type == "cuda" else {}

    def gram(self, job, step: int, report):
        """The job's Gram parts over every range, summed (float64) as they arrive (a FeatureJob
        or a JointFeatureJob)."""
        import torch

        ray = self.ray
        ranges = row_ranges(job.rows_a, self.n_ranges)
        job_ref = ray.put(job)
        task = ray.remote(_gram_task).options(**self._options(job))
        pending = [task.remote(job_ref, a, b, step) for a, b in ranges]
        gram = torch.zeros(job.width, job.width, dtype=torch.float64)
        sums = torch.zeros(job.width, dtype=torch.float64)
        done = 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            part, part_sums = ray.get(ready[0])
            gram += part
            sums += part_sums
            done += 1
            report("features (ray)", done, len(ranges))
        device = job.rows_a.device
        return gram.to(device), sums.to(device)

    def scores(self, job, coeffs, step: int, report):
        """The job's score parts over every range, in row order (`coeffs`: a tensor for a
        FeatureJob, one (i, j, sqrt(eta), tensor) per pair for a JointFeatureJob)."""
        import torch

        ray = self.ray
        ranges = row_ranges(job.rows_a, self.n_ranges)
        job_ref, coeffs_ref = ray.put(job), ray.put(_on_cpu(coeffs))
        task = ray.remote(_score_task).options(**self._options(job))
        refs = [task.remote(job_ref, coeffs_ref, a, b, step) for a, b in ranges]
        out = None
        for i, ((a, b), ref) in enumerate(zip(ranges, refs, strict=True)):
            part = ray.get(ref)
            if out is None:
                out = torch.empty(job.rows_a.n_rows, part.shape[1], dtype=part.dtype)
            out[a:b] = part
            report("scores (ray)", i + 1, len(ranges))
        return out.to(job.rows_a.device)


def _on_cpu(coeffs):
    """Tensors (alone, or inside tuples) moved to the CPU for the object store."""
    if isinstance(coeffs, tuple | list):
        return tuple(_on_cpu(item) for item in coeffs)
    return coeffs.cpu() if hasattr(coeffs, "cpu") else coeffs


def _gram_task(job, start: int, stop: int, step: int):
    return job.gram_part(start, stop, step)


def _score_task(job, coeffs, start: int, stop: int, step: int):
    return job.score_part(coeffs, start, stop, step)


# ---------------------------------------------------------------------------------------------
# Embedding with Ray Data
