"""The faster evidence (issue 18) gives the evidence of the direct computation.

- linalg.signed_gram (Lambda from kept features, the noise floor's difference, the kNN search's
  inner products, by the upper triangle) equals the NumPy product to round-off;
- the stability resamples solved together (resample.solve_resamples) equal each resample solved
  alone from its own submatrix (the old way): eigenvalues to 1e-9 relative, extended vectors to
  1e-8 (float64);
- the noise floor from the blocked difference is the largest |eigenvalue| of the difference that
  NumPy builds and decomposes, to the solver's stated 1e-2;
- the kNN search equals a brute-force NumPy search;
- the planted and the digits cases, on the exact route, the n x n feature route and the Gram
  route: the same eigenvalues (1e-5 relative, float32), the same members, stability within 0.05
  (and the same count of resamples that bring a mode back, within 1), the same noise floor
  (1e-4 relative), CKA (1e-6) and mean kNN overlap (2e-3) as the old computation, which the
  engine still runs when told to (each resample alone, Lambda as one square product, kNN by row
  blocks).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import planted

import spec_core.engine.metrics as metrics
import spec_core.engine.solve as solve
from spec_core import compare
from spec_core.engine.evidence import DenseOperator, FeatureOperator
from spec_core.engine.linalg import signed_gram
from spec_core.engine.resample import solve_resamples
from spec_core.engine.rows import KernelRows


@pytest.mark.parametrize("n", [1, 7, 255, 256, 257, 1100])
@pytest.mark.parametrize("signed", [False, True])
def test_signed_gram_matches_numpy(n, signed):
    rng = np.random.default_rng(n)
    first, second = rng.normal(size=(n, 13)), rng.normal(size=(n, 9))
    expected = first @ first.T - (second @ second.T if signed else 0.0)
    got = signed_gram(
        torch.from_numpy(first), torch.from_numpy(second) if signed else None, blocks=5
    ).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.array_equal(got, got.T)


class _Alone:
    """An operator that solves its resamples one at a time (the old way)."""

    def __init__(self, operator):
        self._operator = operator
        self.batched = False

    def __getattr__(self, name):
        return getattr(self._operator, name)


def _lambda_and_psi(clusters, centre):
    a, b, _ = clusters
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    psi = np.hstack([an, bn]) / np.sqrt(len(a))
    lam = (an @ an.T - bn @ bn.T) / len(a)
    if centre:
        h = np.eye(len(a)) - 1.0 / len(a)
        lam = h @ lam @ h
    return lam, psi, an.shape[1]


@pytest.mark.parametrize("centre", [False, True])
@pytest.mark.parametrize("kind", ["dense", "features"])
def test_resamples_together_equal_alone(clusters, centre, kind):
    lam, psi, dim_a = _lambda_and_psi(clusters, centre)
    if kind == "dense":
        operator = DenseOperator(torch.from_numpy(lam), centre, seed=0)
    else:
        operator = FeatureOperator(torch.from_numpy(psi), dim_a, centre, None)
    assert operator.batched
    rng = np.random.default_rng(3)
    n = lam.shape[0]
    # subsets under linalg.FULL_EIGH_MAX_DIM rows: each solved densely, extended together
    subsets, starts = [], []
    for keep in (288, 300, 250):
        rows = np.sort(rng.choice(n, keep, replace=False))
        subsets.append(torch.from_numpy(rows))
        starts.append(torch.from_numpy(rng.normal(size=(keep, 3))))
    together = solve_resamples(operator, subsets, starts, n_each=4, seed=5)
    alone = solve_resamples(_Alone(operator), subsets, starts, n_each=4, seed=5)
    for (eigs_t, ext_t), (eigs_a, ext_a) in zip(together, alone, strict=True):
        np.testing.assert_allclose(eigs_t.values.numpy(), eigs_a.values.numpy(), rtol=1e-9)
        # eigenvectors up to sign (the same steps give the same signs; a sign is not evidence)
        signs = np.sign((ext_t.numpy() * ext_a.numpy()).sum(axis=0))
        np.testing.assert_allclose(ext_t.numpy() * signs, ext_a.numpy(), atol=1e-8)


@pytest.mark.parametrize("centre", [False, True])
def test_resamples_together_equal_alone_on_the_krylov_branch(centre):
    """Pools above linalg.FULL_EIGH_MAX_DIM rows: the resamples take Krylov steps (the branch
    the headline case runs), each from a warm start, in lockstep."""
    rng = np.random.default_rng(11)
    n, dim = 1200, 6
    labels = rng.integers(0, 8, n)
    a = rng.normal(scale=4.0, size=(8, dim))[labels] + 0.5 * rng.normal(size=(n, dim))
    b = rng.normal(scale=4.0, size=(4, dim))[labels // 2] + 0.5 * rng.normal(size=(n, dim))
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    lam = (an @ an.T - bn @ bn.T) / n
    if centre:
        h = np.eye(n) - 1.0 / n
        lam = h @ lam @ h
    _, vectors = np.linalg.eigh(lam)
    start = np.hstack([vectors[:, :2], vectors[:, -2:]])
    for operator in (
        DenseOperator(torch.from_numpy(lam), centre, seed=0),
        FeatureOperator(torch.from_numpy(np.hstack([an, bn]) / np.sqrt(n)), dim, centre, None),
    ):
        subsets, starts = [], []
        for _ in range(4):
            rows = np.sort(rng.choice(n, 960, replace=False))
            subsets.append(torch.from_numpy(rows))
            starts.append(torch.from_numpy(start[rows]))
        together = solve_resamples(operator, subsets, starts, n_each=4, seed=2)
        alone = solve_resamples(_Alone(operator), subsets, starts, n_each=4, seed=2)
        for (eigs_t, ext_t), (eigs_a, ext_a) in zip(together, alone, strict=True):
            assert eigs_t.solver == eigs_a.solver != "full"
            np.testing.assert_allclose(eigs_t.values.numpy(), eigs_a.values.numpy(), rtol=1e-9)
            signs = np.sign((ext_t.numpy() * ext_a.numpy()).sum(axis=0))
            np.testing.assert_allclose(ext_t.numpy() * signs, ext_a.numpy(), atol=1e-8)


@pytest.mark.parametrize("method", ["rff", "nystrom"])
@pytest.mark.parametrize("centre", [False, True])
def test_noise_floor_matches_numpy(clusters, method, centre):
    a, _, _ = clusters
    rows = KernelRows.prepare(a, "gaussian", 3.0, torch.device("cpu"), torch.float32)
    fmap = solve._fit_map(rows, method, 200, 0)
    got = solve.map_floor(rows, fmap, centre=centre, seed=0)
    # the same two draws on the same rows, the difference built and decomposed by NumPy
    sample = rows.take(solve.sample_rows(rows.n_rows, solve.NOISE_FLOOR_ROWS, 0))
    other = solve._fit_map(rows, method, 200, 0 + solve.NOISE_SEED_OFFSET)
    phis = [fmap.transform(sample).double().numpy(), other.transform(sample).double().numpy()]
    if centre:
        phis = [phi - phi.mean(axis=0) for phi in phis]
    diff = (phis[0] @ phis[0].T - phis[1] @ phis[1].T) / len(sample)
    expected = np.abs(np.linalg.eigvalsh(diff)).max()
    assert got == pytest.approx(expected, rel=1e-2)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("symmetric_rows", [metrics.SYMMETRIC_ROWS, 0])
def test_knn_matches_brute_force(metric, symmetric_rows, monkeypatch):
    monkeypatch.setattr(metrics, "SYMMETRIC_ROWS", symmetric_rows)
    x = np.random.default_rng(4).normal(size=(300, 5))
    if metric == "cosine":
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        dist = -(unit @ unit.T)
    else:
        dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    expected = np.argsort(dist, axis=1)[:, :7]
    got = metrics.knn_indices_t(torch.from_numpy(x), 7, metric=metric, block_rows=64).numpy()
    for row_got, row_expected in zip(got, expected, strict=True):
        assert set(row_got) == set(row_expected)


def _the_old_way(monkeypatch):
    """The engine as it computed before issue 18: each resample alone from its submatrix,
    Lambda as one square product, the kNN search by row blocks."""
    monkeypatch.setattr(FeatureOperator, "batched", False)
    monkeypatch.setattr(DenseOperator, "batched", property(lambda self: False))
    monkeypatch.setattr(solve, "LAMBDA_BLOCKS", 1)
    monkeypatch.setattr(metrics, "SYMMETRIC_ROWS", 0)


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data.astype(np.float64)
    rng = np.random.default_rng(0)
    # B: the same digits seen through a random projection with two classes' rows spread out
    b = x @ rng.normal(size=(64, 48))
    spread = np.isin(digits.target, (3, 8))
    b[spread] = rng.normal(scale=b.std() * 3, size=(int(spread.sum()), 48))
    return x, b, [str(t) for t in digits.target]


CASES = {
    "planted, exact": lambda: (
        *planted(400, {range(10, 60): 0.8, range(100, 130): 0.9}, {range(200, 240): 0.85}),
        None,
        {"method": "exact", "sigma_a": 1.0, "sigma_b": 1.0},
    ),
    "digits, rff n x n": lambda: (*_digits(), {"method": "rff", "n_features": 2000}),
    "digits, rff Gram": lambda: (*_digits(), {"method": "rff", "n_features": 300}),
    "digits, nystrom": lambda: (*_digits(), {"method": "nystrom", "n_features": 300}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_evidence_as_the_old_way(case, monkeypatch):
    a, b, labels, options = CASES[case]()
    new = compare(a, b, labels=labels, n_modes=3, **options)
    with monkeypatch.context() as patch:
        _the_old_way(patch)
        old = compare(a, b, labels=labels, n_modes=3, **options)
    assert new.params.n_resamples == old.params.n_resamples == 10
    np.testing.assert_allclose(new.eigenvalues, old.eigenvalues, rtol=1e-5, atol=1e-7)
    assert new.noise_floor == pytest.approx(old.noise_floor, rel=1e-4)
    for m_new, m_old in zip(new.modes, old.modes, strict=True):
        assert set(m_new.members) == set(m_old.members), m_new.label
        assert m_new.stability == pytest.approx(m_old.stability, abs=0.05), m_new.label
        assert abs(m_new.stability_hits - m_old.stability_hits) <= 1, m_new.label
        assert m_new.purity == m_old.purity
    assert new.context.linear_cka == pytest.approx(old.context.linear_cka, abs=1e-6)
    assert new.context.knn_overlap_mean == pytest.approx(old.context.knn_overlap_mean, abs=2e-3)


@pytest.mark.parametrize("width", [3, 128, 129, 700])
def test_add_gram_matches_numpy(width):
    """The feature route's Gram pass adds Psi^T Psi with its diagonal blocks by their upper
    triangles: the NumPy product to round-off, exactly symmetric off the diagonal squares."""
    from spec_core.engine.backends import add_gram

    rng = np.random.default_rng(width)
    psi = rng.normal(size=(50, width + 5))
    gram = torch.zeros(width + 5, width + 5, dtype=torch.float64)
    add_gram(gram, torch.from_numpy(psi), width)
    add_gram(gram, torch.from_numpy(psi[:20]), width)
    expected = psi.T @ psi + psi[:20].T @ psi[:20]
    np.testing.assert_allclose(gram.numpy(), expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("k", [2, 3, 5, 8, 20])
def test_quartimax_from_moments_equals_the_direct_steps(k, monkeypatch):
    """localize's rotation from the rows' fourth moments is the direct iteration's, to 1e-12."""
    from spec_core.engine import eigenspaces

    rng = np.random.default_rng(k)
    basis = np.linalg.qr(rng.normal(size=(3000, k)) ** 3)[0]
    from_moments = eigenspaces._quartimax(basis)
    monkeypatch.setattr(eigenspaces, "MOMENT_MAX_K", 0)
    direct = eigenspaces._quartimax(basis)
    np.testing.assert_allclose(from_moments, direct, atol=1e-12)
    assert not np.allclose(direct, np.eye(k))  # the test rotates something
