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
import json
import os
import stat
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

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


@dataclass(frozen=True)
class Skipped:
    item: str
    reason: str


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
        self.skipped: list[Skipped] = []
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
        reasons = "; ".join(f"{s.item}: {s.reason}" for s in collector.skipped[:3])
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
        skipped=tuple(collector.skipped),
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
        rows, bad = _jsonl_rows(text)
        if bad:
            raise DatasetError(f"{name}: line {bad[0].item.split('-')[1]} {bad[0].reason}")
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
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _jsonl_rows(text: str) -> tuple[list[dict], list[Skipped]]:
    rows, bad = [], []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append(Skipped(f"line-{number}", f"is not valid JSON ({err.msg})"))
            continue
        if not isinstance(row, dict):
            bad.append(Skipped(f"line-{number}", "is not a JSON object"))
            continue
        rows.append({**row, "_line": number})
    return rows, bad


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
        rows, _ = _jsonl_rows(text)
        return [str(k) for k in rows[0] if k != "_line"] if rows else []
    return []


def load_texts(
    source: str | Path | tuple[str, bytes],
    *,
    column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    limits: Limits = Limits(),
) -> Dataset:
    """A text set from .txt (one per line), .csv/.tsv (pick the column) or .jsonl."""
    if isinstance(source, tuple):
        name, data = source
    else:
        path = Path(source)
        name = path.name
        if not path.is_file():
            raise DatasetError(f"{source}: no such file")
        if path.stat().st_size > limits.max_total_bytes:
            raise DatasetError(f"{name}: {_too_big(path.stat().st_size, limits.max_total_bytes)}")
        data = path.read_bytes()
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise DatasetError(f"{name}: unsupported text file type; use {', '.join(TEXT_SUFFIXES)}")
    if len(data) > limits.max_total_bytes:
        raise DatasetError(f"{name}: {_too_big(len(data), limits.max_total_bytes)}")
    if not data.strip():
        raise DatasetError(f"{name}: the file is empty")
    text, encoding_note = decode_text(data)
    notes = [encoding_note] if encoding_note else []
    skipped: list[Skipped] = []

    if suffix == ".txt":
        records = [{"text": line, "_line": i} for i, line in enumerate(split_lines(text), 1)]
        column = "text"
    elif suffix == ".jsonl":
        records, skipped = _jsonl_rows(text)
    else:
        import pandas as pd

        try:
            frame = pd.read_csv(
                io.StringIO(text),
                dtype=str,
                keep_default_na=False,
                sep="\t" if suffix == ".tsv" else ",",
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DatasetError(f"{name}: cannot be read as a table ({err})") from None
        records = [{**r, "_line": i + 2} for i, r in enumerate(frame.to_dict("records"))]
    if not records:
        raise DatasetError(f"{name}: no rows")
    columns = [c for c in records[0] if c != "_line"]
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

    ids, texts, labels = [], [], []
    empty = 0
    seen: dict[str, int] = {}
    duplicates = []
    for record in records:
        value = record.get(column)
        value = "" if value is None else str(value)
        if not value.strip():
            empty += 1
            continue
        if len(ids) >= limits.max_text_rows:
            skipped.append(
                Skipped(f"line-{record['_line']}", f"over the limit of {limits.max_text_rows} rows")
            )
            continue
        if len(value) > limits.max_text_chars:
            value = value[: limits.max_text_chars]
            notes.append(f"line {record['_line']}: cut to {limits.max_text_chars} characters")
        row_id = str(record[id_column]) if id_column else f"line-{record['_line']}"
        if row_id in seen:
            seen[row_id] += 1
            duplicates.append(row_id)
            row_id = f"{row_id}#{seen[row_id]}"
        else:
            seen[row_id] = 1
        ids.append(row_id)
        texts.append(value)
        labels.append("" if label_column is None else str(record.get(label_column) or ""))
    if empty:
        notes.append(f"{empty} empty row(s) skipped")
    if duplicates:
        notes.append(
            f"{len(duplicates)} duplicate id(s) (e.g. {', '.join(duplicates[:3])}) were made "
            "unique with a #N suffix"
        )
    if not ids:
        raise DatasetError(f"{name}: no non-empty texts")
    return Dataset(
        name=name,
        kind="text",
        ids=tuple(ids),
        texts=tuple(texts),
        labels=tuple(labels) if label_column else None,
        skipped=tuple(skipped),
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
