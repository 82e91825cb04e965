"""CUDA against the CPU: every route, kernel and dtype gives the same answer on both devices.
Skipped without a CUDA device (CI has none); benchmarks/gpu_check.sh runs them on a GPU."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

from spec_core import compare  # noqa: E402
from spec_core.engine.synthetic import merged_pair  # noqa: E402

#: Agreement of the eigenvalues (their scale is ~0.01-0.1) between devices, per dtype.
TOLERANCE = {"float64": 1e-9, "float32": 2e-5}


@pytest.fixture(scope="module")
def pair():
    a, b, labels = merged_pair(n=900, dim=24, groups=8, merged=2, seed=4)
    return a, b, labels


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("kernel", "method"),
    [("gaussian", "exact"), ("gaussian", "rff"), ("gaussian", "nystrom"), ("cosine", "exact")],
)
@pytest.mark.parametrize("centre", [True, False])
def test_cuda_equals_cpu(pair, kernel, method, dtype, centre):
    a, b, labels = pair
    kw = dict(
        kernel=kernel, method=method, dtype=dtype, centre=centre, n_features=600, seed=1,
        labels=labels,
    )  # fmt: skip
    cpu = compare(a, b, device="cpu", **kw)
    gpu = compare(a, b, device="cuda", **kw)
    assert gpu.params.device.startswith("cuda")
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(gpu.eigenvalues[:5], cpu.eigenvalues[:5], atol=tol)
    np.testing.assert_allclose(gpu.eigenvalues[-5:], cpu.eigenvalues[-5:], atol=tol)
    for mine, theirs in zip(cpu.modes, gpu.modes, strict=True):
        overlap = len(set(mine.members.tolist()) & set(theirs.members.tolist()))
        assert overlap >= 0.8 * len(mine.members)


def test_cosine_feature_route_on_cuda(pair):
    a, b, _ = pair
    big_a, big_b = np.tile(a, (3, 1)), np.tile(b, (3, 1))  # n > d_A + d_B: feature route
    cpu = compare(big_a, big_b, kernel="cosine", device="cpu", dtype="float64", stability=False)
    gpu = compare(big_a, big_b, kernel="cosine", device="cuda", dtype="float64", stability=False)
    assert gpu.params.route == "features"
    np.testing.assert_allclose(gpu.eigenvalues[:5], cpu.eigenvalues[:5], atol=1e-9)


def test_batch_spec_diff_on_cuda(pair):
    from spec_core.align.loss import batch_spec_diff

    a, b, _ = pair
    ta = torch.from_numpy(a[:300].astype(np.float64))
    tb = torch.from_numpy(b[:300].astype(np.float64))
    cpu = batch_spec_diff(ta, tb, kernel="gaussian", sigma_a=2.0, sigma_b=1.5)
    gpu = batch_spec_diff(ta.cuda(), tb.cuda(), kernel="gaussian", sigma_a=2.0, sigma_b=1.5)
    assert float(gpu) == pytest.approx(float(cpu), rel=1e-9)


def test_align_trains_on_cuda(pair):
    from spec_core.align.train import align

    a, b, labels = pair
    result = align(a, b, labels=labels, device="cuda", steps=60)
    assert result.params["device"].startswith("cuda")
    sd = result.spec_diff
    assert sd["after"]["val"] < sd["before"]["val"]
