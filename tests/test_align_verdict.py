"""SPEC-align closes what a linear map can close, and says what it cannot: the planted
distortions (spec_core.engine.synthetic.distorted_pair), the least-squares start, the best
linear map of B that the verdict measures, and the verdict in words."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spec_core.align import align
from spec_core.align.start import RIDGE
from spec_core.align.verdict import CANNOT_LEFT, linear_reach, make_verdict
from spec_core.engine.synthetic import class_pair_directions, distorted_pair


def blobs(n: int = 400, dim: int = 12, groups: int = 6, seed: int = 0):
    """Isotropic Gaussian clusters (so deleting the direction between two centres deletes all
    that told them apart), labels as strings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim)) * 3.0
    labels = rng.integers(0, groups, n)
    return centres[labels] + rng.normal(size=(n, dim)), labels.astype(str)


PAIRS = [("0", "1"), ("2", "3")]


# ---------------------------------------------------------------------------------------------
# The planted distortions


def test_pair_directions_start_with_the_mean_difference_and_are_orthonormal():
    x, labels = blobs()
    basis = class_pair_directions(x, labels, PAIRS, per_pair=3)
    assert basis.shape == (12, 6)
    np.testing.assert_allclose(basis.T @ basis, np.eye(6), atol=1e-10)
    between = x[labels == "1"].mean(0) - x[labels == "0"].mean(0)
    # the first direction is the first pair's mean difference (up to sign)
    assert abs(basis[:, 0] @ between) == pytest.approx(np.linalg.norm(between), rel=1e-10)


@pytest.mark.parametrize("kind", ["shrink", "scale"])
def test_a_linear_map_undoes_shrink_and_scale(kind):
    x, labels = blobs()
    a, b = distorted_pair(x, labels, kind, pairs=PAIRS, factor=12.0, seed=1)
    np.testing.assert_array_equal(a, x.astype(np.float32))
    undo, *_ = np.linalg.lstsq(b.astype(np.float64), a.astype(np.float64), rcond=None)
    residual = b @ undo - a
    assert np.abs(residual).max() < 1e-4 * np.abs(a).max()
    assert np.abs(b - a).max() > 1.0  # and it did change B


def test_delete_leaves_nothing_of_the_pair_directions():
    x, labels = blobs()
    a, b = distorted_pair(x, labels, "delete", pairs=PAIRS, seed=1)
    # B = A (I - P P^T) R: B's rows span only the directions orthogonal to the deleted ones
    assert np.linalg.matrix_rank(b.astype(np.float64), tol=1e-3) == 12 - len(PAIRS)

    def pair_r2(emb, first, second):
        """R^2 of the least-squares fit of the pair's label (+-1) from emb, on its rows."""
        rows = np.isin(labels, [first, second])
        design = np.c_[emb[rows].astype(np.float64), np.ones(rows.sum())]
        target = np.where(labels[rows] == first, 1.0, -1.0)
        fit = design @ np.linalg.lstsq(design, target, rcond=None)[0]
        return 1 - ((target - fit) ** 2).sum() / ((target - target.mean()) ** 2).sum()

    for first, second in PAIRS:  # A tells the pair apart linearly, B does not (chance level)
        assert pair_r2(a, first, second) > 0.9
        assert pair_r2(b, first, second) < 0.15


def test_distorted_pair_refuses_an_unknown_kind():
    x, labels = blobs()
    with pytest.raises(ValueError, match="shrink, scale, delete"):
        distorted_pair(x, labels, "blur")


# ---------------------------------------------------------------------------------------------
# The best linear map of B


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_linear_reach_is_the_least_squares_prediction(kernel):
    """The map is fitted on train rows only and applied to validation rows; against a direct
    least-squares solve with an intercept, in the frame linear_reach documents."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(120, 5)) + 2.0
    b = a @ rng.normal(size=(5, 7)) + 0.1 * rng.normal(size=(120, 7))
    train, val = np.arange(100), np.arange(100, 120)
    ours = linear_reach(a, b, train, val, kernel=kernel)

    def frame(x):  # scaled and centred by the train rows
        x = x[np.r_[train, val]] / np.abs(x[train]).max()
        if kernel == "gaussian":
            x = x - x[:100].mean(0)
            x = x / np.abs(x[:100]).max()
        return x

    fa, fb = frame(a), frame(b)
    # ridge regression with an intercept (the ridge: RIDGE x the mean eigenvalue of the
    # train rows' centred covariance), solved as an augmented least-squares problem
    centred = fb[:100] - fb[:100].mean(0)
    ridge = RIDGE * np.trace(centred.T @ centred) / 7
    design = np.r_[np.c_[fb[:100], np.ones(100)], np.c_[np.sqrt(ridge) * np.eye(7), np.zeros(7)]]
    target = np.r_[fa[:100], np.zeros((7, 5))]
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    expected = np.c_[fb[100:], np.ones(20)] @ coef
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9)
    # the ridge is light: a plain least-squares fit differs only in the 4th digit
    plain, *_ = np.linalg.lstsq(np.c_[fb[:100], np.ones(100)], fa[:100], rcond=None)
    np.testing.assert_allclose(ours, np.c_[fb[100:], np.ones(20)] @ plain, rtol=1e-2, atol=1e-4)
    # a far validation row changes the others' predictions not at all
    far = b.copy()
    far[110] *= 1e12
    moved = linear_reach(a, far, train, val, kernel=kernel)
    np.testing.assert_allclose(np.delete(moved, 10, 0), np.delete(ours, 10, 0), rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# The verdict from its measurements


def entry(label: str, before: float, after: float, *, floor: bool = True) -> dict:
    return {
        "label": label,
        "direction": label[0],
        "before": before,
        "after": after,
        "weak_before": False,
        "above_noise_floor": floor,
    }


def test_verdict_says_when_b_lost_its_own_groups_instead_of_gaining_a_s():
    """The demo's trial: "closed 34%" came from B's flag group (B-not-A, 62% left) while A's
    groups stayed 96-99%: the words say so, and say nothing when A's groups closed too."""
    lost = [
        entry("A-not-B #1", 0.010, 0.0098),
        entry("A-not-B #2", 0.008, 0.0077),
        entry("B-not-A #1", -0.005, -0.0019),
    ]
    verdict = make_verdict(0.010, 0.0066, 0.0066, lost, lost)
    assert "most of it came from B losing its own groups (B-not-A modes 62% closed" in (
        verdict.text
    )
    assert "A's groups (A-not-B) 3%" in verdict.text and verdict.text.endswith(".")
    gained = [entry("A-not-B #1", 0.010, 0.004), entry("B-not-A #1", -0.005, -0.002)]
    assert "losing its own" not in make_verdict(0.010, 0.004, 0.004, gained, gained).text


def test_verdict_closed_partly_cannot_agree():
    closed = [entry("A-not-B #1", 0.10, 0.004), entry("B-not-A #1", -0.06, -0.01)]
    linear = [entry("A-not-B #1", 0.10, 0.001), entry("B-not-A #1", -0.06, -0.002)]
    verdict = make_verdict(0.10, 0.012, 0.003, closed, linear)
    assert verdict.kind == "closed" and verdict.cannot_gain == ()
    assert verdict.closed_share == pytest.approx(0.88)
    assert verdict.text.startswith("The alignment closed 88% of the difference on rows it never")

    partly = make_verdict(0.10, 0.05, 0.003, closed, linear)
    assert partly.kind == "partly" and "best linear map of B closes 97%" in partly.text
    assert "more training" in partly.text  # the map shows the optimiser stopped short

    # A's group: the adapter leaves 90%, the best linear map 95%: B lacks the information
    kept = [entry("A-not-B #1", 0.10, 0.09), entry("B-not-A #1", -0.06, -0.01)]
    lin = [entry("A-not-B #1", 0.10, 0.095), entry("B-not-A #1", -0.06, -0.05)]
    cannot = make_verdict(0.10, 0.09, 0.095, kept, lin)
    assert cannot.kind == "cannot" and cannot.cannot_gain == ("A-not-B #1",)
    assert "B does not hold the information to capture A's groups A-not-B #1" in cannot.text

    # when the linear map closes it, the adapter only stopped short: not "cannot"
    lin_closes = [entry("A-not-B #1", 0.10, 0.01), lin[1]]
    assert make_verdict(0.10, 0.09, 0.05, kept, lin_closes).kind == "partly"
    # a B-not-A mode left is never a group of A that B cannot gain
    only_b = [entry("B-not-A #1", -0.10, -0.09)]
    assert make_verdict(0.10, 0.09, 0.09, only_b, only_b).kind == "partly"
    # a weak mode (a tenth of the SPEC-diff, or below the noise floor) is not named
    small = [entry("A-not-B #1", 0.10, 0.01), entry("A-not-B #2", 0.01, 0.01)]
    small_lin = [entry("A-not-B #1", 0.10, 0.0), entry("A-not-B #2", 0.01, 0.01)]
    assert make_verdict(0.10, 0.01, 0.0, small, small_lin).kind == "closed"
    # too few train rows for B's dimension: the map is no check, and the verdict says so
    few = make_verdict(0.10, 0.09, 0.095, kept, lin, fit_rows=300, dof=384)
    assert few.kind == "undecided" and few.cannot_gain == ("A-not-B #1",)
    assert "cannot be decided" in few.text and "384 degrees of freedom" in few.text
    assert make_verdict(0.10, 0.09, 0.095, kept, lin, fit_rows=768, dof=384).kind == "cannot"
    # below the noise floor, or barely tighter (B = A + noise): nothing to close, whatever
    # share of it the map leaves (an attack saw "cannot ... 156% left" on A + 1% noise)
    noise = [entry("A-not-B #1", 0.10, 0.09, floor=False)]
    assert make_verdict(0.10, 0.09, 0.09, noise, noise).kind == "agree"
    barely = [{**entry("A-not-B #1", 1e-4, 1.6e-4), "barely_before": True}]
    assert make_verdict(1e-4, 1.6e-4, 1.6e-4, barely, barely).kind == "agree"
    assert make_verdict(0.0, 0.0, 0.0, [], []).kind == "agree"
    assert CANNOT_LEFT == 0.5


# ---------------------------------------------------------------------------------------------
# align on planted cases: the defaults


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_default_closes_a_distortion_a_linear_map_undoes(kernel):
    """B merges two pairs of A's six groups (the directions between them shrunk 30x) and is
    rotated: a linear map undoes it, and the default closes at least 80% of the validation
    SPEC-diff (from the identity start, the default before, 77% Gaussian and 69% cosine here),
    the merged groups come apart and the verdict says so."""
    x, labels = blobs()
    a, b = distorted_pair(x, labels, "shrink", pairs=PAIRS, factor=30.0, seed=1)
    result = align(a, b, kernel=kernel, labels=labels)
    sd = result.spec_diff
    assert sd["after"]["val"] <= 0.2 * sd["before"]["val"], sd
    val = result.metrics["val"]
    assert val["after"]["label_knn_accuracy"] >= val["before"]["label_knn_accuracy"]
    verdict = result.verdict
    assert verdict.kind == "closed" and verdict.closed_share >= 0.8
    assert verdict.closed_share == pytest.approx(1 - sd["after"]["val"] / sd["before"]["val"])
    assert f"closed {verdict.closed_share:.0%} of the difference" in result.summary()
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert payload["verdict"]["kind"] == "closed"


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_deleted_information_is_reported_and_b_is_kept(kernel):
    """B lost the directions between two pairs of A's groups (isotropic clusters: nothing else
    told them apart): the verdict names A's groups that B cannot gain, and B keeps its own
    neighbourhoods (10-NN overlap with itself at least 0.8)."""
    x, labels = blobs()
    a, b = distorted_pair(x, labels, "delete", pairs=PAIRS, seed=1)
    result = align(a, b, kernel=kernel, labels=labels)
    verdict = result.verdict
    assert verdict.kind == "cannot", verdict
    assert "A-not-B #1" in verdict.cannot_gain
    assert "B does not hold the information" in verdict.text
    assert all(
        mode.linear_left >= CANNOT_LEFT
        for mode in verdict.modes
        if mode.label in verdict.cannot_gain
    )
    val = result.metrics["val"]
    assert val["after"]["knn_overlap_b"] >= 0.8
    assert val["after"]["label_knn_accuracy"] >= val["before"]["label_knn_accuracy"] - 0.05


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_least_squares_start_alone_undoes_a_linear_distortion(kernel):
    """No training (one step at a negligible learning rate): the least-squares start alone
    leaves at most 5% of the validation SPEC-diff where a linear map undoes the distortion, and
    is what is kept; from the identity, the same run leaves B as it is."""
    x, labels = blobs()
    a, b = distorted_pair(x, labels, "shrink", pairs=PAIRS, factor=12.0, seed=1)
    start = align(a, b, kernel=kernel, steps=1, lr=1e-9)
    sd = start.spec_diff
    assert start.kept == "start" and start.best_step == 0
    assert (
        start.history[1]["start"]
        and start.history[1]["val_spec_diff"] < start.history[0]["val_spec_diff"]
    )
    assert sd["after"]["val"] <= 0.05 * sd["before"]["val"], sd
    assert "least-squares start" in start.notes[0]
    identity = align(a, b, kernel=kernel, steps=1, lr=1e-9, start="identity")
    assert identity.kept == "identity"
    assert identity.spec_diff["after"]["val"] == identity.spec_diff["before"]["val"]


def test_start_is_checked():
    x, _ = blobs(n=100)
    with pytest.raises(ValueError, match="start"):
        align(x, x, start="zeros")
