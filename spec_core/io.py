"""Reading embedding matrices from user files, safely.

Formats: .npy, .npz (`file.npz:key` picks an array), .csv / .tsv (the numeric columns), and
.parquet (the numeric columns, or one list-valued column). Pickles are never loaded
(`allow_pickle=False`): a user file cannot run code. Every problem is a ValueError whose message
starts with the file name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spec_core._validation import check_embedding

MATRIX_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".parquet")


def split_key(spec: str) -> tuple[Path, str | None]:
    """'emb.npz:image' -> (Path('emb.npz'), 'image'); a plain path has no key."""
    head, sep, key = spec.rpartition(":")
    if sep and head.lower().endswith(".npz") and "/" not in key and "\\" not in key:
        return Path(head), key
    return Path(spec), None


def load_matrix(spec: str | Path, *, name: str | None = None) -> np.ndarray:
    """Load a 2-D numeric matrix (rows = samples) and check it is finite."""
    path, key = split_key(str(spec))
    label = name or str(spec)
    suffix = path.suffix.lower()
    if suffix not in MATRIX_SUFFIXES:
        raise ValueError(
            f"{label}: unsupported file type {suffix or '(none)'}; "
            f"use one of {', '.join(MATRIX_SUFFIXES)}"
        )
    if not path.is_file():
        raise ValueError(f"{label}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{label}: the file is empty")
    try:
        if suffix == ".npy":
            matrix = _load_npy(path)
        elif suffix == ".npz":
            matrix = _load_npz(path, key)
        elif suffix in (".csv", ".tsv"):
            matrix = _load_table(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            matrix = _load_parquet(path)
    except ValueError as err:
        if str(err).startswith(label):
            raise
        raise ValueError(f"{label}: {err}") from None
    return check_embedding(matrix, label)


def _load_npy(path: Path) -> np.ndarray:
    with path.open("rb") as handle:
        head = handle.read(6)
    if head != b"\x93NUMPY":
        if head[:1] == b"\x80":
            raise ValueError("is a Python pickle, which is never loaded; save a numeric .npy")
        raise ValueError("not a valid .npy file (no NumPy header)")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError as err:
        if "pickle" in str(err).lower() or "object" in str(err).lower():
            raise ValueError(
                "holds Python objects (a pickle), which are never loaded; save a numeric array"
            ) from None
        raise ValueError(f"not a valid .npy file ({err})") from None


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    import zipfile

    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"not a valid .npz file ({err})") from None
    with archive:
        keys = list(archive.files)
        if key is None:
            if len(keys) != 1:
                raise ValueError(
                    f"holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                    "pick one with FILE.npz:KEY"
                )
            key = keys[0]
        if key not in keys:
            raise ValueError(f"has no array {key!r}; it holds {', '.join(keys)}")
        try:
            return archive[key]
        except ValueError as err:
            raise ValueError(f"array {key!r} holds Python objects, which are never loaded") from (
                err
            )


def _load_table(path: Path, *, sep: str) -> np.ndarray:
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot be parsed as a table ({err})") from None
    except pd.errors.EmptyDataError:
        raise ValueError("has no rows") from None
    return _numeric_columns(frame)


def _load_parquet(path: Path) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"not a valid parquet file ({err})") from None
    list_columns = [
        f.name for f in table.schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
    ]
    if len(list_columns) == 1:
        column = table.column(list_columns[0]).combine_chunks()
        lengths = column.value_lengths().to_numpy(zero_copy_only=False)
        if len(set(lengths.tolist())) > 1:
            row = int(np.argmax(lengths != lengths[0]))
            raise ValueError(
                f"column {list_columns[0]!r} has vectors of different lengths: row 0 has "
                f"{lengths[0]}, row {row} has {lengths[row]}"
            )
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), -1)
    if len(list_columns) > 1:
        raise ValueError(
            f"has {len(list_columns)} list-valued columns ({', '.join(list_columns)}); "
            "keep one embedding column per file"
        )
    return _numeric_columns(table.to_pandas())


def _numeric_columns(frame) -> np.ndarray:
    if frame.shape[0] == 0:
        raise ValueError("has no rows")
    import pandas as pd

    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(
            frame[column]
        ):
            continue
        parsed = pd.to_numeric(frame[column], errors="coerce")
        bad = parsed.isna() & frame[column].notna()
        if parsed.notna().mean() > 0.5 and bad.any():  # a numeric column with a stray cell
            row = int(np.argmax(bad.to_numpy()))
            raise ValueError(
                f"column {column!r} is numeric but row {row} (line {row + 2}) holds "
                f"{frame[column].iloc[row]!r}, which is not a number"
            )
    numeric = frame.select_dtypes(include=["number", "bool"])
    if numeric.shape[1] == 0:
        raise ValueError(
            f"has no numeric columns (columns: {', '.join(map(str, frame.columns[:10]))})"
        )
    return numeric.to_numpy(dtype=np.float32, na_value=np.nan)
