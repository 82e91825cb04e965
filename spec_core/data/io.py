"""Reading embedding matrices from user files, safely.

Formats: .npy, .npz (`file.npz:key` picks an array), .csv / .tsv (numeric columns), a
folder of .npy shards with a manifest.json (spec_core.data.shards: larger than memory), and
.parquet (numeric or decimal columns, or one list-valued column). A table's `id` column holds
the row ids; every other column is read as embedding values, and one that does not hold numbers
is refused by name, never dropped (the tables are read in spec_core.data.table_readers). Pickles
are never loaded (`allow_pickle=False`): a user file cannot run code. Every problem is a
ValueError whose message starts with the file name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spec_core.data.arrays import check_embedding
from spec_core.data.shards import npy_header
from spec_core.data.table_readers import ID_COLUMN, load_parquet, load_table

MATRIX_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".parquet")


def split_key(spec: str) -> tuple[Path, str | None]:
    """'emb.npz:image' -> (Path('emb.npz'), 'image'); a plain path has no key."""
    head, sep, key = spec.rpartition(":")
    if sep and head.lower().endswith(".npz") and "/" not in key and "\\" not in key:
        return Path(head), key
    return Path(spec), None


def load_matrix(spec: str | Path, *, name: str | None = None) -> np.ndarray:
    """Load a 2-D numeric matrix (rows = samples) and check it is finite. A table's `id`
    column is never read as a feature (`load_matrix_with_ids` returns it)."""
    return load_matrix_with_ids(spec, name=name)[0]


def load_matrix_with_ids(
    spec: str | Path, *, id_column: str = ID_COLUMN, name: str | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """A matrix and, when the file has them, its row ids: the `id_column` of a table (.csv,
    .tsv, .parquet), or an `ids` array beside the matrix in an .npz. Without ids, rows match by
    order. The file is only read: nothing is written next to it."""
    from spec_core.data.shards import is_shard_folder, open_shards

    path, key = split_key(str(spec))
    label = name or str(spec)
    if key is None and is_shard_folder(spec):  # a matrix larger than memory, in shards
        try:
            return check_embedding(open_shards(spec), label), None
        except ValueError as err:
            raise ValueError(err if str(err).startswith(label) else f"{label}: {err}") from None
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
    ids = None
    try:
        if suffix == ".npy":
            matrix = _load_npy(path)
        elif suffix == ".npz":
            matrix, ids = _load_npz(path, key)
        elif suffix in (".csv", ".tsv"):
            matrix, ids = load_table(path, sep="\t" if suffix == ".tsv" else ",", ids=id_column)
        else:
            matrix, ids = load_parquet(path, ids=id_column)
    except ValueError as err:
        if str(err).startswith(label):
            raise
        raise ValueError(f"{label}: {err}") from None
    matrix = check_embedding(matrix, label)
    if ids is not None:
        if len(ids) != matrix.shape[0]:
            raise ValueError(f"{label}: {len(ids)} ids for {matrix.shape[0]} rows")
        check_unique_ids(ids, label)
    return matrix, ids


def check_unique_ids(ids: Sequence[str], label: str) -> None:
    seen: dict[str, int] = {}
    for row, row_id in enumerate(ids):
        if row_id in seen:
            raise ValueError(
                f"{label}: id {row_id!r} appears twice (rows {seen[row_id]} and {row})"
            )
        seen[row_id] = row


def _check_declared(shape: tuple[int, ...], dtype: np.dtype, available: int | None) -> None:
    """Refuse, before reading any data, what the header says cannot fit: more bytes than the
    file holds (truncated), or than the memory budget allows."""
    from spec_core.limits import CAPS, check_budget, format_bytes

    if len(shape) == 2 and shape[1] > CAPS.max_dim:
        raise ValueError(
            f"has {shape[1]:,} columns, more than the {CAPS.max_dim:,} this tool accepts; "
            "reduce the dimension first (e.g. with PCA)"
        )
    if len(shape) >= 1 and shape[0] > CAPS.max_rows:
        raise ValueError(f"has {shape[0]:,} rows, more than the {CAPS.max_rows:,} accepted")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if available is not None and need > available:
        raise ValueError(
            f"is truncated: its header declares {format_bytes(need)} of data, the file holds "
            f"{format_bytes(available)}"
        )
    check_budget(need, "Reading it", "use a smaller file")


def _one_line(err: object) -> str:
    return " ".join(str(err).split())


def _load_npy(path: Path) -> np.ndarray:
    with path.open("rb") as handle:
        head = handle.read(6)
        if head != b"\x93NUMPY":
            if head[:1] == b"\x80":
                raise ValueError("is a Python pickle, which is never loaded; save a numeric .npy")
            raise ValueError("not a valid .npy file (no NumPy header)")
        handle.seek(0)
        shape, dtype = npy_header(handle, "file ")
        data_bytes = path.stat().st_size - handle.tell()
    _check_declared(shape, dtype, data_bytes)
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")  # a memory map: read lazily
    except Exception as err:
        raise ValueError(f"not a valid .npy file ({_one_line(err)})") from None


def _load_npz(path: Path, key: str | None) -> tuple[np.ndarray, list[str] | None]:
    """One array of an .npz (and its `ids` array, when there is one): each member's header is
    read and checked first, so a small archive that declares a huge array is refused before
    anything is decompressed."""
    import zipfile

    try:
        archive = zipfile.ZipFile(path)
        members = {
            name.removesuffix(".npy"): name for name in archive.namelist() if name.endswith(".npy")
        }
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ValueError(f"not a valid .npz file ({_one_line(err)})") from None
    with archive:
        keys = list(members)
        ids = None
        if "ids" in keys and key != "ids":
            stored = _npz_member(archive, members["ids"], "ids", quiet=True)
            if stored is not None and stored.dtype.kind in "UiuS" and stored.ndim == 1:
                ids = [str(i) for i in stored.tolist()]
                keys.remove("ids")
        if key is None:
            if len(keys) != 1:
                raise ValueError(
                    f"holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                    "pick one with FILE.npz:KEY"
                )
            key = keys[0]
        if key not in members:
            raise ValueError(f"has no array {key!r}; it holds {', '.join(members) or 'none'}")
        return _npz_member(archive, members[key], key), ids


def _npz_member(archive, member: str, key: str, *, quiet: bool = False):
    """The array in one member of an .npz, header checked before the data is read (None for
    a bad `ids` member when `quiet`)."""
    import zipfile

    try:
        with archive.open(member) as handle:
            shape, dtype = npy_header(handle, f"array {key!r} ")
            _check_declared(shape, dtype, None)
        with archive.open(member) as handle:  # now the data (C or Fortran order, as stored)
            try:
                return np.lib.format.read_array(handle, allow_pickle=False)
            except ValueError as err:
                raise ValueError(f"array {key!r} cannot be read ({_one_line(err)})") from None
    except ValueError:
        if quiet:
            return None
        raise
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as err:
        if quiet:
            return None
        raise ValueError(f"array {key!r} cannot be read ({_one_line(err)})") from None


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
    check_unique_ids(ids, name)
    position = {row_id: row for row, row_id in enumerate(ids)}
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


def load_labels(spec: str | Path, *, ids: Sequence[str] | None, n_rows: int) -> list[str]:
    """A label per row: a .txt with one per line (split on \\n and \\r\\n only), or a
    .csv/.tsv/.parquet with a 'label' column, matched to `ids` by its 'id' column when both
    exist, else by order."""
    import pandas as pd

    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"{spec}: no such file")
    suffix = path.suffix.lower()
    label_ids = None
    if suffix == ".txt":
        text = path.read_bytes().decode("utf-8", errors="replace")
        labels = text.replace("\r\n", "\n").split("\n")
        if labels and labels[-1] == "":
            labels.pop()
    elif suffix in (".csv", ".tsv", ".parquet"):
        try:
            if suffix == ".parquet":
                frame = pd.read_parquet(path)
            else:
                sep = "\t" if suffix == ".tsv" else ","
                frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        except Exception as err:  # a parser's own error types vary: the message names the file
            raise ValueError(f"{spec}: cannot be read as a table ({err})") from None
        if "label" not in frame.columns:
            raise ValueError(
                f"{spec}: no 'label' column (columns: {', '.join(map(str, frame.columns[:10]))})"
            )
        labels = frame["label"].astype(str).tolist()
        if ID_COLUMN in frame.columns:
            label_ids = frame[ID_COLUMN].astype(str).tolist()
    else:
        raise ValueError(f"{spec}: labels must be a .txt, .csv, .tsv or .parquet file")
    if ids is not None and label_ids is not None:
        check_unique_ids(label_ids, str(spec))
        position = {row_id: row for row, row_id in enumerate(label_ids)}
        missing = [i for i in ids if i not in position]
        if missing:
            raise ValueError(
                f"{spec} has no label for {len(missing)} row(s) (e.g. "
                f"{', '.join(map(repr, missing[:3]))})"
            )
        return [labels[position[i]] for i in ids]
    if len(labels) != n_rows:
        raise ValueError(f"{spec}: {len(labels)} labels for {n_rows} rows")
    return labels
