"""A reference point for SPEC-diff: the value the same data gives when the two embeddings are
unrelated (the rows of B shuffled by a seeded permutation), beside 0 for identical embeddings.

SPEC-diff alone has no scale a reader knows (0.0079 on one pair, 0.34 on another): whether it is
large depends on the data and the bandwidths. Shuffling B's rows keeps each embedding's own
geometry (its kernel's spectrum, its bandwidth) and breaks only the pairing of rows, so the
shuffled value is what two embeddings that agree on nothing give on this data; identical
embeddings give 0 (K_A - K_B = 0)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spec_core.engine.compare import compare


@dataclass(frozen=True)
class SpecDiffReference:
    """SPEC-diff of A against B with B's rows shuffled (`shuffled`), with the permutation's
    `seed`; `identical` is SPEC-diff for identical embeddings (0 by definition); `seconds` the
    time the extra solve took."""

    shuffled: float
    seed: int
    seconds: float
    identical: float = 0.0


def shuffled_rows(n_rows: int, seed: int) -> np.ndarray:
    """The seeded permutation of B's rows (numpy's Generator, so the same on every platform)."""
    return np.random.default_rng(seed).permutation(n_rows)


def shuffled_spec_diff(emb_a: np.ndarray, emb_b: np.ndarray, **params) -> SpecDiffReference:
    """SPEC-diff of `emb_a` against `emb_b` with B's rows permuted by `params`' seed (default
    0, which also seeds the solve), with the SPEC parameters `params` (`compare`'s keywords;
    pass the bandwidths a comparison used so that both values are on the same kernels).
    The inputs are only read (B is copied in its shuffled order). Costs one more solve,
    without the stability resamples, the context metrics or labels."""
    import time

    clock = time.perf_counter()
    seed = int(params.get("seed", 0))
    order = shuffled_rows(len(emb_b), seed)
    shuffled = np.asarray(emb_b)[order]
    params = {**params, "stability": False, "context": False, "n_modes": 1}
    params.pop("labels", None)
    result = compare(emb_a, shuffled, **params)
    return SpecDiffReference(
        shuffled=result.spec_diff, seed=seed, seconds=time.perf_counter() - clock
    )
