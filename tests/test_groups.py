"""Groups from the span of the top eigenvectors (spec_core.engine.groups, issue 16): the
rotation against a direct construction, the default's choice of grouping, and the golden cases
(identical embeddings: no finding; planted groups: exactly the planted groups)."""

from __future__ import annotations

import numpy as np
import pytest

import spec_core
from spec_core.engine.groups import grouping_for, rayleigh_quotients, span_groups


def _three_groups(seed: int = 0, *, spreads=(0.30, 0.31, 0.32)):
    """n = 300 rows that A and B embed alike (a wide 10-d cloud), except three groups of 30
    rows that A holds tight (spreads close to each other: eigenvalues within a few per cent,
    which a single eigenvector mixes under centring) and B leaves in the cloud."""
    rng = np.random.default_rng(seed)
    n, d = 300, 10
    b = 3.0 * rng.normal(size=(n, d))
    a = b.copy()
    labels = np.array(["cloud"] * n, dtype=object)
    for g, spread in enumerate(spreads):
        rows = np.arange(30 * g, 30 * (g + 1))
        a[rows] = 3.0 * rng.normal(size=d) + spread * rng.normal(size=(30, d))
        labels[rows] = f"g{g}"
    return a, b, labels


def test_span_rotation_recovers_mixed_indicators():
    """Lambda built directly from three disjoint group indicators, two of them coupled with
    close strengths: its eigenvectors mix those two groups; the span's most localised basis is
    the indicators again, each with its own u^T Lambda u (the strength), strongest first."""
    n = 90
    sizes = (10, 20, 30)
    indicators = np.zeros((n, 3))
    start = 0
    for j, size in enumerate(sizes):
        indicators[start : start + size, j] = 1 / np.sqrt(size)
        start += size
    strengths = np.array([0.5, 0.49, 0.4])
    coupling = 0.03 * (
        np.outer(indicators[:, 0], indicators[:, 1]) + np.outer(indicators[:, 1], indicators[:, 0])
    )
    lam = indicators @ np.diag(strengths) @ indicators.T + coupling
    values, vectors = np.linalg.eigh(lam)
    order = np.argsort(-values)[:3]
    values, vectors = values[order], vectors[:, order]
    assert np.abs(indicators.T @ vectors).max(axis=0).min() < 0.9  # the eigenvectors mix
    quotients, groups = span_groups(values, vectors, span=3)
    overlap = np.abs(indicators.T @ groups)
    assert np.allclose(overlap, np.eye(3), atol=1e-6)  # each one group, strongest first
    expected = np.array([groups[:, j] @ lam @ groups[:, j] for j in range(3)])
    assert np.allclose(quotients, expected, atol=1e-9)
    assert np.allclose(quotients, strengths, atol=1e-9)
    assert np.allclose(rayleigh_quotients(values, vectors, groups), expected, atol=1e-9)


def test_span_groups_leave_the_inputs_and_weak_vectors_alone():
    rng = np.random.default_rng(2)
    vectors = np.linalg.qr(rng.normal(size=(50, 6)))[0]
    values = np.array([0.3, 0.2, 0.001, -0.001, -0.2, -0.25])
    copy = vectors.copy()
    quotients, out = span_groups(values, vectors, floor=0.01, span=8)
    assert np.array_equal(vectors, copy)
    assert np.allclose(out[:, 2:4], vectors[:, 2:4])  # below the floor: as they were
    assert np.allclose(quotients[2:4], values[2:4])
    assert np.allclose(out.T @ out, np.eye(6), atol=1e-9)  # still orthonormal
    assert (quotients[:2] > 0).all() and (quotients[4:] < 0).all()
    assert quotients[0] >= quotients[1] and quotients[5] <= quotients[4]


def test_grouping_for_default_and_explicit_parameters():
    assert grouping_for("auto", centre=True, data_driven=True) == "span"
    assert grouping_for("auto", centre=False, data_driven=True) == "eigenvectors"
    assert grouping_for("auto", centre=True, data_driven=False) == "eigenvectors"
    assert grouping_for("span", centre=False, data_driven=False) == "span"
    assert grouping_for("eigenvectors", centre=True, data_driven=True) == "eigenvectors"


def test_unknown_grouping_is_refused_by_name():
    a, b, _ = _three_groups()
    with pytest.raises(ValueError, match="groups"):
        spec_core.compare(a, b, groups="clusters", stability=False, context=False)


def test_default_names_each_planted_group_once():
    """Three planted groups of 30 whose eigenvalues are within a few per cent: the old modes
    (one eigenvector each) merged two or three of them into one mode of ~60-90 rows; the
    default gives three modes, each exactly one planted group (purity 1.0, size within 20%),
    stable, none weak."""
    a, b, labels = _three_groups()
    result = spec_core.compare(a, b, n_modes=3, labels=list(labels), context=False)
    assert result.params.grouping == "span"
    modes = result.modes_for("A")
    found = set()
    for mode in modes:
        assert mode.purity == 1.0 and mode.majority_label != "cloud"
        assert 24 <= mode.size <= 36, mode.size
        truth = set(np.flatnonzero(labels == mode.majority_label).tolist())
        top = set(np.argsort(-mode.sample_scores)[:30].tolist())
        assert len(top & truth) >= 27  # the group's own rows lead its scores
        assert mode.stability >= 0.7 and not mode.weak, mode.weak_reasons
        found.add(mode.majority_label)
    assert found == {"g0", "g1", "g2"}
    quotients = [mode.eigenvalue for mode in modes]
    assert quotients == sorted(quotients, reverse=True)
    assert all(v <= result.eigenvalues.max() + 1e-9 for v in quotients)


def test_explicit_parameters_keep_the_eigenvectors():
    a, b, _ = _three_groups()
    given = spec_core.compare(a, b, sigma_a=1.0, sigma_b=1.0, stability=False, context=False)
    paper = spec_core.compare(a, b, centre=False, stability=False, context=False)
    assert given.params.grouping == paper.params.grouping == "eigenvectors"
    for result in (given, paper):
        for mode in result.modes:  # each mode's value is an eigenvalue of the spectrum
            assert np.min(np.abs(result.eigenvalues - mode.eigenvalue)) < 1e-9


def test_identical_embeddings_give_no_finding():
    a, _, _ = _three_groups()
    result = spec_core.compare(a, a.copy(), context=False)
    assert result.params.grouping == "span"
    assert result.spec_diff <= 1e-6
    assert all(mode.weak for mode in result.modes)
    assert not any(mode.above_noise_floor for mode in result.modes)


def test_planted_groups_on_the_feature_route():
    """The default on the feature route (Nystroem, linear in n), three planted groups of 40
    among 900 rows with close strengths: each A-not-B mode is exactly one group (purity 1.0,
    size within 20%), stable (the old modes, one eigenvector each, read 81-86 rows for two of
    them: two groups mixed)."""
    rng = np.random.default_rng(4)
    n, d = 900, 10
    b = 3.0 * rng.normal(size=(n, d))
    a = b.copy()
    labels = np.array(["cloud"] * n, dtype=object)
    for g, spread in enumerate((0.30, 0.31, 0.32)):
        rows = np.arange(40 * g, 40 * (g + 1))
        a[rows] = 3.0 * rng.normal(size=d) + spread * rng.normal(size=(40, d))
        labels[rows] = f"g{g}"
    result = spec_core.compare(
        a, b, method="nystrom", n_features=300, n_modes=3, labels=list(labels), context=False
    )
    assert result.params.route == "features" and result.params.grouping == "span"
    modes = result.modes_for("A")
    assert {mode.majority_label for mode in modes} == {"g0", "g1", "g2"}
    for mode in modes:
        assert mode.purity == 1.0 and 32 <= mode.size <= 48, (mode.label, mode.size)
        assert mode.stability >= 0.9 and not mode.weak, mode.weak_reasons


@pytest.mark.parametrize("grouping", ["span", "eigenvectors"])
def test_embeddings_that_differ_only_by_noise_claim_no_group(grouping):
    """B = A + 1% noise (linear CKA 1.000): the spectrum is not zero, but every mode is only
    a noise-level difference and must be weak (an attack found ten unflagged span groups)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16))
    b = a + rng.normal(scale=0.01, size=a.shape)
    result = spec_core.compare(a, b, method="exact", groups=grouping)
    assert result.modes
    assert all(mode.weak for mode in result.modes)
    assert any("barely tighter" in " ".join(mode.weak_reasons) for mode in result.modes)
