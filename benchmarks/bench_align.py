"""SPEC-align, measured: validation SPEC-diff before and after, kNN overlap, label kNN accuracy
and the time, for a planted case and the built-in demo pair, over candidate settings.

    python benchmarks/bench_align.py [--cases planted,emoji] [--steps 300]

Cases:
- planted: B is a linear distortion of A that merges 3 pairs of A's 10 groups
  (spec_core.engine.synthetic.merged_pair, n = 1,500, d = 32); labels are the groups.
- emoji: the demo (540 emoji, 9 categories): A = EfficientNet-Lite0 on the images, B = MiniLM on
  their names, B aligned to A; labels are the categories.
- emoji-reverse: the same pair, A aligned to B.

Columns: validation SPEC-diff before -> after (and the ratio), label kNN accuracy of B before ->
after on validation rows (k = 10, train rows as the reference; A's own for reference), mean
10-NN overlap of the aligned B with A (before -> after) and with B, the best step, and the
training time. Settings: adapter, solver (eigh / power), lr, keep_weight, start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from spec_core.align import DEFAULT_KEEP_WEIGHT, DEFAULT_LR, align
from spec_core.engine.synthetic import merged_pair


def _demo(reverse: bool):
    from bench_legibility import _embedded

    from spec_core.data.demo import load_demo

    data = load_demo("emoji")
    image = _embedded(data, "efficientnet-lite0", "image")
    text = _embedded(data, "minilm-l6", "text")
    labels = np.asarray(list(data.labels))
    return (text, image, labels) if reverse else (image, text, labels)


CASES = {
    "planted": lambda: merged_pair(n=1500, seed=0),
    "emoji": lambda: _demo(False),
    "emoji-reverse": lambda: _demo(True),
}

SETTINGS = [
    ("linear (default)", {}),
    ("mlp", {"adapter": "mlp"}),
    ("linear, lr 3e-3", {"lr": 3e-3}),
    ("linear, lr 3e-2", {"lr": 3e-2}),
    ("linear, keep 0", {"keep_weight": 0.0}),
    ("linear, keep 1", {"keep_weight": 1.0}),
    ("linear, identity start", {"start": "identity"}),
    ("identity start, keep 1", {"start": "identity", "keep_weight": 1.0}),
    ("linear, top-3 loss", {"n_top": 3}),
    ("linear, A-not-B only", {"target": "a-not-b"}),
    ("cosine, eigh", {"kernel": "cosine"}),
    ("cosine, power", {"kernel": "cosine", "solver": "power"}),
]


def _mode(result, direction: str) -> str:
    """The strongest validation mode of one direction before alignment: eigenvalue before ->
    after (the same score vector)."""
    mode = next((m for m in result.closed if m["direction"] == direction), None)
    return f"{'-':>16}" if mode is None else f"{mode['before']:+.4f}->{mode['after']:+.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="planted,emoji,emoji-reverse")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--settings", default="all", help="comma-separated setting numbers")
    args = parser.parse_args()
    chosen = SETTINGS
    if args.settings != "all":
        chosen = [SETTINGS[int(i)] for i in args.settings.split(",")]
    print(f"defaults: lr {DEFAULT_LR:g}, keep_weight {DEFAULT_KEEP_WEIGHT:g}, {args.steps} steps")
    header = (
        f"{'case':<14} {'setting':<20} {'val SPEC-diff':>22} {'label kNN acc B':>17} "
        f"{'(A)':>5} {'kNN ovl A':>13} {'ovl B':>6} {'best':>5} {'train s':>8} "
        f"{'A-not-B #1':>16} {'B-not-A #1':>16}"
    )
    for case in args.cases.split(","):
        a, b, labels = CASES[case]()
        print(header)
        for name, kw in chosen:
            result = align(a, b, labels=labels, steps=args.steps, seed=0, **kw)
            sd = result.spec_diff
            before, after = result.metrics["val"]["before"], result.metrics["val"]["after"]
            ratio = sd["after"]["val"] / sd["before"]["val"]
            print(
                f"{case:<14} {name:<20} {sd['before']['val']:.4f} -> {sd['after']['val']:.4f} "
                f"({ratio:4.2f}) {before['label_knn_accuracy']:.3f} -> "
                f"{after['label_knn_accuracy']:.3f} {before['label_knn_accuracy_a']:5.3f} "
                f"{before['knn_overlap_a']:.3f}->{after['knn_overlap_a']:.3f} "
                f"{after['knn_overlap_b']:6.3f} {result.best_step:5d} "
                f"{result.timings['train']:8.1f} {_mode(result, 'A')} {_mode(result, 'B')}",
                flush=True,
            )


if __name__ == "__main__":
    main()
