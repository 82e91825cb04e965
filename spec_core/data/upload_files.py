"""The files of the upload store, apart from the references' bookkeeping: the names it
accepts, the checks of a manifest's fields, holdings lists read safely, and the sweeps of what
no upload holds (used by spec_core.data.uploads, which describes the store)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from spec_core.data.cache import PINNED, EmbeddingCache, default_cache_root, private_folder
from spec_core.data.datasets import Dataset, Skipped
from spec_core.data.integrity import PARSE_ERRORS, Damage, contained

_log = logging.getLogger("spec_explorer.uploads")


def cache_root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else default_cache_root()


#: An embedding-cache key, and an image-store file name (sha256 of the content, its suffix).
KEY = re.compile(r"[0-9a-f]{64}")
IMAGE_NAME = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,5}")
#: The largest holdings list read (an upload of 100,000 images lists 7 MB of names).
MAX_LIST_BYTES = 16 << 20
#: What a dataset's manifest holds.
DATASET_FIELDS = ("name", "kind", "ids", "texts", "labels", "images", "skipped", "notes",
                  "fingerprints")  # fmt: skip


def strings(value, field: str, *, optional: bool = False) -> tuple[str, ...] | None:
    if value is None and optional:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Damage(f"the manifest's {field} are not a list of strings")
    return tuple(value)


def skip_entry(entry) -> bool:
    """A manifest's skipped entry: [item, reason], or [item, reason, count] for several."""
    return (
        isinstance(entry, list)
        and len(entry) in (2, 3)
        and all(isinstance(x, str) for x in entry[:2])
        and all(type(n) is int and n >= 1 for n in entry[2:])
    )


def dataset_of(manifest: dict[str, Any], store: Path) -> Dataset:
    """A Dataset from a manifest whose every field is checked; Damage otherwise."""
    missing = [field for field in DATASET_FIELDS if field not in manifest]
    if missing:
        raise Damage(f"the manifest has no {', '.join(missing)}")
    images = strings(manifest["images"], "images", optional=True)
    if images is not None and not all(IMAGE_NAME.fullmatch(name) for name in images):
        raise Damage("the manifest names an image that is not a file name of the store")
    ids = strings(manifest["ids"], "ids")
    if len(set(ids)) != len(ids):
        raise Damage("the manifest's ids repeat")
    fingerprints = manifest["fingerprints"]
    if not isinstance(fingerprints, dict) or not all(
        isinstance(v, str) for v in fingerprints.values()
    ):
        raise Damage("the manifest's fingerprints are not strings by modality")
    skipped = manifest["skipped"]
    if not isinstance(skipped, list) or not all(map(skip_entry, skipped)):
        raise Damage("the manifest's skipped items are not (item, reason[, count]) entries")
    kind, name = manifest["kind"], manifest["name"]
    if kind not in ("image", "text") or not isinstance(name, str):
        raise Damage("the manifest's kind is neither image nor text, or its name no string")
    dataset = Dataset(
        name=name,
        kind=kind,
        ids=ids,
        texts=strings(manifest["texts"], "texts", optional=True),
        labels=strings(manifest["labels"], "labels", optional=True),
        image_paths=None if images is None else tuple(str(store / name) for name in images),
        skipped=tuple(Skipped(*entry) for entry in skipped),
        notes=strings(manifest["notes"], "notes"),
        fingerprints=dict(fingerprints),
    )
    columns = (dataset.texts, dataset.labels, dataset.image_paths)
    if any(c is not None and len(c) != len(ids) for c in columns):
        raise Damage("the manifest's columns do not have one entry per id")
    if (dataset.texts if kind == "text" else dataset.image_paths) is None:
        raise Damage(f"the manifest of {kind}s holds no {kind}s")
    return dataset


def matrix_fields(manifest: dict[str, Any]) -> list[str]:
    """The key, name and fingerprint of a matrix manifest; Damage when they are not strings,
    or the key is not an embedding-cache key."""
    parts = [manifest.get(field) for field in ("key", "name", "fingerprint")]
    if not all(isinstance(p, str) for p in parts):
        raise Damage("the manifest's key, name and fingerprint are not all strings")
    if not KEY.fullmatch(parts[0]):
        raise Damage("the manifest's key is not an embedding-cache key")
    return parts


def read_list(path: Path, pattern: re.Pattern) -> list[str]:
    """The lines of a holdings list that fit `pattern` (anything else is ignored). Only a
    regular file inside the uploads folder of at most `MAX_LIST_BYTES` is read: a link out of
    it, a FIFO (opened without blocking, never read), a device or a huge file counts as an
    empty list and is logged, so one odd list can neither hang nor swell a deletion."""
    import stat

    try:
        fd = os.open(contained(path.parent, path.name), os.O_RDONLY | os.O_NONBLOCK)
    except (Damage, OSError):
        return []
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LIST_BYTES:
            _log.warning("holdings list %s is not a regular file of at most %d bytes: ignored",
                         path.name, MAX_LIST_BYTES)  # fmt: skip
            return []
        try:
            lines = handle.read(MAX_LIST_BYTES + 1).decode("ascii").split("\n")
        except (OSError, UnicodeDecodeError):
            return []
    return list(dict.fromkeys(line for line in lines if pattern.fullmatch(line)))


def pinned(cache: EmbeddingCache, key: str) -> bool:
    """Was embedding-cache entry `key` made for data that is no upload (see PINNED)?"""
    try:
        meta = json.loads(contained(cache.folder, f"{key}.json").read_bytes())
    except (Damage, *PARSE_ERRORS):
        return False
    return isinstance(meta, dict) and meta.get(PINNED) is True


def sweep_embeddings(root, held: set[str], before: float) -> int:
    """Delete the embedding-cache entries that no upload holds, are not pinned and were last
    written before `before`: embeddings of uploads deleted while they were computed."""
    cache = EmbeddingCache(root)
    freed = 0
    for key in cache.keys():  # noqa: SIM118 (not a dict)
        if key in held or not KEY.fullmatch(key) or pinned(cache, key):
            continue
        newest = max(mtime_or_zero(cache.folder / f"{key}{s}") for s in (".npy", ".json"))
        if newest < before:
            freed += cache.delete(key)
    return freed


def staging_folder(root: str | Path | None = None) -> Path:
    """Where an upload is staged while a reader that wants a path reads it (a private folder
    of the cache: a staged file a dead server left behind is swept by `cleanup`)."""
    return private_folder(cache_root(root) / "staging")


def sweep_staged(root, before: float) -> int:
    folder = cache_root(root) / "staging"
    if not folder.is_dir():
        return 0
    freed = 0
    for sub in folder.iterdir():
        if sub.is_symlink() or not sub.is_dir() or mtime(sub) >= before:
            continue
        for leftover in sub.iterdir():
            freed += unlink(leftover)
        with contextlib.suppress(OSError):
            sub.rmdir()
    return freed


def mtime_or_zero(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return 0
    return size
