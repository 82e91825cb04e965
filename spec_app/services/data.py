"""The data a comparison runs on: the demo sets, the images, texts and embedding matrices users
upload, and deleting them again.

Uploads are kept by spec_core.data.uploads under an unguessable reference, which the URL
carries (`data` "upload:REF", a model "precomputed:REF"); the datasets they hold are kept in
the process by `st.cache_resource`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import streamlit as st

from spec_app import safe
from spec_app.services.errors import DataGone
from spec_app.services.projections import thumbnail
from spec_app.services.store import release_freed_memory
from spec_core.data import uploads
from spec_core.data.cache import EmbeddingCache, cache_key
from spec_core.data.datasets import Dataset

#: What a user is told of an upload found damaged on the server (and set aside).
DAMAGED_DATA = (
    "The data this link points to is damaged on this server (it was set aside for "
    "inspection). Upload it again on the Data page."
)

# ---------------------------------------------------------------------------------------------
# The data a setting names


@st.cache_resource(show_spinner=False)
def demo_dataset(name: str) -> Dataset:
    from spec_core.data.demo import load_demo

    return load_demo(name)


def demo_descriptions() -> dict[str, str]:
    """Each built-in demo's name and what it holds."""
    from spec_core.data.demo import list_demos

    return list_demos()


@st.cache_resource(show_spinner=False, max_entries=32)
def _upload_dataset(ref: str) -> Dataset:
    return uploads.load_dataset(ref)


def dataset_for(data: str) -> Dataset:
    """The dataset a `data` setting names; DataGone when an upload is no longer here."""
    if data.startswith("demo:"):
        return demo_dataset(data.removeprefix("demo:"))
    if data.startswith("upload:"):
        ref = data.removeprefix("upload:")
        if not uploads.exists(ref):
            _upload_dataset.clear()
            if uploads.was_set_aside(ref):
                raise DataGone(DAMAGED_DATA)
            raise DataGone(
                "The data this link points to is not on this server: it was deleted, or it "
                f"expired (uploads are kept {upload_retention()}). Upload it again on the "
                "Data page."
            )
        try:
            dataset = _upload_dataset(ref)
        except uploads.UploadDamaged:
            raise DataGone(DAMAGED_DATA) from None
        except uploads.UploadGone as err:
            raise DataGone(
                f"The data this link points to is incomplete on this server: {err}."
            ) from None
        uploads.mark_used(ref)
        return dataset
    raise DataGone("no data chosen")


def current_dataset() -> Dataset:
    return dataset_for(st.session_state.data)


# ---------------------------------------------------------------------------------------------
# Uploaded images and texts


def upload_retention() -> str:
    """How long uploads stay, in words: "for 168 hours after their last use", or "until they
    are deleted" when the server keeps them forever ($SPEC_EXPLORER_UPLOAD_TTL_HOURS=inf)."""
    hours = uploads.upload_ttl_hours()
    if math.isinf(hours):
        return "until they are deleted (this server sets no expiry)"
    return f"for {hours:g} hours after their last use"


def load_uploaded_images(
    files: Sequence[tuple[str, bytes]], captions: tuple[str, bytes] | None = None
) -> Dataset:
    """The dataset of uploaded image files, or of one uploaded .zip of them, with an optional
    captions / labels table (name, bytes); the images go to the shared image store. Call it
    under `ingesting()`, so that nothing deletes them before an upload holds them."""
    from spec_core.data.cache import image_store
    from spec_core.data.datasets import Limits
    from spec_core.data.image_sets import load_image_files, load_image_zip

    zips = [(name, data) for name, data in files if name.lower().endswith(".zip")]
    if zips:
        if len(files) > 1:
            raise ValueError("upload one .zip, or image files, not both")
        name, data = zips[0]
        return load_image_zip(
            data, store=image_store(), name=name, captions=captions, limits=Limits()
        )
    return load_image_files(list(files), store=image_store(), captions=captions)


def text_columns(name: str, data: bytes) -> list[str]:
    """The columns of an uploaded text table (none for a plain .txt)."""
    from spec_core.data.text_sets import text_columns as columns_of

    return columns_of(name, data)


def load_uploaded_texts(
    name: str, data: bytes, *, column: str | None, label_column: str | None
) -> Dataset:
    """The dataset of an uploaded text file, its texts (and labels) from these columns."""
    from spec_core.data.text_sets import load_texts

    return load_texts((name, data), column=column, label_column=label_column)


def store_dataset(dataset: Dataset) -> str:
    """Keep an uploaded dataset (see spec_core.data.uploads); its `data` setting."""
    ref = uploads.save_dataset(dataset)
    if ref not in st.session_state.my_uploads:
        st.session_state.my_uploads.append(ref)
    return f"upload:{ref}"


def ingesting():
    """Hold while an upload is read and kept (see spec_core.data.uploads.ingesting)."""
    return uploads.ingesting()


# ---------------------------------------------------------------------------------------------
# Uploaded (precomputed) embedding matrices


@contextlib.contextmanager
def _staged(name: str, data: bytes) -> Iterator[Path]:
    """An uploaded file written to a private temporary folder of the cache (for readers that
    want a path), removed after use (or by the upload clean-up, when the server died reading
    it); the name is reduced to its suffix, so no user-controlled path is ever created."""
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads.staging_folder()))
    path = folder / f"upload{Path(name).suffix.lower()}"
    path.write_bytes(data)
    try:
        yield path
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def rows_of_matrices(name_a: str, data_a: bytes, name_b: str, data_b: bytes) -> Dataset:
    """The dataset two uploaded matrices make on their own: A's row ids (its 'id' column, or
    an 'ids' array in an .npz), else B's, else the row numbers; B's rows are matched to them
    later by id, or by order (the row counts must then agree)."""
    from spec_core.data.datasets import rows_dataset
    from spec_core.data.io import load_matrix_with_ids

    shapes, row_ids = [], []
    for name, data in ((name_a, data_a), (name_b, data_b)):
        with _staged(name, data) as path:
            matrix, ids = load_matrix_with_ids(path, name=name)
        shapes.append(matrix.shape[0])
        row_ids.append(ids)
    ids = row_ids[0] or row_ids[1]
    if (row_ids[0] is None or row_ids[1] is None) and shapes[0] != shapes[1]:
        raise ValueError(
            f"{safe.clip(name_a, 80)} has {shapes[0]} rows and {safe.clip(name_b, 80)} has "
            f"{shapes[1]}: without an 'id' column in both, rows are matched by order"
        )
    if ids is None:
        ids = [str(i) for i in range(shapes[0])]
    return rows_dataset(f"{name_a} + {name_b}", ids)


def with_row_labels(dataset: Dataset, name: str, data: bytes) -> Dataset:
    """The rows of two uploaded matrices with the labels (and captions) of an uploaded table
    `id,label[,caption]` (.csv/.tsv/.jsonl), matched by id; DatasetError (a ValueError) naming
    the table, and its row, when it cannot be used. Call it before the matrices are stored."""
    from spec_core.data.row_labels import attach_row_labels, read_row_labels

    return attach_row_labels(dataset, read_row_labels((name, data)))


def store_precomputed(name: str, data: bytes, dataset: Dataset) -> tuple[str, list[str]]:
    """Store an uploaded embedding matrix, its rows matched to the dataset's (by an 'id' column
    when the file has one, else by order); returns its upload ref and notes."""
    from spec_core.data.io import align_to_ids, load_matrix_with_ids

    digest = hashlib.sha256(data).hexdigest()
    key = cache_key(kind="precomputed", sha256=digest, rows=list(dataset.ids))
    with _staged(name, data) as path:
        matrix, ids = load_matrix_with_ids(path, name=name)
        aligned, notes = align_to_ids(np.asarray(matrix), ids, dataset.ids, name=name)
    return keep_matrix(key, aligned, name, dataset), notes


def store_precomputed_pair(
    upload_a: tuple[str, bytes], upload_b: tuple[str, bytes], dataset: Dataset
) -> tuple[str, str, list[str]]:
    """Store two uploaded embedding matrices of the dataset's rows (see `store_precomputed`):
    both or neither (A is deleted again when B is refused); their refs and notes."""
    ref_a, notes_a = store_precomputed(*upload_a, dataset)
    try:
        ref_b, notes_b = store_precomputed(*upload_b, dataset)
    except BaseException:
        uploads.delete(ref_a)
        raise
    return ref_a, ref_b, notes_a + notes_b


def discard_images(dataset: Dataset) -> None:
    """Delete the stored images of an uploaded image set that was not kept (too small), unless
    another upload holds them. Call it after `ingesting()` ends."""
    if dataset.image_paths:
        uploads.discard_images(Path(path).name for path in dataset.image_paths)


def keep_matrix(key: str, matrix: np.ndarray, name: str, dataset: Dataset) -> str:
    """Keep an embedding of the dataset's rows (float32) in the disk cache under `key`, and
    as an uploaded matrix called `name` (a model setting "precomputed:REF" names it); its REF."""
    modality = "image" if dataset.kind == "image" else "text"
    cache = EmbeddingCache()
    with uploads.ingesting():  # no deletion between storing the entry and holding it
        if cache.verify(key) is None:
            cache.put(
                key,
                np.ascontiguousarray(matrix, dtype=np.float32),
                {"model": f"precomputed {name}", "ids": list(dataset.ids)},
            )
        return uploads.save_matrix(key, name, dataset.fingerprint(modality))


# ---------------------------------------------------------------------------------------------
# Deleting and expiring


def my_data() -> list[str]:
    """The upload references this session may delete: those it made, and those its settings
    name (an upload or an uploaded matrix opened from a link, after a reload too): whoever
    holds a reference may delete it. Only those still on this server."""
    refs = [*st.session_state.my_uploads, *st.session_state.my_matrices]
    data = st.session_state.data
    if data.startswith("upload:"):
        refs.append(data.removeprefix("upload:"))
    for side in ("a", "b"):
        model = st.session_state[f"model_{side}"]
        if model.startswith("precomputed:"):
            refs.append(model.removeprefix("precomputed:"))
    return [ref for ref in dict.fromkeys(refs) if uploads.exists(ref)]


def upload_name(ref: str) -> str:
    """The name an upload was given (its file's name), for messages; "an upload" when its
    manifest cannot be read."""
    for load in (uploads.load_dataset, uploads.load_matrix):
        try:
            return load(ref).name
        except (uploads.UploadGone, OSError):
            continue
    return "an upload"


def delete_my_data() -> tuple[list[str], int]:
    """Delete the uploads of `my_data()`, with what only they hold (content that another
    session's upload holds too stays for it); the names of the uploads deleted and the bytes
    freed."""
    freed, names = 0, []
    for ref in my_data():
        names.append(upload_name(ref))
        freed += uploads.delete(ref)
    st.session_state.my_uploads = []
    st.session_state.my_matrices = []
    _upload_dataset.clear()
    thumbnail.clear()
    release_freed_memory()
    return names, freed


@st.cache_resource(show_spinner=False)
def _cleanup_clock() -> dict:
    return {"last": 0.0}


def cleanup_uploads(interval: float = 600.0) -> None:
    """Apply the retention policy (spec_core.data.uploads.cleanup), at most every `interval` s."""
    clock = _cleanup_clock()
    now = time.time()
    if now - clock["last"] < interval:
        return
    clock["last"] = now
    with contextlib.suppress(OSError):  # another process cleaning: the next run catches up
        uploads.cleanup()
