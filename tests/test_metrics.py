"""Context metrics against their textbook definitions."""

from __future__ import annotations

import numpy as np
import pytest

from spec_core import knn_overlap, linear_cka


def hsic_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA the n x n way: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), H K H centring."""
    n = len(a)
    h = np.eye(n) - 1.0 / n
    k, l = h @ a @ a.T @ h, h @ b @ b.T @ h  # noqa: E741
    return float((k * l).sum() / np.sqrt((k * k).sum() * (l * l).sum()))


def test_linear_cka_matches_hsic_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(120, 7))
    b = a @ rng.normal(size=(7, 5)) + 0.5 * rng.normal(size=(120, 5))
    assert linear_cka(a, b) == pytest.approx(hsic_cka(a, b), abs=1e-10)


def test_linear_cka_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(100, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(a, 3.0 * a @ q + 2.0) == pytest.approx(1.0, abs=1e-12)


def test_knn_overlap_matches_brute_force():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(80, 4))
    b = a + 0.3 * rng.normal(size=(80, 4))
    k = 5

    def neighbours(x):
        d = ((x[:, None] - x[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    expected = np.array([len(set(na[i]) & set(nb[i])) / k for i in range(80)])
    np.testing.assert_allclose(knn_overlap(a, b, k=k), expected)
    assert knn_overlap(a, a, k=k).min() == 1.0


def test_knn_overlap_excludes_self_for_duplicates():
    a = np.repeat(np.arange(10.0)[:, None], 2, axis=0)  # every row twice
    overlap = knn_overlap(a, a, k=1)
    np.testing.assert_allclose(overlap, 1.0)


def test_knn_bad_k():
    with pytest.raises(ValueError, match=r"k must be between 1 and n_rows - 1 = 4"):
        knn_overlap(np.zeros((5, 2)), np.zeros((5, 2)), k=5)
