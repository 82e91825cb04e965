"""The Ray backend gives the local answers: the feature route's Gram reduce and score projection
as Ray tasks (one per shard, or per share of the rows) on a local Ray with 2 CPUs."""

from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from spec_core import compare  # noqa: E402
from spec_core.cli.entry import main as cli  # noqa: E402
from spec_core.data.shards import write_shards  # noqa: E402
from spec_core.engine.synthetic import merged_pair  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pair():
    a, b, labels = merged_pair(n=1200, dim=16, groups=8, merged=2, seed=9)
    return a, b, labels


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "rff", "n_features": 300},
        {"method": "nystrom", "n_features": 300},
        {"kernel": "cosine", "method": "exact"},
        {"method": "rff", "n_features": 300, "dtype": "float64", "centre": False},
    ],
)
def test_ray_equals_local(pair, kwargs):
    a, b, labels = pair
    local = compare(a, b, labels=labels, **kwargs)
    remote = compare(a, b, labels=labels, backend="ray", **kwargs)
    assert remote.params.backend == "ray" and local.params.backend == "local"
    tol = 1e-10 if kwargs.get("dtype") == "float64" else 1e-6
    np.testing.assert_allclose(remote.eigenvalues, local.eigenvalues, atol=tol)
    assert remote.noise_floor == pytest.approx(local.noise_floor, rel=1e-9)
    for mine, theirs in zip(local.modes, remote.modes, strict=True):
        np.testing.assert_array_equal(mine.members, theirs.members)
        np.testing.assert_allclose(mine.sample_scores, theirs.sample_scores, atol=1e-5)
        # the resamples see features computed in other blocks: ties among members may flip
        assert mine.stability == pytest.approx(theirs.stability, abs=0.02)


def test_ray_over_shards(pair, tmp_path):
    a, b, _ = pair
    sa = write_shards(a, tmp_path / "a", shard_rows=400)
    sb = write_shards(b, tmp_path / "b", shard_rows=400)
    local = compare(a, b, method="nystrom", n_features=200, stability=False)
    remote = compare(sa, sb, method="nystrom", n_features=200, stability=False, backend="ray")
    np.testing.assert_allclose(remote.eigenvalues, local.eigenvalues, atol=1e-6)


def test_kernel_route_runs_here_and_cli_flag(pair, tmp_path):
    a, b, _ = pair
    result = compare(a[:300], b[:300], method="exact", backend="ray", stability=False)
    assert result.params.backend == "local"  # the exact Gaussian route is not distributed
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "r.json"
    code = cli(["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--method", "rff",
                "--n-features", "200", "--backend", "ray", "--no-stability", "--quiet",
                "--out", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert data["params"]["backend"] == "ray"
    local = compare(a, b, method="rff", n_features=200, stability=False)
    assert data["spec_diff"] == pytest.approx(local.spec_diff, rel=1e-6)


def test_bad_backend_settings():
    a, b, _ = merged_pair(n=50, dim=4, groups=4, merged=1)
    with pytest.raises(ValueError, match="backend"):
        compare(a, b, backend="spark")
    with pytest.raises(ValueError, match="ray_address"):
        compare(a, b, ray_address="127.0.0.1:6379")


def test_embed_with_ray_equals_local(tmp_path):
    from spec_core.data.datasets import load_dataset
    from spec_core.models.embed import embed
    from spec_core.models.registry import load_encoder

    texts = [
        f"row {i}: {'a red fox' if i % 3 else 'the blue sea'} number {i * i}" for i in range(37)
    ]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    data = load_dataset(str(tmp_path / "t.txt"))
    encoder = load_encoder("char-ngrams", "text", device="cpu")
    local = embed(data, encoder, "text", batch_size=8)
    remote = embed(data, "char-ngrams", "text", batch_size=8, backend="ray", actors=2, device="cpu")
    assert remote.ids == local.ids
    np.testing.assert_array_equal(remote.matrix, local.matrix)


def test_embed_cli_with_ray(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("\n".join(f"text number {i}" for i in range(20)) + "\n")
    args = ["embed", "--model", "char-ngrams", "--data", str(tmp_path / "t.txt"), "--no-cache",
            "--quiet", "--batch-size", "6"]  # fmt: skip
    assert cli([*args, "--out", str(tmp_path / "local.npy")]) == 0
    assert cli([*args, "--backend", "ray", "--out", str(tmp_path / "ray.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "ray.npy"), np.load(tmp_path / "local.npy"))
    assert cli([*args, "--backend", "ray", "--actors", "0", "--out", str(tmp_path / "x.npy")]) == 2
    assert "--actors" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "rff", "n_features": 200},
        {"kernel": "cosine", "method": "exact"},
    ],
)
def test_compare_many_on_ray_equals_the_local_pairs(pair, kwargs):
    """compare_many's joint Gram and shared score pass as Ray tasks: each pair as the local
    compare gives it (the parts are summed in the order they arrive: 1e-6)."""
    from spec_core import compare_many

    a, b, labels = pair
    c = a[:, :12] + np.random.default_rng(1).normal(size=(a.shape[0], 12))
    embeddings = {"a": a, "b": b, "c": c}
    many = compare_many(embeddings, labels=labels, backend="ray", n_modes=3, **kwargs)
    assert many.params.backend == "ray"
    for (x, y), result in many.pairs.items():
        assert result.params.backend == "ray"
        local = compare(embeddings[x], embeddings[y], labels=labels, n_modes=3, **kwargs)
        np.testing.assert_allclose(result.eigenvalues, local.eigenvalues, atol=1e-6)
        for mine, theirs in zip(local.modes, result.modes, strict=True):
            np.testing.assert_array_equal(mine.members, theirs.members)
            np.testing.assert_allclose(mine.sample_scores, theirs.sample_scores, atol=1e-5)
