"""Labelled cases for bench_legibility.py made offline: their images, texts and labellings.

Each maker returns (dataset, labellings): a spec_core Dataset and a dict of labellings, each one
label per row in the dataset's row order. Images are written once under the embedding cache's
root (`bench/<name>/`); the embeddings themselves go through spec_core's disk cache, so a second
run reads them (the first one takes minutes on 2 CPU cores).

    python benchmarks/_legibility_data.py      # embed every new case now (to warm the cache)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: The rendered shapes: 5 shapes x 5 colours x 3 sizes x 4 draws (position, rotation, tint).
SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 119, 180),
    "orange": (255, 127, 14),
    "purple": (148, 103, 189),
}
SIZES = {"small": 0.22, "medium": 0.32, "large": 0.42}  # the radius as a share of the side
DRAWS = 4
SIDE = 96


def _bench_folder(name: str) -> Path:
    from spec_core.data.cache import default_cache_root

    return Path(default_cache_root()) / "bench" / name


def _polygon(shape: str, cx: float, cy: float, r: float, turn: float) -> list[tuple]:
    if shape == "square":
        angles = [turn + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]
    if shape == "triangle":
        angles = [turn - math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]
    if shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else 0.45 * r
            a = turn - math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
        return points
    # cross: a plus sign of arm width r / 2.4, rotated
    w = r / 2.4
    outline = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w)]
    outline += [(-r, w), (-r, -w), (-w, -w)]
    c, s = math.cos(turn), math.sin(turn)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in outline]


def shapes_dataset():
    """300 rendered shapes (96 px PNGs on a light grey ground), labelled by shape and by colour
    (size is a third axis the labellings leave out)."""
    from PIL import Image, ImageDraw

    from spec_core.data.image_sets import load_image_folder

    folder = _bench_folder("shapes")
    images = folder / "images"
    rows = []
    rng = np.random.default_rng(16)
    for shape in SHAPES:
        for colour, rgb in COLOURS.items():
            for size, share in SIZES.items():
                for draw in range(DRAWS):
                    name = f"{shape}-{colour}-{size}-{draw}.png"
                    rows.append((name, shape, colour, size))
                    path = images / name
                    jitter = rng.uniform(-0.12, 0.12, size=2) * SIDE
                    turn = float(rng.uniform(0, 2 * math.pi))
                    tint = rng.integers(-25, 26, size=3)
                    if path.is_file():
                        continue
                    images.mkdir(parents=True, exist_ok=True)
                    image = Image.new("RGB", (SIDE, SIDE), (235, 235, 235))
                    pen = ImageDraw.Draw(image)
                    fill = tuple(
                        int(np.clip(c + t, 0, 255)) for c, t in zip(rgb, tint, strict=True)
                    )
                    cx, cy = SIDE / 2 + jitter[0], SIDE / 2 + jitter[1]
                    r = share * SIDE
                    if shape == "circle":
                        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
                    else:
                        pen.polygon(_polygon(shape, cx, cy, r, turn), fill=fill)
                    image.save(path)
    captions = folder / "captions.csv"
    if not captions.is_file():
        lines = ["file,caption,label"] + [f"{n},{sz} {c} {s},{s}" for n, s, c, sz in rows]
        captions.write_text("\n".join(lines) + "\n")
    data = load_image_folder(images, captions=captions)
    by_file = {name: (shape, colour) for name, shape, colour, _ in rows}
    order = [by_file[Path(i).name] for i in data.ids]
    labellings = {"shape": [s for s, _ in order], "colour": [c for _, c in order]}
    return data, labellings


def digits_dataset():
    """scikit-learn's 1797 handwritten digits (8 x 8) as PNG files, labelled by digit."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from spec_core.data.image_sets import load_image_folder

    folder = _bench_folder("digits")
    images = folder / "images"
    if not (folder / "captions.csv").is_file():
        digits = load_digits()
        images.mkdir(parents=True, exist_ok=True)
        rows = ["file,caption,label"]
        for i, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
            name = f"{i:04d}.png"
            Image.fromarray((pixels * 16).clip(0, 255).astype(np.uint8)).save(images / name)
            rows.append(f"{name},digit {target},{target}")
        (folder / "captions.csv").write_text("\n".join(rows) + "\n")
    data = load_image_folder(images, captions=folder / "captions.csv")
    return data, {"digit": list(data.labels)}


def embedded(dataset, model: str, modality: str) -> np.ndarray:
    """The dataset's embedding by a registry model, through the disk cache (the model is loaded
    only when the cache does not hold it)."""
    from spec_core.data.cache import EmbeddingCache
    from spec_core.models.embed import embed, embedding_key_for
    from spec_core.models.registry import load_encoder

    cache = EmbeddingCache()
    hit = cache.get(embedding_key_for(dataset, model, modality), ids=list(dataset.ids))
    if hit is not None:
        return hit[0]
    encoder = load_encoder(model, modality)
    return embed(dataset, encoder, modality, cache=cache).matrix


if __name__ == "__main__":
    import time

    shapes, _ = shapes_dataset()
    digits, _ = digits_dataset()
    for data, model in [
        (shapes, "pixels-16"),
        (shapes, "opennsfw-resnet50"),
        (shapes, "efficientnet-lite0"),
        (digits, "opennsfw-resnet50"),
    ]:
        clock = time.perf_counter()
        matrix = embedded(data, model, "image")
        print(f"{data.name} {model}: {matrix.shape} in {time.perf_counter() - clock:.1f} s")
