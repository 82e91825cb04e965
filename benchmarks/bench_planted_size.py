"""Do planted groups read at their size? Ten clusters of 1,000 rows among 20,000 that A
separates and B does not (spec_core.engine.synthetic.planted_groups), compared with the
default settings (method auto: the feature route at this n): each A-not-B mode's effective
size (target: 1,000 +-20%), purity, stability and verdict, and the time.

    python benchmarks/bench_planted_size.py [--n 20000] [--group-rows 1000] [--method auto]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from spec_core import compare
from spec_core.engine.synthetic import planted_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--group-rows", type=int, default=1_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--method", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    a, b, labels = planted_groups(
        args.n, groups=args.groups, group_rows=args.group_rows, seed=args.seed
    )
    clock = time.perf_counter()
    result = compare(a, b, labels=labels, method=args.method, n_modes=args.groups)
    seconds = time.perf_counter() - clock
    print(
        f"n={args.n}, {args.groups} planted groups of {args.group_rows} rows, "
        f"method {result.params.method}/{result.params.route}, {seconds:.1f} s"
    )
    print(f"{'mode':<12} {'eigenvalue':>10} {'size':>7} {'purity':>7} {'back':>5}  label / verdict")
    sizes = []
    for mode in result.modes_for("A"):
        verdict = "; ".join(mode.weak_reasons) or "group"
        verdict += "".join(f" ({note})" for note in getattr(mode, "notes", ()))
        hits = "-" if mode.stability_hits is None else f"{mode.stability_hits}/10"
        print(
            f"{mode.label:<12} {mode.eigenvalue:>+10.4f} {mode.size:>7.0f} "
            f"{mode.purity or 0:>7.0%} {hits:>5}  {mode.majority_label} / {verdict}"
        )
        if mode.majority_label != "background":
            sizes.append(mode.size)
    sizes = np.array(sizes)
    within = np.abs(sizes / args.group_rows - 1) <= 0.2
    print(
        f"planted-group modes: {len(sizes)}, sizes {sizes.min():.0f}-{sizes.max():.0f}, "
        f"{within.sum()} of {len(sizes)} within 20% of {args.group_rows}"
    )


if __name__ == "__main__":
    main()
