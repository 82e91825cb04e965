"""The reference SPEC-diff (B's rows shuffled), measured: its extra solve beside the comparison
itself, on the exact route, for the app's choice of computing it with the page
(spec_app.services.comparison.REFERENCE_AUTO_ROWS).

    OMP_NUM_THREADS=1 python benchmarks/bench_reference.py [--rows 540,1500,3000]

Data: planted clusters (10 groups, d = 32, spec_core.engine.synthetic.merged_pair). Columns:
rows, the comparison's time (with its stability resamples and context metrics, as the app runs
it), the reference's time (one solve, no resamples), SPEC-diff and its shuffled reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's spec_core

import spec_core
from spec_core.engine.reference import shuffled_spec_diff
from spec_core.engine.synthetic import merged_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="540,1500,3000", help="row counts, comma-separated")
    args = parser.parse_args()
    print(f"{'rows':>6} {'compare s':>10} {'reference s':>12} {'SPEC-diff':>10} {'shuffled':>10}")
    for n in (int(r) for r in args.rows.split(",")):
        pair = merged_pair(n)
        a, b = pair[0], pair[1]
        clock = time.perf_counter()
        result = spec_core.compare(a, b, method="exact")
        seconds = time.perf_counter() - clock
        p = result.params
        ref = shuffled_spec_diff(a, b, method="exact", sigma_a=p.sigma_a, sigma_b=p.sigma_b)
        print(
            f"{n:>6} {seconds:>10.2f} {ref.seconds:>12.2f} {result.spec_diff:>10.4g} "
            f"{ref.shuffled:>10.4g}"
        )


if __name__ == "__main__":
    main()
