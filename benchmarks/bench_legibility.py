"""Are SPEC's strongest modes real groups? Label purity, effective size, stability and time of
the top modes, for candidate settings, on labelled cases that work offline.

For each case and setting it prints, over the top 3 modes per side:
  purity   the share of a mode's top-k members (k = 20) that carry its majority label;
  cut      the same over the mode's own size (the top min(k, round(size)) members);
  size     the effective number of rows (participation ratio of the scores above their median);
  stab     the stability (mean top-k Jaccard over 10 resamples of 80% of the rows);
  time     seconds for the comparison (evidence included).
and whether the case meets the target: average purity >= 0.75 and every size in [5, n/5].

Cases: the two demos with several model pairs, scikit-learn's digits (raw pixels vs
EfficientNet-Lite0), and a planted case whose groups are known by construction. Embeddings come
from the disk cache (computed once, about 3 minutes on 2 CPU cores).

    python benchmarks/bench_legibility.py [--cases emoji-img-txt,...] [--settings ...]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from spec_core import compare
from spec_core.engine.kernels import sample_distances

TOP_K = 20
TOP_MODES = 3


@dataclass
class Case:
    name: str
    emb_a: np.ndarray
    emb_b: np.ndarray
    labels_a: list[str]  # the labels that name A-not-B groups
    labels_b: list[str]  # and B-not-A groups (the same list for real data)


# ---------------------------------------------------------------------------------------------
# Cases


def _embedded(dataset, model: str, modality: str) -> np.ndarray:
    from spec_core.data.cache import EmbeddingCache
    from spec_core.models.embed import embed
    from spec_core.models.registry import load_encoder

    encoder = load_encoder(model, modality)
    return embed(dataset, encoder, modality, cache=EmbeddingCache()).matrix


def _demo_case(name, demo, side_a, side_b) -> Case:
    from spec_core.data.demo import load_demo

    data = load_demo(demo)
    labels = list(data.labels)
    return Case(name, _embedded(data, *side_a), _embedded(data, *side_b), labels, labels)


def _digits_case() -> Case:
    """scikit-learn's 1797 handwritten digits (8 x 8) as PNG files: raw pixels vs a CNN."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from spec_core.data.cache import default_cache_root
    from spec_core.data.image_sets import load_image_folder

    digits = load_digits()
    from pathlib import Path

    folder = Path(default_cache_root()) / "bench" / "digits"
    images = folder / "images"
    if not (folder / "captions.csv").is_file():
        images.mkdir(parents=True, exist_ok=True)
        rows = ["file,caption,label"]
        for i, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
            name = f"{i:04d}.png"
            Image.fromarray((pixels * 16).clip(0, 255).astype(np.uint8)).save(images / name)
            rows.append(f"{name},digit {target},{target}")
        (folder / "captions.csv").write_text("\n".join(rows) + "\n")
    data = load_image_folder(images, captions=folder / "captions.csv")
    labels = list(data.labels)
    return Case(
        "digits px/cnn",
        _embedded(data, "pixels-16", "image"),
        _embedded(data, "efficientnet-lite0", "image"),
        labels,
        labels,
    )


def _planted_case(seed: int = 0) -> Case:
    """n = 600 in 12 groups of uneven size (20-80) and spread. A: every group a tight cluster
    (32-d). B (24-d): groups 0-3 stay tight (shared), groups 4-7 are scattered (A-not-B), and
    the rows of groups 8-11 are regrouped into four new tight clusters that mix them
    (B-not-A)."""
    rng = np.random.default_rng(seed)
    sizes = [60, 40, 80, 20, 70, 30, 55, 25, 65, 35, 75, 45]
    group = np.repeat(np.arange(len(sizes)), sizes)
    n = len(group)
    spread_a = rng.uniform(0.6, 1.3, size=len(sizes))[group][:, None]
    spread_b = rng.uniform(0.6, 1.3, size=len(sizes))[group][:, None]
    a = rng.normal(scale=3.0, size=(len(sizes), 32))[group] + spread_a * rng.normal(size=(n, 32))
    b = rng.normal(scale=3.0, size=(len(sizes), 24))[group] + spread_b * rng.normal(size=(n, 24))
    scattered = (group >= 4) & (group < 8)
    b[scattered] = rng.normal(scale=3.0, size=(int(scattered.sum()), 24))
    mixed = np.flatnonzero(group >= 8)
    new_group = rng.choice(4, size=len(mixed), p=[0.4, 0.3, 0.2, 0.1])
    centres = rng.normal(scale=3.0, size=(4, 24))
    b[mixed] = centres[new_group] + spread_b[mixed] * rng.normal(size=(len(mixed), 24))
    labels_a = [f"g{g}" for g in group]
    labels_b = labels_a.copy()
    for row, g in zip(mixed, new_group, strict=True):
        labels_b[row] = f"b{g}"
    return Case("planted", a, b, labels_a, labels_b)


CASES = {
    "emoji-img-txt": lambda: _demo_case(
        "emoji img/txt", "emoji", ("efficientnet-lite0", "image"), ("minilm-l6", "text")
    ),
    "emoji-img-img": lambda: _demo_case(
        "emoji img/img", "emoji", ("efficientnet-lite0", "image"), ("opennsfw-resnet50", "image")
    ),
    "emoji-txt-txt": lambda: _demo_case(
        "emoji txt/txt", "emoji", ("minilm-l6", "text"), ("e5-small", "text")
    ),
    "wordnet-txt-txt": lambda: _demo_case(
        "wordnet txt/txt", "wordnet", ("minilm-l6", "text"), ("e5-small", "text")
    ),
    "wordnet-txt-ngram": lambda: _demo_case(
        "wordnet txt/ngrams", "wordnet", ("minilm-l6", "text"), ("char-ngrams", "text")
    ),
    "digits": _digits_case,
    "planted": _planted_case,
}


# ---------------------------------------------------------------------------------------------
# Settings


def _sigma(x: np.ndarray, rule: str, factor: float) -> float:
    """The bandwidth of a setting, computed here (not through the engine's default):
    "median": factor x the median distance between rows; "density": the bandwidth at which the
    mean kernel value over pairs is `factor`."""
    distances, scale = sample_distances(x)
    upper = distances[np.triu_indices(len(distances), 1)] * scale
    upper = upper[upper > 0]
    if rule == "median":
        return float(factor * np.median(upper))
    low, high = np.log(upper.min()), np.log(upper.max() * 10)
    for _ in range(60):
        mid = (low + high) / 2
        mean = np.exp(-(upper**2) / (2 * np.exp(mid) ** 2)).mean()
        low, high = (mid, high) if mean < factor else (low, mid)
    return float(np.exp((low + high) / 2))


SETTINGS = {
    # name: (centre, bandwidth rule, factor, members)
    "before: uncentred, 0.5 median, top-k": (False, "median", 0.5, "top_k"),
    "uncentred, 0.5 median, cut": (False, "median", 0.5, "cut"),
    "centred, 0.5 median, cut": (True, "median", 0.5, "cut"),
    "centred, 0.4 median, cut": (True, "median", 0.4, "cut"),
    "centred, 0.35 median, cut": (True, "median", 0.35, "cut"),
    "centred, 0.3 median, cut": (True, "median", 0.3, "cut"),
    "centred, 0.25 median, cut": (True, "median", 0.25, "cut"),
    "uncentred, 0.3 median, cut": (False, "median", 0.3, "cut"),
    "centred, density 0.03, cut": (True, "density", 0.03, "cut"),
}


# ---------------------------------------------------------------------------------------------


def _purity(rows, labels) -> float:
    counts = Counter(labels[i] for i in rows)
    return counts.most_common(1)[0][1] / len(rows)


def evaluate(case: Case, setting: tuple) -> dict:
    centre, rule, factor, members = setting
    sigma_a, sigma_b = _sigma(case.emb_a, rule, factor), _sigma(case.emb_b, rule, factor)
    clock = time.perf_counter()
    result = compare(
        case.emb_a,
        case.emb_b,
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        centre=centre,
        n_modes=TOP_MODES,
        top_k=TOP_K,
        members=members,
        context=False,
    )
    seconds = time.perf_counter() - clock
    n = len(case.labels_a)
    rows = []
    for mode in result.modes:
        labels = case.labels_a if mode.direction == "A" else case.labels_b
        top = np.argsort(-mode.sample_scores, kind="stable")[:TOP_K]
        rows.append(
            (
                _purity(mode.members, labels),
                _purity(top, labels),
                mode.size,
                mode.stability,
                mode.weak,
            )
        )
    table = np.array([r[:4] for r in rows], dtype=float)
    sizes = table[:, 2]
    return {
        "purity": table[:, 0].mean(),
        "cut": table[:, 1].mean(),
        "size_median": float(np.median(sizes)),
        "size_ok": float(((sizes >= 5) & (sizes <= n / 5)).mean()),
        "stability": table[:, 3].mean(),
        "weak": sum(r[4] for r in rows),
        "modes": len(rows),
        "time": seconds,
        "meets": bool(table[:, 0].mean() >= 0.75 and ((sizes >= 5) & (sizes <= n / 5)).all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--settings", default=None, help="comma-separated setting numbers")
    args = parser.parse_args()
    names = list(SETTINGS)
    if args.settings:
        names = [names[int(i)] for i in args.settings.split(",")]
    cases = []
    for key in args.cases.split(","):
        clock = time.perf_counter()
        cases.append(CASES[key]())
        print(
            f"# case {cases[-1].name}: n = {len(cases[-1].labels_a)} "
            f"({time.perf_counter() - clock:.1f} s to load/embed)",
            flush=True,
        )
    totals = {name: [] for name in names}
    header = (
        f"{'case':<20} {'setting':<38} purity top20 size(med) size ok  stab  weak  time  target"
    )
    print(header)
    for case in cases:
        for name in names:
            out = evaluate(case, SETTINGS[name])
            totals[name].append(out)
            print(
                f"{case.name:<20} {name:<38} {out['purity']:6.2f} {out['cut']:5.2f} "
                f"{out['size_median']:9.1f} {out['size_ok']:7.0%} {out['stability']:5.2f} "
                f"{out['weak']:2d}/{out['modes']:<2d} {out['time']:5.2f}  "
                f"{'yes' if out['meets'] else 'no'}",
                flush=True,
            )
    print("\n# averages over the cases")
    print(f"{'setting':<38} purity top20 size ok  stab  time  cases meeting the target")
    for name in names:
        rows = totals[name]
        print(
            f"{name:<38} {np.mean([r['purity'] for r in rows]):6.2f} "
            f"{np.mean([r['cut'] for r in rows]):5.2f} "
            f"{np.mean([r['size_ok'] for r in rows]):7.0%} "
            f"{np.mean([r['stability'] for r in rows]):5.2f} "
            f"{np.mean([r['time'] for r in rows]):5.2f}  "
            f"{sum(r['meets'] for r in rows)}/{len(rows)}"
        )


if __name__ == "__main__":
    main()
