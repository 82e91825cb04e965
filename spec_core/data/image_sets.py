"""Image sets users bring: a folder, a .zip, or uploaded files, with an optional
captions/labels table matched to the images by relative path or file name.

Row order is the images' relative paths (POSIX separators, code-point order); each row's id is
that path. Hostile or broken input never stops the load and never writes outside the image
store: unsafe archive paths, links, zip bombs, files over a cap and images that do not decode
are each skipped with their reason, and images from archives and uploads are stored by content
hash, never under a name the user chose.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from spec_core.data.cache import atomic_write, private_folder
from spec_core.data.dataset_types import (
    Bounded,
    Dataset,
    DatasetError,
    Limits,
    Skipped,
    fingerprint_rows,
    listed_skips,
    over_file_limit,
)
from spec_core.data.text_sets import Lines, decode_text, jsonl_records

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
CAPTION_FILE_COLUMNS = ("file", "file_name", "filename", "image", "path", "id")


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
                self.skipped.append(Skipped(rel, over_file_limit(size, self.limits.max_file_bytes)))
                return
            data = disk_path.read_bytes()
        if len(data) == 0:
            self.skipped.append(Skipped(rel, "empty file"))
            return
        if len(data) > self.limits.max_file_bytes:
            self.skipped.append(
                Skipped(rel, over_file_limit(len(data), self.limits.max_file_bytes))
            )
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
            private_folder(self.store)
            disk_path = self.store / f"{digest}{PurePosixPath(rel).suffix.lower()}"
            if disk_path.is_file() and not disk_path.is_symlink():
                os.utime(disk_path)  # in use again: age-based clean-up counts from now
            else:  # many sessions may store the same image at once: unique temporary names
                atomic_write(disk_path, data)  # (replacing a link in its place)
        self.total += len(data)
        self.rows[rel] = (str(disk_path), digest)


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
                    Skipped(rel, over_file_limit(info.file_size, limits.max_file_bytes))
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
    image_fp = fingerprint_rows("image", ((i, collector.rows[i][1]) for i in ids))
    fingerprints = {"image": image_fp}
    if texts is not None:
        fingerprints["text"] = fingerprint_rows("text", zip(ids, texts, strict=True))
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
        rows = list(jsonl_records(Lines(text), bad))
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
