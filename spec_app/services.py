"""The one module that decides what Streamlit caches, and the pages' way into spec_core.

- models: `st.cache_resource` (one per name, modality and device);
- embeddings: the core's content-addressed disk cache (survives restarts), so switching pages,
  changing a display option or a SPEC parameter never re-embeds;
- SPEC results: a small in-process store keyed by the two embedding keys and the parameters,
  so only a change of SPEC parameters recomputes SPEC (and shows a progress bar while it does);
- uploads: kept by spec_core.data.uploads under an unguessable reference, which the URL carries;
- 2-D projections and thumbnails: `st.cache_data` keyed by embedding key / file path.

Every message shown here quotes user values through spec_app.safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from spec_app import safe
from spec_app.policy import ModelRefused, check_model
from spec_core.data import uploads
from spec_core.data.cache import EmbeddingCache, cache_key
from spec_core.data.datasets import Dataset, DatasetError
from spec_core.engine.result import SpecResult
from spec_core.limits import CAPS
from spec_core.models.registry import ModelLoadError, get_model

if TYPE_CHECKING:
    from spec_core.align.train import AlignResult

#: Errors a user can cause; shown as a message in the page, never as a traceback.
USER_ERRORS = (
    ValueError,
    DatasetError,
    ModelLoadError,
    RuntimeError,
    OSError,
    LookupError,
    MemoryError,
)


class DataGone(LookupError):
    """The data the settings name (an upload in a link) is not on this server any more."""


@dataclass(frozen=True)
class Comparison:
    dataset: Dataset
    model_a: str
    model_b: str
    modality_a: str
    modality_b: str
    key_a: str
    key_b: str
    result: SpecResult
    notes: tuple[str, ...] = ()
    params: tuple = ()  # the SPEC parameters used (see spec_params, fit_to_rows)

    def mode(self, label: str | None):
        """The mode with this label, else the strongest mode (or None when there is none)."""
        for mode in self.result.modes:
            if mode.label == label:
                return mode
        return max(self.result.modes, key=lambda m: abs(m.eigenvalue), default=None)

    @property
    def names(self) -> tuple[str, str]:
        """How the two models are called on screen."""
        return model_label(self.model_a), model_label(self.model_b)


# ---------------------------------------------------------------------------------------------
# Data


@st.cache_resource(show_spinner=False)
def demo_dataset(name: str) -> Dataset:
    from spec_core.data.demo import load_demo

    return load_demo(name)


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
            raise DataGone(
                "The data this link points to is not on this server: it was deleted, or it "
                f"expired (uploads are kept {uploads.upload_ttl_hours():g} hours after their "
                "last use). Upload it again on the Data page."
            )
        try:
            dataset = _upload_dataset(ref)
        except uploads.UploadGone as err:
            raise DataGone(
                f"The data this link points to is incomplete on this server: {err}."
            ) from None
        uploads.mark_used(ref)
        return dataset
    raise DataGone("no data chosen")


def current_dataset() -> Dataset:
    return dataset_for(st.session_state.data)


def store_dataset(dataset: Dataset) -> str:
    """Keep an uploaded dataset (see spec_core.data.uploads); its `data` setting."""
    ref = uploads.save_dataset(dataset)
    if ref not in st.session_state.my_uploads:
        st.session_state.my_uploads.append(ref)
    return f"upload:{ref}"


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


def ingesting():
    """Hold while an upload is read and kept (see spec_core.data.uploads.ingesting)."""
    return uploads.ingesting()


def delete_my_data() -> int:
    """Delete the uploads of `my_data()`, with what only they hold (content that another
    session's upload holds too stays for it); bytes freed."""
    freed = 0
    for ref in my_data():
        freed += uploads.delete(ref)
    st.session_state.my_uploads = []
    st.session_state.my_matrices = []
    _upload_dataset.clear()
    thumbnail.clear()
    return freed


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


# ---------------------------------------------------------------------------------------------
# Models and embeddings


def model_label(name: str) -> str:
    """A model's name for people: an uploaded matrix by its file name."""
    if name.startswith("precomputed:"):
        try:
            return f"precomputed {uploads.load_matrix(name.removeprefix('precomputed:')).name}"
        except (uploads.UploadGone, KeyError):
            return "precomputed (gone)"
    return name


def model_modalities(name: str, dataset: Dataset | None) -> tuple[str, ...]:
    """What a model can embed (an uploaded matrix: whatever its dataset holds); ModelRefused
    (a ValueError) for a name this server does not load, before anything else is asked."""
    if check_model(name).startswith("precomputed:"):
        return dataset.modalities if dataset is not None else ("image", "text")
    return get_model(name).modalities


def check_settings(settings: dict, dataset: Dataset) -> list[str]:
    """Why these settings cannot run on `dataset` (plain text), before anything is embedded:
    a refused or unknown model, a model that cannot embed the chosen modality, a modality the
    data does not have, too few rows."""
    problems = []
    if len(dataset) < CAPS.min_rows:
        problems.append(
            f"This dataset has {len(dataset)} row(s); a comparison needs at least "
            f"{CAPS.min_rows} (two groups and something to tell them from)."
        )
    for side in ("a", "b"):
        model, modality = settings[f"model_{side}"], settings[f"modality_{side}"]
        label = side.upper()
        try:
            modalities = model_modalities(model, dataset)
        except ModelRefused as err:
            problems.append(f"Model {label} ({safe.clip(model, 80)}): {err}")
            continue
        except ValueError as err:
            problems.append(f"Model {label}: {err}")
            continue
        if modality not in modalities:
            problems.append(
                f"Model {label} ({safe.clip(model, 80)}) embeds {' and '.join(modalities)}, "
                f"not {modality}s."
            )
        elif modality not in dataset.modalities:
            have = " and ".join(dataset.modalities) or "nothing"
            problems.append(
                f"Model {label} would embed {modality}s, but this dataset has {have}: pick a "
                f"{' or '.join(dataset.modalities)} model."
            )
    return problems


#: Where the weights that need a download come from.
HUB = ("huggingface.co", 443)


@st.cache_data(ttl=60, show_spinner=False)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Can this server reach the Hugging Face Hub now? (asked at most once a minute)"""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection(HUB, timeout=timeout).close()
    except OSError:
        return False
    return True


@st.cache_resource(show_spinner=False)
def _encoders() -> dict:
    return {"models": OrderedDict(), "lock": threading.Lock()}


def encoder(name: str, modality: str, device: str, bar=None):
    """The encoder for a model, loaded once per process (the 6 most recent are kept).

    A model whose weights need a download fails at once, with a plain message, when the Hub
    cannot be reached and the weights are not on disk (huggingface_hub is put in offline mode,
    so only cached files are tried); otherwise `bar` follows the download."""
    from spec_core.models.registry import load_encoder

    loaded = _encoders()
    key = (name, modality, device)
    with loaded["lock"]:
        if key in loaded["models"]:
            loaded["models"].move_to_end(key)
            return loaded["models"][key]
    info = get_model(name)
    online = True
    if not info.offline:
        import huggingface_hub.constants as hub_constants

        online = hub_reachable()
        hub_constants.HF_HUB_OFFLINE = not online  # read by huggingface_hub at each request
    try:
        enc = _load_watching(
            lambda: load_encoder(name, modality, device=device), name, info.size_mb, bar
        )
    except ModelLoadError:
        if online:
            raise
        size = f" (about {info.size_mb:,} MB)" if info.size_mb else ""
        raise ModelLoadError(
            f"{name} needs its weights{size} downloaded from the Hugging Face Hub, and this "
            "server cannot reach it. Pick an offline model (efficientnet-lite0, "
            "opennsfw-resnet50, minilm-l6, e5-small, pixels-16, char-ngrams)."
        ) from None
    with loaded["lock"]:
        loaded["models"][key] = enc
        while len(loaded["models"]) > 6:
            loaded["models"].popitem(last=False)
    return enc


def weights_folder(name: str) -> Path | None:
    """The Hugging Face cache folder a download model's weights go to (None: not known)."""
    import huggingface_hub.constants as hub_constants

    info = get_model(name)
    repo = None
    if info.family == "open_clip" and "@" not in info.source:
        import open_clip

        arch, _, tag = info.source.partition("/")
        repo = (open_clip.get_pretrained_cfg(arch, tag) or {}).get("hf_hub", "").strip("/")
    elif info.family == "sentence-transformers" and info.source and not info.offline:
        repo = info.source if "/" in info.source else f"sentence-transformers/{info.source}"
    if not repo:
        return None
    return Path(hub_constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"


def folder_bytes(folder: Path | None) -> int:
    """Bytes of the files under `folder` (downloads in progress included)."""
    if folder is None or not folder.is_dir():
        return 0
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def _load_watching(load, name: str, size_mb: int | None, bar):
    """Run `load()` in a worker thread; meanwhile the bar shows the bytes arriving in the
    model's download folder."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as Pending

    folder = weights_folder(name) if bar is not None and size_mb else None
    start = folder_bytes(folder)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load)
        while True:
            try:
                return future.result(timeout=0.5)
            except Pending:
                got = folder_bytes(folder) - start
                if folder is not None and got > 0:
                    bar.progress(
                        min(got / (size_mb * 1e6), 0.99),
                        text=safe.fmt(
                            "downloading {}: {} of about {} MB", name, f"{got / 1e6:,.0f}", size_mb
                        ),
                    )


def _bar_callback(bar) -> Callable[[str, int, int], None]:
    def update(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=safe.fmt("{}: {}/{}", stage, done, total))

    return update


def embedding_key(dataset: Dataset, model: str, modality: str, device: str, bar) -> str:
    """Embed (or find in the disk cache) and return the embedding's cache key."""
    from spec_core.models.embed import embed, embedding_key_for

    if model.startswith("precomputed:"):
        return precomputed_cache_key(model, dataset)
    key = embedding_key_for(dataset, model, modality)
    if st.session_state.data.startswith("upload:"):  # before computing: see record_derived
        uploads.record_derived(st.session_state.data.removeprefix("upload:"), key)
    cache = EmbeddingCache()
    if cache.meta(key, ids=list(dataset.ids)) is None:
        enc = encoder(model, modality, device, bar)
        embed(dataset, enc, modality, cache=cache, progress=_bar_callback(bar))
    return key


def precomputed_cache_key(model: str, dataset: Dataset) -> str:
    """'precomputed:REF': the cache key of that uploaded matrix (of this dataset's rows)."""
    try:
        upload = uploads.load_matrix(model.removeprefix("precomputed:"))
    except uploads.UploadGone:
        raise DataGone(
            "An uploaded embedding matrix this comparison uses is not on this server any more "
            "(deleted, or expired). Upload it again on the Data page, or pick a model."
        ) from None
    if upload.fingerprint not in dataset.fingerprints.values():
        raise ValueError(
            f"the uploaded matrix {safe.clip(upload.name, 80)} belongs to another dataset; "
            "upload matrices for this one on the Data page, or pick a model"
        )
    if EmbeddingCache().meta(upload.key) is None:
        raise DataGone("An uploaded embedding matrix is incomplete on this server.")
    return upload.key


def load_embedding(key: str) -> np.ndarray:
    hit = EmbeddingCache().get(key)
    if hit is None:
        raise RuntimeError("an embedding went missing from the cache; press Compare again")
    return hit[0]


# ---------------------------------------------------------------------------------------------
# SPEC

_SPEC_LOCK = threading.Lock()


@st.cache_resource(show_spinner=False)
def _spec_store() -> OrderedDict:
    return OrderedDict()


def spec_params(settings: dict) -> tuple:
    """The SPEC parameters as a hashable, canonical tuple (None bandwidth = data-driven)."""
    return (
        ("kernel", settings["kernel"]),
        ("sigma_a", settings["sigma_a"] or None),
        ("sigma_b", settings["sigma_b"] or None),
        ("sigma_scale", float(settings["sigma_scale"])),
        ("eta", float(settings["eta"])),
        ("method", settings["method"]),
        ("n_features", int(settings["n_features"])),
        ("n_modes", int(settings["n_modes"])),
        ("top_k", int(settings["top_k"])),
        ("seed", int(settings["seed"])),
        ("device", settings["device"]),
    )


def fit_to_rows(params: tuple, n_rows: int) -> tuple[tuple, list[str]]:
    """Modes and members within what `n_rows` allow, with a note for each change."""
    kwargs = dict(params)
    notes = []
    most_modes = max(n_rows // 2, 1)
    if kwargs["n_modes"] > most_modes:
        notes.append(f"{n_rows} rows allow {most_modes} mode(s) per side; showing {most_modes}.")
        kwargs["n_modes"] = most_modes
    if kwargs["top_k"] > n_rows:
        kwargs["top_k"] = n_rows
    return tuple(kwargs.items()), notes


def spec_result(key_a: str, key_b: str, params: tuple, bar, *, labels=None, **extra) -> SpecResult:
    """SPEC of two cached embeddings (kept in a small in-process store); `labels` (one per row)
    give each mode its purity."""
    from spec_core import compare

    store = _spec_store()
    labels_key = None if labels is None else hashlib.sha256("\x1f".join(labels).encode()).digest()
    store_key = (key_a, key_b, params, labels_key, tuple(sorted(extra.items())))
    with _SPEC_LOCK:
        if store_key in store:
            store.move_to_end(store_key)
            return store[store_key]
    emb_a, emb_b = load_embedding(key_a), load_embedding(key_b)
    progress = _bar_callback(bar) if bar is not None else None
    result = compare(emb_a, emb_b, progress=progress, labels=labels, **dict(params), **extra)
    with _SPEC_LOCK:
        store[store_key] = result
        while len(store) > 16:
            store.popitem(last=False)
    return result


def run_comparison(settings: dict, *, show_errors: bool = True) -> Comparison | None:
    """Dataset, both embeddings and SPEC for the applied settings, with progress bars; a user
    error is shown as a message (`show_errors`) and gives None; DataGone is raised."""
    dataset = dataset_for(settings["data"])
    problems = check_settings(settings, dataset)
    if problems:
        if show_errors:
            for problem in problems:
                st.error(safe.md(problem))
            st.session_state.compare_error = " ".join(problems)
        return None
    status = st.empty()
    try:
        with status.container():
            keys = []
            for side in ("a", "b"):
                model, modality = settings[f"model_{side}"], settings[f"modality_{side}"]
                bar = st.progress(0.0, text=safe.fmt("model {}: {}", side.upper(), model))
                keys.append(embedding_key(dataset, model, modality, settings["device"], bar))
            bar = st.progress(0.0, text="SPEC")
            params, notes = fit_to_rows(spec_params(settings), len(dataset))
            result = spec_result(keys[0], keys[1], params, bar, labels=dataset.labels)
    except DataGone:
        status.empty()
        raise
    except USER_ERRORS as err:
        status.empty()
        if show_errors:
            st.error(safe.md(err, limit=1000))
            st.session_state.compare_error = safe.clip(err, 1000)
        return None
    status.empty()
    return Comparison(
        dataset,
        settings["model_a"],
        settings["model_b"],
        settings["modality_a"],
        settings["modality_b"],
        keys[0],
        keys[1],
        result,
        tuple(notes),
        params,
    )


#: A mode's label: its direction and its rank (1-based) among that direction's eigenvalues.
MODE_LABEL = re.compile(r"(A-not-B|B-not-A) #([1-9][0-9]{0,3})")


def bar_labels(eigenvalues) -> list[str]:
    """The mode label of every bar of the spectrum (descending eigenvalues): positive ones are
    A-not-B #1, #2, ... from the top, negative ones B-not-A #1, #2, ... from the bottom, as in
    spec_core's modes; '' for a zero."""
    values = list(eigenvalues)
    labels = []
    for i, value in enumerate(values):
        if value > 0:
            labels.append(f"A-not-B #{sum(1 for v in values[:i] if v > 0) + 1}")
        elif value < 0:
            labels.append(f"B-not-A #{sum(1 for v in values[i + 1 :] if v < 0) + 1}")
        else:
            labels.append("")
    return labels


def mode_by_label(comp: Comparison, label: str | None, bar=None):
    """The mode with this label: one of the comparison's, or, for any other bar of the spectrum,
    computed on demand (SPEC again with enough modes per side; its eigenvalues are the same,
    the result is kept in the SPEC store). None for a label that names no bar."""
    for mode in comp.result.modes:
        if mode.label == label:
            return mode
    match = MODE_LABEL.fullmatch(label or "")
    if match is None or label not in bar_labels(comp.result.eigenvalues):
        return None
    params = dict(comp.params)
    params["n_modes"] = max(int(match.group(2)), params["n_modes"])
    if 2 * params["n_modes"] > len(comp.dataset):
        return None
    result = spec_result(
        comp.key_a, comp.key_b, tuple(params.items()), bar, labels=comp.dataset.labels
    )
    return next((mode for mode in result.modes if mode.label == label), None)


def scale_sweep(comp: Comparison, bar=None):
    """The comparison's spectrum across bandwidth scales (spec_core.engine.scales), kept in the SPEC
    store beside the results; None for the cosine kernel (no bandwidth)."""
    from spec_core.engine.scales import scale_sweep as sweep

    params = dict(comp.params)
    if params["kernel"] != "gaussian":
        return None
    for key in ("sigma_a", "sigma_b", "sigma_scale"):
        params.pop(key, None)
    store = _spec_store()
    store_key = ("scales", comp.key_a, comp.key_b, tuple(params.items()))
    with _SPEC_LOCK:
        if store_key in store:
            store.move_to_end(store_key)
            return store[store_key]
    emb_a, emb_b = load_embedding(comp.key_a), load_embedding(comp.key_b)
    progress = _bar_callback(bar) if bar is not None else None
    result = sweep(emb_a, emb_b, progress=progress, **params)
    with _SPEC_LOCK:
        store[store_key] = result
        while len(store) > 16:
            store.popitem(last=False)
    return result


# ---------------------------------------------------------------------------------------------
# Views of the data


@st.cache_data(show_spinner=False, max_entries=32)
def projection(key: str, kind: str, seed: int = 0) -> np.ndarray:
    from spec_core.engine.projection import pca_2d, umap_2d

    matrix = load_embedding(key)
    return pca_2d(matrix) if kind == "pca" else umap_2d(matrix, seed=seed)


@st.cache_data(show_spinner=False, max_entries=512)
def neighbours(key: str, row: int, k: int, metric: str) -> tuple[list[int], list[float]]:
    """The k rows nearest to `row` in the embedding `key` (spec_core.engine.selection.nearest)."""
    from spec_core.engine.selection import nearest

    rows, distances = nearest(load_embedding(key), row, k, metric=metric)
    return rows.tolist(), distances.tolist()


@st.cache_data(show_spinner=False, max_entries=64)
def ranking(key_a: str, key_b: str, params: tuple, label: str, _scores: np.ndarray) -> np.ndarray:
    """Every row of a mode, highest score first, cached per comparison and mode (the scores
    themselves are not hashed: the other arguments name them)."""
    from spec_core.engine.selection import ranked_rows

    return ranked_rows(_scores)


@st.cache_data(show_spinner=False, max_entries=4096)
def thumbnail(path: str, size: int = 192) -> bytes | None:
    """An image file as a PNG thumbnail of at most `size` pixels a side, converted as for
    embedding (16-bit, alpha, CMYK and palette images shown as a person sees them); None when
    the file cannot be read (it was deleted since)."""
    import io

    from spec_core.data.images import load_rgb

    try:
        img = load_rgb(path)
    except Exception:  # a vanished or unreadable file: the grid shows a placeholder
        return None
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Uploaded matrices


def _staged(name: str, data: bytes) -> Path:
    """An uploaded file written to a private temporary folder (for readers that want a path);
    the name is reduced to its suffix, so no user-controlled path is ever created."""
    folder = Path(tempfile.mkdtemp(prefix="spec-upload-"))
    path = folder / f"upload{Path(name).suffix.lower()}"
    path.write_bytes(data)
    return path


def rows_of_matrices(name_a: str, data_a: bytes, name_b: str, data_b: bytes) -> Dataset:
    """The dataset two uploaded matrices make on their own: A's row ids (its 'id' column, or
    an 'ids' array in an .npz), else B's, else the row numbers; B's rows are matched to them
    later by id, or by order (the row counts must then agree)."""
    from spec_core.data.datasets import rows_dataset
    from spec_core.data.io import load_matrix_with_ids

    shapes, row_ids = [], []
    for name, data in ((name_a, data_a), (name_b, data_b)):
        path = _staged(name, data)
        try:
            matrix, ids = load_matrix_with_ids(path, name=name)
        finally:
            for leftover in path.parent.iterdir():
                leftover.unlink()
            path.parent.rmdir()
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


def store_precomputed(name: str, data: bytes, dataset: Dataset) -> tuple[str, list[str]]:
    """Store an uploaded embedding matrix, its rows matched to the dataset's (by an 'id' column
    when the file has one, else by order); returns its upload ref and notes."""
    from spec_core.data.io import align_to_ids, load_matrix_with_ids

    modality = "image" if dataset.kind == "image" else "text"
    fingerprint = dataset.fingerprint(modality)
    digest = hashlib.sha256(data).hexdigest()
    key = cache_key(kind="precomputed", sha256=digest, rows=list(dataset.ids))
    cache = EmbeddingCache()
    path = _staged(name, data)
    try:
        matrix, ids = load_matrix_with_ids(path, name=name)
        aligned, notes = align_to_ids(np.asarray(matrix), ids, dataset.ids, name=name)
    finally:
        for leftover in path.parent.iterdir():
            leftover.unlink()
        path.parent.rmdir()
    with uploads.ingesting():  # no deletion between storing the entry and holding it
        if cache.meta(key) is None:
            cache.put(
                key,
                np.ascontiguousarray(aligned, dtype=np.float32),
                {"model": f"precomputed {name}", "ids": list(dataset.ids)},
            )
        ref = uploads.save_matrix(key, name, fingerprint)
    return ref, notes


# ---------------------------------------------------------------------------------------------
# SPEC-align (the Align page)

_ALIGN_LOCK = threading.Lock()
#: Trained alignments kept in the process (each holds an aligned copy of one embedding).
ALIGN_KEEP = 4


@dataclass(frozen=True)
class Alignment:
    """A trained adapter (spec_core.align.train.AlignResult) and how it maps to the comparison:
    `swapped` when A was aligned to B (the core then calls the app's B "A": its target). The
    functions below turn its numbers into the app's frame, where positive eigenvalues are
    A-not-B whichever side was aligned."""

    id: str  # names this alignment in caches (a digest of its store key)
    result: AlignResult
    swapped: bool
    key_target: str
    key_adapted: str

    @property
    def target_side(self) -> str:
        return "B" if self.swapped else "A"

    @property
    def adapted_side(self) -> str:
        return "A" if self.swapped else "B"


@st.cache_resource(show_spinner=False)
def _align_store() -> OrderedDict:
    return OrderedDict()


_THREADS_LOCK = threading.Lock()
_THREADS = {"training": 0, "saved": 1}


@contextlib.contextmanager
def _one_torch_thread():
    """Torch on one thread while an adapter trains. Each step solves a small (batch x batch)
    eigenproblem; with two OpenMP threads on a busy 2-core server every step waits on a thread
    that is not running (the demo, measured side by side under load: 0.6-1.2 s a step with 2
    threads, 0.035-0.06 s with 1). torch's setting is the process's: it is restored when the
    last training ends."""
    import torch

    with _THREADS_LOCK:
        if _THREADS["training"] == 0:
            _THREADS["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS["training"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS["training"] -= 1
            if _THREADS["training"] == 0:
                torch.set_num_threads(_THREADS["saved"])


def align_params(settings: dict, controls: dict) -> tuple:
    """The alignment's parameters as a hashable, canonical tuple: the comparison's kernel,
    bandwidth scale, seed and device, and the Align page's controls."""
    return (
        ("direction", controls["direction"]),
        ("kernel", settings["kernel"]),
        ("sigma_scale", float(settings["sigma_scale"])),
        ("seed", int(settings["seed"])),
        ("device", settings["device"]),
        ("adapter", controls["adapter"]),
        ("steps", int(controls["steps"])),
        ("val_fraction", float(controls["val_fraction"])),
    )


def _align_callback(bar) -> Callable[[str, int, int], None]:
    """Training fills the bar to 90%; the before/after measurements the rest."""

    def update(stage: str, done: int, total: int) -> None:
        if stage == "train":
            share = 0.9 * min(done / max(total, 1), 1.0)
            bar.progress(share, text=f"training the adapter: step {done} of {total}")
        else:
            bar.progress(0.95, text=safe.fmt("measuring before and after: {}", stage))

    return update


def alignment(
    comp: Comparison, settings: dict, controls: dict, *, bar=None, train: bool = False
) -> Alignment | None:
    """The alignment of this comparison's embeddings with these settings and controls: from
    the in-process store, else (`train`) trained now with `bar` showing the progress, else
    None. A user error (too few rows for the split, ...) is raised as it is."""
    from spec_core.align.train import align

    params = align_params(settings, controls)
    swapped = controls["direction"] == "a_to_b"
    key_target, key_adapted = (comp.key_b, comp.key_a) if swapped else (comp.key_a, comp.key_b)
    labels = comp.dataset.labels
    labels_key = None if labels is None else hashlib.sha256("\x1f".join(labels).encode()).digest()
    store_key = (key_target, key_adapted, params, labels_key)
    store = _align_store()
    with _ALIGN_LOCK:
        if store_key in store:
            store.move_to_end(store_key)
            return store[store_key]
    if not train:
        return None
    kwargs = dict(params)
    kwargs.pop("direction")
    with _one_torch_thread():
        result = align(
            load_embedding(key_target),
            load_embedding(key_adapted),
            labels=labels,
            progress=_align_callback(bar) if bar is not None else None,
            **kwargs,
        )
    found = Alignment(
        hashlib.sha256(repr(store_key).encode()).hexdigest()[:32],
        result,
        swapped,
        key_target,
        key_adapted,
    )
    with _ALIGN_LOCK:
        store[store_key] = found
        while len(store) > ALIGN_KEEP:
            store.popitem(last=False)
    return found


def _app_words(text: str, swapped: bool) -> str:
    """A core text about A (the target) and B (the adapted side), such as a mode label or a
    weak mode's reason, in the app's frame: A and B swap when A was the side aligned."""
    if not swapped:
        return text
    return re.sub(r"\b[AB]\b", lambda m: "B" if m.group() == "A" else "A", text)


def align_spectra(al: Alignment) -> dict[str, dict]:
    """Before and after, on the validation rows: the eigenvalues (descending, positive =
    A-not-B as on the Spectrum page) and the noise floor of each."""
    out = {}
    for stage in ("before", "after"):
        entry = al.result.metrics["val"][stage]
        values = np.asarray(entry["spectrum"], dtype=np.float64)
        if al.swapped:  # SPEC(B, A) = -SPEC(A, B)
            values = -values[::-1]
        out[stage] = {"eigenvalues": values, "noise_floor": float(entry["noise_floor"])}
    return out


def closed_modes(al: Alignment) -> list[dict]:
    """The strongest modes on the validation rows before alignment, strongest first, in the
    app's frame: label, eigenvalue before and after (of the same score vector), the share of
    it left after alignment, weak or not, its members (dataset rows, best first), and for the
    2-D views its scores over the validation rows and its members' positions among them."""
    sign = -1.0 if al.swapped else 1.0
    modes = {m.label: m for m in al.result.before_val.modes}
    out = []
    for entry in al.result.closed:
        mode = modes[entry["label"]]
        before, after = sign * entry["before"], sign * entry["after"]
        out.append(
            {
                "label": _app_words(entry["label"], al.swapped),
                "before": before,
                "after": after,
                "left": after / before if before else float("nan"),
                "weak": bool(entry["weak_before"]),
                "weak_reasons": tuple(_app_words(r, al.swapped) for r in mode.weak_reasons),
                "members": list(entry["members"]),
                "scores": np.asarray(mode.sample_scores),
                "positions": np.asarray(mode.members),
            }
        )
    return sorted(out, key=lambda m: -abs(m["before"]))


def no_mode(al: Alignment) -> tuple[np.ndarray, np.ndarray]:
    """Scores and members for the 2-D views when no mode colours them: zeros, none."""
    return np.zeros(len(al.result.val_metric_rows)), np.zeros(0, dtype=int)


@st.cache_data(show_spinner=False, max_entries=16)
def align_projection(align_id: str, kind: str, _al: Alignment) -> dict[str, np.ndarray]:
    """The adapted embedding before and after alignment in 2-D (`kind` "pca" or "umap"), on
    the validation rows the metrics use: {"rows", "before", "after"}; cached per alignment."""
    from spec_core.engine.projection import pca_2d, umap_2d

    rows = _al.result.val_metric_rows
    project = pca_2d if kind == "pca" else (lambda m: umap_2d(m, seed=0))
    return {
        "rows": rows,
        "before": project(np.asarray(load_embedding(_al.key_adapted)[rows])),
        "after": project(np.asarray(_al.result.aligned[rows])),
    }


@st.cache_data(show_spinner=False, max_entries=8)
def adapter_file(align_id: str, _al: Alignment) -> bytes:
    """The adapter as a .safetensors file (spec_core.align.load_adapter reads it back)."""
    return _al.result.aligner.to_bytes({"aligned_side": _al.adapted_side})


@st.cache_data(show_spinner=False, max_entries=8)
def aligned_file(align_id: str, _al: Alignment) -> bytes:
    """The aligned embedding as .npy: every row of the data, in its order."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(_al.result.aligned), allow_pickle=False)
    return buf.getvalue()


def align_report(al: Alignment, comp: Comparison) -> bytes:
    """The alignment's strict-JSON report, with what was aligned to what."""
    import json

    names = dict(zip("AB", comp.names, strict=True))
    report = {
        **al.result.to_dict(),
        "comparison": {
            "data": comp.dataset.name,
            "model_a": names["A"],
            "model_b": names["B"],
            "aligned": al.adapted_side,
            "target": al.target_side,
        },
    }
    return json.dumps(report, indent=1, allow_nan=False).encode()


def store_aligned(al: Alignment, comp: Comparison) -> str:
    """Keep the aligned embedding as an uploaded matrix of the comparison's rows (as the Data
    page keeps a precomputed one: a model setting 'precomputed:REF' then names it, in links
    too); its REF."""
    dataset = comp.dataset
    matrix = np.ascontiguousarray(al.result.aligned, dtype=np.float32)
    names = dict(zip("AB", comp.names, strict=True))
    name = safe.clip(
        f"{names[al.adapted_side]} aligned to {names[al.target_side]}"
        f" ({al.result.params['adapter']})",
        120,
    )
    digest = hashlib.sha256(matrix.tobytes()).hexdigest()
    key = cache_key(
        kind="precomputed", sha256=digest, shape=list(matrix.shape), rows=list(dataset.ids)
    )
    cache = EmbeddingCache()
    modality = "image" if dataset.kind == "image" else "text"
    with uploads.ingesting():  # no deletion between storing the entry and holding it
        if cache.meta(key) is None:
            cache.put(key, matrix, {"model": f"precomputed {name}", "ids": list(dataset.ids)})
        return uploads.save_matrix(key, name, dataset.fingerprint(modality))
