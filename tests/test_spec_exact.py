"""The exact route against closed forms and against a direct NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_in_eigenspace, direct_lambda, paper_compare, planted

import spec_core
from spec_core.engine.kernels import SIGMA_MEDIAN_FACTOR

N = 120
GROUP_A = range(10, 40)  # 30 rows tight in A (rho 0.8), spread in B
GROUP_B = range(60, 80)  # 20 rows tight in B (rho 0.9), spread in A


@pytest.fixture
def planted_pair():
    return planted(N, {GROUP_A: 0.8}, {GROUP_B: 0.9})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_planted_groups_closed_form(planted_pair, dtype):
    a, b = planted_pair
    result = paper_compare(
        a, b, sigma_a=1.0, sigma_b=1.0, method="exact", n_modes=2, top_k=30, dtype=dtype
    )
    # float32: squared distances lose ~eps32 x ||x||^2 = 6e-8 x 300 here (rows sit ~18 sigma from
    # the centre), i.e. ~2e-5 of the kernel values; float64 is exact to round-off
    tol = 5e-5 if dtype == "float32" else 1e-12
    top_a = result.modes_for("A")[0]
    top_b = result.modes_for("B")[0]
    assert top_a.eigenvalue == pytest.approx(0.8 * (30 - 1) / N, abs=tol)
    assert top_b.eigenvalue == pytest.approx(-0.9 * (20 - 1) / N, abs=tol)
    assert set(top_a.members[:30].tolist()) == set(GROUP_A)
    assert set(top_b.members[:20].tolist()) == set(GROUP_B)
    # the group's indicator / sqrt(|I|), signed positive
    np.testing.assert_allclose(top_a.scores[:30], 1 / np.sqrt(30), atol=1e-4)
    assert result.spec_diff == pytest.approx(max(0.8 * 29, 0.9 * 19) / N, abs=tol)
    # the remaining spectrum: -rho/n (multiplicity |I|-1) for A's group, +rho/n for B's, else 0
    expected = np.sort(
        np.concatenate(
            [
                [0.8 * 29 / N],
                np.full(29, -0.8 / N),
                [-0.9 * 19 / N],
                np.full(19, 0.9 / N),
                np.zeros(N - 50),
            ]
        )
    )[::-1]
    k = result.params.n_eigenvalues
    np.testing.assert_allclose(result.eigenvalues[:k], expected[:k], atol=tol)
    np.testing.assert_allclose(result.eigenvalues[-k:], expected[-k:], atol=tol)


def test_matches_direct_eigendecomposition(clusters):
    a, b, _ = clusters
    result = paper_compare(
        a, b, sigma_a=2.0, sigma_b=1.5, method="exact", dtype="float64", n_eigenvalues=15
    )
    lam = direct_lambda(a, b, kernel="gaussian", sigma_a=2.0, sigma_b=1.5)
    vals, _vecs = np.linalg.eigh(lam)
    np.testing.assert_allclose(result.eigenvalues[:15], vals[::-1][:15], atol=1e-10)
    np.testing.assert_allclose(result.eigenvalues[-15:], vals[::-1][-15:], atol=1e-10)
    assert result.spec_diff == pytest.approx(np.abs(vals).max(), abs=1e-12)
    for mode in result.modes:
        assert_in_eigenspace(lam, result, mode)


def test_merged_clusters_are_found_in_both_directions(clusters):
    a, b, labels = clusters
    result = paper_compare(a, b, method="exact", dtype="float64", n_modes=3, top_k=60)
    # A separates 0|1 and 2|3, B merges them: the contrast shows up on the A side
    a_side = [set(labels[m.members[:30]].tolist()) for m in result.modes_for("A")]
    assert any(s <= {0, 1} or s <= {2, 3} or len(s) == 1 for s in a_side)
    # clusters 4 and 5 are spread out in B, tight in A: A-not-B modes of their own
    tops = [
        np.bincount(labels[m.members[:60]], minlength=6).argmax() for m in result.modes_for("A")
    ]
    assert {4, 5} & set(tops)


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_swap_negates_spectrum(clusters, kernel):
    a, b, _ = clusters
    forward = paper_compare(
        a, b, kernel=kernel, method="exact", dtype="float64", sigma_a=2.0, sigma_b=1.5
    )
    backward = paper_compare(
        b, a, kernel=kernel, method="exact", dtype="float64", sigma_a=1.5, sigma_b=2.0
    )
    np.testing.assert_allclose(forward.eigenvalues, -backward.eigenvalues[::-1], atol=1e-10)
    assert forward.spec_diff == pytest.approx(backward.spec_diff, abs=1e-12)
    fa, bb = forward.modes_for("A")[0], backward.modes_for("B")[0]
    assert fa.eigenvalue == pytest.approx(-bb.eigenvalue, abs=1e-10)
    assert abs(float(fa.sample_scores @ bb.sample_scores)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("kernel", "method"),
    [("gaussian", "exact"), ("gaussian", "rff"), ("gaussian", "nystrom"), ("cosine", "exact")],
)
def test_identical_embeddings_give_zero(clusters, kernel, method):
    a, _, _ = clusters
    result = paper_compare(a, a.copy(), kernel=kernel, method=method, n_features=300)
    assert result.spec_diff <= 1e-6
    assert not any(m.above_noise_floor for m in result.modes)


@pytest.mark.parametrize("eta", [0.3, 2.5])
def test_eta_eigenvectors_satisfy_eigen_equation(clusters, eta):
    a, b, _ = clusters
    lam = direct_lambda(a, b, kernel="gaussian", sigma_a=2.0, sigma_b=1.5, eta=eta)
    result = paper_compare(a, b, sigma_a=2.0, sigma_b=1.5, eta=eta, method="exact", dtype="float64")
    for mode in result.modes:
        assert_in_eigenspace(lam, result, mode)


def test_duplicate_rows_and_small_n():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 3))
    a[3] = a[0]  # a duplicate row
    b = rng.normal(size=(6, 4))
    result = paper_compare(a, b, method="exact", dtype="float64", n_modes=3, top_k=6)
    lam = direct_lambda(
        a, b, kernel="gaussian", sigma_a=result.params.sigma_a, sigma_b=result.params.sigma_b
    )
    np.testing.assert_allclose(np.sort(result.eigenvalues), np.linalg.eigvalsh(lam), atol=1e-12)
    assert result.context is not None and result.context.knn_k == 5


def test_median_sigma_rule_is_reported(clusters):
    a, b, _ = clusters
    result = paper_compare(a, b, method="exact")
    sq = ((a[:, None] - a[None]) ** 2).sum(-1)
    median = np.median(np.sqrt(sq[np.triu_indices(len(a), 1)]))
    assert result.params.sigma_a == pytest.approx(SIGMA_MEDIAN_FACTOR * median, rel=1e-6)
    assert "median" in result.params.sigma_rule


def test_deterministic_for_a_seed(clusters):
    a, b, _ = clusters
    first = paper_compare(a, b, method="rff", n_features=200, seed=5)
    again = paper_compare(a, b, method="rff", n_features=200, seed=5)
    other = paper_compare(a, b, method="rff", n_features=200, seed=6)
    np.testing.assert_array_equal(first.eigenvalues, again.eigenvalues)
    assert not np.allclose(first.eigenvalues, other.eigenvalues)


def test_result_json_shape(clusters):
    a, b, _ = clusters
    payload = paper_compare(a, b, n_modes=2, top_k=5).to_dict()
    assert payload["eigenvalues"] == sorted(payload["eigenvalues"], reverse=True)
    assert {m["direction"] for m in payload["modes"]} == {"A", "B"}
    for mode in payload["modes"]:
        assert len(mode["members"]) == len(mode["scores"]) == 5
        assert mode["scores"] == sorted(mode["scores"], reverse=True)
    assert payload["params"]["kernel"] == "gaussian"
    assert payload["context"]["knn_k"] == 10


def test_kernel_route_blocks_give_the_same_exactly_symmetric_matrix(clusters, monkeypatch):
    """Row blocks of any size (upper triangle mirrored) give one answer; Lambda is symmetric."""
    import spec_core.engine.solve as solve_module

    a, b, _ = clusters
    seen = []
    original = solve_module._dense_extremes

    def spy(lam, *args, **kwargs):
        seen.append(lam.clone())
        return original(lam, *args, **kwargs)

    monkeypatch.setattr(solve_module, "_dense_extremes", spy)
    kwargs = dict(sigma_a=2.0, sigma_b=1.5, method="exact", dtype="float64", context=False)
    whole = paper_compare(a, b, **kwargs)
    blocks = paper_compare(a, b, block_rows=37, **kwargs)
    assert bool((seen[1] == seen[1].T).all())
    direct = direct_lambda(a, b, kernel="gaussian", sigma_a=2.0, sigma_b=1.5)
    np.testing.assert_allclose(seen[1].numpy(), direct, atol=1e-13)
    np.testing.assert_allclose(blocks.eigenvalues, whole.eigenvalues, atol=1e-13)


@pytest.mark.parametrize("method", ["exact", "nystrom"])
def test_planted_groups_are_the_top_modes_with_the_defaults(planted_pair, method):
    """Centred kernels and the data-driven bandwidth (the defaults): the planted groups are
    still the strongest mode of each side, member for member, and carry strong evidence."""
    a, b = planted_pair
    result = spec_core.compare(a, b, method=method, n_features=120, n_modes=2, top_k=40)
    top_a, top_b = result.modes_for("A")[0], result.modes_for("B")[0]
    assert set(top_a.members[:30].tolist()) == set(GROUP_A)
    assert set(top_b.members[:20].tolist()) == set(GROUP_B)
    assert top_a.size == pytest.approx(30, abs=1.5) and top_b.size == pytest.approx(20, abs=1.5)
    assert abs(len(top_a.members) - 30) <= 1 and abs(len(top_b.members) - 20) <= 1
    assert result.params.centre
    assert top_a.stability > 0.9 and top_b.stability > 0.9
