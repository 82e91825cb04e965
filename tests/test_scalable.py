"""The feature route against the exact n x n computation done directly in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_in_eigenspace, direct_lambda, paper_compare

from spec_core.engine.features import NystroemFeatures, RandomFourierFeatures


def top_errors(result, exact_vals: np.ndarray, k: int = 5) -> float:
    """Largest error of the k top and k bottom eigenvalues against the exact ones."""
    exact_desc = np.sort(exact_vals)[::-1]
    return max(
        np.abs(result.eigenvalues[:k] - exact_desc[:k]).max(),
        np.abs(result.eigenvalues[-k:] - exact_desc[-k:]).max(),
    )


@pytest.mark.parametrize("eta", [1.0, 2.5])
def test_cosine_feature_space_equals_kernel_space(eta):
    """n > d_A + d_B: the cosine kernel goes through its exact feature map (D = d)."""
    rng = np.random.default_rng(1)
    n = 500
    a = rng.normal(size=(n, 12)) + np.repeat(rng.normal(size=(5, 12)) * 2, n // 5, axis=0)
    b = rng.normal(size=(n, 9))
    result = paper_compare(a, b, kernel="cosine", eta=eta, dtype="float64", n_eigenvalues=8)
    assert result.params.route == "features"
    lam = direct_lambda(a, b, kernel="cosine", eta=eta)
    vals, _vecs = np.linalg.eigh(lam)
    assert top_errors(result, vals, k=8) < 1e-12
    for mode in result.modes:
        u = mode.sample_scores.astype(np.float64)
        # eigen-equation: checks the sqrt(eta) in u = phi_A v_A + sqrt(eta) phi_B v_B
        assert_in_eigenspace(lam, result, mode, tol=1e-6)
        assert np.linalg.norm(u) == pytest.approx(1.0, abs=1e-6)


def test_cosine_routes_agree():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 200)), rng.normal(size=(300, 180))
    kernel_route = paper_compare(a, b, kernel="cosine", dtype="float64")
    feature_route = paper_compare(
        np.repeat(a, 2, axis=0), np.repeat(b, 2, axis=0), kernel="cosine", dtype="float64"
    )
    assert kernel_route.params.route == "kernel" and feature_route.params.route == "features"
    # duplicating every row leaves Lambda's non-zero spectrum unchanged
    np.testing.assert_allclose(
        feature_route.eigenvalues[:10], kernel_route.eigenvalues[:10], atol=1e-12
    )


@pytest.fixture(scope="module")
def gaussian_case():
    rng = np.random.default_rng(11)
    n = 800
    labels = rng.integers(0, 8, n)
    a = rng.normal(scale=3.0, size=(8, 10))[labels] + rng.normal(size=(n, 10))
    b = rng.normal(scale=3.0, size=(4, 12))[labels // 2] + rng.normal(size=(n, 12))
    sigma_a, sigma_b = 2.5, 2.5
    lam = direct_lambda(a, b, kernel="gaussian", sigma_a=sigma_a, sigma_b=sigma_b)
    return a, b, sigma_a, sigma_b, np.linalg.eigvalsh(lam)


@pytest.mark.parametrize("method", ["rff", "nystrom"])
def test_approximation_converges_to_exact_spectrum(gaussian_case, method):
    a, b, sigma_a, sigma_b, exact = gaussian_case
    errors = {}
    for dim in (100, 400, 1600):
        errs = [
            top_errors(
                paper_compare(
                    a,
                    b,
                    sigma_a=sigma_a,
                    sigma_b=sigma_b,
                    method=method,
                    n_features=dim,
                    seed=seed,
                    dtype="float64",
                ),
                exact,
            )
            for seed in range(3)
        ]
        errors[dim] = float(np.mean(errs))
    assert errors[1600] < errors[400] < errors[100]
    # stated tolerances: RFF error ~ 1/sqrt(D), so ~0.02 at 1600; Nystroem with 1600 of 800
    # rows as landmarks is exact up to its jitter
    assert errors[1600] < (0.03 if method == "rff" else 1e-4)


def test_nystroem_with_all_rows_is_exact(gaussian_case):
    a, b, sigma_a, sigma_b, exact = gaussian_case
    result = paper_compare(
        a, b, sigma_a=sigma_a, sigma_b=sigma_b, method="nystrom", n_features=800, dtype="float64"
    )
    assert top_errors(result, exact) < 1e-4


def test_noise_floor_bounds_spurious_eigenvalues(gaussian_case):
    """Comparing A with itself under independent RFF draws: every eigenvalue is spurious."""
    a, _, sigma_a, _, _ = gaussian_case
    result = paper_compare(a, a, sigma_a=sigma_a, sigma_b=sigma_a, method="rff", n_features=400)
    # same seed for both maps (common random numbers): identical inputs give exactly zero
    assert result.spec_diff < 1e-6
    # two independent draws, computed directly: the floor must be of that size
    import torch

    x = torch.from_numpy(a - a.mean(0))
    phis = []
    for seed in (0, 99):
        fmap = RandomFourierFeatures(n_features=400, sigma=sigma_a, seed=seed).fit(x)
        phis.append(fmap.transform(x).numpy())
    spurious = np.abs(np.linalg.eigvalsh((phis[0] @ phis[0].T - phis[1] @ phis[1].T) / len(a)))
    assert 0.5 * spurious.max() < result.noise_floor < 2.0 * spurious.max()
    better = paper_compare(a, a, sigma_a=sigma_a, sigma_b=sigma_a, method="rff", n_features=3200)
    assert better.noise_floor < result.noise_floor


def test_modes_below_noise_floor_are_flagged(gaussian_case):
    a, b, sigma_a, sigma_b, _ = gaussian_case
    result = paper_compare(a, b, sigma_a=sigma_a, sigma_b=sigma_b, method="rff", n_features=100)
    for mode in result.modes:
        assert mode.above_noise_floor == (abs(mode.eigenvalue) > result.noise_floor)
    assert any(not m.above_noise_floor for m in result.modes)


def test_feature_route_members_match_exact(gaussian_case):
    a, b, sigma_a, sigma_b, _ = gaussian_case
    exact = paper_compare(a, b, sigma_a=sigma_a, sigma_b=sigma_b, method="exact", top_k=50)
    approx = paper_compare(
        a, b, sigma_a=sigma_a, sigma_b=sigma_b, method="nystrom", n_features=400, top_k=50
    )
    for direction in ("A", "B"):
        e, m = exact.modes_for(direction)[0], approx.modes_for(direction)[0]
        assert abs(float(e.sample_scores @ m.sample_scores)) > 0.99
        overlap = len(set(e.members.tolist()) & set(m.members.tolist())) / 50
        assert overlap > 0.8


def test_streaming_blocks_do_not_change_the_answer(gaussian_case):
    a, b, sigma_a, sigma_b, _ = gaussian_case
    kwargs = dict(sigma_a=sigma_a, sigma_b=sigma_b, method="rff", n_features=256, dtype="float64")
    whole = paper_compare(a, b, **kwargs)
    blocks = paper_compare(a, b, block_rows=97, **kwargs)
    np.testing.assert_allclose(blocks.eigenvalues, whole.eigenvalues, atol=1e-12)
    np.testing.assert_allclose(
        blocks.modes[0].sample_scores, whole.modes[0].sample_scores, atol=1e-6
    )


def test_rff_kernel_estimate_is_unbiased():
    rng = np.random.default_rng(0)
    import torch

    x = torch.from_numpy(rng.normal(size=(50, 6)))
    exact = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1).numpy() / (2 * 1.7**2))
    fmap = RandomFourierFeatures(n_features=200_000, sigma=1.7, seed=3).fit(x)
    phi = fmap.transform(x).numpy()
    assert np.abs(phi @ phi.T - exact).max() < 0.02  # ~ 3 / sqrt(r) with r = 100k
    np.testing.assert_allclose(np.diag(phi @ phi.T), 1.0, atol=1e-12)


def test_nystroem_reproduces_landmark_kernel():
    rng = np.random.default_rng(0)
    import torch

    x = torch.from_numpy(rng.normal(size=(40, 5)))
    fmap = NystroemFeatures(n_features=40, sigma=1.5, seed=0).fit(x)
    phi = fmap.transform(x).numpy()
    exact = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1).numpy() / (2 * 1.5**2))
    assert np.abs(phi @ phi.T - exact).max() < 1e-4


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["exact", "rff", "nystrom"])
def test_cuda_matches_cpu(gaussian_case, method):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    a, b, sigma_a, sigma_b, _ = gaussian_case
    kwargs = dict(sigma_a=sigma_a, sigma_b=sigma_b, method=method, n_features=400, dtype="float64")
    cpu = paper_compare(a, b, device="cpu", **kwargs)
    gpu = paper_compare(a, b, device="cuda", **kwargs)
    assert gpu.params.device.startswith("cuda")
    np.testing.assert_allclose(gpu.eigenvalues[:5], cpu.eigenvalues[:5], atol=1e-8)
    np.testing.assert_allclose(gpu.eigenvalues[-5:], cpu.eigenvalues[-5:], atol=1e-8)


def test_recomputed_features_give_the_same_scores(gaussian_case, monkeypatch):
    """Large n: features are recomputed in the scores pass instead of kept; same answer."""
    import spec_core.engine.solve as solve_module

    a, b, sigma_a, sigma_b, _ = gaussian_case
    kwargs = dict(
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        method="nystrom",
        n_features=300,
        dtype="float64",
        block_rows=128,
    )
    kept = paper_compare(a, b, **kwargs)
    monkeypatch.setattr(solve_module, "KEEP_FEATURES_BYTES", 0)
    streamed = paper_compare(a, b, **kwargs)
    np.testing.assert_allclose(streamed.eigenvalues, kept.eigenvalues, atol=1e-12)
    for m_kept, m_streamed in zip(kept.modes, streamed.modes, strict=True):
        np.testing.assert_allclose(m_streamed.sample_scores, m_kept.sample_scores, atol=1e-6)
