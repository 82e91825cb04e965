"""Text sets users bring: .txt (one text per line), .csv/.tsv (a text column, optional label
and id columns) and .jsonl (one JSON object per line).

Rows are in file order; each row's id is the id column's value (repeats made unique with a #N
suffix) or `line-N`. The file is read row by row up to the row cap and the rest only counted
on its bytes; it is never decoded whole (lines are decoded one at a time, tables by pandas in
chunks), and a file given by path is read from disk as it goes, never held whole, so the
parser's memory follows the rows it keeps, not the file's size, its line count or its
characters. Bad lines are skipped with their reason; bytes that are not UTF-8 are
decoded as Latin-1 with a note.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from spec_core.data.dataset_types import (
    Bounded,
    Dataset,
    DatasetError,
    Limits,
    Skipped,
    counted,
    fingerprint_rows,
    listed_skips,
    over_file_limit,
)

TEXT_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl")


#: Bytes read at a time when a whole file is checked or scanned (at most 1 MiB of text).
_WINDOW = 1 << 18


def _windows(stream: BinaryIO) -> Iterator[bytes]:
    """The rest of `stream`, a window at a time."""
    return iter(lambda: stream.read(_WINDOW), b"")


def text_encoding(stream: BinaryIO) -> tuple[str, str | None]:
    """("utf-8", None) when the rest of `stream` is UTF-8; otherwise ("latin-1", a note naming
    the line of the first bad byte). Read a window at a time (the file is never decoded whole),
    then `stream` is back where it was."""
    start = stream.tell()
    carry, newlines = b"", 0  # the start of a character cut by the window's end
    try:
        for window in _windows(stream):
            data = carry + window
            try:
                _, used = codecs.utf_8_decode(data, "strict", False)
            except UnicodeDecodeError as err:
                return "latin-1", _not_utf8(newlines + data.count(b"\n", 0, err.start) + 1)
            newlines += data.count(b"\n", 0, used)
            carry = data[used:]
        return ("latin-1", _not_utf8(newlines + 1)) if carry else ("utf-8", None)
    finally:
        stream.seek(start)


def _not_utf8(line: int) -> str:
    return f"not valid UTF-8 (first bad byte on line {line}); decoded as Latin-1"


def decode_text(data: bytes) -> tuple[str, str | None]:
    """UTF-8 (a BOM is dropped); otherwise Latin-1, which decodes any bytes, with a note. For a
    small file (a header, a captions table): a large one is read by `FileLines`."""
    encoding, note = text_encoding(io.BytesIO(data))
    return data.decode("utf-8-sig" if encoding == "utf-8" else "latin-1"), note


def split_lines(text: str) -> list[str]:
    """Lines ended by \\n or \\r\\n only: not by the other breaks that str.splitlines knows
    (\\r alone, \\v, \\f, \\x1c-\\x1e, \\x85, U+2028, U+2029), which are characters inside a
    line of a text file. A final line ending does not start another line."""
    return [line for _, line in Lines(text)]


_NOT_SPACE = re.compile(r"\S")


class Lines:
    """The lines of `text` (as split_lines splits them) with their numbers from 1, made one at
    a time; `rest()` counts the lines not read yet without making them, so reading the first
    lines of a file of ten million costs those lines, not ten million strings."""

    def __init__(self, text: str):
        self.text = text
        self.at = 0  # where the next line starts
        self.number = 0  # lines read so far

    def __iter__(self) -> Iterator[tuple[int, str]]:
        text = self.text
        while self.at < len(text):
            end = text.find("\n", self.at)
            end = len(text) if end < 0 else end
            line = text[self.at : end]
            self.at = end + 1
            self.number += 1
            yield self.number, line[:-1] if line.endswith("\r") else line

    def rest(self) -> tuple[int, bool]:
        """(how many lines are not read yet, whether any of them holds more than white space)."""
        text = self.text
        if self.at >= len(text):
            return 0, False
        count = text.count("\n", self.at) + (not text.endswith("\n"))
        return count, _NOT_SPACE.search(text, self.at) is not None


class FileLines:
    """The lines of a text file read from a binary stream, as `Lines` makes them from its text
    (`encoding` from `text_encoding`; a UTF-8 BOM is dropped): each line is decoded on its own
    (\\n is never part of another character in UTF-8 or Latin-1), and `rest()` counts the
    rest a window at a time, so the file is never held or decoded whole: one wide character
    costs its line, not the file."""

    def __init__(self, stream: BinaryIO, encoding: str):
        self.stream, self.encoding = stream, encoding
        self.number = 0  # lines read so far
        start = stream.tell()
        if encoding != "utf-8" or stream.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            stream.seek(start)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for line in self.stream:  # a binary stream's lines end after b"\n" only
            self.number += 1
            line = line[:-1] if line.endswith(b"\n") else line
            yield self.number, (line[:-1] if line.endswith(b"\r") else line).decode(self.encoding)

    def rest(self) -> tuple[int, bool]:
        """(how many lines are not read yet, whether any of them holds more than white space)."""
        count, last, any_text = 0, b"\n", False
        decoder = codecs.getincrementaldecoder(self.encoding)()
        for window in _windows(self.stream):
            count += window.count(b"\n")
            last = window[-1:]
            any_text = any_text or _NOT_SPACE.search(decoder.decode(window)) is not None
        return count + (last != b"\n"), any_text


def jsonl_records(lines: Lines | FileLines, skipped: Bounded[Skipped]) -> Iterator[dict]:
    """The JSON objects of a .jsonl, each with its line number as `_line`; a line that is not
    one (bad JSON, nested too deeply, a number too long to convert, not an object) is skipped
    with its reason. Blank lines are ignored."""
    for number, line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            skipped.append(Skipped(f"line-{number}", f"is not valid JSON ({err.msg})"))
            continue
        except ValueError as err:  # e.g. an integer of more than 4300 digits
            reason = f"cannot be read as JSON ({_one_line(err)[:120]})"
            skipped.append(Skipped(f"line-{number}", reason))
            continue
        except RecursionError:
            skipped.append(Skipped(f"line-{number}", "is JSON nested too deeply to be read"))
            continue
        if not isinstance(row, dict):
            skipped.append(Skipped(f"line-{number}", "is not a JSON object"))
            continue
        yield {**row, "_line": number}


def text_columns(name: str, data: bytes) -> list[str]:
    """The column names of a .csv / .tsv (header) or .jsonl (keys of its first object) text
    file, for a column picker; [] for .txt or when nothing can be read."""
    suffix = PurePosixPath(name).suffix.lower()
    head = data[: 1 << 20]
    text, _ = decode_text(head[: head.rfind(b"\n") + 1] or head)
    if suffix in (".csv", ".tsv"):
        import csv

        first = next(csv.reader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ","), [])
        return [c for c in first if c]
    if suffix == ".jsonl":
        first = next(jsonl_records(Lines(text), Bounded(0)), None)
        return [str(k) for k in first if k != "_line"] if first else []
    return []


class _TxtRows:
    """The rows of a .txt: one per line, in a column `text`."""

    unit = "line"
    blank_lines_are_rows = True  # counted as empty rows

    def __init__(self, lines: FileLines):
        self.lines = lines

    def __iter__(self) -> Iterator[dict]:
        for number, line in self.lines:
            yield {"text": line, "_line": number}

    def rest(self) -> tuple[int, bool]:
        return self.lines.rest()

    def close(self) -> None:
        """Nothing to let go of: the caller closes the stream."""


class _JsonlRows(_TxtRows):
    """The rows of a .jsonl: one JSON object per line; bad lines go to `skipped`."""

    blank_lines_are_rows = False  # ignored

    def __init__(self, lines: FileLines, skipped: Bounded[Skipped]):
        super().__init__(lines)
        self.skipped = skipped

    def __iter__(self) -> Iterator[dict]:
        return jsonl_records(self.lines, self.skipped)


class _TableRows:
    """The rows of a .csv / .tsv as text, read by pandas in chunks: only the rows taken are
    turned into records (`_line` is the row's number counting the header as 1); `rest()`
    counts the rows of the chunks not taken."""

    unit = "row"
    blank_lines_are_rows = False  # pandas skips them
    chunk_rows = 10_000

    def __init__(self, name: str, stream: BinaryIO, encoding: str, sep: str):
        import pandas as pd

        self.name = name
        try:
            reader = pd.read_csv(
                stream,
                dtype=str,
                keep_default_na=False,
                sep=sep,
                encoding=encoding,
                chunksize=self.chunk_rows,
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DatasetError(f"{name}: cannot be read as a table ({_one_line(err)})") from None
        self.chunks = self._checked(reader)
        self.number = 0  # rows taken
        self.unread = 0  # rows of the current chunk not taken

    def _checked(self, reader) -> Iterator:
        import pandas as pd

        with reader:
            try:
                yield from reader
            except (pd.errors.ParserError, UnicodeDecodeError) as err:
                reason = _one_line(err)
                raise DatasetError(f"{self.name}: cannot be read as a table ({reason})") from None

    def __iter__(self) -> Iterator[dict]:
        for chunk in self.chunks:
            self.unread = len(chunk)
            for record in chunk.to_dict("records"):
                self.unread -= 1
                self.number += 1
                record["_line"] = self.number + 1
                yield record

    def close(self) -> None:
        """Close pandas' reader (before the caller closes the stream it reads)."""
        self.chunks.close()

    def rest(self) -> tuple[int, bool]:
        count = self.unread + sum(len(chunk) for chunk in self.chunks)
        self.unread = 0
        return count, count > 0


def _text_rows(
    name: str, stream: BinaryIO, skipped: Bounded[Skipped]
) -> tuple[_TxtRows | _TableRows, str | None]:
    """The reader of a text file's rows, by its suffix, and the note on its encoding. Nothing
    reads or decodes the whole file at once: lines one by one, tables by pandas in chunks."""
    encoding, encoding_note = text_encoding(stream)
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".txt":
        return _TxtRows(FileLines(stream, encoding)), encoding_note
    if suffix == ".jsonl":
        return _JsonlRows(FileLines(stream, encoding), skipped), encoding_note
    encoding = "utf-8-sig" if encoding == "utf-8" else "latin-1"
    return _TableRows(name, stream, encoding, "\t" if suffix == ".tsv" else ","), encoding_note


@dataclass(frozen=True)
class _Columns:
    text: str
    label: str | None
    id: str | None


def _pick_columns(name, suffix, columns, column, label_column, id_column) -> _Columns:
    """The text, label and id columns: as asked, else `text`, `label`, `id` when present."""
    column = column or ("text" if "text" in columns else None)
    if column is None or column not in columns:
        raise DatasetError(
            f"{name}: no text column {column!r}; pick one of {', '.join(map(str, columns))}"
            if column
            else f"{name}: which column holds the text? pick one of {', '.join(map(str, columns))}"
        )
    label_column = label_column or ("label" if "label" in columns else None)
    id_column = id_column or ("id" if "id" in columns and suffix != ".txt" else None)
    for wanted, what in ((label_column, "label"), (id_column, "id")):
        if wanted is not None and wanted not in columns:
            raise DatasetError(
                f"{name}: no {what} column {wanted!r}; columns: {', '.join(columns)}"
            )
    return _Columns(column, label_column, id_column)


class _TextCollector:
    """The good rows of a text set in file order, up to the row cap: empty texts counted, long
    ones cut, repeated ids made unique with a #N suffix, rows without an id skipped."""

    def __init__(self, columns: _Columns, limits: Limits, skipped: Bounded[Skipped]):
        self.columns = columns
        self.limits = limits
        self.skipped = skipped
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.labels: list[str] = []
        self.empty = 0
        self.last_line = 0
        self.seen: dict[str, int] = {}
        self.duplicates: Bounded[str] = Bounded(3)
        self.cuts: Bounded[str] = Bounded(limits.max_listed)

    def full(self) -> bool:
        return len(self.ids) >= self.limits.max_text_rows

    def add(self, record: dict) -> None:
        self.last_line = record["_line"]
        value = record.get(self.columns.text)
        value = "" if value is None else str(value)
        if not value.strip():
            self.empty += 1
            return
        if self.columns.id and record.get(self.columns.id) is None:  # a .jsonl row without one
            self.skipped.append(Skipped(f"line-{record['_line']}", f"has no {self.columns.id!r}"))
            return
        if len(value) > self.limits.max_text_chars:
            value = value[: self.limits.max_text_chars]
            self.cuts.append(
                f"line {record['_line']}: cut to {self.limits.max_text_chars} characters"
            )
        row_id = str(record[self.columns.id]) if self.columns.id else f"line-{record['_line']}"
        if row_id in self.seen:
            self.seen[row_id] += 1
            self.duplicates.append(row_id)
            row_id = f"{row_id}#{self.seen[row_id]}"
        else:
            self.seen[row_id] = 1
        self.ids.append(row_id)
        self.texts.append(value)
        label = self.columns.label
        self.labels.append(str(record.get(label) or "") if label else "")

    def notes(self) -> list[str]:
        chars = self.limits.max_text_chars
        notes = list(
            self.cuts.listed(lambda more: f"and {more:,} more line(s) cut to {chars} characters")
        )
        if self.empty:
            notes.append(f"{self.empty} empty row(s) skipped")
        if self.duplicates:
            notes.append(
                f"{len(self.duplicates)} duplicate id(s) (e.g. {', '.join(self.duplicates.kept)}) "
                "were made unique with a #N suffix"
            )
        return notes


def _over_the_cap(rows: _TxtRows | _TableRows, collector: _TextCollector) -> Skipped | None:
    """One entry for the rows after the cap (counted, never read into records); a blank rest
    of a .txt is counted as empty rows instead."""
    count, any_text = rows.rest()
    if not any_text:
        collector.empty += count if rows.blank_lines_are_rows else 0
        return None
    first, last = collector.last_line + 1, collector.last_line + count
    item = f"line-{first}" if count == 1 else f"line-{first} to line-{last}"
    cap = counted(collector.limits.max_text_rows, "row")
    return Skipped(item, f"{counted(count, rows.unit)} over the limit of {cap}: not loaded", count)


def _text_source(source: str | Path | tuple[str, bytes], limits: Limits) -> tuple[str, BinaryIO]:
    """(file name, a binary stream of it) of a text file given by path (opened, not read) or as
    an upload's bytes (not copied)."""
    if isinstance(source, tuple):
        return source[0], io.BytesIO(source[1])
    path = Path(source)
    name = path.name
    if not path.is_file():
        raise DatasetError(f"{source}: no such file")
    if path.stat().st_size > limits.max_total_bytes:
        raise DatasetError(
            f"{name}: {over_file_limit(path.stat().st_size, limits.max_total_bytes)}"
        )
    return name, path.open("rb")


def load_texts(
    source: str | Path | tuple[str, bytes],
    *,
    column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    limits: Limits = Limits(),
) -> Dataset:
    """A text set from .txt (one per line), .csv/.tsv (pick the column) or .jsonl.

    The rows are read one by one up to `limits.max_text_rows`; the rest of the file is only
    counted (one skipped entry names them), so memory follows the rows kept (plus a window of
    at most 1 MiB of text), not the file's size, its line count or its characters."""
    name, stream = _text_source(source, limits)
    with stream:
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in TEXT_SUFFIXES:
            types = ", ".join(TEXT_SUFFIXES)
            raise DatasetError(f"{name}: unsupported text file type; use {types}")
        size = stream.seek(0, io.SEEK_END)
        if size > limits.max_total_bytes:
            raise DatasetError(f"{name}: {over_file_limit(size, limits.max_total_bytes)}")
        stream.seek(0)
        if all(window.isspace() for window in _windows(stream)):  # empty or white space
            raise DatasetError(f"{name}: the file is empty")
        stream.seek(0)
        return _read_texts(name, stream, _Asked(column, label_column, id_column), limits)


@dataclass(frozen=True)
class _Asked:
    """The columns a caller asked for (None: the default)."""

    column: str | None
    label_column: str | None
    id_column: str | None


def _read_texts(name: str, stream: BinaryIO, asked: _Asked, limits: Limits) -> Dataset:
    """load_texts of a file that is there, of a known type, not empty."""
    suffix = PurePosixPath(name).suffix.lower()
    skipped: Bounded[Skipped] = Bounded(limits.max_listed)
    rows, encoding_note = _text_rows(name, stream, skipped)
    with contextlib.closing(rows):  # pandas' reader before the stream it reads
        records = iter(rows)
        first = next(records, None)
        if first is None:
            raise DatasetError(f"{name}: no rows{_all_skipped(skipped)}")
        columns = [c for c in first if c != "_line"]
        picked = _pick_columns(name, suffix, columns, *astuple(asked))
        collector = _TextCollector(picked, limits, skipped)
        for record in itertools.chain([first], records):
            collector.add(record)
            if collector.full():
                break
        over = _over_the_cap(rows, collector)
    if not collector.ids:
        raise DatasetError(f"{name}: no non-empty texts")
    notes = ([encoding_note] if encoding_note else []) + collector.notes()
    ids, texts = collector.ids, collector.texts
    return Dataset(
        name=name,
        kind="text",
        ids=tuple(ids),
        texts=tuple(texts),
        labels=tuple(collector.labels) if collector.columns.label else None,
        skipped=listed_skips(skipped) + ((over,) if over else ()),
        notes=tuple(notes),
        fingerprints={"text": fingerprint_rows("text", zip(ids, texts, strict=True))},
    )


def _all_skipped(skipped: Bounded[Skipped]) -> str:
    """Why a .jsonl has no rows when every line with content was skipped, naming the first."""
    if not skipped:
        return ""
    first = "; ".join(f"{entry.item} {entry.reason}" for entry in skipped.kept[:3])
    return (
        f": all {counted(len(skipped), 'line')} with content were skipped as invalid JSON"
        f" ({first}{'; ...' if len(skipped) > 3 else ''})"
    )


def _one_line(err: object) -> str:
    return " ".join(str(err).split())
