"""The one module that decides what Streamlit caches, and the pages' way into spec_core.

- models: `st.cache_resource` (one per name, modality and device);
- embeddings: the core's content-addressed disk cache (survives restarts), so switching pages,
  changing a display option or a SPEC parameter never re-embeds;
- SPEC results: a small in-process store keyed by the two embedding keys and the parameters,
  so only a change of SPEC parameters recomputes SPEC (and shows a progress bar while it does);
- 2-D projections: `st.cache_data` keyed by embedding key.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from spec_core.cache import EmbeddingCache, cache_key
from spec_core.datasets import Dataset, DatasetError
from spec_core.models import ModelLoadError, get_model
from spec_core.result import SpecResult

#: Errors a user can cause; shown as a message in the page, never as a traceback.
USER_ERRORS = (ValueError, DatasetError, ModelLoadError, RuntimeError, OSError)


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

    def mode(self, label: str | None):
        """The mode with this label, else the strongest mode (or None when there is none)."""
        for mode in self.result.modes:
            if mode.label == label:
                return mode
        return max(self.result.modes, key=lambda m: abs(m.eigenvalue), default=None)


@st.cache_resource(show_spinner=False)
def demo_dataset(name: str) -> Dataset:
    from spec_core.demo import load_demo

    return load_demo(name)


def current_dataset() -> Dataset | None:
    data = st.session_state.data
    if data.startswith("demo:"):
        return demo_dataset(data.removeprefix("demo:"))
    if data == "upload":
        return st.session_state.upload
    return None


@st.cache_resource(show_spinner=False, max_entries=6)
def encoder(name: str, modality: str, device: str):
    from spec_core.models import load_encoder

    return load_encoder(name, modality, device=device)


def _bar_callback(bar) -> Callable[[str, int, int], None]:
    def update(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{stage}: {done}/{total}")

    return update


def embedding_key(dataset: Dataset, model: str, modality: str, device: str, bar) -> str:
    """Embed (or find in the disk cache) and return the embedding's cache key."""
    from spec_core.embed import embed, embedding_key_for

    if model.startswith("precomputed:"):
        return precomputed_cache_key(model)
    key = embedding_key_for(dataset, model, modality)
    cache = EmbeddingCache()
    if cache.meta(key, ids=list(dataset.ids)) is not None:
        return key  # cached: neither the matrix nor the model is loaded here
    enc = encoder(model, modality, device)
    embed(dataset, enc, modality, cache=cache, progress=_bar_callback(bar))
    return key


def precomputed_cache_key(model: str) -> str:
    """'precomputed:A' / 'precomputed:B': the cache key of that uploaded matrix."""
    side = model.removeprefix("precomputed:").lower()
    pre = st.session_state.precomputed
    if not pre or side not in ("a", "b"):
        raise ValueError(
            f"{model}: no precomputed embeddings; upload two on the Data page, or pick a model"
        )
    return pre[side]


def load_embedding(key: str) -> np.ndarray:
    hit = EmbeddingCache().get(key)
    if hit is None:
        raise RuntimeError("an embedding went missing from the cache; press Compare again")
    return hit[0]


_SPEC_LOCK = threading.Lock()


@st.cache_resource(show_spinner=False)
def _spec_store() -> OrderedDict:
    return OrderedDict()


def spec_params(settings: dict) -> tuple:
    """The SPEC parameters as a hashable, canonical tuple (0 bandwidth = data-driven)."""
    return (
        ("kernel", settings["kernel"]),
        ("sigma_a", settings["sigma_a"] or None),
        ("sigma_b", settings["sigma_b"] or None),
        ("eta", float(settings["eta"])),
        ("method", settings["method"]),
        ("n_features", int(settings["n_features"])),
        ("n_modes", int(settings["n_modes"])),
        ("top_k", int(settings["top_k"])),
        ("seed", int(settings["seed"])),
        ("device", settings["device"]),
    )


def spec_result(key_a: str, key_b: str, params: tuple, bar) -> SpecResult:
    from spec_core import compare

    store = _spec_store()
    store_key = (key_a, key_b, params)
    with _SPEC_LOCK:
        if store_key in store:
            store.move_to_end(store_key)
            return store[store_key]
    emb_a, emb_b = load_embedding(key_a), load_embedding(key_b)
    kwargs = dict(params)
    kwargs["top_k"] = min(kwargs["top_k"], emb_a.shape[0])
    kwargs["n_modes"] = min(kwargs["n_modes"], emb_a.shape[0] // 2)
    result = compare(emb_a, emb_b, progress=_bar_callback(bar), **kwargs)
    with _SPEC_LOCK:
        store[store_key] = result
        while len(store) > 16:
            store.popitem(last=False)
    return result


def run_comparison(settings: dict) -> Comparison | None:
    """Dataset, both embeddings and SPEC for the applied settings, with progress bars; a user
    error is shown as a message and gives None."""
    dataset = current_dataset()
    if dataset is None:
        st.info("No data yet: choose a demo or upload data on the **Data** page.")
        return None
    status = st.empty()
    try:
        with status.container():
            keys = []
            for side in ("a", "b"):
                model, modality = settings[f"model_{side}"], settings[f"modality_{side}"]
                if not model.startswith("precomputed:"):
                    info = get_model(model)
                    if modality not in info.modalities:
                        raise ValueError(
                            f"model {side.upper()} ({model}) embeds "
                            f"{' and '.join(info.modalities)}, not {modality}s"
                        )
                    dataset.items(modality)
                bar = st.progress(0.0, text=f"model {side.upper()}: {model}")
                keys.append(embedding_key(dataset, model, modality, settings["device"], bar))
            bar = st.progress(0.0, text="SPEC")
            result = spec_result(keys[0], keys[1], spec_params(settings), bar)
    except USER_ERRORS as err:
        status.empty()
        st.error(str(err))
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
    )


@st.cache_data(show_spinner=False, max_entries=32)
def projection(key: str, kind: str, seed: int = 0) -> np.ndarray:
    from spec_core.projection import pca_2d, umap_2d

    matrix = load_embedding(key)
    return pca_2d(matrix) if kind == "pca" else umap_2d(matrix, seed=seed)


# ---------------------------------------------------------------------------------------------
# Uploads


def _staged(name: str, data: bytes) -> Path:
    """An uploaded file written to a private temporary folder (for readers that want a path);
    the name is reduced to its suffix, so no user-controlled path is ever created."""
    folder = Path(tempfile.mkdtemp(prefix="spec-upload-"))
    path = folder / f"upload{Path(name).suffix.lower()}"
    path.write_bytes(data)
    return path


def precomputed_key(name: str, data: bytes, dataset: Dataset) -> tuple[str, list[str]]:
    """Store an uploaded embedding matrix, its rows matched to the dataset's (by an 'id' column
    when the file has one, else by order), in the cache; returns its key and notes."""
    from spec_core.io import align_to_ids, load_matrix_with_ids

    digest = hashlib.sha256(data).hexdigest()
    key = cache_key(kind="precomputed", sha256=digest, rows=list(dataset.ids))
    cache = EmbeddingCache()
    if cache.meta(key) is not None:
        return key, []
    path = _staged(name, data)
    try:
        matrix, ids = load_matrix_with_ids(path, name=name)
        aligned, notes = align_to_ids(np.asarray(matrix), ids, dataset.ids, name=name)
    finally:
        for leftover in path.parent.iterdir():
            leftover.unlink()
        path.parent.rmdir()
    cache.put(
        key,
        np.ascontiguousarray(aligned, dtype=np.float32),
        {"model": f"precomputed {name}", "ids": list(dataset.ids)},
    )
    return key, notes
