"""The extreme-eigenpair solver against NumPy's full decomposition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spec_core.engine import linalg
from spec_core.engine.linalg import extreme_eigh, gram_signed_eigh, symmetric_eigh


def planted_spectrum(dim: int, values: np.ndarray, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return (q * values) @ q.T


def solve(m: np.ndarray, k: int, **kwargs):
    mt = torch.from_numpy(m)
    return extreme_eigh(
        lambda x, _: mt @ x,
        len(m),
        k_top=k,
        k_bottom=k,
        dense=lambda: symmetric_eigh(mt),
        dtype=torch.float64,
        device=torch.device("cpu"),
        **kwargs,
    )


def test_krylov_matches_full_decomposition():
    rng = np.random.default_rng(0)
    dim = 1500
    # a SPEC-like spectrum: a few separated values at both ends, a dense bulk near zero
    values = np.concatenate(
        [[0.3, 0.2, 0.15, 0.1, 0.08], [-0.25, -0.12, -0.09], rng.normal(scale=1e-3, size=dim - 8)]
    )
    m = planted_spectrum(dim, values)
    eigs = solve(m, 3)
    assert eigs.solver == "block-krylov"
    exact = np.sort(values)[::-1]
    np.testing.assert_allclose(eigs.values.numpy(), np.r_[exact[:3], exact[-3:]], atol=1e-9)
    vecs = eigs.vectors.numpy()
    np.testing.assert_allclose(
        np.linalg.norm(m @ vecs - vecs * eigs.values.numpy(), axis=0), 0, atol=1e-8
    )


@pytest.mark.parametrize("restarts", [0, linalg.MAX_RESTARTS])
def test_hard_spectrum_is_still_exact(monkeypatch, restarts):
    """A Wigner-like matrix has no gaps at its ends: thick restarts get there (or, when they
    run out, the full decomposition answers), so the result is exact either way."""
    monkeypatch.setattr(linalg, "MAX_RESTARTS", restarts)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(700, 700))
    m = (x + x.T) / 2
    eigs = solve(m, 5, max_basis=120)
    exact = np.linalg.eigvalsh(m)[::-1]
    assert eigs.solver == ("full-fallback" if restarts == 0 else "block-krylov")
    np.testing.assert_allclose(eigs.values.numpy(), np.r_[exact[:5], exact[-5:]], atol=1e-9)


def test_low_rank_stops_on_invariant_subspace():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(1000, 4))
    m = u @ np.diag([3.0, 1.0, -2.0, -0.5]) @ u.T  # rank 4
    eigs = solve(m, 2)
    exact = np.linalg.eigvalsh(m)[::-1]
    np.testing.assert_allclose(eigs.values.numpy(), np.r_[exact[:2], exact[-2:]], atol=1e-8)


def test_zero_matrix():
    eigs = solve(np.zeros((800, 800)), 3)
    assert torch.all(eigs.values == 0)


@pytest.mark.parametrize("dim", [5, 50])
def test_small_dimension_returns_every_pair_once(dim):
    values = np.linspace(-1, 1, dim)
    eigs = solve(planted_spectrum(dim, values), 10)
    expected = values[::-1] if dim <= 20 else np.r_[values[::-1][:10], values[::-1][-10:]]
    np.testing.assert_allclose(eigs.values.numpy(), expected, atol=1e-12)


def test_c_inner_product_route_matches_n_by_n():
    """S C in the C-inner product has Lambda's non-zero eigenvalues (Krylov and dense)."""
    rng = np.random.default_rng(3)
    n, d_a, d_b = 900, 400, 500
    psi = rng.normal(size=(n, d_a + d_b)) / np.sqrt(d_a + d_b)
    psi[:300, :d_a] += rng.normal(size=(1, d_a))  # a group tight in A
    signs = np.r_[np.ones(d_a), -np.ones(d_b)]
    lam = (psi * signs) @ psi.T / n
    exact = np.linalg.eigvalsh(lam)[::-1]
    gram = torch.from_numpy(psi.T @ psi / n)
    s = torch.from_numpy(signs)
    eigs = extreme_eigh(
        lambda x, cx: s[:, None] * cx,
        d_a + d_b,
        k_top=4,
        k_bottom=4,
        dense=lambda: gram_signed_eigh(gram, s),
        inner=lambda x: gram @ x,
        dtype=torch.float64,
        device=torch.device("cpu"),
    )
    assert eigs.solver == "block-krylov"
    np.testing.assert_allclose(eigs.values.numpy(), np.r_[exact[:4], exact[-4:]], atol=1e-10)
    dense_vals, _ = gram_signed_eigh(gram, s)
    dense_desc = np.sort(dense_vals.numpy())[::-1]
    np.testing.assert_allclose(dense_desc[:4], exact[:4], atol=1e-10)
    # map back to the samples: u = Psi v is an eigenvector of Lambda
    u = psi @ eigs.vectors.numpy()[:, 0]
    assert np.linalg.norm(lam @ u - eigs.values[0].item() * u) < 1e-8 * np.linalg.norm(u)
