"""Matrices in shards with a manifest: the engine reads them by row blocks and gives the answer
it gives on the whole array; bad manifests are refused with the file named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spec_core import compare
from spec_core.cli.entry import main as cli
from spec_core.data.shards import ShardedMatrix, open_shards, write_shards
from spec_core.engine.synthetic import merged_pair


@pytest.fixture(scope="module")
def pair():
    a, b, _ = merged_pair(n=700, dim=12, groups=6, merged=2, seed=7)
    return a, b


def test_round_trip_and_indexing(pair, tmp_path):
    a, _ = pair
    blocks = (a[s : s + 90] for s in range(0, len(a), 90))  # blocks cross shard boundaries
    shards = write_shards(blocks, tmp_path / "a", shard_rows=250)
    assert isinstance(shards, ShardedMatrix) and shards.shape == a.shape
    assert [r for _, r in zip(range(9), shards.rows, strict=False)] == [250, 250, 200]
    np.testing.assert_array_equal(shards[0:700], a)
    np.testing.assert_array_equal(shards[240:260], a[240:260])
    np.testing.assert_array_equal(shards[[699, 0, 250, 249]], a[[699, 0, 250, 249]])
    np.testing.assert_array_equal(shards[5], a[5])
    np.testing.assert_array_equal(shards[-1], a[-1])
    np.testing.assert_array_equal(shards[10:20, 3], a[10:20, 3])
    with pytest.raises(TypeError, match="row blocks"):
        np.asarray(shards)


@pytest.mark.parametrize(
    ("kwargs", "tol"),
    [
        ({"method": "exact"}, 1e-6),
        ({"method": "rff", "n_features": 300}, 1e-6),
        ({"method": "nystrom", "n_features": 300}, 1e-6),
        ({"kernel": "cosine"}, 1e-6),
    ],
)
def test_compare_on_shards_equals_the_array(pair, tmp_path, kwargs, tol):
    a, b = pair
    sa = write_shards(a, tmp_path / "a", shard_rows=256)
    sb = write_shards(b, tmp_path / "b", shard_rows=300)
    whole = compare(a, b, stability=False, **kwargs)
    sharded = compare(sa, sb, stability=False, **kwargs)
    np.testing.assert_allclose(sharded.eigenvalues, whole.eigenvalues, atol=tol)
    assert sharded.context.linear_cka == pytest.approx(whole.context.linear_cka, abs=1e-6)
    for mine, theirs in zip(whole.modes, sharded.modes, strict=True):
        np.testing.assert_array_equal(mine.members, theirs.members)


def test_cli_reads_shard_folders(pair, tmp_path, capsys):
    a, b = pair
    write_shards(a, tmp_path / "a", shard_rows=200)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "r.json"
    code = cli(["compare", str(tmp_path / "a"), str(tmp_path / "b.npy"), "--out", str(out),
                "--no-stability", "--quiet"])  # fmt: skip
    assert code == 0
    direct = compare(a, b, stability=False)
    assert json.loads(out.read_text())["spec_diff"] == pytest.approx(direct.spec_diff, rel=1e-6)


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["shards"][1].update(file="../escape.npy"), "not a .npy file in"),
        (lambda m: m["shards"][1].update(rows=7), "the manifest says"),
        (lambda m: m.update(dtype="int8"), "dtype"),
        (lambda m: m["shards"].append({"file": "part-00009.npy", "rows": 3}), "missing"),
        (lambda m: m.update(format="other"), "not a shard manifest"),
        (lambda m: m.update(rows=5), "rows 5"),
        (lambda m: m.update(shards=[]), "no shards"),
        (lambda m: m["shards"].__setitem__(1, dict(m["shards"][0])), "listed twice"),
        (lambda m: m["shards"][0].update(rows=True), "positive row count"),
        (lambda m: m.update(rows=float(m["rows"])), "rows"),
        (lambda m: m.update(shards=m["shards"] * 40_000), "more than"),
    ],
)
def test_bad_manifests_are_refused(pair, tmp_path, capsys, change, message):
    a, b = pair
    folder = tmp_path / "a"
    write_shards(a, folder, shard_rows=300)
    spec = _manifest(folder)
    change(spec)
    (folder / "manifest.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=message):
        open_shards(folder)
    np.save(tmp_path / "b.npy", b)
    code = cli(["compare", str(folder), str(tmp_path / "b.npy"), "--out", str(tmp_path / "r.json"),
                "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and str(folder) in err


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"format": "spec-explorer-shards/1", "dim": 3, "x": '
        + '{"a": ' * 100_000
        + "1"
        + "}" * 100_001,
    ],
)
def test_deeply_nested_manifest_is_refused_by_name(tmp_path, capsys, text):
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match="manifest.json: not a readable shard manifest .*nested"):
        open_shards(folder)
    np.save(tmp_path / "b.npy", np.ones((4, 3)))
    code = cli(["compare", str(folder), str(tmp_path / "b.npy"), "--out", str(tmp_path / "r.json"),
                "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "manifest.json" in err and "nested" in err


def test_a_huge_rows_value_is_shown_short(pair, tmp_path):
    folder = tmp_path / "a"
    write_shards(pair[0], folder, shard_rows=300)
    spec = _manifest(folder)
    spec["rows"] = [0] * 1_000_000
    (folder / "manifest.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"rows \[0, 0, 0, 0, 0, 0, \.\.\.\] but") as err:
        open_shards(folder)
    assert len(str(err.value)) < 300


def test_nan_in_a_shard_names_the_global_row(pair, tmp_path):
    a, b = pair
    bad = a.copy()
    bad[555, 1] = np.nan
    sharded = write_shards(bad, tmp_path / "a", shard_rows=200)
    with pytest.raises(ValueError, match="row 555"):
        compare(sharded, b)


def test_write_refuses_to_overwrite_and_bad_blocks(pair, tmp_path):
    a, _ = pair
    write_shards(a, tmp_path / "a")
    with pytest.raises(ValueError, match="already holds shards"):
        write_shards(a, tmp_path / "a")
    with pytest.raises(ValueError, match="same width"):
        write_shards([a[:5], a[:5, :3]], tmp_path / "c")


def test_embed_writes_shards_as_the_rows_come(tmp_path, capsys):
    texts = [f"a text about item {i} and {'cats' if i % 2 else 'ships'}" for i in range(53)]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    base = ["embed", "--model", "char-ngrams", "--data", str(tmp_path / "t.txt"), "--quiet",
            "--no-cache", "--batch-size", "7"]  # fmt: skip
    assert cli([*base, "--out", str(tmp_path / "whole.npy")]) == 0
    assert cli([*base, "--out", str(tmp_path / "parts"), "--shard-rows", "20"]) == 0
    parts = open_shards(tmp_path / "parts")
    assert parts.rows == [20, 20, 13]
    np.testing.assert_array_equal(parts[0:53], np.load(tmp_path / "whole.npy"))
    ids = json.loads((tmp_path / "parts" / "ids.json").read_text())["ids"]
    assert len(ids) == 53
    # a second run may not overwrite the set; an output inside the data is refused
    assert cli([*base, "--out", str(tmp_path / "parts"), "--shard-rows", "20"]) == 2
    assert "already holds shards" in capsys.readouterr().err
    assert cli([*base, "--out", str(tmp_path / "x"), "--shard-rows", "0"]) == 2
    assert "--shard-rows" in capsys.readouterr().err


def test_truncated_shard_is_named(pair, tmp_path):
    a, _ = pair
    folder = tmp_path / "a"
    write_shards(a, folder, shard_rows=300)
    part = folder / "part-00001.npy"
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(ValueError, match="part-00001.npy is truncated"):
        open_shards(folder)
