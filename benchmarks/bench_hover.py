"""Hover cards, measured: what a page sends for its cards (bytes) and the time to build them,
on the demo (540 emoji images) and on synthetic sets of 10,000 and 100,000 rows (the cards are
bounded, so the bytes should not grow with n).

    python benchmarks/bench_hover.py

Columns: rows in the dataset, rows with a card, the frame's size in bytes (what st.iframe
carries: the cards as JSON and the two scripts), the time to build the cards the first time
(thumbnails made) and again (thumbnails from Streamlit's cache; outside a running app
st.cache_data still keeps them in memory).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spec_app import hover
from spec_core.data.demo import load_demo


class Rows(SimpleNamespace):
    def fingerprint(self, modality: str) -> str:  # what names the rows' images in a cache
        return f"{modality}:" + "|".join(self.image_paths or self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def frame_bytes(rows: dict) -> int:
    shown = []
    original = hover.st
    hover.st = SimpleNamespace(iframe=lambda html, height: shown.append(html))
    try:
        hover.attach(rows=rows)
    finally:
        hover.st = original
    return len(shown[0].encode())


def measure(name: str, dataset, members) -> None:
    start = time.perf_counter()
    cards = hover.row_cards(dataset, first=members)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    hover.row_cards(dataset, first=members)
    warm = time.perf_counter() - start
    size = frame_bytes(cards)
    print(f"{name:<28} {len(dataset):>8,} {len(cards):>6} {size:>11,} {cold:>8.3f} {warm:>8.3f}")


def synthetic_images(n: int, folder: Path) -> Rows:
    """n rows over 64 distinct 96 x 96 images (the thumbnails are made per file)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(64):
        path = folder / f"img{i}.png"
        Image.fromarray((rng.random((96, 96, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    return Rows(
        kind="image",
        ids=tuple(f"row{i}" for i in range(n)),
        texts=None,
        labels=None,
        image_paths=tuple(paths[i % 64] for i in range(n)),
    )


def synthetic_texts(n: int) -> Rows:
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "while",
        "it",
        "rains",
        "on",
        "the",
        "hills",
    ]
    texts = tuple(" ".join(words[(i + j) % len(words)] for j in range(30)) for i in range(n))
    return Rows(kind="text", ids=tuple(map(str, range(n))), texts=texts, labels=None,
                image_paths=None)  # fmt: skip


def main() -> None:
    print(f"{'case':<28} {'rows':>8} {'cards':>6} {'frame bytes':>11} {'cold s':>8} {'warm s':>8}")
    demo = load_demo("emoji")
    measure("demo emoji (images)", demo, range(24))
    with tempfile.TemporaryDirectory() as tmp:
        for n in (10_000, 100_000):
            measure(f"synthetic images, n={n:,}", synthetic_images(n, Path(tmp)), range(24))
    for n in (10_000, 100_000):
        measure(f"synthetic texts, n={n:,}", synthetic_texts(n), range(24))


if __name__ == "__main__":
    main()
