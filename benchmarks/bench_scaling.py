"""Scaling of the feature route in n: time and peak memory at n = 10k, 40k, 160k, 1M.

    python benchmarks/bench_scaling.py [--sizes 10000 40000 160000 1000000] [--n-features 1000]

Each size runs in a fresh process so that its peak resident memory (ru_maxrss) is its own.
The inputs alone take n x (d_A + d_B) x 4 bytes; the column 'beyond inputs' is the rest.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(n: int, dim_a: int, dim_b: int, n_features: int, method: str) -> dict:
    sys.path.insert(0, str(HERE))
    from _data import clustered_pair

    from spec_core import compare

    a, b = clustered_pair(n, dim_a, dim_b)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    result = compare(a, b, method=method, n_features=n_features, context=False)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "n": n,
        "seconds": elapsed,
        "peak_gib": peak,
        "inputs_gib": (a.nbytes + b.nbytes) / 2**30,
        "before_gib": base,
        "timings": result.timings,
        "top": float(result.eigenvalues[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 40_000, 160_000, 1_000_000]
    )
    parser.add_argument("--dim-a", type=int, default=512)
    parser.add_argument("--dim-b", type=int, default=768)
    parser.add_argument("--n-features", type=int, default=1000)
    parser.add_argument("--method", default="rff")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.dim_a, args.dim_b, args.n_features, args.method)))
        return
    print(f"{args.method}, D={args.n_features} per embedding, d_A={args.dim_a}, d_B={args.dim_b}")
    print(
        f"{'n':>9} {'seconds':>8} {'s per 10k':>9} {'peak GiB':>9} {'inputs GiB':>10} "
        f"{'beyond inputs':>13}"
    )
    for n in args.sizes:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(n),
                "--dim-a",
                str(args.dim_a),
                "--dim-b",
                str(args.dim_b),
                "--n-features",
                str(args.n_features),
                "--method",
                args.method,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{n:>9} {row['seconds']:>8.2f} {1e4 * row['seconds'] / n:>9.3f} "
            f"{row['peak_gib']:>9.2f} {row['inputs_gib']:>10.2f} "
            f"{row['peak_gib'] - row['inputs_gib']:>13.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
