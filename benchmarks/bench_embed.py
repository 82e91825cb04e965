"""Embedding throughput of the offline models on this machine: items per second, cold (model
loaded, nothing cached) and cached (the disk cache answers), on the emoji demo set.

    python benchmarks/bench_embed.py [--rows 540] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import emoji_rows

from spec_core.data.cache import EmbeddingCache
from spec_core.models.embed import embed
from spec_core.models.registry import load_encoder

MODELS = [
    ("pixels-16", "image"),
    ("char-ngrams", "text"),
    ("efficientnet-lite0", "image"),
    ("opennsfw-resnet50", "image"),
    ("minilm-l6", "text"),
    ("e5-small", "text"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=540)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    data = emoji_rows(args.rows, "bench")
    n = len(data)
    print(f"{n} emoji (images 64 px, captions); device {args.device}")
    print(
        f"{'model':<20} {'load s':>7} {'cold s':>7} {'items/s':>8} {'cached s':>9} {'speed-up':>9}"
    )
    with tempfile.TemporaryDirectory() as root:
        cache = EmbeddingCache(root)
        for name, modality in MODELS:
            start = time.perf_counter()
            encoder = load_encoder(name, modality, device=args.device)
            loaded = time.perf_counter() - start
            start = time.perf_counter()
            embed(data, encoder, modality, cache=cache)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            assert embed(data, encoder, modality, cache=cache).cached
            warm = time.perf_counter() - start
            print(
                f"{name:<20} {loaded:>7.2f} {cold:>7.2f} {n / cold:>8.0f} {warm:>9.4f} "
                f"{cold / warm:>8.0f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
