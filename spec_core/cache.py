"""A content-addressed disk cache for embeddings.

Keys are sha256 over canonical, typed inputs (sorted JSON) plus a format version, so nothing is
ever embedded twice and any change of data, model, weights or preprocessing misses. Writes are
atomic (a temporary file, then a rename), so a crash never leaves a half-written entry.
Root: $SPEC_EXPLORER_CACHE, else $XDG_CACHE_HOME/spec-explorer, else ~/.cache/spec-explorer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
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


def image_store() -> Path:
    """Where images from archives and uploads are kept, named by content hash."""
    return default_cache_root() / "images"


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
        suffix = f".{os.getpid()}.tmp"
        tmp_matrix = self.folder / f"{key}.npy{suffix}"
        with tmp_matrix.open("wb") as handle:
            np.save(handle, np.ascontiguousarray(matrix), allow_pickle=False)
        tmp_meta = self.folder / f"{key}.json{suffix}"
        tmp_meta.write_text(json.dumps(meta, sort_keys=True))
        tmp_matrix.replace(self.folder / f"{key}.npy")  # matrix first: meta marks it complete
        tmp_meta.replace(self.folder / f"{key}.json")

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
