"""SPEC-align where B has more columns than there are train rows: the ridge start with its
penalty chosen on the validation rows, the verdict that follows what that map can learn, the
bound on how far B moves from itself, `align --threads`, and align-model's verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spec_core.align import align
from spec_core.align.start import PENALTIES, RIDGE, RidgeFit, least_squares_fit, pick_penalty
from spec_core.engine.synthetic import distorted_pair

PAIRS = [("0", "1"), ("2", "3")]


def wide(kind: str, *, noise: float = 0.05, seed: int = 0, n: int = 300, dim: int = 256):
    """(A, B, labels): six Gaussian groups in a 10-dimensional subspace of `dim` columns (more
    columns than rows), B a planted distortion of A (distorted_pair: the pairs' directions
    shrunk 12x or deleted, then rotated) plus isotropic noise of `noise` per column in B: B is
    of full rank, its groups live in a few directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 10)) * 3.0
    groups = rng.integers(0, 6, n)
    basis = np.linalg.qr(rng.normal(size=(dim, 10)))[0]
    x = (centres[groups] + rng.normal(size=(n, 10))) @ basis.T
    labels = groups.astype(str)
    a, b = distorted_pair(x, labels, kind, pairs=PAIRS, factor=12.0, seed=seed + 1)
    return a, (b + noise * rng.normal(size=b.shape)).astype(np.float32), labels


# ---------------------------------------------------------------------------------------------
# The ridge fit against a direct solve


@pytest.mark.parametrize("rows", [40, 200])  # fewer rows than columns (SVD), more (x^T x)
@pytest.mark.parametrize("penalty", [RIDGE, 1e-2, 0.3])
def test_ridge_fit_is_the_ridge_normal_equations(penalty, rows):
    """RidgeFit's map for each penalty (one decomposition) is the solution of the ridge normal
    equations (X^T X + p * mean eigenvalue * I) M = X^T Y on the centred rows, solved directly;
    its degrees of freedom are trace(X (X^T X + ridge I)^-1 X^T)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(rows, 60)), rng.normal(size=(rows, 5))
    xc, yc = x - x.mean(0), y - y.mean(0)
    ridge = penalty * np.trace(xc.T @ xc) / 60
    direct = np.linalg.solve(xc.T @ xc + ridge * np.eye(60), xc.T @ yc)
    fit = RidgeFit(x, y)
    np.testing.assert_allclose(fit.matrix(penalty), direct, rtol=1e-6, atol=1e-9)
    hat = xc @ np.linalg.solve(xc.T @ xc + ridge * np.eye(60), xc.T)
    assert fit.degrees_of_freedom(penalty) == pytest.approx(np.trace(hat), rel=1e-8)
    m, mean_x, mean_y = least_squares_fit(x, y, penalty)
    np.testing.assert_array_equal(mean_y, y.mean(0))
    np.testing.assert_allclose(m, direct, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(mean_x, x.mean(0))


def test_pick_penalty_takes_the_heaviest_within_the_slack():
    values = {1e-6: 0.50, 1e-3: 0.40, 1e-2: 0.401, 1e-1: 0.45}
    # within 2% of B's own (1.0) of the best: 1e-3 and 1e-2 -> the heavier
    assert pick_penalty(values, 1.0) == 1e-2
    assert pick_penalty(values, 0.01) == 1e-3  # a tight slack keeps the best
    assert set(PENALTIES) >= {RIDGE, 1e-2}


# ---------------------------------------------------------------------------------------------
# align on wide B


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_ridge_start_closes_a_wide_linear_distortion(kernel):
    """300 rows (240 train), 256 columns: the start's penalty chosen on the validation rows
    closes at least 80% of the held-out SPEC-diff (the lightest ridge alone, the start before,
    38% Gaussian and 54% cosine), the merged groups come apart (label accuracy not lower) and
    the verdict says "closed"."""
    a, b, labels = wide("shrink")
    result = align(a, b, kernel=kernel, labels=labels, steps=20)
    sd = result.spec_diff
    assert sd["after"]["val"] <= 0.2 * sd["before"]["val"], sd
    assert result.kept in ("start", "step")
    assert result.params["start_penalty"] > RIDGE
    val = result.metrics["val"]
    assert val["after"]["label_knn_accuracy"] >= val["before"]["label_knn_accuracy"]
    assert result.verdict.kind == "closed" and result.verdict.closed_share >= 0.8
    assert json.loads(json.dumps(result.to_dict()))["params"]["start_penalty"] > RIDGE


@pytest.mark.parametrize("noise", [0.0, 0.05])
@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_wide_deleted_information_is_decided_not_undecided(kernel, noise):
    """The same wide B, the pairs' directions deleted: B has 256 columns (full rank with the
    noise) but its groups live in a few directions, so the ridge map that generalises best is
    learnt from 240 train rows (at least 2 per degree of freedom) and the verdict says "cannot"
    (before: "undecided", fewer than 2 train rows per column of B). B keeps its own
    neighbourhoods: 10-NN overlap with itself at least 0.8 (the bound the README states), label
    accuracy not lower than 0.05 below B's; a start that closes under 5% is not kept."""
    a, b, labels = wide("delete", noise=noise)
    result = align(a, b, kernel=kernel, labels=labels, steps=20)
    verdict = result.verdict
    assert verdict.kind == "cannot", verdict.text
    assert "B does not hold the information" in verdict.text
    assert result.kept != "start" or verdict.closed_share >= 0.05
    val = result.metrics["val"]
    assert val["after"]["knn_overlap_b"] >= 0.8
    assert val["after"]["label_knn_accuracy"] >= val["before"]["label_knn_accuracy"] - 0.05


# ---------------------------------------------------------------------------------------------
# align --threads


def test_cli_threads_is_parsed_used_and_restored(tmp_path, capsys, monkeypatch):
    """`align --threads 2` trains with two torch threads and leaves torch as it found it; the
    default is one; a bad count is one line, exit 2, nothing written."""
    import torch

    import spec_core.align as al
    from spec_core.cli.entry import main

    a, b, _ = wide("shrink", n=120, dim=16)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    seen = []
    real = al.align

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(al, "align", spy)
    before = torch.get_num_threads()
    common = ["align", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--steps", "2", "--quiet"]
    for threads, expected in ((["--threads", "2"], 2), ([], 1)):
        out = tmp_path / f"out{expected}.npy"
        args = [*common, "--out", str(out), "--report", str(tmp_path / f"r{expected}.json")]
        assert main(args + threads) == 0
        assert seen[-1] == expected
        assert torch.get_num_threads() == before
    capsys.readouterr()
    bad = [*common, "--out", str(tmp_path / "x.npy"), "--report", str(tmp_path / "x.json")]
    assert main([*bad, "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "--threads must be a positive integer" in err and "Traceback" not in err
    assert not (tmp_path / "x.npy").exists()
    assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error():
    import torch

    from spec_core.align.threads import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1 if before > 1 else 2):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------------------------------------
# The keep term's anchor


@pytest.mark.parametrize("anchor", ["b", "start"])
def test_keep_term_pulls_towards_its_anchor(anchor):
    """With the SPEC loss set to zero, one plain gradient step of the keep term alone moves
    the linear adapter from the start's weights towards the identity (anchor B itself, the
    default KEEP_FROM) or leaves it where it is (anchored at the start: zero change, zero
    gradient)."""
    import torch

    from spec_core.align import train as tr
    from spec_core.align.adapter import Aligner

    assert tr.KEEP_FROM == "b"
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(64, 8)).astype(np.float32))

    class Objective:  # the SPEC loss is 0: only the keep term acts
        data = type("Data", (), {"b_std": x})()

        @staticmethod
        def batch_loss(index, out):
            return out.sum() * 0.0

    aligner = Aligner("linear", 8, np.zeros(8), 1.0, seed=0)
    start = {"weight": 2.0 * np.eye(8), "bias": np.zeros(8)}
    tr._set_linear(aligner, start)
    optimiser = torch.optim.SGD(aligner.module.parameters(), lr=0.1)
    keep_from = start if anchor == "start" else None
    index = torch.arange(64)
    tr._adam_step(aligner, optimiser, Objective, index, 1.0, 1, keep_from)
    weight = aligner.module.weight.detach().numpy()
    if anchor == "start":
        np.testing.assert_allclose(weight, 2.0 * np.eye(8), atol=1e-6)
    else:  # towards the identity: the diagonal falls below 2
        assert np.all(np.diag(weight) < 2.0 - 1e-3)


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
@pytest.mark.parametrize("shape", [(40, 300, 200), (40, 200, 300), (120, 30, 20)])
def test_thin_procrustes_equals_the_full_svd(kernel, shape):
    """With fewer train rows than dimensions the start's rotation comes from thin SVDs (an
    attack timed the d x d SVD at 96 s for 50 x 2,000); the adapter's weight and bias equal
    the full SVD's (the old formula, written out here) to 1e-9."""
    from spec_core.align.start import RidgeFit, _procrustes_weights

    n, d_b, d_a = shape
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, d_b))
    y = x @ rng.normal(size=(d_b, d_a)) / np.sqrt(d_b) + 0.1 * rng.normal(size=(n, d_a))
    offset = rng.normal(size=d_b)
    fit = RidgeFit(x, y)
    m = fit.matrix(1e-3)
    got = _procrustes_weights(fit, m, x, offset, kernel)
    mean_x = fit.mean_x
    mean_y = fit.mean_y if kernel == "cosine" else np.zeros_like(fit.mean_y)
    predicted = (x - mean_x) @ m + mean_y
    left, sizes, right = np.linalg.svd(predicted.T @ x, full_matrices=False)
    rotation = left @ right
    scale = sizes.sum() / (predicted**2).sum()
    weight_t = scale * m @ rotation
    if kernel == "cosine":
        bias = scale * ((offset - mean_x) @ m + mean_y) @ rotation - offset
    else:
        bias = mean_x - mean_x @ weight_t
    np.testing.assert_allclose(got["weight"], weight_t.T, atol=1e-9 * np.abs(weight_t).max())
    np.testing.assert_allclose(got["bias"], bias, atol=1e-9 * max(np.abs(bias).max(), 1.0))
