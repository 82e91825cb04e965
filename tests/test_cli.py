"""The command line and the file readers: round trips and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spec_core import compare
from spec_core.cli.entry import main
from spec_core.data.io import load_matrix

rng = np.random.default_rng(0)
A = rng.normal(size=(60, 5)).astype(np.float32)
B = rng.normal(size=(60, 4)).astype(np.float32)


def test_compare_round_trip(tmp_path, capsys):
    np.save(tmp_path / "a.npy", A)
    np.savez(tmp_path / "b.npz", first=np.zeros((2, 2)), emb=B)
    out = tmp_path / "result.json"
    code = main(
        [
            "compare",
            str(tmp_path / "a.npy"),
            f"{tmp_path / 'b.npz'}:emb",
            "--n-modes",
            "3",
            "--top-k",
            "7",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    payload = json.loads(out.read_text())
    direct = compare(A, B, n_modes=3, top_k=7)
    np.testing.assert_allclose(payload["eigenvalues"], direct.eigenvalues, rtol=1e-6)
    assert payload["spec_diff"] == pytest.approx(direct.spec_diff)
    assert [m["members"] for m in payload["modes"]] == [m.members.tolist() for m in direct.modes]
    assert {"params", "timings", "noise_floor", "modes"} <= payload.keys()
    assert payload["modes"][0]["direction"] in ("A", "B")
    assert "SPEC-diff" in capsys.readouterr().out


def test_csv_tsv_parquet_load_the_same_matrix(tmp_path):
    frame = pd.DataFrame(A, columns=[f"f{i}" for i in range(5)])
    frame.insert(0, "id", [f"img_{i}.png" for i in range(60)])  # a text id column is skipped
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    table = pa.table({"id": frame["id"], "embedding": [row.tolist() for row in A]})
    pq.write_table(table, tmp_path / "list.parquet")
    for name in ("a.csv", "a.tsv", "a.parquet", "list.parquet"):
        np.testing.assert_allclose(load_matrix(tmp_path / name), A, rtol=1e-6, err_msg=name)


def write(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("empty.npy", lambda p: write(p, "empty.npy", b""), "the file is empty"),
        ("junk.npy", lambda p: write(p, "junk.npy", b"not numpy"), "not a valid .npy file"),
        (
            "obj.npy",
            lambda p: np.save(p / "obj.npy", np.array([{}, {}], dtype=object)),
            "never loaded",
        ),
        ("many.npz", lambda p: np.savez(p / "many.npz", x=A, y=B), "pick one with FILE.npz:KEY"),
        ("many.npz:z", lambda p: np.savez(p / "many.npz", x=A, y=B), "has no array 'z'"),
        ("x.txt", lambda p: write(p, "x.txt", b"1 2"), "unsupported file type .txt"),
        ("missing.npy", lambda p: None, "no such file"),
        ("words.csv", lambda p: write(p, "words.csv", b"a,b\nx,y\n"), "has no numeric columns"),
        (
            "stray.csv",
            lambda p: write(p, "stray.csv", b"a,b\n1,2\n3,oops\n4,5\n"),
            "column 'b' is numeric but row 1 (line 3) holds 'oops'",
        ),
        ("nan.csv", lambda p: write(p, "nan.csv", b"a,b\n1,2\n3,\n"), "the first is row 1"),
        (
            "ragged.parquet",
            lambda p: pq.write_table(pa.table({"e": [[1.0, 2.0], [1.0]]}), p / "ragged.parquet"),
            "vectors of different lengths",
        ),
        ("bad.parquet", lambda p: write(p, "bad.parquet", b"PAR1garbage"), "not a valid parquet"),
        (
            "hex.csv",
            lambda p: write(p, "hex.csv", b"a,b\n0x10,1\n0x1f,2\n"),
            "column 'a' holds '0x10' in row 0 (line 2), which is not a number (hexadecimal is "
            "not read: write decimal numbers, e.g. 16 for 0x10)",
        ),
        (
            "words.tsv",
            lambda p: write(p, "words.tsv", b"id\ta\tname\nr1\t1\tcat\nr2\t2\tdog\n"),
            "column 'name' holds 'cat' in row 0 (line 2), which is not a number",
        ),
        (
            "comma.tsv",
            lambda p: write(p, "comma.tsv", b"a\tb\n1\t0,5\n2\t1,5\n"),
            "column 'b' holds '0,5' in row 0 (line 2), which is not a number",
        ),
        (
            "blob.parquet",
            lambda p: pq.write_table(
                pa.table({"x": [1.0, 2.0], "b": [b"1", b"2"]}), p / "blob.parquet"
            ),
            "column 'b' holds b'1' in row 0, which is not a number",
        ),
        (
            "null.parquet",
            lambda p: pq.write_table(
                pa.table({"x": [1.0, 2.0], "n": pa.nulls(2)}), p / "null.parquet"
            ),
            "column 'n' holds no values",
        ),
        (
            "extra.parquet",
            lambda p: pq.write_table(
                pa.table({"id": ["a", "b"], "e": [[1.0, 2.0], [3.0, 4.0]], "text": ["x", "y"]}),
                p / "extra.parquet",
            ),
            "has the embedding column 'e' (lists) and other columns ('text')",
        ),
        ("vec.npy", lambda p: np.save(p / "vec.npy", np.ones(5)), "must be 2-D"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path, capsys, name, make, message):
    make(tmp_path)
    np.save(tmp_path / "good.npy", A)
    code = main(
        [
            "compare",
            str(tmp_path / name),
            str(tmp_path / "good.npy"),
            "--out",
            str(tmp_path / "r.json"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert name.split(":")[0] in err and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


def test_row_mismatch_names_both_files(tmp_path, capsys):
    np.save(tmp_path / "a.npy", A)
    np.save(tmp_path / "b.npy", B[:50])
    code = main(
        [
            "compare",
            str(tmp_path / "a.npy"),
            str(tmp_path / "b.npy"),
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "a.npy has 60 rows but" in err and "b.npy has 50" in err


def test_invalid_parameter_exit_code(tmp_path, capsys):
    np.save(tmp_path / "a.npy", A)
    code = main(
        [
            "compare",
            str(tmp_path / "a.npy"),
            str(tmp_path / "a.npy"),
            "--n-modes",
            "40",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2 and "n_modes=40 is larger than possible" in capsys.readouterr().err


def test_no_traceback_from_the_real_process(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spec_core",
            "compare",
            str(tmp_path / "a.npy"),
            str(tmp_path / "a.npy"),
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "the file is empty" in proc.stderr


def test_precomputed_rows_matched_by_id_column(tmp_path):
    from spec_core.data.io import align_to_ids, load_matrix_with_ids

    frame = pd.DataFrame(A[:4], columns=[f"f{i}" for i in range(5)])
    frame.insert(0, "id", ["c", "a", "extra", "b"])
    frame.to_csv(tmp_path / "e.csv", index=False)
    matrix, ids = load_matrix_with_ids(tmp_path / "e.csv")
    assert ids == ["c", "a", "extra", "b"] and matrix.shape == (4, 5)
    aligned, notes = align_to_ids(matrix, ids, ["a", "b", "c"], name="e.csv")
    np.testing.assert_allclose(aligned, A[[1, 3, 0]], rtol=1e-6)
    assert "1 row(s) name no dataset row" in notes[0] and "'extra'" in notes[0]
    with pytest.raises(ValueError, match=r"e.csv has no row for 1 of the dataset's 3 rows"):
        align_to_ids(matrix, ids, ["a", "b", "zzz"], name="e.csv")
    with pytest.raises(ValueError, match=r"id 'a' appears twice \(rows 0 and 1\)"):
        align_to_ids(matrix[:2], ["a", "a"], ["a"], name="e.csv")


def test_precomputed_rows_matched_by_order(tmp_path):
    from spec_core.data.io import align_to_ids, load_matrix_with_ids

    np.savez(tmp_path / "e.npz", emb=A[:3], ids=np.array(["x", "y", "z"]))
    matrix, ids = load_matrix_with_ids(tmp_path / "e.npz")
    assert ids == ["x", "y", "z"] and matrix.shape == (3, 5)
    np.save(tmp_path / "plain.npy", A[:3])
    matrix, ids = load_matrix_with_ids(tmp_path / "plain.npy")
    assert ids is None
    with pytest.raises(ValueError, match=r"has 3 rows but the dataset has 4; rows are matched"):
        align_to_ids(matrix, ids, ["a", "b", "c", "d"], name="plain.npy")


def test_labels_give_each_mode_its_purity(tmp_path):
    np.save(tmp_path / "a.npy", A)
    np.save(tmp_path / "b.npy", B)
    (tmp_path / "labels.txt").write_text("".join(f"l{i % 3}\r\n" for i in range(60)))
    out = tmp_path / "r.json"
    code = main(
        [
            "compare",
            str(tmp_path / "a.npy"),
            str(tmp_path / "b.npy"),
            "--labels",
            str(tmp_path / "labels.txt"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    labels = [f"l{i % 3}" for i in range(60)]
    for mode in json.loads(out.read_text())["modes"]:
        counts = {lab: sum(labels[m] == lab for m in mode["members"]) for lab in set(labels)}
        assert mode["purity"] == pytest.approx(max(counts.values()) / len(mode["members"]))
        assert mode["majority_label"] in labels


def test_labels_with_the_wrong_row_count_are_refused(tmp_path, capsys):
    np.save(tmp_path / "a.npy", A)
    np.save(tmp_path / "b.npy", B)
    (tmp_path / "labels.txt").write_text("x\ny\n")
    code = main(
        [
            "compare",
            str(tmp_path / "a.npy"),
            str(tmp_path / "b.npy"),
            "--labels",
            str(tmp_path / "labels.txt"),
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert "labels.txt: 2 labels for 60 rows" in capsys.readouterr().err


def test_app_command_starts_streamlit_on_the_checkout(monkeypatch, capsys):
    import subprocess

    from spec_core.cli.app import app_script

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command, cwd: calls.append((command, cwd)) or 0)
    assert main(["app", "--port", "8600"]) == 0
    command, cwd = calls[0]
    assert command[1:4] == ["-m", "streamlit", "run"]
    assert command[4].endswith("spec_app/app.py")
    assert "8600" in command and cwd == app_script().parent
    # the tables' toolbars offer no raw CSV download (formulas as they are) from the first run
    at = command.index("--client.disableDataExport")
    assert command[at + 1] == "true"
    assert main(["app", "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err


def _embed_texts(tmp_path):
    texts = [f"a text about item {i} and {'cats' if i % 2 else 'ships'}" for i in range(25)]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    return ["embed", "--model", "char-ngrams", "--data", str(tmp_path / "t.txt"), "--quiet",
            "--no-cache", "--shard-rows", "10"]  # fmt: skip


def test_embed_shards_refuse_a_folder_with_the_users_files(tmp_path, capsys):
    """A non-empty --out folder without a manifest: the user's ids.json and part-00000.npy
    (the names the shards would take) stay byte-identical, exit 2, one line naming it."""
    folder = tmp_path / "mine"
    folder.mkdir()
    mine = {"ids.json": b'{"my": "own ids"}', "part-00000.npy": b"not numpy", "notes.txt": b"x"}
    for name, content in mine.items():
        (folder / name).write_bytes(content)
    assert main([*_embed_texts(tmp_path), "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(folder) in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == mine


def test_embed_shards_overwrite_writes_over_an_earlier_set(tmp_path, capsys):
    base = _embed_texts(tmp_path)
    folder = tmp_path / "parts"
    assert main([*base, "--out", str(folder)]) == 0
    (folder / "notes.txt").write_bytes(b"keep me")
    assert main([*base, "--out", str(folder)]) == 2  # an earlier set: refused without the flag
    assert "already holds shards" in capsys.readouterr().err
    assert main([*base, "--out", str(folder), "--overwrite"]) == 0
    from spec_core.data.shards import open_shards

    assert open_shards(folder).rows == [10, 10, 5]
    assert (folder / "notes.txt").read_bytes() == b"keep me"  # only the set's own files change
    assert main([*base, "--out", str(tmp_path / "fresh"), "--overwrite"]) == 0  # new: no-op flag


def test_embed_shards_overwrite_removes_the_parts_of_an_earlier_longer_set(tmp_path, capsys):
    """A set of 8 shards, then one of 3 with --overwrite: part-00003..7 go (a reader globbing
    part-*.npy would mix in their rows); other files stay, a part-like folder and names that
    are not a shard's (part-1.npy, part-00009.npy.bak) too."""
    from spec_core.data.shards import open_shards

    base = _embed_texts(tmp_path)
    folder = tmp_path / "parts"
    long = [*base[:-1], "3", "--out", str(folder)]  # 25 rows in shards of 3: 9 parts
    assert main(long) == 0
    assert len(list(folder.glob("part-*.npy"))) == 9
    others = {"notes.md": b"mine", "part-1.npy": b"x", "part-00009.npy.bak": b"y"}
    for name, content in others.items():
        (folder / name).write_bytes(content)
    (folder / "part-00010.npy").mkdir()
    capsys.readouterr()
    assert main([*base, "--out", str(folder), "--overwrite"]) == 0
    assert "removed 6 part file(s) of an earlier set" in capsys.readouterr().err
    assert sorted(p.name for p in folder.glob("part-*.npy")) == [
        "part-00000.npy", "part-00001.npy", "part-00002.npy", "part-00010.npy", "part-1.npy"
    ]  # fmt: skip
    assert (folder / "part-00010.npy").is_dir()
    assert {name: (folder / name).read_bytes() for name in others} == others
    shards = open_shards(folder)
    assert shards.rows == [10, 10, 5]
    stacked = np.concatenate([np.load(folder / f"part-0000{i}.npy") for i in range(3)])
    assert np.array_equal(stacked, shards[0:25]) and [p.name for p in shards.files] == [
        f"part-0000{i}.npy" for i in range(3)
    ]


def test_embed_shards_overwrite_names_a_folder_where_the_manifest_goes(tmp_path, capsys):
    folder = tmp_path / "parts"
    (folder / "manifest.json").mkdir(parents=True)
    assert main([*_embed_texts(tmp_path), "--out", str(folder), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Errno" not in err
    assert f"{folder / 'manifest.json'}: not a file (a folder?)" in err
    assert [p.name for p in folder.iterdir()] == ["manifest.json"]  # nothing written


def test_decimal_parquet_columns_are_read_as_numbers(tmp_path):
    """decimal128 columns (and lists of decimals) are numbers: read as float64, never dropped
    (a dropped column left every row alike)."""
    from decimal import Decimal

    from spec_core.data.io import load_matrix_with_ids

    cells = [["1.5", "-2.125"], ["3.0000000001", "4"], ["1e-3", "12345678.9"]]
    expected = np.array([[float(c) for c in row] for row in cells])
    decimals = [[Decimal(c) for c in row] for row in cells]
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "x": pa.array([row[0] for row in decimals], type=pa.decimal128(20, 10)),
            "y": pa.array([row[1] for row in decimals], type=pa.decimal256(40, 10)),
        }
    )
    pq.write_table(table, tmp_path / "columns.parquet")
    matrix, ids = load_matrix_with_ids(tmp_path / "columns.parquet")
    np.testing.assert_array_equal(matrix, expected)
    assert ids == ["a", "b", "c"]
    lists = pa.array(decimals, type=pa.list_(pa.decimal128(20, 10)))
    pq.write_table(pa.table({"e": lists}), tmp_path / "lists.parquet")
    np.testing.assert_array_equal(load_matrix(tmp_path / "lists.parquet"), expected)


def test_numbers_written_as_text_in_parquet_are_read(tmp_path):
    table = pa.table({"x": ["1.5", "-2", "1e3"], "y": [1.0, 2.0, 3.0]})
    pq.write_table(table, tmp_path / "text.parquet")
    expected = np.array([[1.5, 1.0], [-2.0, 2.0], [1000.0, 3.0]])
    np.testing.assert_array_equal(load_matrix(tmp_path / "text.parquet"), expected)


# ---------------------------------------------------------------------------------------------
# compare-many


def many_files(tmp_path, *, reverse: bool = False):
    """Three files of the same 60 rows: a.npy; b.csv with an id column (its rows in reverse
    order with `reverse`); c.npy (B plus noise, so every pair differs)."""
    ids = [f"r{i}" for i in range(60)]
    np.save(tmp_path / "a.npy", A)
    frame = pd.DataFrame(B, columns=[f"f{j}" for j in range(4)])
    frame.insert(0, "id", ids)
    (frame.iloc[::-1] if reverse else frame).to_csv(tmp_path / "b.csv", index=False)
    np.save(tmp_path / "c.npy", B + rng.normal(scale=0.3, size=B.shape).astype(np.float32))
    return [str(tmp_path / name) for name in ("a.npy", "b.csv", "c.npy")]


def test_compare_many_round_trip(tmp_path, capsys):
    from spec_core import compare_many

    files = many_files(tmp_path)
    out = tmp_path / "many.json"
    assert main(["compare-many", *files, "--n-modes", "2", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())  # strict JSON: NaN would not parse back as a number
    assert payload["names"] == ["a", "b", "c"] and payload["inputs"]["files"] == files
    c = np.load(tmp_path / "c.npy")
    direct = compare_many({"a": A, "b": B, "c": c}, n_modes=2)
    np.testing.assert_allclose(payload["spec_diff"], direct.spec_diff, rtol=1e-6)
    assert [(p["a"], p["b"]) for p in payload["pairs"]] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert "ids" not in payload["pairs"][0]["modes"][0]  # a.npy, the first file, has no ids
    captured = capsys.readouterr()
    assert "closest:" in captured.out and "SPEC-diff of 3 models" in captured.out
    assert "feature maps" in captured.err or "kernel matrix" in captured.err  # per stage
    assert "only" in captured.err  # b.csv has ids and a.npy none: matched by order, said so


def test_compare_many_names_sigmas_and_ids(tmp_path, capsys):
    files = many_files(tmp_path, reverse=True)
    files = [files[1], files[0], files[2]]  # b.csv first: its ids go into the modes
    out = tmp_path / "many.json"
    code = main(["compare-many", *files, "--names", "bee,ay,sea", "--sigmas", "1.5,auto,2",
                 "--n-modes", "2", "--no-stability", "--quiet", "--out", str(out)])  # fmt: skip
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["names"] == ["bee", "ay", "sea"]
    sigmas = [m["sigma"] for m in payload["models"]]
    assert sigmas[0] == 1.5 and sigmas[2] == 2.0 and sigmas[1] > 0
    mode = payload["pairs"][0]["modes"][0]
    assert mode["ids"] == [f"r{59 - i}" for i in mode["members"]]  # b.csv's rows, reversed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--names", "x,y"], "--names gives 2 name(s) for 3 files"),
        (["--sigmas", "1,2"], "--sigmas gives 2 value(s) for 3 files"),
        (["--sigmas", "1,wide,2"], "'wide' for b is not a number"),
        (["--sigmas", "1,-2,2"], "sigma of b"),
        (["--names", "x,x,y"], "two files have the model name 'x'"),
    ],
)
def test_compare_many_bad_flags(tmp_path, capsys, extra, message):
    files = many_files(tmp_path)
    code = main(["compare-many", *files, *extra, "--quiet", "--out", str(tmp_path / "o.json")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_compare_many_refuses_mismatched_rows_and_its_inputs(tmp_path, capsys):
    files = many_files(tmp_path)
    np.save(tmp_path / "short.npy", A[:50])
    out = str(tmp_path / "o.json")
    assert main(["compare-many", files[0], str(tmp_path / "short.npy"), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "short.npy has 50 rows but" in err and "a.npy has 60" in err
    assert main(["compare-many", files[0], files[2], "--out", files[2]]) == 2
    assert "names an input file" in capsys.readouterr().err
    assert main(["compare-many", files[0], files[0], "--out", out]) == 2
    assert "two files have the model name 'a.npy'" in capsys.readouterr().err  # the same file
    assert not (tmp_path / "o.json").exists()


def test_compare_many_names_from_the_files():
    """Each model is named by its file without the suffix, with it where two files would share
    a name, and an .npz key after a colon."""
    from spec_core.cli.compare_many import model_names

    assert model_names(["x/A.npy", "x/B.npy", "y/B.parquet"], None) == ["A", "B.npy", "B.parquet"]
    assert model_names(["e.npz:img", "e.npz:txt"], None) == ["e:img", "e:txt"]
