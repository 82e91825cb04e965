"""The README's picture: the model map of the demo's six offline models on the emoji set.

    python scripts/model_map_picture.py [--out docs/model_map.svg]

Embeds the built-in emoji demo (540 images with their names) with efficientnet-lite0 and
opennsfw-resnet50 (the images), minilm-l6 and e5-small (the names), and the baselines pixels-16
(images) and char-ngrams (names), through the embedding cache; runs spec_core.compare_many with
the defaults (the app's, and the CLI's) and writes the SPEC-diff matrix beside the map of the
models (spec_core.export.matrix.overview_svg: hand-written SVG, no plotting library). Prints the
matrix, the closest and farthest pairs and each pair's strongest group of each direction.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's spec_core, not an installed one
MODELS = (
    ("efficientnet-lite0", "image"),
    ("opennsfw-resnet50", "image"),
    ("pixels-16", "image"),
    ("minilm-l6", "text"),
    ("e5-small", "text"),
    ("char-ngrams", "text"),
)


def main() -> None:
    from spec_core import compare_many
    from spec_core.data.cache import EmbeddingCache
    from spec_core.data.demo import load_demo
    from spec_core.export.matrix import overview_svg, strongest_words
    from spec_core.models.embed import embed
    from spec_core.models.registry import load_encoder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "model_map.svg"))
    args = parser.parse_args()
    dataset = load_demo("emoji")
    cache = EmbeddingCache()
    embeddings = {}
    for name, modality in MODELS:
        clock = time.perf_counter()
        encoder = load_encoder(name, modality, device="cpu")
        matrix = embed(dataset, encoder, modality, cache=cache).matrix
        embeddings[f"{name} ({modality})"] = matrix
        print(f"{name} ({modality}): {matrix.shape} in {time.perf_counter() - clock:.1f} s")
    clock = time.perf_counter()
    many = compare_many(embeddings, labels=dataset.labels)
    print(f"compare_many: {time.perf_counter() - clock:.1f} s")
    print(many.summary())
    for a, b in many.pairs:
        for first, second in ((a, b), (b, a)):
            words = strongest_words(many, first, second, labels=dataset.labels, texts=dataset.texts)
            print(f"{first} groups, {second} does not: {words}")
    out = Path(args.out)
    out.write_text(overview_svg(many))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
