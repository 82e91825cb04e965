"""A content-addressed disk cache for embeddings.

Keys are sha256 over canonical, typed inputs (sorted JSON) plus a format version, so nothing is
ever embedded twice and any change of data, model, weights or preprocessing misses. Writes are
atomic (a uniquely named temporary file, then a rename), so neither a crash nor two writers of
the same entry at once (threads or processes) leave a half-written or missing entry. Each entry
carries the checksum of its file, verified on read: damage done between two runs (a crash, a
full disk, a bad sync, an operator) is set aside and recomputed, never served (see
`EmbeddingCache` and spec_core.data.integrity).
Root: $SPEC_EXPLORER_CACHE, else $XDG_CACHE_HOME/spec-explorer, else ~/.cache/spec-explorer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spec_core.data.integrity import (
    DAMAGED,
    PARSE_ERRORS,
    Damage,
    contained,
    json_type,
    regular_file,
    set_aside,
)

CACHE_FORMAT_VERSION = 1
#: The hash of an entry's .npy file kept in its description ("sha256:HEX"): sha256 runs at
#: about 1.6 GB/s where the CPU has SHA instructions (blake2b: 0.5 GB/s on the same machine).
CHECKSUM = "sha256"
CHECKSUM_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
FLOAT_DTYPES = frozenset(np.dtype(t).newbyteorder(o).str for t in "efd" for o in "<>")
#: The description field of an entry made for data that is no upload (a demo, the command
#: line): `"pinned": true` keeps it until the cache is cleared; no upload's deletion or expiry
#: removes it, though an upload may use it (spec_core.data.uploads).
PINNED = "pinned"
#: Bytes read (and hashed) at a time.
CHUNK = 8 << 20


def default_cache_root() -> Path:
    env = os.environ.get("SPEC_EXPLORER_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spec-explorer"


def private_folder(folder: Path) -> Path:
    """Create a folder of the cache (and the cache root) readable by this user only: upload
    references are file names, and a link is the only way to an upload. Folders that exist
    keep their permissions (an operator may share a cache on purpose)."""
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


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
    images, uploads (datasets and matrices) and the damaged entries set aside. Returns the
    bytes freed per folder."""
    root = Path(root).expanduser() if root is not None else default_cache_root()
    freed = {}
    for name in ("embeddings", "images", "uploads", "staging", DAMAGED):
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


@dataclass(frozen=True)
class EntryCheck:
    """What `EmbeddingCache.check_all` found for one entry: `state` "ok", "old" (written before
    checksums: recomputed on its next use, or checked and upgraded for an uploaded matrix),
    "incomplete" (a matrix without its description: a write that has not finished, or never
    will) or "damaged"; `reason` says what is wrong (no server path); `moved_to` where
    `repair` moved it."""

    key: str
    state: str
    reason: str = ""
    moved_to: Path | None = None


class _Digest:
    """A binary handle that hashes what is written through it (so `put` records the checksum
    of exactly the bytes it wrote, without reading them back)."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.new(CHECKSUM)

    def write(self, data) -> int:
        self.digest.update(data)
        return self.handle.write(data)


class EmbeddingCache:
    """Matrices with a small JSON description, stored as KEY.npy + KEY.json under `root`.

    Every entry's description holds the checksum of its .npy file (`CHECKSUM`, over the whole
    file: header and rows), its shape and dtype. `get` and `verify` check it; `meta` checks
    what it can without reading the rows. A damaged entry (bad bytes, a description of the
    wrong types, a checksum, shape or dtype that does not match, a folder or an outside link
    in its place) is never served: it is moved aside and logged (spec_core.data.integrity),
    and the read is a miss. The checksum is verified once per process per file version (its
    device, inode, size and modification time): a later read of the same unchanged file only
    reads it.

    Entries written before checksums existed ("old" ones) are misses for `get`, `verify` and
    `meta`: an embedding is recomputed once (nothing tells whether its rows were changed
    since, and a recomputation is always possible), while `verify(upgrade=True)` accepts an
    uploaded matrix, which cannot be recomputed, after checking its description, header,
    size and that every value is finite, and records its checksum.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.folder = self.root / "embeddings"

    # -----------------------------------------------------------------------------------------
    # Reading

    def meta(self, key: str, *, ids: list[str] | None = None) -> dict[str, Any] | None:
        """The description of a complete entry (holding exactly `ids`, when given), or None;
        reads only the JSON and the .npy header, not the matrix (its checksum is checked by
        `get` and `verify`)."""
        return self._guarded(key, lambda: self._read(key, ids, rows=False))

    def verify(
        self, key: str, *, ids: list[str] | None = None, upgrade: bool = False
    ) -> dict[str, Any] | None:
        """The description of a complete entry whose checksum matches (holding exactly `ids`,
        when given), or None; reads the matrix without keeping it (once per process per file
        version). `upgrade`: an old entry without a checksum is checked and gets one."""
        return self._guarded(key, lambda: self._read(key, ids, rows=True, upgrade=upgrade))

    def get(
        self, key: str, *, ids: list[str] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The matrix and its description, its checksum verified, or None (see `verify`)."""
        found = self._guarded(key, lambda: self._read(key, ids, rows=True, load=True))
        return None if found is None else (found.pop("_matrix"), found)

    def _guarded(self, key: str, read: Callable[[], Any]) -> Any:
        """`read()`, with a damaged entry moved aside and read as a miss (an entry removed
        while it is read, too)."""
        _check_key(key)
        try:
            return read()
        except FileNotFoundError:
            return None
        except Damage as damage:
            self.set_aside(key, str(damage))
            return None

    def set_aside(self, key: str, reason: str) -> Path | None:
        """Move an entry aside (description first: the entry stops counting as complete)."""
        paths = [self.folder / f"{key}.json", self.folder / f"{key}.npy"]
        return set_aside(self.root, "embeddings", key, paths, reason)

    def _read(self, key, ids, *, rows: bool, load=False, upgrade=False, afresh=False):
        """The entry's description, checked (with "_matrix" when `load`); None for a miss;
        Damage for an entry that must not be served. `afresh`: the checksum is computed even
        when this file version was verified before."""
        matrix_path = contained(self.folder, f"{key}.npy")
        meta_path = contained(self.folder, f"{key}.json")
        has_meta = regular_file(meta_path, "description (.json)")
        if not regular_file(matrix_path, "matrix (.npy)"):
            if has_meta:  # put writes the matrix first, delete removes it last
                raise Damage("the description (.json) is there without its matrix (.npy)")
            return None
        if not has_meta:
            return None  # a write that has not finished
        meta = _description(meta_path)
        old = "checksum" not in meta
        if old and not upgrade:
            return None
        if ids is not None and meta.get("ids") != ids:
            return None
        with open(matrix_path, "rb", buffering=0) as handle:
            dtype, offset = _header(handle, meta)
            if not rows:
                return meta
            version = os.fstat(handle.fileno())
            signature = (str(matrix_path), version.st_dev, version.st_ino, version.st_size,
                         version.st_mtime_ns, meta.get("checksum"))  # fmt: skip
            known = signature in _verified and not afresh and not old
            if known and not load:
                return meta  # verified before, unchanged since: nothing to read
            out = np.empty(meta["shape"], dtype=dtype) if load else None
            found = _body(handle, offset, dtype, out, digest=not known, finite=old)
        if old:
            meta = {**meta, "dtype": dtype.str, "checksum": found}
            atomic_write(meta_path, json.dumps(meta, sort_keys=True).encode())
        elif not known and found != meta["checksum"]:
            raise Damage(
                "its checksum does not match: the matrix file changed after it was written"
            )
        _remember(signature)
        return {**meta, "_matrix": out} if load else meta

    # -----------------------------------------------------------------------------------------
    # Writing

    def put(self, key: str, matrix: np.ndarray, meta: dict[str, Any]) -> None:
        """Store `matrix` (2-D, floating point) under `key` with its description `meta` (plus
        its shape, dtype, checksum and time)."""
        _check_key(key)
        matrix = np.ascontiguousarray(matrix)
        if matrix.ndim != 2 or matrix.dtype.kind != "f":
            raise ValueError(
                f"the cache keeps 2-D floating-point matrices, not {matrix.dtype} of shape "
                f"{matrix.shape}"
            )
        private_folder(self.folder)
        written = {}

        def write(handle) -> None:
            hashed = _Digest(handle)
            np.save(hashed, matrix, allow_pickle=False)
            written["checksum"] = f"{CHECKSUM}:{hashed.digest.hexdigest()}"

        # matrix first: the meta file marks the entry complete
        atomic_write(self.folder / f"{key}.npy", write)
        meta = {
            **meta,
            "shape": list(matrix.shape),
            "dtype": matrix.dtype.str,
            "checksum": written["checksum"],
            "created": time.time(),
        }
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

    # -----------------------------------------------------------------------------------------
    # The whole cache

    def keys(self) -> list[str]:
        """The key of every entry, complete or not (temporary files left out)."""
        if not self.folder.is_dir():
            return []
        names = (p for p in self.folder.iterdir() if not p.name.startswith("."))
        return sorted({p.stem for p in names if p.suffix in (".npy", ".json")})

    def entries(self) -> list[CacheEntry]:
        """Every complete entry with its description as written ({} when it cannot be read);
        nothing is checked (see `check_all`)."""
        out = []
        for meta_path in sorted(self.folder.glob("*.json")):
            matrix_path = meta_path.with_suffix(".npy")
            try:
                meta = json.loads(contained(self.folder, meta_path.name).read_text())
            except (Damage, *PARSE_ERRORS):
                meta = {}
            try:
                size = matrix_path.stat().st_size
            except OSError:
                size = 0
            out.append(CacheEntry(meta_path.stem, matrix_path, size, _dict(meta)))
        return out

    def check_all(self, *, repair: bool = False) -> list[EntryCheck]:
        """Check every entry as `verify` does (checksums computed afresh), changing nothing;
        `repair` moves the damaged ones aside."""
        checks = []
        for key in self.keys():
            try:
                state = self._inspect(key)
            except Damage as damage:
                moved = self.set_aside(key, str(damage)) if repair else None
                checks.append(EntryCheck(key, "damaged", str(damage), moved))
                continue
            checks.append(EntryCheck(key, *state))
        return checks

    def _inspect(self, key: str) -> tuple[str, str]:
        """(state, reason) of one entry, its checksum computed afresh; Damage when damaged."""
        meta = self._read(key, None, rows=True, afresh=True)
        if meta is not None:
            return ("ok", "")
        meta_path = self.folder / f"{key}.json"
        if not meta_path.exists():
            return ("incomplete", "a matrix without its description: a write that did not end")
        return (
            "old",
            (
                "no checksum (written by an older version): an embedding is recomputed on its "
                "next use, an uploaded matrix checked and given one"
            ),
        )

    def clear(self) -> int:
        """Delete every entry; returns the bytes freed."""
        freed = sum(e.bytes for e in self.entries())
        if self.folder.exists():
            shutil.rmtree(self.folder)
        return freed


# ---------------------------------------------------------------------------------------------
# Checking an entry's files

#: File versions (path, device, inode, size, mtime, checksum) verified in this process.
_verified: set[tuple] = set()
_verified_lock = threading.Lock()
_VERIFIED_KEPT = 4096


def _remember(signature: tuple) -> None:
    with _verified_lock:
        if len(_verified) >= _VERIFIED_KEPT:
            _verified.clear()
        _verified.add(signature)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or key != Path(key).name or key[0] == ".":
        raise ValueError(f"not a cache key: {key!r}")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _description(path: Path) -> dict[str, Any]:
    """An entry's JSON description, its fields of the right types; Damage otherwise."""
    try:
        meta = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise  # removed meanwhile: a miss
    except PARSE_ERRORS as err:
        raise Damage(f"the description (.json) is not valid JSON ({type(err).__name__})") from None
    if not isinstance(meta, dict):
        raise Damage(f"the description (.json) is {json_type(meta)}, not an object")
    shape = meta.get("shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(type(n) is int and n >= 0 for n in shape)
    ):
        raise Damage("the description's shape is not two counts (rows, columns)")
    ids = meta.get("ids")
    if ids is not None and not (
        isinstance(ids, list) and len(ids) == shape[0] and all(isinstance(i, str) for i in ids)
    ):
        raise Damage("the description's ids are not one string per row")
    if "checksum" in meta:
        checksum, dtype = meta.get("checksum"), meta.get("dtype")
        if not (isinstance(checksum, str) and CHECKSUM_PATTERN.fullmatch(checksum)):
            raise Damage(f"the description's checksum is not {CHECKSUM}: and 64 hex digits")
        if not (isinstance(dtype, str) and dtype in FLOAT_DTYPES):
            raise Damage("the description's dtype is not a floating-point type")
    return meta


def _header(handle, meta: dict[str, Any]) -> tuple[np.dtype, int]:
    """The .npy header's dtype and the offset of the rows, when the header, the description
    and the file's size agree; Damage otherwise."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version}")
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = read(handle)
    except PARSE_ERRORS as err:
        raise Damage(f"the matrix (.npy) has no valid header ({type(err).__name__})") from None
    if dtype.kind != "f" or fortran or dtype.str != meta.get("dtype", dtype.str):
        raise Damage(f"the matrix holds {dtype.str} ({'F' if fortran else 'C'} order), not "
                     f"the description's {meta.get('dtype', 'floating point')}")  # fmt: skip
    if list(shape) != meta["shape"]:
        raise Damage(f"the matrix's shape {list(shape)} is not the description's {meta['shape']}")
    offset = handle.tell()
    size = os.fstat(handle.fileno()).st_size
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if size != expected:
        raise Damage(f"the matrix file has {size} bytes where its header says {expected}")
    return dtype, offset


def _body(handle, offset: int, dtype, out, *, digest: bool, finite: bool) -> str | None:
    """Read the rows (into `out` when given, else chunk by chunk and dropped) after the header
    at `offset`; the file's checksum when `digest`. `finite`: Damage on NaN or infinity."""
    hashed = hashlib.new(CHECKSUM) if digest else None
    if hashed is not None:
        handle.seek(0)
        hashed.update(handle.read(offset))
    size = os.fstat(handle.fileno()).st_size - offset
    target = memoryview(out).cast("B") if out is not None and out.size else None
    spare = None if target is not None else memoryview(bytearray(min(CHUNK, size) or 1))
    done = 0
    while done < size:
        length = min(CHUNK, size - done)
        view = target[done : done + length] if target is not None else spare[:length]
        filled = 0
        while filled < length:
            got = handle.readinto(view[filled:])
            if not got:
                raise Damage("the matrix file ended while it was read")
            filled += got
        if hashed is not None:
            hashed.update(view)
        if finite and not np.isfinite(np.frombuffer(view, dtype=dtype)).all():
            raise Damage("the matrix holds NaN or infinite values")
        done += length
    return f"{CHECKSUM}:{hashed.hexdigest()}" if hashed is not None else None
