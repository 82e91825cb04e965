"""Each mode's evidence (size, contrast, stability, purity, weak reasons), kernel centring, the
descriptions and the scale sweep: against closed forms and direct NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import direct_lambda, planted

import spec_core.engine.evidence as evidence
import spec_core.engine.operators as operators
from spec_core import compare
from spec_core.engine.describe import contrastive_terms, describe_members
from spec_core.engine.evidence import DenseOperator, FeatureOperator, participation_ratio
from spec_core.engine.scales import scale_sweep

N = 200
GROUP_A = list(range(10, 40))  # 30 rows, rho 0.8 in A
GROUP_B = list(range(60, 80))  # 20 rows, rho 0.9 in B


@pytest.fixture
def planted_pair():
    return planted(N, {range(10, 40): 0.8}, {range(60, 80): 0.9})


def test_participation_ratio_counts_rows():
    u = np.zeros(50)
    u[:7] = 3.0
    assert participation_ratio(u) == pytest.approx(7.0)
    assert participation_ratio(np.zeros(5)) == 0.0
    # a centred indicator: the non-members' common negative score is the bulk, not members
    centred = np.r_[np.full(30, 1.0), np.full(90, -30 / 90)]
    assert participation_ratio(centred) == pytest.approx(30.0)
    # Gaussian scores are broad: the n/2 rows above the median, E x^2 = 1, E x^4 = 3: n/6
    gaussian = np.random.default_rng(0).normal(size=30_000)
    assert participation_ratio(gaussian) == pytest.approx(5_000, rel=0.05)
    # a linear gradient: n/2 rows uniform on [0, 1] above the median: (n/2) (1/9) / (1/5)
    assert participation_ratio(np.linspace(-1, 1, 36_001)) == pytest.approx(10_000, rel=1e-3)
    # one group set against nine others (a centred kernel's contrast of equal groups): the group
    contrast = np.r_[np.full(40, 0.9), np.full(360, -0.1), np.zeros(600)]
    assert participation_ratio(contrast) == pytest.approx(40.0)
    assert participation_ratio(np.r_[1e-200, 1e-200, 0, 0, 0]) == pytest.approx(2.0)


def test_planted_modes_carry_their_evidence(planted_pair):
    a, b = planted_pair
    labels = [
        "A-group" if i in GROUP_A else "B-group" if i in GROUP_B else "rest" for i in range(N)
    ]
    result = compare(
        a,
        b,
        sigma_a=1.0,
        sigma_b=1.0,
        method="exact",
        dtype="float64",
        n_modes=1,
        top_k=20,
        centre=False,
        labels=labels,
    )
    top_a, top_b = result.modes_for("A")[0], result.modes_for("B")[0]
    # size: the indicator of the group
    assert top_a.size == pytest.approx(30, rel=1e-6)
    assert top_b.size == pytest.approx(20, rel=1e-6)
    # contrast: the mean kernel among the members, from the direct kernel matrices
    k_a = direct_lambda(a, a * 0, kernel="gaussian", sigma_a=1.0, sigma_b=1.0) * N + 1
    members = top_a.members
    block = k_a[np.ix_(members, members)]
    expected = (block.sum() - np.trace(block)) / (20 * 19)
    assert top_a.contrast["a"] == pytest.approx(expected, abs=1e-9)
    assert top_a.contrast["a"] == pytest.approx(0.8, abs=1e-9)
    assert top_a.contrast["b"] < 1e-6
    assert top_b.contrast["b"] == pytest.approx(0.9, abs=1e-9)
    # stability: the planted groups come back in every resample
    assert top_a.stability == pytest.approx(1.0) and top_a.stability_hits == 10
    assert result.params.n_resamples == 10
    assert top_a.purity == 1.0 and top_a.majority_label == "A-group"
    assert top_b.majority_label == "B-group"
    assert not top_a.weak and not top_b.weak
    # the baseline: each kernel's mean over all distinct pairs, from the direct kernel matrix
    off = ~np.eye(N, dtype=bool)
    assert top_a.baseline["a"] == pytest.approx(k_a[off].mean(), abs=1e-9)
    line = top_a.evidence_line("img", "txt", n_resamples=10)
    from spec_core.engine.evidence import number

    base_a, base_b = number(top_a.baseline["a"]), number(top_a.baseline["b"])
    assert line == (
        f"tighter in img (0.80; all pairs {base_a}) than in txt "
        f"({number(top_a.contrast['b'])}; all pairs {base_b}) · ~30 members · comes back in "
        "10 of 10 resamples · 100% A-group"
    )
    payload = result.to_dict()["modes"][0]
    assert {"size", "contrast", "stability", "purity", "weak_reasons"} <= payload.keys()
    assert set(payload["contrast"]) == {"a", "b"}


def test_broad_modes_are_marked_weak():
    """Two independent Gaussian clouds at a wide bandwidth: the modes are smooth regions of one
    cloud spread over much of the data, stable but barely tighter than the average pair, and
    each says so (size alone does not make them weak: nothing backs them as a group)."""
    rng = np.random.default_rng(4)
    result = compare(
        rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), n_modes=3, sigma_scale=4.0
    )
    broad = [m for m in result.modes if m.size > 30]
    assert len(broad) == len(result.modes)
    assert all(m.weak and any(r.startswith("broad") for r in m.weak_reasons) for m in broad)
    assert not any(m.notes for m in result.modes)


@pytest.mark.parametrize("with_labels", [True, False])
def test_broad_real_classes_are_groups(with_labels):
    """Four planted classes of 200 rows each (25% of the data) that A separates and B does not
    (synthetic.planted_groups): each A-not-B mode is one class, ~200 rows, stable and tighter
    in A, so a group with a neutral note on its breadth, never weak for its size (the old rule
    called every mode above n/5 rows "broad: not a group")."""
    from spec_core.engine.synthetic import planted_groups

    a, b, labels = planted_groups(800, groups=4, group_rows=200, seed=1)
    result = compare(a, b, n_modes=3, labels=labels if with_labels else None)
    found = [m for m in result.modes if m.direction == "A"]
    assert len(found) == 3  # centred: the four classes span three directions beside the mean
    classes = set()
    for mode in found:
        assert not mode.weak, mode.weak_reasons
        assert mode.size == pytest.approx(200, rel=0.2)
        assert mode.notes == (
            f"broad: about {mode.size:.0f} rows, {mode.size / 800:.0%} of the data",
        )
        assert mode.stability_hits == 10
        classes.add(str(labels[mode.members[0]]))
        assert set(labels[mode.members]) == {str(labels[mode.members[0]])}
        if with_labels:
            assert mode.purity == 1.0
    assert len(classes) == 3
    assert result.summary().count("note: broad: about") == 3  # the CLI's summary says it too
    assert result.to_dict()["modes"][0]["notes"] == list(found[0].notes)


def test_localize_recovers_equal_groups():
    """A repeated eigenvalue (equal planted groups): any rotation of the indicators is a valid
    eigenbasis; `localize` turns a random one back into the indicators (up to sign), leaves a
    lone eigenvalue's vector as it is, and orders the rotated vectors by their Rayleigh
    quotient. Direct NumPy: the groups' normalised indicators, mixed by a random rotation."""
    n, groups, rows = 600, 5, 60
    indicators = np.zeros((n, groups))
    for g in range(groups):
        indicators[g * rows : (g + 1) * rows, g] = 1 / np.sqrt(rows)
    rng = np.random.default_rng(3)
    mixing = np.linalg.qr(rng.normal(size=(groups, groups)))[0]
    lone = rng.normal(size=n)
    lone -= indicators @ (indicators.T @ lone)
    lone /= np.linalg.norm(lone)
    values = np.r_[0.5, np.full(groups, 0.1) + 1e-4 * np.arange(groups)[::-1], -0.2]
    vectors = np.column_stack([lone, indicators @ mixing, -lone])
    before = [participation_ratio(np.abs(vectors[:, j])) for j in range(1, groups + 1)]
    assert max(before) > 1.5 * rows  # the solver's basis mixes the groups
    out = evidence.localize(values, vectors)
    assert np.array_equal(out[:, 0], vectors[:, 0]) and np.array_equal(out[:, -1], vectors[:, -1])
    overlap = np.abs(indicators.T @ out[:, 1 : groups + 1])
    assert np.allclose(np.sort(overlap, axis=0)[-1], 1.0, atol=1e-6)  # each one indicator
    quotients = [out[:, j] @ (vectors * values) @ (vectors.T @ out[:, j]) for j in range(1, 6)]
    assert quotients == sorted(quotients, reverse=True)
    assert evidence.near_repeated(values).__len__() == 1


@pytest.mark.parametrize("method", ["exact", pytest.param("rff", marks=pytest.mark.slow)])
def test_equal_planted_groups_read_at_their_size(method):
    """Ten planted groups of 100 rows among 2,000 that A separates and B does not: their
    eigenvalues are (nearly) repeated, and a solver's eigenvectors mix the groups (sizes read
    150-700 before `localize`); each mode is now one group, its size within 20% of 100, stable
    in every resample (the resamples' near-repeated eigenspaces are matched as a whole)."""
    from spec_core.engine.synthetic import planted_groups

    a, b, labels = planted_groups(2000, groups=10, group_rows=100)
    result = compare(a, b, n_modes=9, labels=labels, method=method, n_features=1000)
    groups = [m for m in result.modes if m.direction == "A" and m.majority_label != "background"]
    assert len(groups) >= 8
    assert len({m.majority_label for m in groups}) == len(groups)
    for mode in groups:
        assert mode.size == pytest.approx(100, rel=0.2), (mode.label, mode.size)
        assert mode.purity == 1.0 and mode.stability_hits == 10 and not mode.weak


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (dict(stability=0.3, stability_hits=2), "unstable: comes back in 2 of 10 resamples"),
        (
            dict(size=250.0, stability=None, stability_hits=None),
            "broad: spread over ~250 of 1000 rows, with no stability or labels to show it is "
            "one group",
        ),
        (
            dict(size=250.0, purity=0.3, majority_label="cats"),
            "broad: spread over ~250 of 1000 rows, mixed (the commonest label on 30% of the "
            "members)",
        ),
        (
            dict(size=250.0, contrast={"a": 0.3, "b": 0.1}),
            "broad: spread over ~250 of 1000 rows, not clearly tighter than the average pair",
        ),
        (dict(size=2.2), "tiny: ~2.2 rows (near-duplicates?)"),
        (
            dict(contrast={"a": 0.3, "b": 0.85}, baseline={"a": 0.1, "b": 0.8}),
            "not tighter in A than in B beyond each one's average pair "
            "(A 0.30 vs 0.10, B 0.85 vs 0.80)",
        ),
    ],
)
def test_weak_reasons(changes, reason):
    base = dict(
        direction="A",
        rank=0,
        index=0,
        scores=np.zeros(3),
        members=np.arange(3),
        size=40.0,
        contrast={"a": 0.6, "b": 0.1},
        stability=0.9,
        stability_hits=10,
        n_resamples=10,
    )
    strong = evidence.ModeItem(**base)
    assert strong.weak_reasons(above_noise_floor=True, n_rows=1000) == ()
    assert strong.weak_reasons(above_noise_floor=False, n_rows=1000) == ("below the noise floor",)
    weak = evidence.ModeItem(**{**base, **changes})
    assert weak.weak_reasons(above_noise_floor=True, n_rows=1000) == (reason,)


@pytest.mark.parametrize(
    "changes",
    [
        dict(size=250.0),  # stable and clearly tighter in A (0.6 of the way to identical)
        dict(size=250.0, stability=None, stability_hits=None, purity=0.95, majority_label="x"),
        dict(size=250.0, contrast={"a": 0.3, "b": 0.1}, purity=0.9, majority_label="x"),
    ],
)
def test_broad_groups_backed_by_their_evidence_are_not_weak(changes):
    """Size alone never makes a stable, contrasting (and, with labels, pure) group weak: it gets
    a neutral note instead."""
    base = dict(
        direction="A",
        rank=0,
        index=0,
        scores=np.zeros(3),
        members=np.arange(3),
        contrast={"a": 0.6, "b": 0.1},
        stability=0.9,
        stability_hits=10,
        n_resamples=10,
    )
    item = evidence.ModeItem(**{**base, **changes})
    assert item.weak_reasons(above_noise_floor=True, n_rows=1000) == ()
    assert item.notes(n_rows=1000) == ("broad: about 250 rows, 25% of the data",)
    assert evidence.ModeItem(**{**base, "size": 40.0}).notes(n_rows=1000) == ()


def _direct_resample(lam, subset, k, centre):
    """The resample's eigenvectors and their extension, straight from NumPy."""
    sub = lam[np.ix_(subset, subset)]
    if centre:
        h = np.eye(len(subset)) - 1.0 / len(subset)
        sub = h @ sub @ h
    values, vectors = np.linalg.eigh(sub)
    order = np.r_[np.arange(k), np.arange(len(values) - k, len(values))]
    values, vectors = values[order], vectors[:, order]
    ext = lam[:, subset] @ vectors / values
    if centre:
        ext = ext - ext.mean(axis=0)
    return values, vectors, ext


@pytest.mark.parametrize("centre", [False, True])
def test_resample_operators_match_numpy(clusters, centre):
    """The dense and the feature operators give the direct resampled eigenproblem and its
    extension by the eigen-equation (the cosine kernel: Lambda = Psi S Psi^T / n exactly)."""
    a, b, _ = clusters
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    lam = (an @ an.T - bn @ bn.T) / len(a)
    if centre:
        h = np.eye(len(a)) - 1.0 / len(a)
        lam = h @ lam @ h
    subset = np.sort(np.random.default_rng(0).choice(len(a), 250, replace=False))
    values, vectors, ext = _direct_resample(lam, subset, 2, centre)
    psi = torch.from_numpy(np.hstack([an, bn]) / np.sqrt(len(a)))
    for operator in (
        DenseOperator(torch.from_numpy(lam.copy()), centre, seed=0),
        FeatureOperator(psi, an.shape[1], centre, None),
    ):
        op, _ = operator.submatrix_op(torch.from_numpy(subset))
        applied = op(torch.from_numpy(vectors)).numpy()
        np.testing.assert_allclose(applied, vectors * values, atol=1e-10)
        got = operator.extend(
            torch.from_numpy(subset), torch.from_numpy(vectors), torch.from_numpy(values)
        ).numpy()
        np.testing.assert_allclose(got, ext, atol=1e-9)


def test_stability_pool_beyond_its_limit(clusters, monkeypatch):
    a, b, _ = clusters
    monkeypatch.setattr(operators, "STABILITY_POOL_ROWS", 200)
    result = compare(a, b, method="exact", n_modes=2)
    assert result.params.stability_rows == 200
    assert all(0.0 <= m.stability <= 1.0 for m in result.modes)
    result = compare(a, b, method="nystrom", n_features=64, n_modes=2)
    assert result.params.stability_rows == 200


def test_stability_agrees_across_routes(clusters):
    a, b, _ = clusters
    exact = compare(a, b, method="exact", dtype="float64", n_modes=2, top_k=30)
    approx = compare(a, b, method="nystrom", n_features=300, n_modes=2, top_k=30)
    for e, m in zip(exact.modes, approx.modes, strict=True):
        assert abs(e.stability - m.stability) < 0.15, (e.label, e.stability, m.stability)


def test_stability_off_and_too_few_rows():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    off = compare(a, b, stability=False, n_modes=2, top_k=5)
    assert off.params.n_resamples == 0 and all(m.stability is None for m in off.modes)
    tiny = compare(a[:8], b[:8], n_modes=2, top_k=3)
    assert all(m.stability is None for m in tiny.modes)


# ---------------------------------------------------------------------------------------------
# Centring


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_centred_exact_matches_numpy(clusters, kernel):
    a, b, _ = clusters
    sig = dict(sigma_a=2.0, sigma_b=1.5) if kernel == "gaussian" else {}
    lam = direct_lambda(a, b, kernel=kernel, **sig)
    h = np.eye(len(a)) - 1.0 / len(a)
    values = np.linalg.eigvalsh(h @ lam @ h)[::-1]
    result = compare(a, b, kernel=kernel, method="exact", dtype="float64", centre=True, **sig)
    np.testing.assert_allclose(result.eigenvalues[:5], values[:5], atol=1e-10)
    np.testing.assert_allclose(result.eigenvalues[-5:], values[-5:], atol=1e-10)
    assert result.params.centre


def test_centred_feature_routes_match_exact(clusters):
    a, b, _ = clusters
    exact = compare(a, b, method="exact", dtype="float64", centre=True, sigma_a=2.0, sigma_b=1.5)
    # cosine: the feature route (n > d_A + d_B) is exact
    cos_k = compare(a, b, kernel="cosine", method="exact", dtype="float64", centre=True)
    lam = direct_lambda(a, b, kernel="cosine")
    h = np.eye(len(a)) - 1.0 / len(a)
    np.testing.assert_allclose(
        cos_k.eigenvalues[:5], np.linalg.eigvalsh(h @ lam @ h)[::-1][:5], atol=1e-10
    )
    assert cos_k.params.route == "features"
    for method, tol in (("nystrom", 2e-3), ("rff", 3e-2)):
        approx = compare(
            a, b, method=method, n_features=1600, centre=True, sigma_a=2.0, sigma_b=1.5
        )
        assert np.abs(approx.eigenvalues[:5] - exact.eigenvalues[:5]).max() < tol, method
        assert np.abs(approx.eigenvalues[-5:] - exact.eigenvalues[-5:]).max() < tol, method
        # the top three A-not-B eigenvalues are close together (0.094, 0.086, 0.084): compare
        # the space they span, which is well defined, rather than one vector of it
        span = np.stack([m.sample_scores for m in exact.modes_for("A")[:3]], axis=1)
        top = approx.modes_for("A")[0].sample_scores
        assert np.linalg.norm(span.T @ top) > 0.95, method


def test_centring_removes_a_global_mode():
    """B's vectors all share one direction plus noise, A is isotropic noise with two groups:
    uncentred, the top B-not-A mode is the near-uniform 'everything is similar in B' vector;
    centred it is gone."""
    rng = np.random.default_rng(1)
    n = 300
    a = rng.normal(size=(n, 10))
    a[:40] = rng.normal(size=10) + 0.2 * rng.normal(size=(40, 10))
    b = 5.0 + 0.3 * rng.normal(size=(n, 6))
    uniform = np.full(n, 1 / np.sqrt(n))
    uncentred = compare(a, b, kernel="cosine", centre=False, n_modes=1)
    centred = compare(a, b, kernel="cosine", centre=True, n_modes=1)
    assert uncentred.modes_for("B")[0].sample_scores @ uniform > 0.9
    assert abs(centred.modes_for("B")[0].sample_scores @ uniform) < 0.1


# ---------------------------------------------------------------------------------------------
# Descriptions


def test_contrastive_terms_name_what_sets_members_apart():
    texts = [f"red apple number {i} fruit" for i in range(10)] + [
        f"blue car number {i}" for i in range(30)
    ]
    terms = contrastive_terms(range(10), texts)
    assert set(terms) == {"red", "apple", "fruit"}  # not "number": every text has it
    assert contrastive_terms(range(10, 20), texts) == ()  # like the rest: nothing stands out


def test_majority_label_only_when_it_dominates():
    labels = ["x"] * 6 + ["y"] * 5 + ["z"] * 5
    mixed = describe_members(range(16), labels=labels)
    assert mixed.majority_label is None and mixed.headline.startswith("mixed labels: 6 x, 5 y")
    strong = describe_members(range(8), labels=labels)
    assert strong.majority_label == "x" and strong.headline.startswith("6/8 x")


# ---------------------------------------------------------------------------------------------
# Scales


def test_scale_sweep_follows_modes_and_matches_compare(clusters):
    a, b, _ = clusters
    sweep = scale_sweep(a, b, multipliers=(0.5, 1.0, 2.0), n_modes=2, top_k=10, dtype="float64")
    assert sweep.multipliers == (0.5, 1.0, 2.0)
    base = compare(a, b, n_modes=2, top_k=10, dtype="float64", stability=False)
    assert sweep.sigmas_a[1] == pytest.approx(base.params.sigma_a)
    direct = compare(
        a,
        b,
        sigma_a=2 * base.params.sigma_a,
        sigma_b=2 * base.params.sigma_b,
        n_modes=2,
        top_k=10,
        dtype="float64",
        stability=False,
    )
    np.testing.assert_allclose(sweep.results[2].eigenvalues, direct.eigenvalues, atol=1e-12)
    assert sweep.strongest_scale == int(np.argmax([r.spec_diff for r in sweep.results]))
    # every mode of every scale is on exactly one track; tracks keep their direction
    on_tracks = sorted((p.scale, t.direction, p.rank) for t in sweep.tracks for p in t.points)
    expected = sorted(
        (s, m.direction, m.rank) for s, r in enumerate(sweep.results) for m in r.modes
    )
    assert on_tracks == expected
    assert any(len(t.points) > 1 for t in sweep.tracks)
    assert sweep.to_dict()["tracks"]


def test_scale_sweep_refuses_cosine_and_skips_degenerate_scales(clusters):
    a, b, _ = clusters
    with pytest.raises(ValueError, match="cosine kernel has none"):
        scale_sweep(a, b, kernel="cosine")
    sweep = scale_sweep(a, b, multipliers=(1e-9, 1.0), n_modes=1, top_k=5)
    assert sweep.multipliers == (1.0,)
    assert sweep.skipped and "every off-diagonal kernel value 0" in sweep.skipped[0][1]


def test_knn_bandwidth_rule_matches_numpy(clusters):
    """The "knn" rule: the median over rows of the distance to the k-th nearest neighbour,
    k = 5% of the rows (at least 5)."""
    from spec_core.engine.kernels import bandwidth

    a, _, _ = clusters
    dist = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
    k = max(5, round(0.05 * len(a)))
    expected = np.median(np.sort(dist, axis=1)[:, k])
    assert bandwidth(a, "knn") == pytest.approx(expected, rel=1e-9)
    result = compare(a, a[:, :5], sigma_rule="knn", n_modes=1, stability=False)
    assert result.params.sigma_a == pytest.approx(expected, rel=1e-9)
    assert result.params.sigma_rule.startswith("knn:")
