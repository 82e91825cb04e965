"""Batched extraction of embeddings with a progress callback, through the disk cache."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from spec_core.data.cache import EmbeddingCache, cache_key
from spec_core.data.datasets import Dataset
from spec_core.data.images import IMAGE_LOADING, load_rgb
from spec_core.models.encoders import Encoder, forward_checked

#: progress(stage, done, total), as in spec_core.engine.compare
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Embedding:
    """A matrix whose row i embeds dataset row ids[i]."""

    matrix: np.ndarray
    ids: tuple[str, ...]
    model: str
    modality: str
    cached: bool
    seconds: float


def embedding_key(dataset: Dataset, encoder: Encoder, modality: str) -> str:
    return _key(dataset, encoder.name, encoder.identity, modality)


def embedding_key_for(dataset: Dataset, model: str, modality: str) -> str:
    """The cache key of a registry model's embedding, without loading the model."""
    from spec_core.models.registry import weights_identity

    return _key(dataset, model, weights_identity(model, modality), modality)


def _key(dataset: Dataset, model: str, identity: str, modality: str) -> str:
    return cache_key(
        kind="embedding",
        dataset=dataset.fingerprint(modality),
        model=model,
        weights=identity,
        modality=modality,
        loading=IMAGE_LOADING if modality == "image" else "text|v1",
    )


def embed(
    dataset: Dataset,
    encoder: Encoder | str,
    modality: str | None = None,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    workers: int = 2,
    backend: str = "local",
    ray_address: str | None = None,
    actors: int | None = None,
    device: str = "auto",
    sink: Callable[[np.ndarray], None] | None = None,
    pin: bool = True,
) -> Embedding:
    """Embed every row of `dataset` for `modality` (default: the encoder's), in row order.

    Images are decoded and preprocessed in `workers` threads one batch ahead of the model.
    With a cache, a hit returns at once and a miss is stored; only the data's fingerprint, the
    model and its weights identity and the modality make the key.

    backend "ray": the batches go through Ray Data `map_batches` on a pool of `actors` actors
    (default: one per CPU of the cluster, or per GPU with device "cuda": each actor then asks
    for one GPU), each loading the model once (`encoder` may then be a registry name: nothing
    is loaded here). Batches are the local ones, so the matrix is the same, in the same order.

    sink: each block of rows, checked and in row order, goes to `sink(block)` instead of into
    one matrix (an output larger than memory, e.g. a spec_core.data.shards.ShardWriter); the cache
    is then neither read nor written, and the result's matrix has no rows.

    pin: a stored matrix is pinned in the cache (spec_core.data.cache.PINNED: kept until the
    cache is cleared); False for an upload's embedding, deleted with the upload.
    """
    import time

    from spec_core.engine.backends import check_backend

    check_backend(backend, ray_address)
    name, modality, key = _name_modality_key(dataset, encoder, modality, backend)
    items = dataset.items(modality)
    report = progress or (lambda stage, done, total: None)
    stage = f"embedding {modality}s with {name}"
    if sink is not None:
        cache = None
    if cache is not None:
        hit = cache.get(key, ids=list(dataset.ids))
        if hit is not None:
            report(stage, len(items), len(items))
            return Embedding(hit[0], dataset.ids, name, modality, True, 0.0)
    start = time.perf_counter()
    size = batch_size or (encoder.batch_size if not isinstance(encoder, str) else 32)
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    kept: list[np.ndarray] = []
    first_row = 0

    def emit(block: np.ndarray) -> None:
        nonlocal first_row
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            row = first_row + int(np.argmax(bad))
            raise RuntimeError(f"{name} produced NaN/inf for row {row} ({dataset.ids[row]})")
        first_row += len(block)
        (sink or kept.append)(block)

    if backend == "ray":
        from spec_core.models.ray import embed_with_ray

        for block in embed_with_ray(
            name, modality, batches, device=device, actors=actors, address=ray_address,
            report=lambda done: report(stage, min(done * size, len(items)), len(items)),
        ):  # fmt: skip
            emit(block)
    else:
        _embed_batches(encoder, modality, batches, workers, stage, len(items), report, emit)
    if sink is not None:
        seconds = time.perf_counter() - start
        empty = np.empty((0, 0), dtype=np.float32)
        return Embedding(empty, dataset.ids, name, modality, False, seconds)
    matrix = np.concatenate(kept)
    seconds = time.perf_counter() - start
    if cache is not None:
        weights = encoder.identity if not isinstance(encoder, str) else key
        _store(cache, key, matrix, dataset, name, weights, modality, seconds, pin)
    return Embedding(matrix, dataset.ids, name, modality, False, seconds)


def _name_modality_key(dataset: Dataset, encoder: Encoder | str, modality, backend: str):
    """(model name, modality, cache key) for an Encoder, or for a registry name (Ray only: the
    actors load the model, nothing is loaded here; the modality must then be given)."""
    if isinstance(encoder, str):
        if backend != "ray":
            raise ValueError(
                "embed() needs an Encoder (spec_core.models.registry.load_encoder) locally"
            )
        if modality is None:
            raise ValueError("embed(model_name, ...) needs the modality")
        return encoder, modality, embedding_key_for(dataset, encoder, modality)
    modality = modality or encoder.modality
    return encoder.name, modality, embedding_key(dataset, encoder, modality)


def _store(cache, key, matrix, dataset: Dataset, name, weights, modality, seconds, pin) -> None:
    """The matrix into the cache under `key`, with what made it (ids, model, weights)."""
    from spec_core.data.cache import PINNED

    meta = {
        "ids": list(dataset.ids),
        "model": name,
        "weights": weights,
        "modality": modality,
        "dataset": dataset.name,
        "seconds": seconds,
    }
    cache.put(key, matrix, {**meta, PINNED: True} if pin else meta)


def _embed_batches(encoder, modality, batches, workers, stage, total, report, emit) -> None:
    load = load_rgb if modality == "image" else (lambda item: item)

    def prepare(batch):
        return [encoder.prepare(load(item)) for item in batch]

    report(stage, 0, total)
    size = len(batches[0]) if batches else 1
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = pool.submit(prepare, batches[0]) if batches else None
        for index in range(len(batches)):
            prepared = pending.result()
            if index + 1 < len(batches):  # decode the next batch while the model runs
                pending = pool.submit(prepare, batches[index + 1])
            emit(forward_checked(encoder, prepared))
            report(stage, min((index + 1) * size, total), total)
