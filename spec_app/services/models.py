"""The models and their embeddings: how a model is called on screen, what it embeds, loading its
encoder (with the download's progress), and embedding a dataset.

- encoders: loaded once per process, in a small store (services.store) of the most recent ones;
- embeddings: the core's content-addressed disk cache (survives restarts), so switching pages,
  changing a display option or a SPEC parameter never re-embeds; the services pass embeddings
  around by their cache key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st

from spec_app import safe
from spec_app.policy import check_model
from spec_app.services.errors import DataGone
from spec_app.services.store import LruStore
from spec_core.data import uploads
from spec_core.data.cache import EmbeddingCache
from spec_core.data.datasets import Dataset
from spec_core.models.registry import ModelLoadError, get_model

#: Encoders kept loaded in the process (the most recently used).
ENCODERS_KEPT = 6

#: Where the weights that need a download come from.
HUB = ("huggingface.co", 443)

# ---------------------------------------------------------------------------------------------
# Names and modalities


#: The file types of an uploaded embedding matrix (an aligned one is named in words instead).
MATRIX_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".parquet")


def model_label(name: str) -> str:
    """A model's name for people: an uploaded matrix by its file name, "A.npy (uploaded)"; an
    aligned one by what it is ("B aligned to A (linear)"); never the upload's reference."""
    if is_precomputed(name):
        try:
            matrix = uploads.load_matrix(name.removeprefix("precomputed:")).name
        except (uploads.UploadGone, KeyError):
            return "an uploaded embedding (gone)"
        if matrix.lower().endswith(MATRIX_SUFFIXES):
            return f"{matrix} (uploaded)"
        return matrix
    return name


def is_precomputed(name: str) -> bool:
    """Whether a model setting names an uploaded (or aligned) embedding matrix, not a model."""
    return name.startswith("precomputed:")


def embeds_label(name: str, modality: str) -> str:
    """What a model setting embeds, in the plural for captions: "images", "texts", or
    "embeddings" for an uploaded matrix (which embeds nothing here: it is the embedding)."""
    return "embeddings" if is_precomputed(name) else f"{modality}s"


def model_choice_label(name: str) -> str:
    """A model's entry in the model pickers: a built-in one with whether it works offline or
    needs a download (and its size), any other by its label."""
    from spec_core.models.registry import BUILTIN

    for info in BUILTIN:
        if info.name == name:
            size = f", {info.size_mb:,} MB" if info.size_mb else ""
            where = "offline" if info.offline else "download"
            return f"{name} ({where}{size})"
    return safe.clip(model_label(name), 80)


def model_names(modalities: tuple[str, ...]) -> list[str]:
    """The registry's models that embed any of these modalities: offline ones first, then
    those that need a download."""
    from spec_core.models.registry import list_models

    return [m.name for m in list_models() if set(m.modalities) & set(modalities)]


def model_modalities(name: str, dataset: Dataset | None) -> tuple[str, ...]:
    """What a model can embed (an uploaded matrix: whatever its dataset holds); ModelRefused
    (a ValueError) for a name this server does not load, before anything else is asked."""
    if check_model(name).startswith("precomputed:"):
        return dataset.modalities if dataset is not None else ("image", "text")
    return get_model(name).modalities


# ---------------------------------------------------------------------------------------------
# Encoders and their downloads


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
def _encoders() -> LruStore:
    return LruStore(ENCODERS_KEPT)


def encoder(name: str, modality: str, device: str, bar=None):
    """The encoder for a model, loaded once per process (the 6 most recent are kept).

    A model whose weights need a download fails at once, with a plain message, when the Hub
    cannot be reached and the weights are not on disk (huggingface_hub is put in offline mode,
    so only cached files are tried); otherwise `bar` follows the download."""
    from spec_core.models.registry import load_encoder

    key = (name, modality, device)
    loaded = _encoders().get(key)
    if loaded is not None:
        return loaded
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
    return _encoders().put(key, enc)


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


# ---------------------------------------------------------------------------------------------
# Embeddings


def bar_progress(bar) -> Callable[[str, int, int], None]:
    """A core progress callback (stage, done, total) that fills `bar` and names the stage."""

    def update(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=safe.fmt("{}: {}/{}", stage, done, total))

    return update


def embedding_key(dataset: Dataset, model: str, modality: str, device: str, bar) -> str:
    """Embed (or find in the disk cache, its checksum verified: a damaged entry is set aside
    and computed again) and return the embedding's cache key."""
    from spec_core.models.embed import embed, embedding_key_for

    if model.startswith("precomputed:"):
        return precomputed_cache_key(model, dataset)
    key = embedding_key_for(dataset, model, modality)
    data = st.session_state.data
    ref = data.removeprefix("upload:") if data.startswith("upload:") else None
    if ref is not None:  # before computing: see record_derived
        uploads.record_derived(ref, key)
    cache = EmbeddingCache()
    if cache.verify(key, ids=list(dataset.ids)) is None:
        enc = encoder(model, modality, device, bar)
        # an upload's embedding goes with the upload; the demo's stays (pinned)
        embed(dataset, enc, modality, cache=cache, progress=bar_progress(bar), pin=ref is None)
        if ref is not None and not uploads.exists(ref):  # deleted while it was computed
            uploads.drop_unheld([key])
            raise DataGone("This upload was deleted while it was being embedded.")
    return key


def precomputed_cache_key(model: str, dataset: Dataset) -> str:
    """'precomputed:REF': the cache key of that uploaded matrix (of this dataset's rows)."""
    try:
        upload = uploads.load_matrix(model.removeprefix("precomputed:"))
    except uploads.UploadGone as gone:
        why = (
            "is damaged on this server (it was set aside for inspection)"
            if isinstance(gone, uploads.UploadDamaged)
            else "is not on this server any more (deleted, or expired)"
        )
        raise DataGone(
            f"An uploaded embedding matrix this comparison uses {why}. Upload it again on the "
            "Data page, or pick a model."
        ) from None
    if upload.fingerprint not in dataset.fingerprints.values():
        raise ValueError(
            f"the uploaded matrix {safe.clip(upload.name, 80)} belongs to another dataset; "
            "upload matrices for this one on the Data page, or pick a model"
        )
    # its checksum verified; one stored before checksums is checked and given one (it cannot
    # be computed again)
    if EmbeddingCache().verify(upload.key, upgrade=True) is None:
        raise DataGone(
            "An uploaded embedding matrix this comparison uses is damaged or incomplete on this "
            "server. Upload it again on the Data page, or pick a model."
        )
    return upload.key


def load_embedding(key: str) -> np.ndarray:
    """The embedding kept in the disk cache under `key` (one row per sample), its checksum
    verified."""
    hit = EmbeddingCache().get(key)
    if hit is None:
        raise RuntimeError(
            "an embedding went missing from the cache, or was damaged there; press Compare "
            "again to compute it again"
        )
    return hit[0]
