"""The stability resamples solved together: one wide product per Krylov round for all of them.

Each resample is the eigenproblem of Lambda restricted to a subset S of the pool's rows (centred
there when the comparison is: H_S Lambda_SS H_S), solved from the comparison's own vectors by a
few Krylov steps (spec_core.engine.evidence). Solved one at a time, every step is a narrow
product (a principal submatrix, or the subset's features, times some 24 columns) and each
resample first copies its submatrix out. Here the resamples run in lockstep
(linalg.drive_together): at each round the blocks of every resample still running are placed
in the rows of their subsets within one pool-tall matrix (zero elsewhere), multiplied by the
whole pool's Lambda (or Psi S Psi^T) at once, and each resample reads back its own rows. A
block that is zero outside S, times the whole matrix, read on S, is exactly the submatrix
product, so each resample takes the same steps it would alone; only round-off differs. The
extension of each resample's vectors to every row of the pool is one wide product too.

An operator batches when it says so (`batched`) and multiplies a pool-tall matrix
(`multiply_pool`); otherwise (a dense Lambda larger than its pool) each resample is solved
alone, from its own submatrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from spec_core.engine.linalg import ExtremeEigs

#: Krylov expansions per resample, from the comparison's own vectors (a warm start close to
#: the answer): enough to follow a mode that moves, a fixed cost whatever the spectrum.
RESAMPLE_STEPS = 4


def solve_resamples(
    operator,
    subsets: list,
    starts: list,
    *,
    n_each: int,
    seed: int,
    max_steps: int = RESAMPLE_STEPS,
) -> list[tuple[ExtremeEigs, torch.Tensor]]:
    """Every resample's n_each largest and smallest eigenpairs (resample r seeded seed + r,
    started from starts[r], at most max_steps Krylov expansions) and its vectors extended to the whole pool by the eigen-equation
    (operator.extend): solved together when the operator batches, else one at a time."""
    from spec_core.engine.linalg import drive, drive_together, krylov_steps

    batched = bool(getattr(operator, "batched", False))
    solvers, ops = [], []
    for r, (subset, start) in enumerate(zip(subsets, starts, strict=True)):
        op, dense = operator.submatrix_op(subset, lazy=batched)
        ops.append(op)
        solvers.append(
            krylov_steps(
                len(subset),
                k_top=n_each,
                k_bottom=n_each,
                dense=dense,
                dtype=operator.dtype,
                device=operator.device,
                seed=seed + r,
                tol=1e-2,  # member sets, not digits
                value_tol=1e-1,
                start=start,
                max_steps=max_steps,
            )
        )
    if not batched:
        answers = [drive(solver, op) for solver, op in zip(solvers, ops, strict=True)]
        return [
            (eigs, operator.extend(subset, eigs.vectors, eigs.values))
            for eigs, subset in zip(answers, subsets, strict=True)
        ]

    def batch(requests):
        chosen = [subsets[index] for index, _, _ in requests]
        blocks = [block for _, block, _ in requests]
        return masked_products(
            operator.size, chosen, blocks, operator.multiply_pool, centre=operator.centre
        )

    answers = drive_together(solvers, batch)
    extended = extend_together(operator, subsets, answers)
    return list(zip(answers, extended, strict=True))


def masked_products(
    pool_n: int,
    subsets: list[torch.Tensor],
    blocks: list[torch.Tensor],
    multiply: Callable[[torch.Tensor], torch.Tensor],
    *,
    centre: bool,
) -> list[torch.Tensor]:
    """Each block (its rows: its subset's, in order) times the operator restricted to its
    subset, by one call of `multiply` (the whole pool's operator times a pool_n-tall matrix).
    Centred: H_S M_SS H_S, each block centred on S first and each product centred on S after."""
    product = multiply(_placed(pool_n, subsets, blocks, centre))
    out, column = [], 0
    for subset, block in zip(subsets, blocks, strict=True):
        part = product[subset, column : column + block.shape[1]]
        out.append(part - part.mean(dim=0) if centre else part)
        column += block.shape[1]
    return out


def extend_together(operator, subsets: list, answers: list) -> list[torch.Tensor]:
    """Each resample's vectors extended to every row of the pool by the eigen-equation,
    u = M[:, S] u_S / theta (centred over the pool when the comparison is), in one product."""
    blocks = [eigs.vectors.to(operator.dtype) for eigs in answers]
    product = operator.multiply_pool(_placed(operator.size, subsets, blocks, operator.centre))
    out, column = [], 0
    for eigs in answers:
        width = eigs.vectors.shape[1]
        part = product[:, column : column + width] / eigs.values.to(product.dtype)
        out.append(part - part.mean(dim=0) if operator.centre else part)
        column += width
    return out


def _placed(pool_n: int, subsets, blocks, centre: bool) -> torch.Tensor:
    """The blocks side by side in one pool_n-tall matrix, each in its subset's rows (centred
    on them when `centre`), zero elsewhere."""
    wide = blocks[0].new_zeros(pool_n, sum(int(block.shape[1]) for block in blocks))
    column = 0
    for subset, block in zip(subsets, blocks, strict=True):
        width = int(block.shape[1])
        wide[subset, column : column + width] = block - block.mean(dim=0) if centre else block
        column += width
    return wide
