"""Views of the data: 2-D projections of an embedding, a row's nearest neighbours, a mode's
ranking, finding rows by text, and image thumbnails.

All small results, kept by `st.cache_data` keyed by embedding key (or file path) and the view's
parameters; never by the arrays themselves.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from spec_app.services.models import load_embedding

if TYPE_CHECKING:
    from spec_core.data.datasets import Dataset


@st.cache_data(show_spinner=False, max_entries=32)
def projection(key: str, kind: str, seed: int = 0) -> np.ndarray:
    """The embedding `key` in 2-D: "pca", or "umap" (seeded), one (x, y) per row."""
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
def ranking(
    key_a: str, key_b: str, params: Hashable, label: str, _scores: np.ndarray
) -> np.ndarray:
    """Every row of a mode, highest score first, cached per comparison (its embedding keys and
    SPEC parameters, a spec_core.config.SpecConfig) and mode (the scores themselves are not
    hashed: the other arguments name them)."""
    from spec_core.engine.selection import ranked_rows

    return ranked_rows(_scores)


def find_rows(query: str, dataset: Dataset) -> list[int]:
    """Rows whose id, text or caption contains `query` (any case), in row order, at most 500."""
    from spec_core.engine.selection import search

    return search(query, dataset.ids, dataset.texts)


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


@st.cache_data(show_spinner=False, max_entries=4096)
def hover_image(path: str, size: int = 64) -> str | None:
    """An image file as a small JPEG data URI (at most `size` pixels a side) for a hover card,
    converted as the thumbnails are; None when the file cannot be read."""
    import base64
    import io

    from spec_core.data.images import load_rgb

    try:
        img = load_rgb(path)
    except Exception:  # a vanished or unreadable file: the card shows its text only
        return None
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@st.cache_data(show_spinner=False, max_entries=8)
def hover_images(
    fingerprint: str, rows: tuple[int, ...], _paths, size: int = 64
) -> list[str | None]:
    """The hover thumbnails (see `hover_image`) of these rows of the image dataset with this
    fingerprint (`_paths`: its image paths, named by the fingerprint): one cache entry per
    view, so a rerun does not look up each image again."""
    return [hover_image(_paths[row], size) for row in rows]
