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


def load_matrix_with_ids(
    spec: str | Path, *, id_column: str = "id", name: str | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """A matrix and, when the file has them, its row ids: the `id_column` of a table, or an
    `ids` array beside the matrix in an .npz. Without ids, rows match the dataset by order."""
    path, key = split_key(str(spec))
    label = name or str(spec)
    suffix = path.suffix.lower()
    ids = None
    if suffix in (".csv", ".tsv", ".parquet"):
        import pandas as pd

        try:
            if suffix == ".parquet":
                columns = _parquet_columns(path)
            else:
                columns = list(
                    pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", nrows=0).columns
                )
        except Exception:  # unreadable: load_matrix below names the problem
            columns = []
        if id_column in columns:
            if suffix == ".parquet":
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(
                    path,
                    sep="\t" if suffix == ".tsv" else ",",
                    dtype={id_column: str},
                    keep_default_na=False,
                )
            ids = frame.pop(id_column).astype(str).tolist()
            staged = path.with_name(f".{path.name}.noid{suffix}")
            try:
                if suffix == ".parquet":
                    frame.to_parquet(staged)
                else:
                    frame.to_csv(staged, sep="\t" if suffix == ".tsv" else ",", index=False)
                return load_matrix(staged, name=label), ids
            finally:
                staged.unlink(missing_ok=True)
    elif suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as archive:
            if "ids" in archive.files and archive["ids"].dtype.kind in "UiuS":
                ids = [str(i) for i in archive["ids"].tolist()]
                if key is None:
                    others = [k for k in archive.files if k != "ids"]
                    if len(others) == 1:
                        spec = f"{path}:{others[0]}"
    return load_matrix(spec, name=label), ids


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def align_to_ids(
    matrix: np.ndarray, ids: list[str] | None, dataset_ids, *, name: str
) -> tuple[np.ndarray, list[str]]:
    """Reorder `matrix` to the dataset's rows. With ids: by id (duplicates and dataset rows
    without an embedding are errors; embedding rows naming no dataset row are reported in the
    returned notes). Without ids: by order, and the row counts must agree."""
    dataset_ids = list(dataset_ids)
    if ids is None:
        if matrix.shape[0] != len(dataset_ids):
            raise ValueError(
                f"{name} has {matrix.shape[0]} rows but the dataset has {len(dataset_ids)}; "
                "rows are matched by order, or by an 'id' column when the file has one"
            )
        return matrix, []
    if len(ids) != matrix.shape[0]:
        raise ValueError(f"{name}: {len(ids)} ids for {matrix.shape[0]} rows")
    position: dict[str, int] = {}
    for row, row_id in enumerate(ids):
        if row_id in position:
            raise ValueError(
                f"{name}: id {row_id!r} appears twice (rows {position[row_id]} and {row})"
            )
        position[row_id] = row
    missing = [i for i in dataset_ids if i not in position]
    if missing:
        raise ValueError(
            f"{name} has no row for {len(missing)} of the dataset's {len(dataset_ids)} rows "
            f"(e.g. {', '.join(map(repr, missing[:3]))})"
        )
    wanted = set(dataset_ids)
    extra = [i for i in ids if i not in wanted]
    notes = []
    if extra:
        notes.append(
            f"{name}: {len(extra)} row(s) name no dataset row and were left out "
            f"(e.g. {', '.join(map(repr, extra[:3]))})"
        )
    return matrix[[position[i] for i in dataset_ids]], notes
