"""A content-addressed disk cache for embeddings.

Keys are sha256 over canonical, typed inputs (sorted JSON) plus a format version, so nothing is
ever embedded twice and any change of data, model, weights or preprocessing misses. Writes are
atomic (a uniquely named temporary file, then a rename), so neither a crash nor two writers of
the same entry at once (threads or processes) leave a half-written or missing entry.
Root: $SPEC_EXPLORER_CACHE, else $XDG_CACHE_HOME/spec-explorer, else ~/.cache/spec-explorer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE_FORMAT_VERSION = 1


def default_cache_root() -> Path:
    env = os.environ.get("SPEC_EXPLORER_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spec-explorer"


def image_store(root: str | Path | None = None) -> Path:
    """Where images from archives and uploads are kept, named by content hash."""
    return (Path(root).expanduser() if root is not None else default_cache_root()) / "images"


def atomic_write(
    path: str | Path, write: bytes | Callable[[object], None], *, mode: int | None = None
) -> None:
    """Write a file so that readers see either nothing or the whole of it, whoever else writes
    the same path at the same time: a uniquely named temporary file in the same folder (made by
    mkstemp, never reused), then an atomic rename over `path`. `write` is the bytes, or a
    function that writes to the open binary handle. `mode`: the file's permissions (mkstemp
    makes 0600; a user's outputs get 0644, readable by their group)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(write, bytes | bytearray | memoryview):
                handle.write(write)
            else:
                write(handle)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def clear_all(root: str | Path | None = None) -> dict[str, int]:
    """Delete everything under the cache root that this package wrote: embeddings, stored
    images and uploads (datasets and matrices). Returns the bytes freed per folder."""
    root = Path(root).expanduser() if root is not None else default_cache_root()
    freed = {}
    for name in ("embeddings", "images", "uploads"):
        folder = root / name
        if not folder.is_dir():
            continue
        freed[name] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder, ignore_errors=True)
    return freed


def cache_key(**parts: Any) -> str:
    """sha256 of the parts as canonical JSON (sorted keys) with the format version."""
    payload = json.dumps({"v": CACHE_FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    bytes: int
    meta: dict[str, Any]


class EmbeddingCache:
    """Matrices with a small JSON description, stored as KEY.npy + KEY.json under `root`."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.folder = self.root / "embeddings"

    def meta(self, key: str, *, ids: list[str] | None = None) -> dict[str, Any] | None:
        """The description of a complete entry (holding exactly `ids`, when given), or None;
        reads only the JSON and the .npy header, not the matrix."""
        matrix_path = self.folder / f"{key}.npy"
        meta_path = self.folder / f"{key}.json"
        if not (matrix_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            shape = np.load(matrix_path, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError):
            return None  # a damaged entry is a miss; the next put replaces it
        if list(shape) != meta.get("shape") or (ids is not None and meta.get("ids") != ids):
            return None
        return meta

    def get(
        self, key: str, *, ids: list[str] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The matrix and its description, or None (see `meta`)."""
        meta = self.meta(key, ids=ids)
        if meta is None:
            return None
        try:
            return np.load(self.folder / f"{key}.npy", allow_pickle=False), meta
        except (OSError, ValueError):
            return None

    def put(self, key: str, matrix: np.ndarray, meta: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "shape": list(matrix.shape), "created": time.time()}
        matrix = np.ascontiguousarray(matrix)
        # matrix first: the meta file marks the entry complete
        atomic_write(self.folder / f"{key}.npy", lambda h: np.save(h, matrix, allow_pickle=False))
        atomic_write(self.folder / f"{key}.json", json.dumps(meta, sort_keys=True).encode())

    def delete(self, key: str) -> int:
        """Remove one entry (a missing one is fine); returns the bytes freed."""
        freed = 0
        for suffix in (".json", ".npy"):  # meta first: the entry stops counting as complete
            path = self.folder / f"{key}{suffix}"
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
        return freed

    def entries(self) -> list[CacheEntry]:
        out = []
        for meta_path in sorted(self.folder.glob("*.json")):
            matrix_path = meta_path.with_suffix(".npy")
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                meta = {}
            size = matrix_path.stat().st_size if matrix_path.exists() else 0
            out.append(CacheEntry(meta_path.stem, matrix_path, size, meta))
        return out

    def clear(self) -> int:
        """Delete every entry; returns the bytes freed."""
        freed = sum(e.bytes for e in self.entries())
        if self.folder.exists():
            shutil.rmtree(self.folder)
        return freed
