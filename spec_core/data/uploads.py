"""Uploaded datasets and matrices, stored so that a link can name them, and deleted on time.

An upload is a manifest under `<cache root>/uploads/REF.json`. REF is 40 random hex digits
(160 bits) drawn for each upload, so a link is the only way to an upload, and two sessions that
upload the same file get two references: neither can remove the other's. The content stays
shared: images live in the content-addressed image store (`spec_core.data.cache.image_store`),
matrices and embeddings in the embedding cache. What a reference holds is listed beside its
manifest (`REF.images`: image file names; `REF.derived`: embedding-cache keys uploaded with it
or computed from it), and a shared file is removed only when no reference holds it any more.

Concurrency: storing content and the manifest that holds it runs under a shared lock
(`ingesting()`), deletion under an exclusive one (an flock on `uploads/.lock`, which the kernel
releases when a process dies, so kill -9 never leaves it held). A deletion removes the manifest
first, then what nothing else holds, then the lists: one killed halfway leaves lists without a
manifest, which the next clean-up finishes.

Retention: an upload, and what only it holds, is deleted `upload_ttl_hours()` after its last
use (`$SPEC_EXPLORER_UPLOAD_TTL_HOURS`, default 168 = 7 days, `inf` never, at least 0.1 h; see
`upload_ttl_hours`). Every use counts: it is recorded
on the manifest's modification time, at most every `touch_interval()` seconds (5 minutes, or a
tenth of the retention time when that is shorter). `delete(ref)` removes one at once (the app's
"Delete my data"), `spec_core.data.cache.clear_all` (`python -m spec_core cache --clear`) all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec_core.data.cache import (
    EmbeddingCache,
    atomic_write,
    image_store,
    private_folder,
)
from spec_core.data.datasets import Dataset
from spec_core.data.integrity import (
    PARSE_ERRORS,
    Damage,
    contained,
    json_type,
    regular_file,
    set_aside,
    set_aside_entries,
)
from spec_core.data.upload_files import (
    DATASET_FIELDS as DATASET_FIELDS,
)
from spec_core.data.upload_files import (
    IMAGE_NAME as IMAGE_NAME,
)
from spec_core.data.upload_files import (
    KEY as KEY,
)
from spec_core.data.upload_files import (
    PINNED as PINNED,
)
from spec_core.data.upload_files import (
    cache_root,
    dataset_of,
    matrix_fields,
    mtime,
    pinned,
    read_list,
    sweep_embeddings,
    sweep_staged,
    unlink,
)
from spec_core.data.upload_files import (
    staging_folder as staging_folder,
)

UPLOAD_FORMAT_VERSION = 1
TTL_ENV = "SPEC_EXPLORER_UPLOAD_TTL_HOURS"
DEFAULT_TTL_HOURS = 168.0
MIN_TTL_HOURS = 0.1  # 6 minutes: an upload open in a browser is used more often than that
REF = re.compile(r"[0-9a-f]{40}")
#: The longest time between two records of an upload's use (seconds).
MAX_TOUCH_INTERVAL = 300.0
#: Unheld entries and staged files younger than this are left to the writer still at work.
SWEEP_GRACE_SECONDS = 600.0


class UploadGone(LookupError):
    """The upload a reference names is not (or no longer) on this server."""


#: What a user is told of an upload whose manifest was found damaged (and set aside).
DAMAGED = "this upload is damaged on the server"


class UploadDamaged(UploadGone):
    """The upload a reference names was found damaged on this server, and set aside."""

    def __init__(self, message: str = DAMAGED):
        super().__init__(message)


@dataclass(frozen=True)
class MatrixUpload:
    """An uploaded embedding matrix, its rows aligned to a dataset: `key` in the embedding
    cache, `name` the uploaded file's name, `fingerprint` the dataset's it belongs to."""

    ref: str
    key: str
    name: str
    fingerprint: str


def upload_ttl_hours() -> float:
    """Hours an upload is kept after its last use ($SPEC_EXPLORER_UPLOAD_TTL_HOURS; `inf`:
    never deleted; raised to MIN_TTL_HOURS, or the default for a bad value, with a warning)."""
    from spec_core.checks import hours_setting

    return hours_setting(TTL_ENV, default=DEFAULT_TTL_HOURS, minimum=MIN_TTL_HOURS)


def touch_interval() -> float:
    """How often (seconds) a use is recorded at most: the last use on record is never older
    than this, so nothing in use comes near its expiry (36 s to 300 s; 300 s for `inf`)."""
    return min(MAX_TOUCH_INTERVAL, upload_ttl_hours() * 3600.0 / 10.0)


_root = cache_root


def _folder(root: str | Path | None) -> Path:
    return _root(root) / "uploads"


def check_ref(ref: str) -> str:
    if not isinstance(ref, str) or not REF.fullmatch(ref):
        raise UploadGone("not an upload reference")
    return ref


# ---------------------------------------------------------------------------------------------
# Locks


@contextlib.contextmanager
def _lock(root: str | Path | None, *, exclusive: bool) -> Iterator[None]:
    import fcntl

    folder = private_folder(_folder(root))
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def ingesting(root: str | Path | None = None):
    """Hold while storing content (images, matrices) and the upload that holds it: no deletion
    can remove the content in between. Shared: any number of sessions ingest at once."""
    return _lock(root, exclusive=False)


# ---------------------------------------------------------------------------------------------
# Manifests


def _write(manifest: dict[str, Any], root, *, images: Iterable[str] = (), keys=()) -> str:
    """A new reference to `manifest`, holding `images` (store file names) and `keys`
    (embedding-cache keys); the lists are written first, so a manifest is never seen without
    them."""
    folder = private_folder(_folder(root))
    payload = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    ref = secrets.token_hex(20)
    with ingesting(root):
        _write_images_list(folder / f"{ref}.images", images)
        for key in keys:
            record_derived(ref, key, root=root)
        atomic_write(folder / f"{ref}.json", payload)
    return ref


def _write_images_list(path: Path, images: Iterable[str]) -> None:
    """The list of image names an upload holds (written for every upload, empty for texts and
    matrices: a missing list marks an upload stored before the lists existed)."""
    atomic_write(path, "".join(f"{name}\n" for name in images).encode())


def _touch(path: Path) -> bool:
    """Record a use now (at most every `touch_interval()`); True when it was recorded."""
    try:
        if time.time() - path.stat().st_mtime < touch_interval():
            return False
        os.utime(path, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _read(ref: str, root, kind: str) -> tuple[dict[str, Any], bool]:
    """The manifest of upload `ref` if it is a `kind` ("dataset" or "matrix"), and whether this
    read recorded a use; UploadGone when it is missing or damaged (then it is set aside)."""
    path = _folder(root) / f"{check_ref(ref)}.json"
    try:
        manifest = _manifest(ref, root)
    except Damage as damage:
        raise _damaged(ref, root, str(damage)) from None
    if manifest["type"] != kind:
        raise UploadGone(f"this reference names no {kind}")
    return manifest, _touch(path)


def _manifest(ref: str, root) -> dict[str, Any]:
    """The manifest of upload `ref`, a JSON object of a known type; UploadGone when there is
    none, Damage when it is damaged."""
    path = contained(_folder(root), f"{ref}.json")
    if not regular_file(path, "manifest"):
        raise _gone(ref, root)
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise _gone(ref, root) from None
    except PARSE_ERRORS as err:
        raise Damage(f"the manifest is not valid JSON ({type(err).__name__})") from None
    if not isinstance(manifest, dict):
        raise Damage(f"the manifest is {json_type(manifest)}, not an object")
    if manifest.get("type") not in ("dataset", "matrix"):
        raise Damage("the manifest's type is neither dataset nor matrix")
    return manifest


def _gone(ref: str, root) -> UploadGone:
    """The error for an upload that is not here: set aside as damaged, or deleted."""
    if was_set_aside(ref, root=root):
        return UploadDamaged()
    return UploadGone("this upload is not on this server (deleted, or expired)")


def was_set_aside(ref: str, *, root: str | Path | None = None) -> bool:
    """Was upload `ref` set aside as damaged (and not deleted since)?"""
    return any(
        entry.name.startswith(f"{check_ref(ref)}.")
        for entry in set_aside_entries(_root(root), "uploads")
    )


def _damaged(ref: str, root, reason: str) -> UploadGone:
    """Set upload `ref` aside (its manifest first, then its lists) as damaged; the error its
    reader raises."""
    set_aside_upload(ref, reason, root=root)
    return UploadDamaged()


def set_aside_upload(ref: str, reason: str, *, root: str | Path | None = None) -> Path | None:
    """Move a damaged upload's manifest and lists aside (see spec_core.data.integrity): the
    reference stops working; what it held stays in the store and the cache until the
    retention policy removes what no other upload holds."""
    folder = _folder(root)
    paths = [folder / f"{check_ref(ref)}{suffix}" for suffix in (".json", ".images", ".derived")]
    return set_aside(_root(root), "uploads", ref, paths, reason)


# ---------------------------------------------------------------------------------------------
# Datasets


def save_dataset(dataset: Dataset, *, root: str | Path | None = None) -> str:
    """Store an uploaded dataset (texts, or images already in the image store); a new REF.
    Hold `ingesting()` from storing its images until this returns."""
    images = None
    if dataset.image_paths is not None:
        store = image_store(root).resolve()
        images = []
        for path in dataset.image_paths:
            path = Path(path).resolve()
            if path.parent != store or not IMAGE_NAME.fullmatch(path.name):
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
        "skipped": [
            [s.item, s.reason] + ([s.count] if s.count != 1 else []) for s in dataset.skipped
        ],
        "notes": list(dataset.notes),
        "fingerprints": dict(sorted(dataset.fingerprints.items())),
    }
    return _write(manifest, root, images=dict.fromkeys(images or ()))


def load_dataset(ref: str, *, root: str | Path | None = None) -> Dataset:
    """The dataset an upload REF names; UploadGone when it or any of its images is gone, or
    when its manifest is damaged."""
    manifest, touched = _read(ref, root, "dataset")
    try:
        dataset = dataset_of(manifest, image_store(root))
    except Damage as damage:
        raise _damaged(ref, root, str(damage)) from None
    _check_images(manifest["images"] or (), root)
    if touched:
        _touch_contents(ref, root)
    return dataset


def _check_images(names: Iterable[str], root) -> None:
    """UploadGone unless every named image is a file in the store (not a folder, not a link
    that leads out of it: such an image is set aside as damaged, and never opened)."""
    store = image_store(root)
    for name in names:
        path = store / name
        try:
            present = regular_file(contained(store, name), "image")
        except Damage as damage:
            set_aside(_root(root), "images", name, [path], str(damage))
            raise UploadGone("some images of this upload are damaged on the server") from None
        if not present:
            raise UploadGone("some images of this upload are no longer on this server")


def exists(ref: str, *, root: str | Path | None = None) -> bool:
    """Is there something under this reference (perhaps damaged: its reader says so)?"""
    return bool(REF.fullmatch(ref or "")) and os.path.lexists(_folder(root) / f"{ref}.json")


def mark_used(ref: str, *, root: str | Path | None = None) -> None:
    """Record a use of an upload now (its retention starts again); cheap when one was recorded
    within the last `touch_interval()`."""
    if _touch(_folder(root) / f"{check_ref(ref)}.json"):
        _touch_contents(ref, root)


def _touch_contents(ref: str, root) -> None:
    """Record a use of what an upload holds: its images and its embeddings."""
    images, keys = _holdings(ref, root)
    store = image_store(root)
    for name in images:
        with contextlib.suppress(OSError):
            os.utime(store / name, follow_symlinks=False)
    folder = EmbeddingCache(root).folder
    for key in keys:
        for suffix in (".npy", ".json"):
            with contextlib.suppress(OSError):
                os.utime(folder / f"{key}{suffix}", follow_symlinks=False)


# ---------------------------------------------------------------------------------------------
# Matrices


def save_matrix(key: str, name: str, fingerprint: str, *, root: str | Path | None = None) -> str:
    """Record an uploaded matrix stored in the embedding cache under `key`; a new REF, which
    holds the entry. Hold `ingesting()` from storing the matrix until this returns."""
    if not KEY.fullmatch(key):
        raise ValueError("not an embedding-cache key")
    manifest = {
        "format": UPLOAD_FORMAT_VERSION,
        "type": "matrix",
        "key": key,
        "name": name,
        "fingerprint": fingerprint,
    }
    return _write(manifest, root, keys=[key])


def load_matrix(ref: str, *, root: str | Path | None = None) -> MatrixUpload:
    """The uploaded matrix REF names; UploadGone when it is gone or its manifest damaged."""
    manifest, touched = _read(ref, root, "matrix")
    try:
        parts = matrix_fields(manifest)
    except Damage as damage:
        raise _damaged(ref, root, str(damage)) from None
    if touched:
        _touch_contents(ref, root)
    return MatrixUpload(ref, *parts)


def check(ref: str, *, root: str | Path | None = None) -> tuple[str, str]:
    """(state, reason) of upload `ref`, changing nothing: "ok", "damaged" (its manifest, or an
    image it names that is not a file of the store) or "incomplete" (images or its matrix
    gone)."""
    try:
        manifest = _manifest(check_ref(ref), root)
        if manifest["type"] == "matrix":
            key = matrix_fields(manifest)[0]
            folder = EmbeddingCache(root).folder
            if not os.path.lexists(folder / f"{key}.json"):
                return ("incomplete", "its matrix is no longer in the cache")
            return ("ok", "")
        dataset_of(manifest, image_store(root))
    except Damage as damage:
        return ("damaged", str(damage))
    except UploadGone as gone:
        return ("incomplete", str(gone))
    for name in manifest["images"] or ():
        try:
            present = regular_file(contained(image_store(root), name), "image")
        except Damage:
            return ("incomplete", "an image it names is damaged (see the images)")
        if not present:
            return ("incomplete", "some of its images are no longer in the store")
    return ("ok", "")


# ---------------------------------------------------------------------------------------------
# What an upload holds


def record_derived(ref: str, key: str, *, root: str | Path | None = None) -> None:
    """Note that embedding-cache entry `key` belongs to upload `ref` (computed from it, or
    uploaded with it): it is kept while `ref` or another upload holds it. Record it before
    computing the entry, so that no deletion in between takes it."""
    if not KEY.fullmatch(key):
        raise ValueError("not an embedding-cache key")
    path = _folder(root) / f"{check_ref(ref)}.derived"
    with ingesting(root):
        if key in derived(ref, root=root):
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:  # one short append: atomic
            handle.write(key + "\n")


def derived(ref: str, *, root: str | Path | None = None) -> list[str]:
    return read_list(_folder(root) / f"{check_ref(ref)}.derived", KEY)


def _holdings(ref: str, root) -> tuple[set[str], set[str]]:
    """The image names and embedding keys upload `ref` holds. An upload stored before the
    lists existed has its images in its manifest."""
    folder = _folder(root)
    listed = folder / f"{ref}.images"
    if not listed.exists():
        _migrate(ref, root)
    return set(read_list(listed, IMAGE_NAME)), set(read_list(folder / f"{ref}.derived", KEY))


def _migrate(ref: str, root) -> None:
    """Write the images list of an upload stored before the lists existed (from its manifest;
    nothing when the manifest is gone or unreadable)."""
    folder = _folder(root)
    try:
        manifest = json.loads(contained(folder, f"{ref}.json").read_bytes())
    except (Damage, *PARSE_ERRORS):
        return
    named = manifest.get("images") if isinstance(manifest, dict) else None
    if named is not None and not isinstance(named, list):
        return
    images = [n for n in named or () if isinstance(n, str) and IMAGE_NAME.fullmatch(n)]
    with contextlib.suppress(OSError):
        _write_images_list(folder / f"{ref}.images", dict.fromkeys(images))


def _live_refs(root) -> set[str]:
    folder = _folder(root)
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.json") if REF.fullmatch(p.stem)}


# ---------------------------------------------------------------------------------------------
# Deletion and retention


def delete(ref: str, *, root: str | Path | None = None) -> int:
    """Delete an upload reference, and what it held that no other upload holds (its images,
    its matrix, the embeddings computed from it); returns the bytes freed. Another session's
    reference to the same content keeps working. Deleting what is already gone is fine."""
    check_ref(ref)
    with _lock(root, exclusive=True):
        return _delete({ref}, root)


def _delete(refs: set[str], root) -> int:
    """Delete `refs` under the exclusive lock: manifests first, then what no remaining upload
    holds, then the holdings lists (see the module's note on a deletion killed halfway)."""
    folder = _folder(root)
    images, keys = set(), set()
    for ref in refs:
        held_images, held_keys = _holdings(ref, root)
        images |= held_images
        keys |= held_keys
    freed = sum(unlink(folder / f"{ref}.json") for ref in refs)
    for ref in _live_refs(root) - refs:
        held_images, held_keys = _holdings(ref, root)
        images -= held_images
        keys -= held_keys
    store = image_store(root)
    freed += sum(unlink(store / name) for name in images)
    cache = EmbeddingCache(root)
    freed += sum(cache.delete(key) for key in keys if not pinned(cache, key))
    for ref in refs:
        freed += unlink(folder / f"{ref}.images") + unlink(folder / f"{ref}.derived")
    return freed


def drop_unheld(keys: Iterable[str], *, root: str | Path | None = None) -> int:
    """Delete the embedding-cache entries `keys` that no upload holds and that are not pinned
    (an embedding that finished after its upload was deleted); returns the bytes freed."""
    with _lock(root, exclusive=True):
        held = set()
        for ref in _live_refs(root):
            held |= _holdings(ref, root)[1]
        cache = EmbeddingCache(root)
        return sum(
            cache.delete(key)
            for key in set(keys) - held
            if KEY.fullmatch(key) and not pinned(cache, key)
        )


def cleanup(*, max_age_hours: float | None = None, root: str | Path | None = None) -> int:
    """Delete uploads unused for `max_age_hours` (default `upload_ttl_hours()`) with what only
    they held, and finish deletions killed halfway; then sweep what no upload holds: stored
    images nobody used for as long (images of archives read by the command line), embeddings
    made for uploads that are gone (not pinned: see PINNED) and staged upload files of a server
    that died while reading them, each once older than `SWEEP_GRACE_SECONDS`; returns the bytes
    freed."""
    max_age = 3600.0 * (max_age_hours if max_age_hours is not None else upload_ttl_hours())
    now = time.time()
    cutoff = now - max_age
    folder, store = _folder(root), image_store(root)
    if not (folder.is_dir() or store.is_dir()):
        return 0
    with _lock(root, exclusive=True):
        live = _live_refs(root)
        expired = {ref for ref in live if mtime(folder / f"{ref}.json") < cutoff}
        orphans = {
            p.stem
            for pattern in ("*.images", "*.derived")
            for p in folder.glob(pattern)
            if REF.fullmatch(p.stem) and p.stem not in live
        }
        freed = _delete(expired | orphans, root)
        for path in folder.glob(".*.tmp"):  # a writer that died mid-write
            if mtime(path) < cutoff:
                freed += unlink(path)
        held_images, held_keys = set(), set()
        for ref in live - expired:
            images, keys = _holdings(ref, root)
            held_images |= images
            held_keys |= keys
        if store.is_dir():
            for path in store.iterdir():
                if path.is_file() and path.name not in held_images and mtime(path) < cutoff:
                    freed += unlink(path)
        freed += sweep_embeddings(root, held_keys, now - SWEEP_GRACE_SECONDS)
        freed += sweep_staged(root, now - SWEEP_GRACE_SECONDS)
    return freed


def discard_images(names: Iterable[str], *, root: str | Path | None = None) -> int:
    """Delete stored images (file names of the store) that no upload holds: those an upload
    that was refused stored. Call it after `ingesting()` ends. Returns the bytes freed."""
    names = {n for n in names if IMAGE_NAME.fullmatch(n)}
    if not names:
        return 0
    with _lock(root, exclusive=True):
        for ref in _live_refs(root):
            names -= _holdings(ref, root)[0]
        store = image_store(root)
        return sum(unlink(store / name) for name in names)
