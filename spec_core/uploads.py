"""Uploaded datasets and matrices, stored so that a link can name them, and deleted on time.

An upload is a small manifest under `<cache root>/uploads/REF.json`; the images it names live in
the content-addressed image store (`spec_core.cache.image_store`), matrices in the embedding
cache. REF is 40 hex digits (160 bits): an HMAC of the manifest's content under a secret that
this server draws once (`uploads/.secret`). The same upload gives the same REF (the store is
content-addressed), but nobody without the secret can derive or guess one, so a link is the only
way to an upload.

Retention: an upload, the images it names and everything computed from it (embeddings, recorded
in `REF.derived`) are deleted `upload_ttl_hours()` after their last use
(`$SPEC_EXPLORER_UPLOAD_TTL_HOURS`, default 168 = 7 days); using an upload counts as use.
`delete(ref)` removes one at once (the app's "Delete my data"), `spec_core.cache.clear_all`
(`python -m spec_core cache --clear`) removes them all.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec_core.cache import EmbeddingCache, atomic_write, default_cache_root, image_store
from spec_core.datasets import Dataset, Skipped

UPLOAD_FORMAT_VERSION = 1
TTL_ENV = "SPEC_EXPLORER_UPLOAD_TTL_HOURS"
DEFAULT_TTL_HOURS = 168.0
REF = re.compile(r"[0-9a-f]{40}")
#: An upload's files are marked as used at most this often (seconds).
TOUCH_INTERVAL = 3600.0


class UploadGone(LookupError):
    """The upload a reference names is not (or no longer) on this server."""


@dataclass(frozen=True)
class MatrixUpload:
    """An uploaded embedding matrix, its rows aligned to a dataset: `key` in the embedding
    cache, `name` the uploaded file's name, `fingerprint` the dataset's it belongs to."""

    ref: str
    key: str
    name: str
    fingerprint: str


def upload_ttl_hours() -> float:
    raw = os.environ.get(TTL_ENV, "").strip()
    try:
        hours = float(raw) if raw else DEFAULT_TTL_HOURS
    except ValueError:
        hours = DEFAULT_TTL_HOURS
    return hours if 0 < hours < float("inf") else DEFAULT_TTL_HOURS


def _folder(root: str | Path | None) -> Path:
    return (Path(root).expanduser() if root is not None else default_cache_root()) / "uploads"


def _secret(root: str | Path | None) -> bytes:
    folder = _folder(root)
    path = folder / ".secret"
    for _ in range(50):
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            if len(data) == 32:
                return data
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = _private_temp(folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic; the first writer wins, the others read its secret
        finally:
            os.unlink(tmp)
    raise OSError(f"cannot create the upload secret in {folder}")


def _private_temp(folder: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(dir=folder, prefix=".secret.", suffix=".tmp")


def _ref(payload: bytes, root) -> str:
    return hmac.new(_secret(root), payload, "sha256").hexdigest()[:40]


def check_ref(ref: str) -> str:
    if not isinstance(ref, str) or not REF.fullmatch(ref):
        raise UploadGone("not an upload reference")
    return ref


def _write(manifest: dict[str, Any], root) -> str:
    payload = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    ref = _ref(payload, root)
    path = _folder(root) / f"{ref}.json"
    if path.exists():
        _touch(path)
    else:
        atomic_write(path, payload)
    return ref


def _touch(path: Path) -> bool:
    """Mark as used now (at most every TOUCH_INTERVAL); True when it was touched."""
    try:
        if time.time() - path.stat().st_mtime < TOUCH_INTERVAL:
            return False
        os.utime(path)
        return True
    except FileNotFoundError:
        return False


def _read(ref: str, root) -> tuple[dict[str, Any], bool]:
    path = _folder(root) / f"{check_ref(ref)}.json"
    try:
        manifest = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        raise UploadGone("this upload is not on this server (deleted, or expired)") from None
    return manifest, _touch(path)


# ---------------------------------------------------------------------------------------------
# Datasets


def save_dataset(dataset: Dataset, *, root: str | Path | None = None) -> str:
    """Store an uploaded dataset (texts, or images already in the image store); its REF."""
    images = None
    if dataset.image_paths is not None:
        store = image_store(root).resolve()
        images = []
        for path in dataset.image_paths:
            path = Path(path).resolve()
            if path.parent != store:
                raise ValueError("only images in the image store can be kept as an upload")
            images.append(path.name)
    manifest = {
        "format": UPLOAD_FORMAT_VERSION,
        "type": "dataset",
        "name": dataset.name,
        "kind": dataset.kind,
        "ids": list(dataset.ids),
        "texts": None if dataset.texts is None else list(dataset.texts),
        "labels": None if dataset.labels is None else list(dataset.labels),
        "images": images,
        "skipped": [[s.item, s.reason] for s in dataset.skipped],
        "notes": list(dataset.notes),
        "fingerprints": dict(sorted(dataset.fingerprints.items())),
    }
    _folder(root).mkdir(parents=True, exist_ok=True)
    return _write(manifest, root)


def load_dataset(ref: str, *, root: str | Path | None = None) -> Dataset:
    """The dataset an upload REF names; UploadGone when it or any of its images is gone."""
    manifest, touched = _read(ref, root)
    if manifest.get("type") != "dataset":
        raise UploadGone("this reference names no dataset")
    image_paths = None
    if manifest["images"] is not None:
        store = image_store(root)
        image_paths = tuple(str(store / name) for name in manifest["images"])
        if not all(os.path.exists(path) for path in image_paths):
            raise UploadGone("some images of this upload are no longer on this server")
    if touched:
        _touch_contents(ref, manifest, root)
    return Dataset(
        name=manifest["name"],
        kind=manifest["kind"],
        ids=tuple(manifest["ids"]),
        texts=None if manifest["texts"] is None else tuple(manifest["texts"]),
        labels=None if manifest["labels"] is None else tuple(manifest["labels"]),
        image_paths=image_paths,
        skipped=tuple(Skipped(item, reason) for item, reason in manifest["skipped"]),
        notes=tuple(manifest["notes"]),
        fingerprints=dict(manifest["fingerprints"]),
    )


def exists(ref: str, *, root: str | Path | None = None) -> bool:
    return bool(REF.fullmatch(ref or "")) and (_folder(root) / f"{ref}.json").is_file()


def mark_used(ref: str, *, root: str | Path | None = None) -> None:
    """Count an upload as used now (its retention starts again); cheap when it was marked
    within the last TOUCH_INTERVAL."""
    path = _folder(root) / f"{check_ref(ref)}.json"
    if _touch(path):
        try:
            manifest = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            return
        _touch_contents(ref, manifest, root)


def _touch_contents(ref: str, manifest: dict[str, Any], root) -> None:
    """Mark the images an upload names and what was computed from it as used now."""
    store = image_store(root)
    for name in manifest.get("images") or ():
        with contextlib.suppress(OSError):
            os.utime(store / name)
    _touch_derived(ref, root)


# ---------------------------------------------------------------------------------------------
# Matrices


def save_matrix(key: str, name: str, fingerprint: str, *, root: str | Path | None = None) -> str:
    """Record an uploaded matrix stored in the embedding cache under `key`; its REF."""
    _folder(root).mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": UPLOAD_FORMAT_VERSION,
        "type": "matrix",
        "key": key,
        "name": name,
        "fingerprint": fingerprint,
    }
    ref = _write(manifest, root)
    record_derived(ref, key, root=root)
    return ref


def load_matrix(ref: str, *, root: str | Path | None = None) -> MatrixUpload:
    manifest, touched = _read(ref, root)
    if manifest.get("type") != "matrix":
        raise UploadGone("this reference names no matrix")
    if touched:
        _touch_contents(ref, manifest, root)
    return MatrixUpload(ref, manifest["key"], manifest["name"], manifest["fingerprint"])


# ---------------------------------------------------------------------------------------------
# What was computed from an upload, deletion and retention


def record_derived(ref: str, key: str, *, root: str | Path | None = None) -> None:
    """Note that embedding-cache entry `key` was computed from upload `ref` (deleted with it)."""
    path = _folder(root) / f"{check_ref(ref)}.derived"
    if key in derived(ref, root=root):
        return
    with open(path, "a", encoding="ascii") as handle:  # one short append: atomic
        handle.write(key + "\n")


def derived(ref: str, *, root: str | Path | None = None) -> list[str]:
    path = _folder(root) / f"{check_ref(ref)}.derived"
    try:
        lines = path.read_text(encoding="ascii").split("\n")
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    return list(dict.fromkeys(line for line in lines if re.fullmatch(r"[0-9a-f]{64}", line)))


def _touch_derived(ref: str, root) -> None:
    folder = EmbeddingCache(root).folder
    for key in derived(ref, root=root):
        for suffix in (".npy", ".json"):
            with contextlib.suppress(OSError):
                os.utime(folder / f"{key}{suffix}")


def delete(ref: str, *, root: str | Path | None = None, images: bool = True) -> int:
    """Delete an upload, what was computed from it and (`images`) the images it names; returns
    the bytes freed. Deleting what is already gone is fine."""
    check_ref(ref)
    folder = _folder(root)
    freed = 0
    cache = EmbeddingCache(root)
    for key in derived(ref, root=root):
        freed += cache.delete(key)
    manifest_path = folder / f"{ref}.json"
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (FileNotFoundError, ValueError):
        manifest = {}
    if images and manifest.get("images"):
        store = image_store(root)
        for name in manifest["images"]:
            freed += _unlink(store / name)
    freed += _unlink(manifest_path)
    freed += _unlink(folder / f"{ref}.derived")
    return freed


def _unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def cleanup(*, max_age_hours: float | None = None, root: str | Path | None = None) -> int:
    """Delete uploads unused for `max_age_hours` (default `upload_ttl_hours()`) with what was
    computed from them, and stored images unused for as long; returns the bytes freed.

    An image shared by a live upload is kept: loading an upload marks its images as used."""
    max_age = 3600.0 * (max_age_hours if max_age_hours is not None else upload_ttl_hours())
    cutoff = time.time() - max_age
    freed = 0
    folder = _folder(root)
    if folder.is_dir():
        for path in folder.glob("*.json"):
            ref = path.stem
            if REF.fullmatch(ref) and _mtime(path) < cutoff:
                freed += delete(ref, root=root, images=False)
        for path in folder.glob(".*.tmp"):  # a writer that died mid-write
            if _mtime(path) < cutoff:
                freed += _unlink(path)
    store = image_store(root)
    if store.is_dir():
        for path in store.iterdir():
            if path.is_file() and _mtime(path) < cutoff:
                freed += _unlink(path)
    return freed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
