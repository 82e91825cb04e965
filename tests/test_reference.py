"""The reference point for SPEC-diff (spec_core.engine.reference): the same data with B's rows
shuffled, checked against a direct NumPy build of the shuffled kernels' difference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import direct_lambda

from spec_core.engine.reference import shuffled_rows, shuffled_spec_diff


@pytest.mark.parametrize("seed", [0, 3])
def test_shuffled_reference_matches_a_direct_build(clusters, seed):
    a, b, _ = clusters
    b.flags.writeable = False  # only read
    before = b.copy()
    reference = shuffled_spec_diff(
        a, b, sigma_a=2.0, sigma_b=1.5, method="exact", dtype="float64", centre=False, seed=seed
    )
    order = np.random.default_rng(seed).permutation(len(b))  # the documented permutation
    lam = direct_lambda(a, b[order], kernel="gaussian", sigma_a=2.0, sigma_b=1.5)
    assert reference.shuffled == pytest.approx(np.abs(np.linalg.eigvalsh(lam)).max(), abs=1e-10)
    assert reference.identical == 0.0 and reference.seed == seed and reference.seconds > 0
    np.testing.assert_array_equal(b, before)


def test_shuffling_is_seeded_and_moves_rows():
    order = shuffled_rows(360, 0)
    np.testing.assert_array_equal(order, shuffled_rows(360, 0))
    assert sorted(order) == list(range(360)) and (order != np.arange(360)).mean() > 0.9
    assert not np.array_equal(order, shuffled_rows(360, 1))


def test_identical_embeddings_give_zero_and_their_shuffle_does_not(clusters):
    """What the reference brackets: 0 for identical embeddings, and for A against its own rows
    shuffled the value of an unrelated pair (well above 0: the pairing is all that differs)."""
    import spec_core

    a, _, _ = clusters
    same = spec_core.compare(a, a, method="exact", dtype="float64", stability=False)
    shuffled = shuffled_spec_diff(a, a, method="exact", dtype="float64")
    assert same.spec_diff < 1e-12
    assert shuffled.shuffled > 1e3 * max(same.spec_diff, 1e-12)
