"""Are SPEC's strongest modes real groups? Label purity, effective size, stability and time of
the top modes, for candidate settings, on labelled cases that work offline.

For each case and setting it prints, over the top 3 modes per side:
  purity   the share of a mode's members that carry its majority value of the case's best
           labelling for that mode (a mode is a group when its members share one value of ANY
           of the case's labellings: shapes by shape or by colour);
  top20    the same over the mode's top 20 rows by score;
  size     the median effective number of rows (participation ratio of the scores above their
           median), and the share of modes with a size in [5, n/5];
  stab     the stability (mean member Jaccard over 10 resamples of 80% of the rows);
  time     seconds for the comparison (evidence included; context metrics off).
and whether the case meets the target: average purity >= 0.75 and median size in [5, n/5].
Each set's summary is printed on its own: cases on target, mean purity, stability and time.

The split, fixed on 2026-12-03 before any approach was tried (issue 16):
  tuning (7)    the seven cases the earlier defaults were chosen on: planted, emoji image/text,
                image/image and text/text, WordNet text/text and text/character n-grams,
                digits raw pixels / EfficientNet-Lite0;
  held-out (6)  new cases nobody tuned on: rendered shapes (by shape and by colour) as
                EfficientNet / open_nsfw and as raw pixels / EfficientNet, digits through a
                third model (open_nsfw / EfficientNet), emoji open_nsfw images / e5 names,
                emoji MiniLM / character n-grams, WordNet e5 / character n-grams.
Candidate settings were run on the tuning set only. The held-out set was first run on
2026-12-03 at 19:17 UTC with the chosen default and the old default (see the README). It ran
twice more, with the same grouping (never re-tuned), after changes to how the resamples
measure a span group's stability made to keep bench_headline's cost: at 19:38 (matching within
fewer eigenpairs: stability fell on both sets, rejected) and at 19:57 (the shipped code:
resamples warm-started from the whole span).

Embeddings come from the disk cache (the new cases' images and labels: _legibility_data.py;
computing every embedding once takes several minutes on 2 CPU cores).

    python benchmarks/bench_legibility.py [--set tuning|held-out|all] [--cases ...]
        [--settings 0,2]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this checkout's spec_core and data helper

from spec_core import compare  # noqa: E402

TOP_K = 20
TOP_MODES = 3


@dataclass
class Case:
    name: str
    emb_a: np.ndarray
    emb_b: np.ndarray
    labellings_a: dict[str, list[str]]  # the labellings that name A-not-B groups
    labellings_b: dict[str, list[str]]  # and B-not-A groups (the same for real data)


# ---------------------------------------------------------------------------------------------
# Cases


def _embedded(dataset, model: str, modality: str) -> np.ndarray:
    from _legibility_data import embedded

    return embedded(dataset, model, modality)


def _demo_case(name, demo, side_a, side_b) -> Case:
    from spec_core.data.demo import load_demo

    data = load_demo(demo)
    labels = {"category": list(data.labels)}
    return Case(name, _embedded(data, *side_a), _embedded(data, *side_b), labels, labels)


def _image_case(name, maker, model_a, model_b) -> Case:
    import _legibility_data

    data, labellings = getattr(_legibility_data, maker)()
    a, b = _embedded(data, model_a, "image"), _embedded(data, model_b, "image")
    return Case(name, a, b, labellings, labellings)


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
    return Case("planted", a, b, {"group": labels_a}, {"group": labels_b})


EFFNET, NSFW, PIXELS = "efficientnet-lite0", "opennsfw-resnet50", "pixels-16"
MINILM, E5, NGRAMS = "minilm-l6", "e5-small", "char-ngrams"

TUNING = {
    "planted": _planted_case,
    "emoji-img-txt": lambda: _demo_case(
        "emoji img/txt", "emoji", (EFFNET, "image"), (MINILM, "text")
    ),
    "emoji-img-img": lambda: _demo_case(
        "emoji img/img", "emoji", (EFFNET, "image"), (NSFW, "image")
    ),
    "emoji-txt-txt": lambda: _demo_case("emoji txt/txt", "emoji", (MINILM, "text"), (E5, "text")),
    "wordnet-txt-txt": lambda: _demo_case(
        "wordnet txt/txt", "wordnet", (MINILM, "text"), (E5, "text")
    ),
    "wordnet-txt-ngram": lambda: _demo_case(
        "wordnet txt/ngrams", "wordnet", (MINILM, "text"), (NGRAMS, "text")
    ),
    "digits": lambda: _image_case("digits px/cnn", "digits_dataset", PIXELS, EFFNET),
}
HELD_OUT = {
    "shapes-cnn-nsfw": lambda: _image_case("shapes cnn/nsfw", "shapes_dataset", EFFNET, NSFW),
    "shapes-px-cnn": lambda: _image_case("shapes px/cnn", "shapes_dataset", PIXELS, EFFNET),
    "digits-nsfw-cnn": lambda: _image_case("digits nsfw/cnn", "digits_dataset", NSFW, EFFNET),
    "emoji-nsfw-e5": lambda: _demo_case("emoji nsfw/e5", "emoji", (NSFW, "image"), (E5, "text")),
    "emoji-txt-ngram": lambda: _demo_case(
        "emoji txt/ngrams", "emoji", (MINILM, "text"), (NGRAMS, "text")
    ),
    "wordnet-e5-ngram": lambda: _demo_case(
        "wordnet e5/ngrams", "wordnet", (E5, "text"), (NGRAMS, "text")
    ),
}
SETS = {"tuning": TUNING, "held-out": HELD_OUT}


# ---------------------------------------------------------------------------------------------
# Settings: compare's keywords (bandwidths by the engine's rule: sigma_scale x 0.3 x the median
# distance), and the span of eigenvectors rotated (groups.SPAN_VECTORS) where it applies.

MEDIAN_03 = 1.0  # sigma_scale for 0.3 x the median distance (the engine's rule)
SPAN = {"groups": "span"}
SETTINGS = {
    "old default: eigenvectors, 0.3 median": ({"groups": "eigenvectors"}, None),
    "default (compare's own)": ({}, None),
    # span r, share s: the top r eigenvectors of each direction, those above s x its largest
    "span 8, 0.3 median": (SPAN, (8, 0.0)),
    "span 5, 0.3 median": (SPAN, (5, 0.0)),
    "span 12, 0.3 median": (SPAN, (12, 0.0)),
    "span 8, 0.5 median": ({**SPAN, "sigma_scale": 0.5 / 0.3}, (8, 0.0)),
    "span 8, 0.2 median": ({**SPAN, "sigma_scale": 0.2 / 0.3}, (8, 0.0)),
    "eigenvectors, 0.5 median": ({"groups": "eigenvectors", "sigma_scale": 0.5 / 0.3}, None),
    # prototypes measured here, outside the engine (exact n x n in NumPy, no stability):
    "proto: self-tuning kernel k=7, span 8": ("self-tuning", 7),
    "proto: self-tuning kernel k=15, span 8": ("self-tuning", 15),
    # compare at three bandwidth scales, keep the one whose modes are most stable among those
    # with median size in [5, n/5] (label-free; three comparisons' time)
    "proto: scale from sweep 0.2/0.3/0.5, span 8": ("sweep", (0.2, 0.3, 0.5)),
    "span 12 share 0.25, 0.3 median": (SPAN, (12, 0.25)),
    "span 20 share 0.25, 0.3 median": (SPAN, (20, 0.25)),
    "span 20 share 0.1, 0.3 median": (SPAN, (20, 0.1)),
    "span 12 share 0.5, 0.3 median": (SPAN, (12, 0.5)),
}


def _self_tuning_modes(case: Case, k: int):
    """Modes of the centred self-tuning kernels (Zelnik-Manor and Perona: K_ij =
    exp(-d_ij^2 / (s_i s_j)), s_i the distance from row i to its k-th neighbour), exactly, with
    the span grouping: (values per mode, score vectors, members) per direction."""
    from spec_core.engine.evidence import _pick_modes
    from spec_core.engine.groups import span_groups

    def centred_kernel(x):
        x = np.asarray(x, dtype=np.float64)
        sq = np.maximum((x * x).sum(1)[:, None] + (x * x).sum(1)[None] - 2 * x @ x.T, 0)
        scale = np.sqrt(np.sort(sq, axis=1)[:, k])
        gram = np.exp(-sq / np.maximum(np.outer(scale, scale), 1e-300))
        gram -= gram.mean(0)
        return gram - gram.mean(1)[:, None]

    n = case.emb_a.shape[0]
    lam = (centred_kernel(case.emb_a) - centred_kernel(case.emb_b)) / n
    values, vectors = np.linalg.eigh((lam + lam.T) / 2)
    keep = np.r_[np.arange(20), np.arange(n - 20, n)]
    values, vectors = values[keep][::-1], vectors[:, keep][:, ::-1]
    values, vectors = span_groups(values, vectors, 1e-9)
    return _pick_modes(values, vectors, TOP_MODES, TOP_K, cut=True)


# ---------------------------------------------------------------------------------------------


def _purity(rows, labellings: dict[str, list[str]]) -> float:
    """The best labelling's majority share among `rows`."""
    best = 0.0
    for labels in labellings.values():
        counts = Counter(labels[i] for i in rows)
        best = max(best, counts.most_common(1)[0][1] / len(rows))
    return best


class _ProtoMode:
    def __init__(self, item):
        self.direction, self.members, self.size = item.direction, item.members, item.size
        self.sample_scores, self.stability, self.weak = item.scores, None, False


class _Proto:
    """A prototype's modes, read like a SpecResult's by `evaluate`."""

    def __init__(self, items, grouping):
        self.modes = [_ProtoMode(item) for item in items]
        self.params = type("Params", (), {"grouping": grouping})


def _run(case: Case, setting: tuple):
    """The setting's result on the case: a SpecResult or a prototype's."""
    from spec_core.engine import groups

    keywords, span = setting
    if keywords == "self-tuning":
        return _Proto(_self_tuning_modes(case, span), "span, self-tuning")
    if keywords == "sweep":
        best = None
        for factor in span:
            result = _run(case, ({**SPAN, "sigma_scale": factor / 0.3}, (8, 0.0)))
            n = case.emb_a.shape[0]
            sizes = [m.size for m in result.modes]
            stable = np.mean([m.stability or 0.0 for m in result.modes])
            fits = bool(sizes) and 5 <= np.median(sizes) <= n / 5
            if best is None or (fits, stable) > best[0]:
                best = ((fits, stable), result)
        return best[1]
    before = groups.SPAN_VECTORS, groups.SPAN_SHARE
    if span is not None:
        groups.SPAN_VECTORS, groups.SPAN_SHARE = span
    try:
        return compare(
            case.emb_a, case.emb_b, n_modes=TOP_MODES, top_k=TOP_K, context=False, **keywords
        )
    finally:
        groups.SPAN_VECTORS, groups.SPAN_SHARE = before


def _mean_measured(values: np.ndarray) -> float:
    """The mean of the measured values (NaN: none measured, e.g. a prototype's modes)."""
    measured = values[np.isfinite(values)]
    return float(measured.mean()) if measured.size else float("nan")


def evaluate(case: Case, setting: tuple) -> dict:
    clock = time.perf_counter()
    result = _run(case, setting)
    seconds = time.perf_counter() - clock
    n = case.emb_a.shape[0]
    rows = []
    for mode in result.modes:
        labellings = case.labellings_a if mode.direction == "A" else case.labellings_b
        top = np.argsort(-mode.sample_scores, kind="stable")[:TOP_K]
        stability = np.nan if mode.stability is None else mode.stability
        rows.append(
            (_purity(mode.members, labellings), _purity(top, labellings), mode.size, stability)
        )
    table = np.array(rows, dtype=float).reshape(-1, 4)
    sizes = table[:, 2]
    median = float(np.median(sizes)) if len(sizes) else 0.0
    purity = float(table[:, 0].mean()) if len(table) else 0.0
    return {
        "purity": purity,
        "top20": float(table[:, 1].mean()) if len(table) else 0.0,
        "size_median": median,
        "size_ok": float(((sizes >= 5) & (sizes <= n / 5)).mean()) if len(sizes) else 0.0,
        "stability": _mean_measured(table[:, 3]),
        "weak": sum(bool(mode.weak) for mode in result.modes),
        "modes": len(result.modes),
        "time": seconds,
        "grouping": result.params.grouping,
        "meets": bool(purity >= 0.75 and 5 <= median <= n / 5),
    }


def _summary(title: str, names: list[str], totals: dict[str, list[dict]]) -> None:
    print(f"\n# {title}: averages over {len(next(iter(totals.values())))} cases")
    print(f"{'setting':<40} purity top20 size ok  stab   time  cases meeting the target")
    for name in names:
        rows = totals[name]
        print(
            f"{name:<40} {np.mean([r['purity'] for r in rows]):6.2f} "
            f"{np.mean([r['top20'] for r in rows]):5.2f} "
            f"{np.mean([r['size_ok'] for r in rows]):7.0%} "
            f"{np.mean([r['stability'] for r in rows]):5.2f} "
            f"{np.mean([r['time'] for r in rows]):6.2f}  "
            f"{sum(r['meets'] for r in rows)}/{len(rows)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("tuning", "held-out", "all"), default="tuning")
    parser.add_argument("--cases", default=None, help="comma-separated case keys (any set)")
    parser.add_argument("--settings", default=None, help="comma-separated setting numbers")
    args = parser.parse_args()
    names = list(SETTINGS)
    if args.settings:
        names = [names[int(i)] for i in args.settings.split(",")]
    chosen = {"all": list(SETS), "tuning": ["tuning"], "held-out": ["held-out"]}[args.set]
    keys = None if args.cases is None else set(args.cases.split(","))
    header = (
        f"{'case':<20} {'setting':<40} purity top20 size(med) size ok  stab  weak   time  target"
    )
    for set_name in chosen:
        print(f"\n## {set_name} set")
        print(header)
        totals: dict[str, list[dict]] = {name: [] for name in names}
        for key, make in SETS[set_name].items():
            if keys is not None and key not in keys:
                continue
            clock = time.perf_counter()
            case = make()
            loaded = time.perf_counter() - clock
            print(f"# {case.name}: n = {case.emb_a.shape[0]} ({loaded:.1f} s to load)", flush=True)
            for name in names:
                out = evaluate(case, SETTINGS[name])
                totals[name].append(out)
                print(
                    f"{case.name:<20} {name:<40} {out['purity']:6.2f} {out['top20']:5.2f} "
                    f"{out['size_median']:9.1f} {out['size_ok']:7.0%} {out['stability']:5.2f} "
                    f"{out['weak']:2d}/{out['modes']:<2d} {out['time']:6.2f}  "
                    f"{'yes' if out['meets'] else 'no'} ({out['grouping']})",
                    flush=True,
                )
        if any(totals.values()):
            _summary(f"{set_name} set", names, totals)


if __name__ == "__main__":
    main()
