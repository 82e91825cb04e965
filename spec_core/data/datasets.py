"""Datasets users bring: image sets (a folder, a .zip, or uploaded files, with an optional
captions/labels table) and text sets (.txt, .csv/.tsv, .jsonl).

Row order is stable and documented: images by relative path (POSIX separators, code-point
order), texts in file order. Each row has a stable id (the relative path; the id column or
`line-N` for texts). Hostile or broken input never stops the load and never writes outside the
work folder: each bad item is skipped with its reason, and the dataset holds only good rows, so
two embeddings of it always have the same rows.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Generic, TypeVar

from spec_core.data.cache import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
TEXT_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl")
CAPTION_FILE_COLUMNS = ("file", "file_name", "filename", "image", "path", "id")


@dataclass(frozen=True)
class Limits:
    """Caps on what a dataset may hold; every one is reported by name when hit."""

    max_files: int = 20_000
    max_file_bytes: int = 32 * 2**20
    max_total_bytes: int = 2 * 2**30
    max_pixels: int = 40_000_000
    max_zip_ratio: float = 200.0
    max_text_rows: int = 200_000
    max_text_chars: int = 20_000
    #: Skipped items (and notes of one kind) listed one by one; the rest are counted in one entry.
    max_listed: int = 1_000


@dataclass(frozen=True)
class Skipped:
    item: str
    reason: str


T = TypeVar("T")


class Bounded(Generic[T]):
    """The first `limit` items of a stream that may be huge, and a count of the rest: a zip of a
    million bad members, or a file of a million bad lines, costs `limit` entries, not a million.
    `len()` is the count of every item appended."""

    def __init__(self, limit: int):
        self.limit = limit
        self.kept: list[T] = []
        self.more = 0

    def append(self, item: T) -> None:
        if len(self.kept) < self.limit:
            self.kept.append(item)
        else:
            self.more += 1

    def __len__(self) -> int:
        return len(self.kept) + self.more

    def listed(self, summary: Callable[[int], T]) -> tuple[T, ...]:
        """The kept items, then `summary(count of the rest)` when some were not kept."""
        return tuple(self.kept) + ((summary(self.more),) if self.more else ())


def listed_skips(skipped: Bounded[Skipped]) -> tuple[Skipped, ...]:
    """A dataset's skipped items: the first ones with their reasons, then one entry counting
    the rest."""
    return skipped.listed(
        lambda more: Skipped(
            _count(more, "more item"),
            f"also skipped; only the first {skipped.limit:,} skipped items are listed",
        )
    )


@dataclass(frozen=True)
class Dataset:
    """Rows of one dataset. `texts` are the texts (text sets) or the captions (image sets, when
    a captions table was given); `image_paths` are files on disk (image sets)."""

    name: str
    kind: str
    ids: tuple[str, ...]
    texts: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None
    image_paths: tuple[str, ...] | None = None
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    fingerprints: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def modalities(self) -> tuple[str, ...]:
        """What can be embedded: images (image sets), texts (text sets and captioned images)."""
        out = ("image",) if self.kind == "image" else ()
        return out + (("text",) if self.texts is not None else ())

    def items(self, modality: str) -> tuple[str, ...]:
        """The inputs of an encoder for `modality`: image paths or texts, in row order."""
        if modality not in self.modalities:
            have = " and ".join(self.modalities) or "nothing"
            raise ValueError(f"dataset {self.name!r} has no {modality}s (it has {have})")
        return self.image_paths if modality == "image" else self.texts

    def fingerprint(self, modality: str) -> str:
        self.items(modality)
        return self.fingerprints[modality]


class DatasetError(ValueError):
    """The dataset as a whole cannot be used (empty, over a cap, unreadable table)."""


# --------------------------------------------------------------------------------------------
# Images


def check_image(data: bytes, limits: Limits) -> str | None:
    """None when `data` is an image we can decode within the pixel cap, else the reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > limits.max_pixels:
                return (
                    f"{width}x{height} = {width * height / 1e6:.0f} Mpx is over the limit of "
                    f"{limits.max_pixels / 1e6:.0f} Mpx (decompression bomb guard)"
                )
            img.load()  # first frame of a GIF; truncated files fail here
    except Image.DecompressionBombError as err:
        return f"decompression bomb ({err})"
    except UnidentifiedImageError:
        return "corrupt or unreadable image: not a recognised image format"
    except Exception as err:  # PIL raises many types for corrupt data
        return f"corrupt or unreadable image ({type(err).__name__}: {str(err)[:120]})"
    return None


def safe_member_name(name: str) -> str | None:
    """The archive member's relative POSIX path, or None when it could escape the target
    (absolute paths, drive letters, '..', backslash tricks, empty names)."""
    if not name or "\\" in name or name.startswith("/") or "\x00" in name:
        return None
    path = PurePosixPath(name)
    if any(part in ("..", "") for part in path.parts) or ":" in path.parts[0]:
        return None
    return path.as_posix()


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(rel).parts)


class _ImageCollector:
    """Checks each candidate image and stores the good ones under `store` by content hash
    (never under a user-controlled name)."""

    def __init__(self, limits: Limits, store: Path | None):
        self.limits = limits
        self.store = store
        self.rows: dict[str, tuple[str, str]] = {}  # rel path -> (disk path, sha256)
        self.skipped: Bounded[Skipped] = Bounded(limits.max_listed)
        self.total = 0

    def add(self, rel: str, data: bytes | None, disk_path: Path | None = None) -> None:
        if _hidden(rel):
            return
        if not rel.lower().endswith(IMAGE_SUFFIXES):
            self.skipped.append(Skipped(rel, f"not an image type ({', '.join(IMAGE_SUFFIXES)})"))
            return
        if len(self.rows) >= self.limits.max_files:
            self.skipped.append(Skipped(rel, f"over the limit of {self.limits.max_files} files"))
            return
        if data is None:
            size = disk_path.stat().st_size
            if size > self.limits.max_file_bytes:
                self.skipped.append(Skipped(rel, _too_big(size, self.limits.max_file_bytes)))
                return
            data = disk_path.read_bytes()
        if len(data) == 0:
            self.skipped.append(Skipped(rel, "empty file"))
            return
        if len(data) > self.limits.max_file_bytes:
            self.skipped.append(Skipped(rel, _too_big(len(data), self.limits.max_file_bytes)))
            return
        if self.total + len(data) > self.limits.max_total_bytes:
            self.skipped.append(
                Skipped(rel, f"over the total limit of {self.limits.max_total_bytes >> 20} MiB")
            )
            return
        reason = check_image(data, self.limits)
        if reason:
            self.skipped.append(Skipped(rel, reason))
            return
        digest = hashlib.sha256(data).hexdigest()
        if disk_path is None:
            self.store.mkdir(parents=True, exist_ok=True)
            disk_path = self.store / f"{digest}{PurePosixPath(rel).suffix.lower()}"
            if disk_path.exists():
                os.utime(disk_path)  # in use again: age-based clean-up counts from now
            else:  # many sessions may store the same image at once: unique temporary names
                atomic_write(disk_path, data)
        self.total += len(data)
        self.rows[rel] = (str(disk_path), digest)


def _too_big(size: int, limit: int) -> str:
    return f"{size / 2**20:.1f} MiB is over the per-file limit of {limit / 2**20:.0f} MiB"


def load_image_folder(
    folder: str | Path, *, captions: str | Path | None = None, limits: Limits = Limits()
) -> Dataset:
    """Every image under `folder` (recursively; hidden files and symlinks ignored)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    collector = _ImageCollector(limits, store=None)
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        collector.add(path.relative_to(root).as_posix(), None, disk_path=path)
    table = _read_captions(Path(captions), limits) if captions else None
    return _image_dataset(root.name, collector, table, str(captions) if captions else None)


def load_image_zip(
    source: str | Path | bytes,
    *,
    store: str | Path,
    name: str | None = None,
    captions: str | Path | tuple[str, bytes] | None = None,
    limits: Limits = Limits(),
) -> Dataset:
    """Images inside a .zip (a path or its bytes); good ones are copied into `store`.

    Guards: member paths that could escape (absolute, '..', backslashes) and symlinks are
    skipped; the declared sizes are checked against the caps and the compression ratio against
    `max_zip_ratio` before anything is decompressed, and reads are bounded in case they lie.
    A captions table inside the archive (captions.csv / captions.jsonl at its top) is used when
    no separate table is given.
    """
    label = name or (Path(source).name if not isinstance(source, bytes) else "upload.zip")
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as err:
        raise DatasetError(f"{label}: not a readable .zip archive ({err})") from None
    collector = _ImageCollector(limits, store=Path(store))
    inner_captions = None
    with archive:
        infos = archive.infolist()
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes * 4:
            raise DatasetError(
                f"{label}: declares {declared / 2**30:.1f} GiB uncompressed, over 4x the limit "
                f"of {limits.max_total_bytes / 2**30:.1f} GiB (zip bomb guard)"
            )
        for info in sorted(infos, key=lambda i: i.filename):
            if info.is_dir():
                continue
            rel = safe_member_name(info.filename)
            if rel is None:
                collector.skipped.append(Skipped(info.filename, "unsafe path inside the archive"))
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                collector.skipped.append(Skipped(rel, "symbolic link inside the archive"))
                continue
            if rel.lower() in ("captions.csv", "captions.jsonl") and captions is None:
                inner_captions = (rel, _bounded_read(archive, info, limits.max_file_bytes))
                continue
            if _hidden(rel) or not rel.lower().endswith(IMAGE_SUFFIXES):
                collector.add(rel, b"")  # reports the type (or ignores hidden files)
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_zip_ratio:
                collector.skipped.append(
                    Skipped(
                        rel,
                        f"compression ratio {ratio:.0f}:1 is over "
                        f"{limits.max_zip_ratio:.0f}:1 (zip bomb guard)",
                    )
                )
                continue
            if info.file_size > limits.max_file_bytes:
                collector.skipped.append(
                    Skipped(rel, _too_big(info.file_size, limits.max_file_bytes))
                )
                continue
            data = _bounded_read(archive, info, limits.max_file_bytes)
            if data is None:
                collector.skipped.append(Skipped(rel, "corrupt archive member or size mismatch"))
                continue
            collector.add(rel, data)
    table = None
    table_name = None
    if captions is not None:
        table_name = captions[0] if isinstance(captions, tuple) else str(captions)
        table = _read_captions(captions, limits)
    elif inner_captions and inner_captions[1] is not None:
        table_name = inner_captions[0]
        table = _read_captions(inner_captions, limits)
    return _image_dataset(label, collector, table, table_name)


def load_image_files(
    files: Iterable[tuple[str, bytes]],
    *,
    store: str | Path,
    name: str = "upload",
    captions: tuple[str, bytes] | None = None,
    limits: Limits = Limits(),
) -> Dataset:
    """Uploaded files as (file name, bytes); the id is the file name (without folders)."""
    collector = _ImageCollector(limits, store=Path(store))
    for filename, data in sorted(files, key=lambda f: f[0]):
        rel = PurePosixPath(filename.replace("\\", "/")).name
        if rel in collector.rows:
            collector.skipped.append(Skipped(rel, "duplicate file name"))
            continue
        collector.add(rel, data)
    table = _read_captions(captions, limits) if captions else None
    return _image_dataset(name, collector, table, captions[0] if captions else None)


def _bounded_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    try:
        with archive.open(info) as handle:
            data = handle.read(min(info.file_size, limit) + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError):
        return None
    if len(data) != info.file_size:
        return None
    return data


def _image_dataset(name, collector: _ImageCollector, table, table_name) -> Dataset:
    if not collector.rows:
        reasons = "; ".join(f"{s.item}: {s.reason}" for s in collector.skipped.kept[:3])
        raise DatasetError(
            f"{name}: no usable images"
            + (f" ({len(collector.skipped)} skipped: {reasons})" if collector.skipped else "")
        )
    ids = tuple(sorted(collector.rows))
    paths = tuple(collector.rows[i][0] for i in ids)
    notes: list[str] = []
    texts = labels = None
    if table is not None:
        texts, labels, notes = _match_captions(ids, table, table_name)
    image_fp = _digest("image", ((i, collector.rows[i][1]) for i in ids))
    fingerprints = {"image": image_fp}
    if texts is not None:
        fingerprints["text"] = _digest("text", zip(ids, texts, strict=True))
    return Dataset(
        name=name,
        kind="image",
        ids=ids,
        texts=texts,
        labels=labels,
        image_paths=paths,
        skipped=listed_skips(collector.skipped),
        notes=tuple(notes),
        fingerprints=fingerprints,
    )


def _read_captions(source, limits: Limits) -> list[dict]:
    """A captions/labels table: .csv (columns file, caption, label) or .jsonl (same keys)."""
    if isinstance(source, tuple):
        name, data = source
    else:
        name, data = str(source), Path(source).read_bytes()
    if data is None or len(data) > limits.max_file_bytes:
        raise DatasetError(f"{name}: the captions table is missing or too large")
    text, _ = decode_text(data)
    if name.lower().endswith(".jsonl"):
        bad: Bounded[Skipped] = Bounded(1)
        rows = list(_jsonl_records(Lines(text), bad))
        if bad:
            raise DatasetError(
                f"{name}: line {bad.kept[0].item.split('-')[1]} {bad.kept[0].reason}"
            )
    elif name.lower().endswith((".csv", ".tsv")):
        import pandas as pd

        try:
            frame = pd.read_csv(
                io.StringIO(text),
                dtype=str,
                keep_default_na=False,
                sep="\t" if name.lower().endswith(".tsv") else ",",
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DatasetError(f"{name}: cannot be read as a table ({err})") from None
        rows = frame.to_dict("records")
    else:
        raise DatasetError(f"{name}: a captions table must be .csv, .tsv or .jsonl")
    if not rows:
        raise DatasetError(f"{name}: the captions table has no rows")
    columns = set(rows[0])
    file_col = next((c for c in CAPTION_FILE_COLUMNS if c in columns), None)
    if file_col is None or not ({"caption", "text", "label"} & columns):
        raise DatasetError(
            f"{name}: expected a file column ({', '.join(CAPTION_FILE_COLUMNS)}) and a caption "
            f"and/or label column; found {', '.join(sorted(columns))}"
        )
    return [
        {
            "file": str(r.get(file_col, "")),
            "caption": str(r.get("caption", r.get("text", ""))),
            "label": str(r.get("label", "")),
        }
        for r in rows
    ]


def _match_captions(ids, table, table_name):
    """Match table rows to image ids by relative path, else by file name."""
    by_path = {row["file"].replace("\\", "/").lstrip("./"): row for row in table}
    by_name = {}
    for row in table:
        by_name.setdefault(PurePosixPath(row["file"].replace("\\", "/")).name, row)
    texts, labels, missing = [], [], []
    used = set()
    for rel in ids:
        row = by_path.get(rel) or by_name.get(PurePosixPath(rel).name)
        if row is None:
            missing.append(rel)
            texts.append("")
            labels.append("")
            continue
        used.add(id(row))
        texts.append(row["caption"])
        labels.append(row["label"])
    notes = []
    if missing:
        notes.append(
            f"{len(missing)} image(s) have no row in {table_name} (e.g. {', '.join(missing[:3])});"
            " their caption and label are empty"
        )
    unused = [r["file"] for r in table if id(r) not in used]
    if unused:
        notes.append(
            f"{len(unused)} row(s) of {table_name} name no image in the set "
            f"(e.g. {', '.join(unused[:3])})"
        )
    has_labels = any(labels)
    return tuple(texts), (tuple(labels) if has_labels else None), notes


# --------------------------------------------------------------------------------------------
# Texts


def decode_text(data: bytes) -> tuple[str, str | None]:
    """UTF-8 (a BOM is dropped); otherwise Latin-1, which decodes any bytes, with a note."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        return data.decode("latin-1"), (
            f"not valid UTF-8 (first bad byte on line {line}); decoded as Latin-1"
        )


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


def _jsonl_records(lines: Lines, skipped: Bounded[Skipped]) -> Iterator[dict]:
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
        first = next(_jsonl_records(Lines(text), Bounded(0)), None)
        return [str(k) for k in first if k != "_line"] if first else []
    return []


class _TxtRows:
    """The rows of a .txt: one per line, in a column `text`."""

    unit = "line"
    blank_lines_are_rows = True  # counted as empty rows

    def __init__(self, text: str):
        self.lines = Lines(text)

    def __iter__(self) -> Iterator[dict]:
        for number, line in self.lines:
            yield {"text": line, "_line": number}

    def rest(self) -> tuple[int, bool]:
        return self.lines.rest()


class _JsonlRows(_TxtRows):
    """The rows of a .jsonl: one JSON object per line; bad lines go to `skipped`."""

    blank_lines_are_rows = False  # ignored

    def __init__(self, text: str, skipped: Bounded[Skipped]):
        super().__init__(text)
        self.skipped = skipped

    def __iter__(self) -> Iterator[dict]:
        return _jsonl_records(self.lines, self.skipped)


class _TableRows:
    """The rows of a .csv / .tsv as text, read by pandas in chunks: only the rows taken are
    turned into records (`_line` is the row's number counting the header as 1); `rest()`
    counts the rows of the chunks not taken."""

    unit = "row"
    blank_lines_are_rows = False  # pandas skips them
    chunk_rows = 10_000

    def __init__(self, name: str, data: bytes, encoding: str, sep: str):
        import pandas as pd

        self.name = name
        try:
            reader = pd.read_csv(
                io.BytesIO(data),
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

    def rest(self) -> tuple[int, bool]:
        count = self.unread + sum(len(chunk) for chunk in self.chunks)
        self.unread = 0
        return count, count > 0


def _text_rows(
    name: str, data: bytes, skipped: Bounded[Skipped]
) -> tuple[_TxtRows | _TableRows, str | None]:
    """The reader of a text file's rows, by its suffix, and the note on its encoding."""
    text, encoding_note = decode_text(data)
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".txt":
        return _TxtRows(text), encoding_note
    if suffix == ".jsonl":
        return _JsonlRows(text, skipped), encoding_note
    del text  # pandas decodes the bytes itself, as decode_text did
    encoding = "utf-8-sig" if encoding_note is None else "latin-1"
    return _TableRows(name, data, encoding, "\t" if suffix == ".tsv" else ","), encoding_note


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
    cap = _count(collector.limits.max_text_rows, "row")
    return Skipped(item, f"{_count(count, rows.unit)} over the limit of {cap}: not loaded")


def _one_line(err: object) -> str:
    return " ".join(str(err).split())


def _count(number: int, unit: str) -> str:
    """'1 row', '2,000 rows'."""
    return f"{number:,} {unit}{'' if number == 1 else 's'}"


def _text_source(source: str | Path | tuple[str, bytes], limits: Limits) -> tuple[str, bytes]:
    """(file name, bytes) of a text file given by path or as an upload."""
    if isinstance(source, tuple):
        return source
    path = Path(source)
    name = path.name
    if not path.is_file():
        raise DatasetError(f"{source}: no such file")
    if path.stat().st_size > limits.max_total_bytes:
        raise DatasetError(f"{name}: {_too_big(path.stat().st_size, limits.max_total_bytes)}")
    return name, path.read_bytes()


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
    counted (one skipped entry names them), so memory follows the file's size and the cap, not
    its line count."""
    name, data = _text_source(source, limits)
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise DatasetError(f"{name}: unsupported text file type; use {', '.join(TEXT_SUFFIXES)}")
    if len(data) > limits.max_total_bytes:
        raise DatasetError(f"{name}: {_too_big(len(data), limits.max_total_bytes)}")
    if not data.strip():
        raise DatasetError(f"{name}: the file is empty")
    skipped: Bounded[Skipped] = Bounded(limits.max_listed)
    rows, encoding_note = _text_rows(name, data, skipped)
    records = iter(rows)
    first = next(records, None)
    if first is None:
        raise DatasetError(f"{name}: no rows")
    columns = [c for c in first if c != "_line"]
    picked = _pick_columns(name, suffix, columns, column, label_column, id_column)
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
        fingerprints={"text": _digest("text", zip(ids, texts, strict=True))},
    )


def _digest(kind: str, pairs: Iterator[tuple[str, str]]) -> str:
    """sha256 over the rows in order: (id, content) pairs, length-prefixed so that no two
    different datasets hash alike."""
    hasher = hashlib.sha256(f"spec-explorer-dataset/v1/{kind}\n".encode())
    for row_id, content in pairs:
        for part in (row_id, content):
            encoded = part.encode("utf-8", "surrogatepass")
            hasher.update(len(encoded).to_bytes(8, "little"))
            hasher.update(encoded)
    return hasher.hexdigest()


def rows_dataset(name: str, ids: Sequence[str]) -> Dataset:
    """A dataset that is only its rows: for comparing two precomputed embedding matrices on
    their own (no images or texts). The row ids (an id column, or row numbers) stand in as the
    rows' text, so every page can name a row."""
    ids = tuple(str(i) for i in ids)
    if not ids:
        raise DatasetError(f"{name}: no rows")
    return Dataset(
        name=name,
        kind="text",
        ids=ids,
        texts=ids,
        notes=(
            "Rows of the uploaded matrices: there are no images or texts, so each row is "
            "shown by its id. Text models would embed the ids themselves.",
        ),
        fingerprints={"text": _digest("rows", zip(ids, ids, strict=True))},
    )


def load_dataset(path: str | Path, *, store: str | Path | None = None, **kwargs) -> Dataset:
    """Dispatch on what `path` is: a folder or .zip of images, or a text file."""
    path = Path(path).expanduser()
    if path.is_dir():
        return load_image_folder(path, **kwargs)
    if path.suffix.lower() == ".zip":
        from spec_core.data.cache import image_store

        return load_image_zip(path, store=store or image_store(), **kwargs)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return load_texts(path, **kwargs)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    raise DatasetError(
        f"{path}: expected a folder or .zip of images, or a text file ({', '.join(TEXT_SUFFIXES)})"
    )
