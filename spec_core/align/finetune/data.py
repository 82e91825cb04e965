"""The inputs of a fine-tuning run: the reference embedding (row i = image i), read from a
matrix file or embedded by a model, and the images as preprocessed tensors by row."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core.data import arrays

if TYPE_CHECKING:
    from spec_core.data.datasets import Dataset

Progress = Callable[[str, int, int], None]

#: Preprocessed images are kept in memory while they fit in this many bytes (else re-read).
IMAGE_CACHE_BYTES = 2 * 2**30


def load_reference(
    source: str,
    dataset: Dataset,
    *,
    device: str = "auto",
    cache: Any = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The reference embedding, row i = dataset row i, as float32: a matrix file (.npy, .npz,
    .csv, .tsv, .parquet; rows matched by ids when the file has them, or a FILE.ids.json beside
    a .npy as `embed` writes, else by order and the counts must agree), or a model name embedded
    with the project's embed code. Returns (matrix, notes)."""
    from spec_core.data.io import MATRIX_SUFFIXES, align_to_ids, load_matrix_with_ids, split_key

    path, _ = split_key(source)
    if path.suffix.lower() in MATRIX_SUFFIXES:
        matrix, ids = load_matrix_with_ids(source)
        sidecar = path.with_suffix(".ids.json")
        if ids is None and path.suffix.lower() == ".npy" and sidecar.is_file():
            ids = _sidecar_ids(sidecar)
        matrix, notes = align_to_ids(matrix, ids, dataset.ids, name=source)
        if ids is not None:
            notes = [f"{source}: rows matched to the images by id", *notes]
    else:
        matrix, notes = _embedded_reference(source, dataset, device, cache, progress), []
    matrix = np.array(matrix, dtype=np.float32)  # our own copy: the caller's is never touched
    arrays.check_no_zero_rows(matrix, f"the reference {source}")
    arrays.check_not_constant(matrix, f"the reference {source}")
    return matrix, notes


def _embedded_reference(source: str, dataset: Dataset, device, cache, progress) -> np.ndarray:
    """The dataset's images embedded by the image model `source` (through the embedding cache)."""
    from spec_core.models.embed import embed
    from spec_core.models.registry import get_model, load_encoder

    info = get_model(source)
    if "image" not in info.modalities:
        raise ValueError(f"reference model {source!r} embeds {info.modalities[0]}s, not images")
    encoder = load_encoder(source, "image", device=device)
    return embed(dataset, encoder, "image", cache=cache, progress=progress).matrix


def _sidecar_ids(path: Path) -> list[str]:
    """The row ids of a FILE.ids.json that `embed` wrote beside FILE.npy."""
    try:
        ids = json.loads(path.read_text())["ids"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not an ids file written by `embed` ({err})") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{path}: 'ids' must be a list of strings")
    return ids


class ImageRows:
    """Preprocessed images by row index: decoded in worker threads, kept in memory while they
    fit in IMAGE_CACHE_BYTES (else read again each time)."""

    def __init__(self, paths: Sequence[str], transform, *, workers: int | None = None):
        self.paths, self.transform = paths, transform
        self.pool = ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1))
        self.ahead = ThreadPoolExecutor(max_workers=1)
        self.kept: dict[int, Any] = {}
        self.kept_bytes = 0

    def _one(self, row: int):
        tensor = self.kept.get(row)
        if tensor is None:
            from spec_core.data.images import load_rgb

            tensor = self.transform(load_rgb(self.paths[row]))
            size = tensor.numel() * tensor.element_size()
            if self.kept_bytes + size <= IMAGE_CACHE_BYTES:
                self.kept[row] = tensor
                self.kept_bytes += size
        return tensor

    def batch(self, rows: Sequence[int]):
        import torch

        return torch.stack(list(self.pool.map(self._one, [int(r) for r in rows])))

    def later(self, rows: Sequence[int]):
        """A future of batch(rows): the next batch decodes while the model runs."""
        return self.ahead.submit(self.batch, rows)

    def close(self) -> None:
        self.ahead.shutdown(wait=True)
        self.pool.shutdown(wait=True)
