"""compare_many: every pair equals the pairwise `compare` of its two models (the same seeds),
on every route; the matrices, the map and the JSON; hostile inputs refused by name.

Tolerances: on the feature routes, with eta = 1 and the same row blocks (`block_rows`), a
pair's C is built from the very same matrix products, so its numbers are compared for
equality; with eta != 1 the pair's blocks are scaled in float64 after the products instead of
the features in float32 before them (1e-6 of SPEC-diff). On the exact route a pair's Lambda is
K_A - eta K_B of the models' own kernel matrices (1e-6 relative, the issue's bound; equal in
practice)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import direct_lambda

from spec_core import compare, compare_many
from spec_core.data.shards import write_shards
from spec_core.engine.projection import classical_mds
from spec_core.engine.synthetic import merged_pair
from spec_core.limits import CAPS


@pytest.fixture(scope="module")
def three():
    """Three embeddings of 360 rows with different groups: A has 6 groups, B merges pairs of
    them, C is A in other coordinates with noise."""
    a, b, labels = merged_pair(n=360, dim=8, groups=6, merged=2, seed=5)
    rng = np.random.default_rng(2)
    c = a[:, :6] @ rng.normal(size=(6, 7)) + 0.6 * rng.normal(size=(360, 7))
    return {"alpha": a, "beta": b, "gamma": c}, [str(x) for x in labels]


def same_result(mine, theirs, *, exact: bool, rtol: float = 1e-6) -> None:
    """A pair of compare_many against compare: eigenvalues, noise floor, every mode (members,
    scores, evidence) and the context metrics."""
    assert mine.params.route == theirs.params.route
    if exact:
        np.testing.assert_array_equal(mine.eigenvalues, theirs.eigenvalues)
        assert mine.noise_floor == theirs.noise_floor
    else:
        scale = theirs.spec_diff
        np.testing.assert_allclose(mine.eigenvalues, theirs.eigenvalues, atol=rtol * scale)
        assert mine.noise_floor == pytest.approx(theirs.noise_floor, rel=rtol)
    assert [m.label for m in mine.modes] == [m.label for m in theirs.modes]
    for ours, pairwise in zip(mine.modes, theirs.modes, strict=True):
        np.testing.assert_array_equal(ours.members, pairwise.members)
        if exact:
            np.testing.assert_array_equal(ours.sample_scores, pairwise.sample_scores)
            assert ours.stability == pairwise.stability
        else:
            np.testing.assert_allclose(ours.sample_scores, pairwise.sample_scores, atol=1e-4)
        assert ours.contrast == pytest.approx(pairwise.contrast, rel=1e-6)
    if theirs.context is not None:
        assert mine.context.linear_cka == theirs.context.linear_cka
        np.testing.assert_array_equal(mine.context.knn_overlap, theirs.context.knn_overlap)
    skip = {"backend"}
    for field in mine.params.__dataclass_fields__:
        if field not in skip:
            assert getattr(mine.params, field) == getattr(theirs.params, field), field


CASES = {
    "exact": ({"method": "exact"}, True),
    "exact-eta": ({"method": "exact", "eta": 0.7, "centre": False}, False),
    "rff": ({"method": "rff", "n_features": 120, "block_rows": 100}, True),
    "rff-small-n": ({"method": "rff", "n_features": 400}, True),  # n <= width: n x n route
    "nystrom": ({"method": "nystrom", "n_features": 100, "block_rows": 128}, True),
    "nystrom-eta": ({"method": "nystrom", "n_features": 100, "eta": 2.5}, False),
    "cosine": ({"kernel": "cosine", "block_rows": 64}, True),  # n > dims: its exact map
    "float64-uncentred": ({"method": "rff", "n_features": 120, "dtype": "float64",
                           "centre": False, "block_rows": 90}, True),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_every_pair_equals_the_pairwise_compare(three, case):
    kwargs, exact = CASES[case]
    embeddings, labels = three
    many = compare_many(embeddings, labels=labels, n_modes=3, **kwargs)
    assert list(many.pairs) == [("alpha", "beta"), ("alpha", "gamma"), ("beta", "gamma")]
    for (a, b), result in many.pairs.items():
        pairwise = compare(embeddings[a], embeddings[b], labels=labels, n_modes=3, **kwargs)
        same_result(result, pairwise, exact=exact)


def test_two_models_equal_compare(three):
    """N = 2 is compare itself, with the matrices around it."""
    embeddings, labels = three
    two = {"alpha": embeddings["alpha"], "beta": embeddings["beta"]}
    many = compare_many(two, labels=labels)
    pairwise = compare(two["alpha"], two["beta"], labels=labels)
    same_result(many.pair("alpha", "beta"), pairwise, exact=True)
    assert many.spec_diff[0, 1] == many.spec_diff[1, 0] == pairwise.spec_diff
    assert many.linear_cka[0, 1] == pairwise.context.linear_cka
    assert many.knn_overlap[1, 0] == pairwise.context.knn_overlap_mean


def test_mixed_routes_each_pair_as_compare_takes_it():
    """Cosine: a pair with more columns than rows takes the kernel route, the others the
    feature route; each as compare takes it, the wide model's kernel matrix made once."""
    rng = np.random.default_rng(4)
    n = 120
    groups = np.repeat(np.arange(4), n // 4)
    wide = rng.normal(size=(4, 90))[groups] + rng.normal(size=(n, 90))
    embeddings = {
        "wide": wide,
        "wider": wide[:, :60] @ rng.normal(size=(60, 70)),
        "narrow": rng.normal(size=(n, 5)),
    }
    many = compare_many(embeddings, kernel="cosine", block_rows=50, n_modes=2)
    routes = {pair: result.params.route for pair, result in many.pairs.items()}
    assert routes == {
        ("wide", "wider"): "kernel",
        ("wide", "narrow"): "features",
        ("wider", "narrow"): "features",
    }
    for (a, b), result in many.pairs.items():
        pairwise = compare(embeddings[a], embeddings[b], kernel="cosine", block_rows=50, n_modes=2)
        same_result(result, pairwise, exact=True)
    pieces = {piece.name: piece.computed for piece in many.models}
    assert pieces == {
        "wide": ("kernel matrix", "features"),
        "wider": ("kernel matrix", "features"),
        "narrow": ("features",),
    }


def test_shards_give_the_pairwise_answers(three, tmp_path):
    embeddings, _ = three
    shards = {
        name: write_shards(matrix, tmp_path / name, shard_rows=100)
        for name, matrix in embeddings.items()
    }
    kwargs = {"method": "nystrom", "n_features": 80, "block_rows": 64, "n_modes": 2}
    many = compare_many(shards, **kwargs)
    for (a, b), result in many.pairs.items():
        same_result(result, compare(shards[a], shards[b], **kwargs), exact=True)


def test_the_spectrum_against_numpy_and_the_matrices(three):
    """Uncentred exact float64: each pair's eigenvalues are those of the textbook Lambda; the
    matrix holds each pair's SPEC-diff in both cells, the context metrics likewise."""
    embeddings, _ = three
    sigmas = {"alpha": 2.0, "beta": 1.5, "gamma": 3.0}
    many = compare_many(
        embeddings, sigmas=sigmas, method="exact", dtype="float64", centre=False,
        n_eigenvalues=5, stability=False,
    )  # fmt: skip
    names = many.names
    for (a, b), result in many.pairs.items():
        lam = direct_lambda(
            embeddings[a], embeddings[b], kernel="gaussian", sigma_a=sigmas[a], sigma_b=sigmas[b]
        )
        values = np.sort(np.linalg.eigvalsh(lam))[::-1]
        np.testing.assert_allclose(result.eigenvalues[:5], values[:5], atol=1e-12)
        np.testing.assert_allclose(result.eigenvalues[-5:], values[-5:], atol=1e-12)
        i, j = names.index(a), names.index(b)
        assert many.spec_diff[i, j] == many.spec_diff[j, i] == result.spec_diff
        assert many.linear_cka[j, i] == result.context.linear_cka
    assert np.all(np.diag(many.spec_diff) == 0) and np.all(np.diag(many.linear_cka) == 1)
    assert [piece.sigma for piece in many.models] == [2.0, 1.5, 3.0]
    (closest, farthest) = many.extremes()
    values = {pair: r.spec_diff for pair, r in many.pairs.items()}
    assert values[closest] == min(values.values()) and values[farthest] == max(values.values())


def test_identical_models_and_swapped_order(three):
    """The same matrix under two names: SPEC-diff 0 (exact). Listed in the other order, a pair
    is the reverse comparison: with eta = 1 its spectrum negated, its groups' directions
    swapped, and `strongest` names the same group either way."""
    embeddings, _ = three
    a = embeddings["alpha"]
    kwargs = {"method": "exact", "dtype": "float64", "stability": False, "context": False}
    many = compare_many({"alpha": a, "copy": a.copy(), "beta": embeddings["beta"]}, **kwargs)
    assert many.pair("alpha", "copy").spec_diff == pytest.approx(0.0, abs=1e-12)
    reverse = compare_many({"beta": embeddings["beta"], "alpha": a}, **kwargs)
    forward = many.pair("alpha", "beta")
    np.testing.assert_allclose(
        reverse.pair("beta", "alpha").eigenvalues, -forward.eigenvalues[::-1], atol=1e-12
    )
    mine, theirs = many.strongest("alpha", "beta"), reverse.strongest("alpha", "beta")
    assert mine.direction == "A" and theirs.direction == "B"
    np.testing.assert_array_equal(mine.members, theirs.members)
    assert many.strongest("beta", "alpha").direction == "B"


def test_json_is_strict_and_complete(three):
    embeddings, labels = three
    many = compare_many(embeddings, labels=labels, method="rff", n_features=60, n_modes=2)
    payload = many.to_dict()
    text = json.dumps(payload, allow_nan=False)  # strict: no NaN or Infinity
    data = json.loads(text)
    assert data["kind"] == "spec-explorer-many" and data["names"] == ["alpha", "beta", "gamma"]
    assert len(data["pairs"]) == 3 and {"a", "b", "eigenvalues", "modes"} <= set(data["pairs"][0])
    assert np.array(data["spec_diff"]).shape == (3, 3)
    assert np.array(data["model_map"]).shape == (3, 2)
    assert [m["name"] for m in data["models"]] == ["alpha", "beta", "gamma"]
    assert all(m["noise_floor"] > 0 and m["n_features"] == 60 for m in data["models"])
    assert data["closest"]["spec_diff"] <= data["farthest"]["spec_diff"]
    assert "alpha" in many.summary() and "closest:" in many.summary()


def test_inputs_are_only_read(three):
    embeddings, _ = three
    frozen = {}
    for name, matrix in embeddings.items():
        copy = np.asfortranarray(matrix.astype(np.float32))
        copy.setflags(write=False)
        frozen[name] = copy
    before = {name: matrix.tobytes() for name, matrix in frozen.items()}
    compare_many(frozen, method="rff", n_features=60, n_modes=2)
    assert {name: matrix.tobytes() for name, matrix in frozen.items()} == before


def test_classical_mds_recovers_euclidean_distances():
    points = np.random.default_rng(3).normal(size=(6, 2))
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    coords = classical_mds(distances)
    recovered = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(recovered, distances, atol=1e-12)
    # dissimilarities no plane holds (a "square" whose diagonals are too short): still finite
    odd = np.array([[0, 1, 0.2, 1], [1, 0, 1, 0.2], [0.2, 1, 0, 1], [1, 0.2, 1, 0.0]])
    assert np.isfinite(classical_mds(odd)).all()


# ---------------------------------------------------------------------------------------------
# Hostile inputs: refused before any work, naming the model


@pytest.mark.parametrize(
    ("embeddings", "message"),
    [
        ([np.ones((5, 2))], "mapping"),
        ({"only": np.eye(5)}, "2 to"),
        ({f"m{i}": np.eye(5) for i in range(CAPS.max_models + 1)}, "2 to"),
        ({"": np.eye(5), "b": np.eye(5)}, "needs a name"),
        ({"a": np.eye(5), "short": np.eye(4)}, "short has 4 rows but a has 5"),
        ({"a": np.eye(5), "holes": np.where(np.eye(5) > 0, np.nan, 1.0)}, "holes has NaN"),
        ({"a": np.eye(5), "flat": np.ones((5, 3))}, "flat: all 5 rows are identical"),
        ({"a": np.eye(5), "words": np.array([["x"] * 3] * 5)}, "words must hold real numbers"),
    ],
)
def test_bad_inputs_are_refused_by_name(embeddings, message):
    with pytest.raises(ValueError, match=message):
        compare_many(embeddings)


def test_bad_parameters_are_refused(three):
    embeddings, labels = three
    with pytest.raises(ValueError, match="not among the models"):
        compare_many(embeddings, sigmas={"delta": 1.0})
    with pytest.raises(ValueError, match="cosine kernel has none"):
        compare_many(embeddings, kernel="cosine", sigmas={"alpha": 1.0})
    with pytest.raises(ValueError, match="sigma of beta"):
        compare_many(embeddings, sigmas={"beta": -1.0})
    with pytest.raises(ValueError, match="labels: 3 labels for 360 rows"):
        compare_many(embeddings, labels=labels[:3])
    with pytest.raises(ValueError, match="n_features"):
        compare_many(embeddings, method="rff", n_features=0)
    with pytest.raises(ValueError, match="zero row|all zeros"):
        zero = embeddings["alpha"].copy()
        zero[7] = 0
        compare_many({**embeddings, "zero": zero}, kernel="cosine")


def test_a_joint_gram_beyond_the_memory_budget_is_refused_up_front(three, monkeypatch):
    embeddings, _ = three
    monkeypatch.setenv("SPEC_EXPLORER_MAX_MEMORY_GB", "0.01")
    with pytest.raises(ValueError, match=r"joint Gram of their feature maps is 24,000 x 24,000"):
        compare_many(embeddings, method="rff", n_features=8000)
