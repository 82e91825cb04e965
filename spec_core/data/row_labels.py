"""Labels (and captions) for rows that have none of their own: the rows of two uploaded
embedding matrices, named only by their ids, given a table `id,label[,caption]` (.csv, .tsv or
.jsonl, read by the text sets' readers).

Rows are matched by id: a row the table does not name gets no label (and keeps its id as its
text); ids of the table that name no row are counted in a note; an id given twice is refused,
naming both rows of the table, since which label holds would be a guess.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path, PurePosixPath

from spec_core.data.dataset_types import (
    Bounded,
    Dataset,
    DatasetError,
    Limits,
    Skipped,
    fingerprint_rows,
)
from spec_core.data.datasets import ROWS_NOTE
from spec_core.data.text_sets import _text_rows

#: The file types a labels table may have.
LABEL_TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


@dataclasses.dataclass(frozen=True)
class RowLabels:
    """A labels table by row id: each id's label and caption ("" where the table has none)."""

    name: str
    labels: dict[str, str]
    captions: dict[str, str]
    has_labels: bool
    has_captions: bool


def read_row_labels(source: str | Path | tuple[str, bytes], limits: Limits = Limits()) -> RowLabels:
    """The table `id,label[,caption]` (a path, or an upload's (name, bytes)); DatasetError
    naming the file, and the row where one is at fault, when it cannot be used."""
    name, data = source if isinstance(source, tuple) else (str(source), Path(source).read_bytes())
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in LABEL_TABLE_SUFFIXES:
        raise DatasetError(f"{name}: a labels table must be .csv, .tsv or .jsonl")
    if len(data) > limits.max_file_bytes:
        raise DatasetError(f"{name}: the labels table is over {limits.max_file_bytes // 2**20} MiB")
    bad: Bounded[Skipped] = Bounded(1)
    rows, _ = _text_rows(name, io.BytesIO(data), bad)
    labels: dict[str, str] = {}
    captions: dict[str, str] = {}
    where: dict[str, int] = {}
    columns: set[str] | None = None
    for record in rows:
        if columns is None:
            columns = {str(c) for c in record if c != "_line"}
            _check_columns(name, columns)
        line = record["_line"]
        row_id = record.get("id")
        if row_id is None or not str(row_id).strip():
            raise DatasetError(f"{name}: row {line} has no id")
        row_id = str(row_id).strip()
        if row_id in where:
            raise DatasetError(
                f"{name}: row {line} repeats the id {row_id[:80]!r} of row {where[row_id]}; "
                "give each id one row"
            )
        where[row_id] = line
        labels[row_id] = _cell(record.get("label"))
        captions[row_id] = _cell(record.get("caption"))[: limits.max_text_chars]
        if len(where) > limits.max_text_rows:
            raise DatasetError(f"{name}: over {limits.max_text_rows:,} rows")
    if bad:
        raise DatasetError(f"{name}: row {bad.kept[0].item.split('-')[1]} {bad.kept[0].reason}")
    if columns is None:
        raise DatasetError(f"{name}: the labels table has no rows")
    return RowLabels(
        name=name,
        labels=labels,
        captions=captions,
        has_labels="label" in columns,
        has_captions="caption" in columns,
    )


def _check_columns(name: str, columns: set[str]) -> None:
    if "id" not in columns or not ({"label", "caption"} & columns):
        found = ", ".join(sorted(columns)) or "none"
        raise DatasetError(
            f"{name}: expected the columns id and label (and optionally caption); found {found}"
        )


def _cell(value: object) -> str:
    return "" if value is None else str(value).strip()


def attach_row_labels(dataset: Dataset, table: RowLabels) -> Dataset:
    """The dataset with the table's labels (and captions as its texts) matched by id: rows the
    table does not name get no label and keep their text; a note counts the table's ids that
    name no row."""
    ids = dataset.ids
    known = set(ids)
    unused = [row_id for row_id in table.labels if row_id not in known]
    named = sum(1 for row_id in ids if row_id in table.labels)
    if not named:
        raise DatasetError(
            f"{table.name}: none of its {len(table.labels):,} ids names a row of "
            f"{dataset.name} (its ids look like {', '.join(repr(i) for i in ids[:3])})"
        )
    notes = list(dataset.notes)
    missing = len(ids) - named
    if missing:
        notes.append(f"{missing:,} row(s) have no row in {table.name}: no label")
    if unused:
        shown = ", ".join(repr(i[:40]) for i in unused[:3])
        notes.append(f"{len(unused):,} id(s) of {table.name} name no row (e.g. {shown})")
    changes: dict = {"notes": tuple(notes)}
    if table.has_labels:
        labels = tuple(table.labels.get(row_id, "") for row_id in ids)
        changes["labels"] = labels if any(labels) else None
    if table.has_captions and dataset.texts is not None:
        texts = tuple(
            table.captions.get(row_id) or text
            for row_id, text in zip(ids, dataset.texts, strict=True)
        )
        changes["texts"] = texts
        changes["notes"] = tuple(
            f"Captions from {table.name}; a row without one is shown by its id."
            if note == ROWS_NOTE
            else note
            for note in notes
        )
        changes["fingerprints"] = {
            **dataset.fingerprints,
            "text": fingerprint_rows("text", zip(ids, texts, strict=True)),
        }
    return dataclasses.replace(dataset, **changes)
