"""The inputs users really have, and hostile ones: the engine leaves every input untouched and
either answers with finite numbers or refuses with a message naming the cause; never a crash."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from spec_core import compare
from spec_core.cli.entry import main

rng = np.random.default_rng(11)
N = 150
BASE_A = rng.normal(size=(N, 6))
BASE_B = BASE_A[:, :4] + 0.5 * rng.normal(size=(N, 4))

# Every route: the exact n x n kernel route (Gaussian and cosine), the cosine feature route
# (n > d_A + d_B), rff and nystrom on the Gram route (n > D_A + D_B) and on the n x n route
# (n <= D_A + D_B).
ROUTES = {
    "exact-gaussian": dict(method="exact"),
    "exact-cosine": dict(method="exact", kernel="cosine"),
    "rff-gram": dict(method="rff", n_features=16),
    "rff-small-n": dict(method="rff", n_features=200),
    "nystrom-gram": dict(method="nystrom", n_features=16),
    "nystrom-small-n": dict(method="nystrom", n_features=120),
}


def layouts(x: np.ndarray, dtype, tmp_path, name):
    """The memory layouts a caller hands over: C order, Fortran order, a read-only memory map
    of a .npy file, a non-contiguous slice of a bigger array."""
    x = x.astype(dtype)
    path = tmp_path / f"{name}.npy"
    np.save(path, x)
    wide = np.zeros((x.shape[0] * 2, x.shape[1] * 3), dtype=dtype)
    wide[::2, ::3] = x
    return {
        "C": np.ascontiguousarray(x),
        "F": np.asfortranarray(x),
        "memmap": np.load(path, mmap_mode="r"),
        "slice": wide[::2, ::3],
    }


def digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("in_dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("compute", ["float32", "float64"])
def test_inputs_are_never_written(tmp_path, route, in_dtype, compute):
    a_all = layouts(BASE_A, in_dtype, tmp_path, "a")
    b_all = layouts(BASE_B, in_dtype, tmp_path, "b")
    files = {p: p.read_bytes() for p in tmp_path.glob("*.npy")}
    answers = []
    for layout in a_all:
        a, b = a_all[layout], b_all[layout]
        before = (digest(a), digest(b))
        result = compare(a, b, dtype=compute, n_modes=2, top_k=10, **ROUTES[route])
        assert (digest(a), digest(b)) == before, f"{layout}: the input changed"
        assert np.isfinite(result.eigenvalues).all()
        answers.append(result.eigenvalues)
    for p, content in files.items():
        assert p.read_bytes() == content, f"{p.name} changed on disk"
    for other in answers[1:]:  # the layout does not change the answer
        np.testing.assert_allclose(other, answers[0], atol=1e-6)


@pytest.mark.slow
def test_cli_on_npy_files_every_method(tmp_path):
    """What `embed` writes (float32 .npy) and float64 .npy, every method, `auto` beyond the exact
    limit included; in a child process, so a crash (the old segfault) fails this test, not the
    run. The files stay byte-identical."""
    script = textwrap.dedent(
        f"""
        import hashlib, json, sys
        import numpy as np
        import spec_core.engine.compare as spec
        from spec_core.cli.entry import main
        spec.AUTO_EXACT_MAX_ROWS = 300  # so that `auto` takes the feature route at 400 rows
        d = {str(tmp_path)!r}
        rng = np.random.default_rng(0)
        a = rng.normal(size=(400, 12)); b = a[:, :8] + rng.normal(size=(400, 8))
        for dtype in ("float32", "float64"):
            np.save(f"{{d}}/a_{{dtype}}.npy", a.astype(dtype))
            np.save(f"{{d}}/b_{{dtype}}.npy", b.astype(dtype))
        def sums():
            return [hashlib.sha256(open(f"{{d}}/{{x}}_{{t}}.npy", "rb").read()).hexdigest()
                    for x in "ab" for t in ("float32", "float64")]
        before = sums()
        for dtype in ("float32", "float64"):
            for method in ("auto", "exact", "rff", "nystrom"):
                code = main(["compare", f"{{d}}/a_{{dtype}}.npy", f"{{d}}/b_{{dtype}}.npy",
                             "--method", method, "--n-features", "64", "--dtype", dtype,
                             "--out", f"{{d}}/r.json", "--quiet"])
                assert code == 0, (dtype, method)
                payload = json.loads(open(f"{{d}}/r.json").read())
                if method == "auto":
                    assert payload["params"]["method"] == "nystrom", payload["params"]
        assert sums() == before, "an input file changed"
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


# ---------------------------------------------------------------------------------------------
# Finite or refuse


@pytest.mark.parametrize("scale", [1e30, 1e-30])
@pytest.mark.parametrize("method", ["exact", "rff", "nystrom"])
def test_gaussian_is_scale_free(scale, method):
    """Values x1e30 or x1e-30 in float32 (the data-driven bandwidths scale with them) give the
    same spectrum as the unscaled data, not NaN."""
    a, b = BASE_A.astype(np.float32), BASE_B.astype(np.float32)
    kwargs = dict(method=method, n_features=64, n_modes=2, top_k=10)
    plain = compare(a, b, **kwargs)
    scaled = compare(a * np.float32(scale), b * np.float32(scale), **kwargs)
    assert np.isfinite(scaled.eigenvalues).all()
    np.testing.assert_allclose(scaled.eigenvalues, plain.eigenvalues, atol=2e-5)
    assert scaled.params.sigma_a == pytest.approx(plain.params.sigma_a * scale, rel=1e-4)


def test_float64_near_its_limits():
    for scale in (1e300, 1e-300):
        result = compare(BASE_A * scale, BASE_B * scale, n_modes=2, top_k=10)
        reference = compare(BASE_A, BASE_B, n_modes=2, top_k=10)
        np.testing.assert_allclose(result.eigenvalues, reference.eigenvalues, atol=1e-5)
        assert np.isfinite(result.context.linear_cka)


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e-5])
def test_cosine_is_scale_free(scale):
    """The cosine kernel ignores each row's length: x * 1e30 against x gives 0."""
    a = BASE_A.astype(np.float32)
    result = compare(a * np.float32(scale), a, kernel="cosine", n_modes=2, top_k=10)
    assert result.spec_diff < 1e-5
    assert np.isfinite(result.context.linear_cka)


@pytest.mark.parametrize(
    ("sigma", "message"),
    [
        (1e-30, r"sigma_a = 1e-30 makes every off-diagonal kernel value 0"),
        (1e300, r"sigma_a = 1e\+300 makes every kernel value 1"),
    ],
)
@pytest.mark.parametrize("method", ["exact", "rff"])
def test_degenerate_bandwidths_are_refused_with_the_cause(sigma, message, method):
    with pytest.raises(ValueError, match=message):
        compare(BASE_A, BASE_B, sigma_a=sigma, method=method, n_features=64)


def test_bandwidth_messages_name_the_data_driven_value():
    with pytest.raises(ValueError, match=r"the data-driven bandwidth is [0-9.]+"):
        compare(BASE_A, BASE_B, sigma_b=1e-40)


def test_constant_embedding_is_refused():
    with pytest.raises(ValueError, match=r"B: all 150 rows are identical"):
        compare(BASE_A, np.ones((N, 3)))


def test_duplicate_rows_give_finite_results():
    a = np.repeat(BASE_A[:30], 5, axis=0)
    b = np.repeat(BASE_B[:30], 5, axis=0)
    for method in ("exact", "rff", "nystrom"):
        result = compare(a, b, method=method, n_features=64, n_modes=2, top_k=10)
        assert np.isfinite(result.eigenvalues).all()
        assert all(np.isfinite(m.sample_scores).all() for m in result.modes)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((N, 3), dtype="m8[s]"), r"A must hold real numbers .*time deltas"),
        (np.zeros((N, 3), dtype="M8[s]"), r"A must hold real numbers .*dates"),
        (np.zeros((N, 3), dtype=complex), r"A must hold real numbers .*complex"),
        (np.array([["1"] * 3] * N), r"A must hold real numbers"),
        (np.full((N, 3), None, dtype=object), r"A must hold real numbers .*objects"),
    ],
)
def test_non_numeric_dtypes_are_refused(array, message):
    with pytest.raises(ValueError, match=message):
        compare(array, BASE_B)


def test_integer_and_bool_inputs_are_numbers():
    a = (BASE_A * 10).astype(np.int16)
    b = BASE_B > 0
    result = compare(a, b, n_modes=2, top_k=10)
    assert np.isfinite(result.eigenvalues).all()


def test_huge_width_is_refused_up_front():
    """An n x 1e6 input: a clear message before any allocation, not an allocator's."""
    wide = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(N, 1_000_000), strides=(0, 0))
    with pytest.raises(ValueError, match=r"A has 1,000,000 columns, more than the 65,536"):
        compare(wide, BASE_B)


def test_memory_budget_refuses_with_advice(monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_MAX_MEMORY_GB", "0.01")
    with pytest.raises(ValueError, match=r"would need about .* more than the 10.2 MiB allowed"):
        compare(BASE_A, BASE_B, method="exact")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_features=10**9), r"n_features=1000000000 is more than this tool allows"),
        (dict(n_modes=10**6), r"n_modes=1000000 is more than this tool allows"),
        (dict(top_k=10**5), r"top_k=100000 is more than this tool allows"),
        (dict(seed=-1), r"seed must be an integer"),
        (dict(seed=10**23), r"seed must be an integer"),
        (dict(eta=float("nan")), r"eta must be a finite number"),
        (dict(eta=1e300), r"eta must be a finite number from 0 to"),
        (dict(sigma_a=float("inf")), r"sigma_a must be a positive number"),
        (dict(sigma_rule="magic"), r"sigma_rule='magic' is not supported"),
    ],
)
def test_parameter_caps(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare(BASE_A, BASE_B, **kwargs)


def test_result_json_is_strict(tmp_path):
    np.save(tmp_path / "a.npy", BASE_A.astype(np.float32) * np.float32(1e30))
    np.save(tmp_path / "b.npy", BASE_B.astype(np.float32))
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "compare",
                str(tmp_path / "a.npy"),
                str(tmp_path / "b.npy"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    payload = json.loads(out.read_text(), parse_constant=refuse)
    assert all(np.isfinite(payload["eigenvalues"]))


@pytest.mark.parametrize("which", ["a", "b"])
def test_out_may_not_name_an_input(tmp_path, capsys, which):
    np.save(tmp_path / "a.npy", BASE_A)
    np.savez(tmp_path / "b.npz", emb=BASE_B)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    target = tmp_path / ("a.npy" if which == "a" else "b.npz")
    code = main(
        [
            "compare",
            str(tmp_path / "a.npy"),
            f"{tmp_path / 'b.npz'}:emb",
            "--out",
            str(target),
            "--quiet",
        ]
    )
    assert code == 2
    assert "names an input file" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_csv_id_column_aligns_rows_and_is_not_a_feature(tmp_path, capsys):
    """Identical data, B's rows shuffled, both with an id column: rows are aligned by id and the
    ids are not features, so SPEC-diff is 0 (it was 0.24 with the id read as a feature)."""
    ids = [str(1000 + 7 * i) for i in range(N)]  # numeric ids: the tempting case
    order = rng.permutation(N)
    frame_a = pd.DataFrame(BASE_A, columns=[f"f{i}" for i in range(6)])
    frame_a.insert(0, "id", ids)
    frame_b = frame_a.iloc[order]
    frame_a.to_csv(tmp_path / "a.csv", index=False)
    frame_b.to_parquet(tmp_path / "b.parquet")
    out = tmp_path / "r.json"
    code = main(
        [
            "compare",
            str(tmp_path / "a.csv"),
            str(tmp_path / "b.parquet"),
            "--out",
            str(out),
            "--quiet",
            "--no-stability",
        ]
    )
    assert code == 0, capsys.readouterr().err
    payload = json.loads(out.read_text())
    assert payload["spec_diff"] < 1e-5
    assert payload["params"]["dim_a"] == 6
    assert sorted(tmp_path.iterdir()) == sorted(  # nothing staged beside the inputs
        [tmp_path / "a.csv", tmp_path / "b.parquet", out]
    )


def test_ids_that_do_not_match_are_named(tmp_path, capsys):
    frame = pd.DataFrame(BASE_A[:, :3], columns=["x", "y", "z"])
    frame.insert(0, "id", [f"r{i}" for i in range(N)])
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.assign(id=[f"s{i}" for i in range(N)]).to_csv(tmp_path / "b.csv", index=False)
    code = main(
        [
            "compare",
            str(tmp_path / "a.csv"),
            str(tmp_path / "b.csv"),
            "--out",
            str(tmp_path / "r.json"),
            "--quiet",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "b.csv has no row for 150 of the dataset's 150 rows" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv_tail",
    [
        ["--sigma-a", "1e300"],
        ["--sigma-a", "1e-30"],
        ["--sigma-a", "nan"],
        ["--eta", "inf"],
        ["--n-features", "1000000000", "--method", "rff"],
        ["--top-k", "100000"],
        ["--seed", "-5"],
    ],
)
def test_cli_hostile_parameters_get_one_line(tmp_path, capsys, argv_tail):
    np.save(tmp_path / "a.npy", BASE_A)
    np.save(tmp_path / "b.npy", BASE_B)
    code = main(
        [
            "compare",
            str(tmp_path / "a.npy"),
            str(tmp_path / "b.npy"),
            "--out",
            str(tmp_path / "r.json"),
            "--quiet",
            *argv_tail,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "r.json").exists()


# ---------------------------------------------------------------------------------------------
# Found by attacking the CLI and the engine (each was a traceback, a crash or a wrong answer)


def run_cli(*argv, env=None):
    """The CLI in a child process: a traceback or a crash shows as such."""
    import os

    done = subprocess.run(
        [sys.executable, "-m", "spec_core", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stdout, done.stderr


def one_line_error(code, err):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_out_may_not_be_a_special_file_or_folder(tmp_path):
    import os

    np.save(tmp_path / "a.npy", BASE_A)
    np.save(tmp_path / "b.npy", BASE_B)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target, words in ((fifo, "not a regular file"), (tmp_path, "is a folder")):
        code, _, err = run_cli(
            "compare", tmp_path / "a.npy", tmp_path / "b.npy", "--out", target, "--quiet"
        )
        one_line_error(code, err)
        assert words in err
    assert not fifo.is_file()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (True, 8), }", "declares shape"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (-5, 8), }", "declares shape"),
        ("{'descr': ", "not a valid .npy"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (10**6, 8), }", "not a valid .npy"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 8), }", "is truncated"),
    ],
)
def test_malformed_npy_headers_are_one_line_errors(tmp_path, header, message):
    body = header.encode()
    preamble = b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little")
    (tmp_path / "a.npy").write_bytes(preamble + body + b"\n" + b"\0" * 64)
    np.save(tmp_path / "b.npy", BASE_B)
    code, _, err = run_cli(
        "compare", tmp_path / "a.npy", tmp_path / "b.npy", "--out", tmp_path / "r.json", "--quiet"
    )
    one_line_error(code, err)
    assert message in err and "a.npy" in err


def test_npz_with_a_bad_crc_and_one_declaring_a_huge_array(tmp_path):
    import io
    import zipfile

    np.savez(tmp_path / "ok.npz", emb=BASE_A)
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    data[200] ^= 0xFF  # a flipped byte in the array's data
    (tmp_path / "crc.npz").write_bytes(bytes(data))
    np.save(tmp_path / "b.npy", BASE_B)
    code, _, err = run_cli(
        "compare", tmp_path / "crc.npz", tmp_path / "b.npy", "--out", tmp_path / "r.json", "--quiet"
    )
    one_line_error(code, err)
    # a small archive whose header declares 20,000 x 20,000 float64: refused before reading
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (20000, 20000)}
    )
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("emb.npy", buf.getvalue() + b"\0" * 1_000_000)
    start = time.perf_counter()
    code, _, err = run_cli(
        "compare",
        tmp_path / "bomb.npz",
        tmp_path / "b.npy",
        "--out",
        tmp_path / "r.json",
        "--quiet",
        env={"SPEC_EXPLORER_MAX_MEMORY_GB": "0.5"},
    )
    one_line_error(code, err)
    assert "more than the 512.0 MiB allowed" in err
    assert time.perf_counter() - start < 30


def test_tables_keep_float64_precision(tmp_path):
    """A CSV of values near 1e8 that differ in their last digits gives the answer the same
    values give as float64 .npy (float32 used to round the differences away)."""
    shifted = BASE_A + 1e8
    np.save(tmp_path / "a.npy", shifted)
    pd.DataFrame(shifted).to_csv(tmp_path / "a.csv", index=False)
    np.save(tmp_path / "b.npy", BASE_B)
    answers = []
    for name in ("a.npy", "a.csv"):
        out = tmp_path / f"{name}.json"
        code = main(
            [
                "compare",
                str(tmp_path / name),
                str(tmp_path / "b.npy"),
                "--out",
                str(out),
                "--quiet",
                "--no-stability",
                "--dtype",
                "float64",
            ]
        )
        assert code == 0
        answers.append(json.loads(out.read_text())["spec_diff"])
    assert answers[1] == pytest.approx(answers[0], rel=1e-9)
    pd.DataFrame(BASE_A * 1e39).to_csv(tmp_path / "big.csv", index=False)
    from spec_core.data.io import load_matrix

    assert np.isfinite(load_matrix(tmp_path / "big.csv")).all()


def test_one_outlier_row_does_not_wreck_float32():
    """The Gaussian rows are centred on a robust centre (a sample's column medians): one row at
    1e8 no longer shifts every other row far from 0, where float32 loses their detail."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(400, 16))
    b = a[:, :8] + 0.5 * rng.normal(size=(400, 8))
    a[7] = 1e8
    kwargs = dict(sigma_a=2.0, sigma_b=1.5, stability=False, context=False, n_modes=2)
    f32 = compare(a.astype(np.float32), b.astype(np.float32), **kwargs)
    f64 = compare(a, b, dtype="float64", **kwargs)
    assert f32.spec_diff == pytest.approx(f64.spec_diff, rel=1e-3)


def test_all_one_kernel_refused_in_float32():
    with pytest.raises(ValueError, match=r"makes every kernel value 1 in float32"):
        compare(BASE_A, BASE_B, sigma_scale=1e5)
    result = compare(BASE_A, BASE_B, sigma_scale=1e5, dtype="float64", stability=False)
    assert result.spec_diff > 0


def test_values_near_the_float64_limit():
    result = compare(BASE_A * 1e307, BASE_B * 1e307, n_modes=2)
    reference = compare(BASE_A, BASE_B, n_modes=2)
    np.testing.assert_allclose(result.eigenvalues, reference.eigenvalues, atol=1e-5)
    assert result.context.linear_cka == pytest.approx(reference.context.linear_cka, rel=1e-6)
    nystrom = compare(BASE_A * 1e307, BASE_B * 1e307, method="nystrom", n_features=64)
    assert np.isfinite(nystrom.eigenvalues).all()


def test_table_oddities(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spec_core.data.io import load_matrix, load_matrix_with_ids

    durations = pd.DataFrame({"x": BASE_A[:, 0], "t": pd.to_timedelta(np.arange(N), "s")})
    durations.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="column 't' holds durations"):
        load_matrix(tmp_path / "t.parquet")
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(BASE_A.ravel()), 6)
    pq.write_table(
        pa.table({"id": [f"r{i}" for i in range(N)], "emb": fixed}), tmp_path / "fixed.parquet"
    )
    matrix, ids = load_matrix_with_ids(tmp_path / "fixed.parquet")
    np.testing.assert_array_equal(matrix, BASE_A) and ids[3] == "r3"
    holes = pa.array([list(r) for r in BASE_A[:5]] + [None], type=pa.list_(pa.float64()))
    pq.write_table(pa.table({"emb": holes}), tmp_path / "holes.parquet")
    with pytest.raises(ValueError, match="column 'emb' is empty in row 5"):
        load_matrix(tmp_path / "holes.parquet")
    (tmp_path / "na.csv").write_text("ID,x,y\nNA,1,2\nnull,3,4\nr3,5,7\n")
    assert load_matrix_with_ids(tmp_path / "na.csv")[1] == ["NA", "null", "r3"]
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    code = main(
        [
            "compare",
            str(tmp_path / "ragged.csv"),
            str(tmp_path / "ragged.csv:x"),
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1


def test_memory_variable_must_be_a_size(tmp_path):
    np.save(tmp_path / "a.npy", BASE_A)
    np.save(tmp_path / "b.npy", BASE_B)
    for value in ("abc", "0", "-1", "nan", "1e300"):
        code, _, err = run_cli(
            "compare",
            tmp_path / "a.npy",
            tmp_path / "b.npy",
            "--out",
            tmp_path / "r.json",
            "--quiet",
            env={"SPEC_EXPLORER_MAX_MEMORY_GB": value},
        )
        one_line_error(code, err)
        assert "SPEC_EXPLORER_MAX_MEMORY_GB" in err


def test_scales_on_a_small_file_and_labels_with_escape_codes(tmp_path, capsys):
    np.save(tmp_path / "a.npy", BASE_A[:10])
    np.save(tmp_path / "b.npy", BASE_B[:10])
    assert main(["scales", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--quiet"]) == 0
    np.save(tmp_path / "a.npy", BASE_A)
    np.save(tmp_path / "b.npy", BASE_B)
    (tmp_path / "l.txt").write_text("".join("\x1b]0;owned\x07\x1b[31mred\n" for _ in range(N)))
    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                str(tmp_path / "a.npy"),
                str(tmp_path / "b.npy"),
                "--labels",
                str(tmp_path / "l.txt"),
                "--out",
                str(tmp_path / "r.json"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "\x1b" not in capsys.readouterr().out


def test_python_api_odd_arguments():
    masked = np.ma.masked_array(BASE_A, mask=np.zeros_like(BASE_A, dtype=bool))
    masked.mask[3, 2] = True
    with pytest.raises(ValueError, match="A has NaN or infinite values in 1 row.*row 3"):
        compare(masked, BASE_B)
    result = compare(
        np.asmatrix(BASE_A),
        BASE_B,
        n_modes=np.int64(2),
        eta=np.float32(1.0),
        labels=(str(i % 3) for i in range(N)),
    )
    json.dumps(result.to_dict(), allow_nan=False)
    for bad in ("1", 1 + 2j, 10**400):
        with pytest.raises(ValueError, match="sigma_a"):
            compare(BASE_A, BASE_B, sigma_a=bad)
