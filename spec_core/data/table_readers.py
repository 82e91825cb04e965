"""Embedding matrices from tables: .csv / .tsv (read by pandas) and .parquet (read by pyarrow).

A table's id column (`ID_COLUMN`, in any letter case) holds the row ids, read as text ("NA",
"007" are ids); every other column is read as float64 embedding values: numeric and bool columns
as they are, decimals as the nearest double, numbers written as text parsed. A column that does
not hold numbers is refused by name with its first bad cell, never dropped (a dropped column of
hexadecimal or decimal-comma values made every row look alike). A parquet file may instead hold
one list-valued column of vectors. Errors are ValueErrors without the file name; the caller
(spec_core.data.io) puts it first.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

#: A table column with this name holds row ids, never features.
ID_COLUMN = "id"


def load_table(path: Path, *, sep: str, ids: str) -> tuple[np.ndarray, list[str] | None]:
    """A .csv (`sep` ',') or .tsv ('\\t') as (its numbers, the `ids` column as text or None)."""
    import pandas as pd

    try:
        columns = list(pd.read_csv(path, sep=sep, nrows=0).columns)
        id_column = _id_column(columns, ids)
        frame = pd.read_csv(path, sep=sep)
        if id_column is not None:  # as text: "NA", "null", "007" are ids, not missing or 7
            frame[id_column] = pd.read_csv(
                path, sep=sep, usecols=[id_column], dtype=str, keep_default_na=False
            )[id_column]
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"cannot be parsed as a table ({_one_line(err)})") from None
    except pd.errors.EmptyDataError:
        raise ValueError("has no rows") from None
    return _split_ids(frame, id_column)


def _id_column(columns, ids: str) -> str | None:
    """The id column: named `ids` exactly, else in any letter case (ID, Id)."""
    if ids in columns:
        return ids
    return next((c for c in columns if str(c).lower() == ids.lower()), None)


def _split_ids(
    frame, ids: str | None, *, lines: bool = True
) -> tuple[np.ndarray, list[str] | None]:
    """(the other columns as numbers, the id column as strings or None): ids are never
    features. `lines`: the table is a text file, whose rows are also named by line."""
    if ids is None or ids not in frame.columns:
        return _numeric_columns(frame, lines=lines), None
    column = frame.pop(ids)
    empty = column.isna() | (column.astype(str).str.strip() == "")
    if empty.any():
        row = int(np.argmax(empty.to_numpy()))
        raise ValueError(f"column {ids!r} is empty in {_where(row, lines)}")
    return _numeric_columns(frame, lines=lines), column.astype(str).tolist()


def _where(row: int, lines: bool) -> str:
    return f"row {row} (line {row + 2})" if lines else f"row {row}"


def load_parquet(path: Path, *, ids: str) -> tuple[np.ndarray, list[str] | None]:
    """A .parquet as (its numbers, the `ids` column as text or None): numeric and decimal
    columns, or one list-valued column of vectors (with at most an id column beside it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError, ValueError) as err:
        raise ValueError(f"not a valid parquet file ({_one_line(err)})") from None
    table = _decimals_as_floats(table)
    id_column = _id_column(table.column_names, ids)
    list_columns = [
        f.name
        for f in table.schema
        if pa.types.is_list(f.type)
        or pa.types.is_large_list(f.type)
        or pa.types.is_fixed_size_list(f.type)
    ]
    if len(list_columns) > 1:
        raise ValueError(
            f"has {len(list_columns)} list-valued columns ({', '.join(list_columns)}); "
            "keep one embedding column per file"
        )
    if len(list_columns) == 1:
        name = list_columns[0]
        others = [c for c in table.column_names if c not in (name, id_column)]
        if others:
            raise ValueError(
                f"has the embedding column {name!r} (lists) and other columns "
                f"({', '.join(map(repr, others[:10]))}), which would be ignored; keep the "
                f"embedding column and an {ID_COLUMN!r} column only"
            )
        column = table.column(name).combine_chunks()
        if len(column) == 0:
            raise ValueError("has no rows")
        if column.null_count:
            row = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
            raise ValueError(f"column {name!r} is empty in row {row}")
        if pa.types.is_fixed_size_list(column.type):
            width = column.type.list_size
            values = column.flatten().to_numpy(zero_copy_only=False)
        else:
            lengths = column.value_lengths().to_numpy(zero_copy_only=False)
            if len(set(lengths.tolist())) > 1:
                row = int(np.argmax(lengths != lengths[0]))
                raise ValueError(
                    f"column {name!r} has vectors of different lengths: row 0 has "
                    f"{lengths[0]}, row {row} has {lengths[row]}"
                )
            width = int(lengths[0])
            values = column.flatten().to_numpy(zero_copy_only=False)
        row_ids = None
        if id_column is not None:
            raw = table.column(id_column).to_pylist()
            if any(v is None or str(v).strip() == "" for v in raw):
                row = next(i for i, v in enumerate(raw) if v is None or str(v).strip() == "")
                raise ValueError(f"column {id_column!r} is empty in row {row}")
            row_ids = [str(i) for i in raw]
        if width == 0:
            raise ValueError(f"column {name!r} holds empty vectors")
        return values.reshape(len(column), width), row_ids
    return _split_ids(table.to_pandas(), id_column, lines=False)


def _decimals_as_floats(table):
    """Decimal columns (and lists of decimals) as float64: they are numbers, and each becomes
    the nearest double (a decimal128 may hold more digits than a double keeps)."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_decimal(kind):
            kind = pa.float64()
        elif pa.types.is_list(kind) and pa.types.is_decimal(kind.value_type):
            kind = pa.list_(pa.float64())
        elif pa.types.is_large_list(kind) and pa.types.is_decimal(kind.value_type):
            kind = pa.large_list(pa.float64())
        elif pa.types.is_fixed_size_list(kind) and pa.types.is_decimal(kind.value_type):
            kind = pa.list_(pa.float64(), kind.list_size)
        else:
            continue
        table = table.set_column(index, field.name, table.column(index).cast(kind))
    return table


def _numeric_columns(frame, *, lines: bool = True) -> np.ndarray:
    """Every column as float64, or a ValueError naming the first column that does not hold
    numbers: a column is never dropped silently (a dropped column of hexadecimal or decimal
    comma values made every row look alike)."""
    if frame.shape[0] == 0:
        raise ValueError("has no rows")
    import pandas as pd

    numbers = {column: _as_numbers(frame[column], column, lines) for column in frame.columns}
    if all(values is None for values in numbers.values()):
        raise ValueError(
            f"has no numeric columns (columns: {', '.join(map(str, frame.columns[:10]))})"
        )
    for column, values in numbers.items():
        if values is None:
            raise _not_numbers(frame[column], column, lines)
    # float64: a table's numbers keep their precision (1e39, 1e-300, 1e8 + small differences)
    return pd.DataFrame(numbers).to_numpy(dtype=np.float64, na_value=np.nan)


def _as_numbers(series, column, lines: bool):
    """The column as numbers: a numeric or bool column as it is, a column of numbers written
    as text (a parquet string column) parsed; None when it does not hold numbers."""
    import pandas as pd

    kind = series.dtype
    if pd.api.types.is_timedelta64_dtype(kind) or pd.api.types.is_datetime64_any_dtype(kind):
        raise ValueError(
            f"column {column!r} holds {'durations' if kind.kind == 'm' else 'dates'}, "
            "not embedding values; drop it"
        )
    if pd.api.types.is_numeric_dtype(kind) or pd.api.types.is_bool_dtype(kind):
        return series
    cells = series.astype(object)
    if not cells.dropna().map(type).eq(str).all():  # bytes, dates, dicts, lists: not parsed
        return None
    parsed = pd.to_numeric(cells, errors="coerce")
    bad = parsed.isna() & cells.notna()
    if not bad.any() and parsed.notna().any():
        return parsed
    if parsed.notna().mean() > 0.5 and bad.any():  # a numeric column with a stray cell
        row = int(np.argmax(bad.to_numpy()))
        raise ValueError(
            f"column {column!r} is numeric but {_where(row, lines)} holds "
            f"{_clip(cells.iloc[row])!r}, which is not a number"
        )
    return None


_HEX = re.compile(r"[+-]?0[xX][0-9a-fA-F]")


def _not_numbers(series, column, lines: bool) -> ValueError:
    """The refusal of a column that does not hold numbers, naming it and its first bad cell."""
    import pandas as pd

    cells = series.astype(object)
    bad = pd.to_numeric(cells.map(lambda v: v if isinstance(v, str) else None), errors="coerce")
    bad = bad.isna() & cells.notna()
    if not bad.any():
        return ValueError(f"column {column!r} holds no values; drop it")
    row = int(np.argmax(bad.to_numpy()))
    value = cells.iloc[row]
    hint = ""
    if isinstance(value, str) and _HEX.match(value.strip()):
        hint = " (hexadecimal is not read: write decimal numbers"
        try:
            hint += f", e.g. {float.fromhex(value.strip()):g} for {value.strip()})"
        except (ValueError, OverflowError):
            hint += ")"
    return ValueError(
        f"column {column!r} holds {_clip(value)!r} in {_where(row, lines)}, which is not a "
        f"number{hint}; every column but an {ID_COLUMN!r} column must hold embedding values: "
        "convert or drop it"
    )


def _clip(value: object, limit: int = 40) -> object:
    return value[:limit] + "..." if isinstance(value, str) and len(value) > limit else value


def _one_line(err: object) -> str:
    return " ".join(str(err).split())
