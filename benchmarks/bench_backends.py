"""The same comparison through the local and the Ray backend: n rows (default 1,000,000) of
d = 512 / 768 float32 stored as shards, Gaussian, rff with 2 x --n-features features, no
stability or context metrics (the passes over the rows are what the backends change).

    python benchmarks/bench_backends.py [--n 1000000] [--n-features 1000] [--shard-rows 250000]

Prints for each backend the seconds, the stages, and the feature pass's throughput (rows/s of
features + Gram), and checks that the eigenvalues agree. Ray runs on a local Ray here (all the
machine's CPUs); on a cluster pass --ray-address.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import clustered_pair

from spec_core import compare
from spec_core.data.shards import write_shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=1000)
    parser.add_argument("--shard-rows", type=int, default=250_000)
    parser.add_argument("--ray-address", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clock = time.perf_counter()
        a, b = clustered_pair(args.n)
        sa = write_shards(a, Path(tmp) / "a", shard_rows=args.shard_rows)
        sb = write_shards(b, Path(tmp) / "b", shard_rows=args.shard_rows)
        del a, b
        print(
            f"n = {args.n:,}, d = 512 / 768, rff 2 x {args.n_features}, "
            f"{len(sa.rows)} shards of <= {args.shard_rows:,} rows "
            f"({time.perf_counter() - clock:.0f} s to generate and write)",
            flush=True,
        )
        kw = dict(method="rff", n_features=args.n_features, stability=False, context=False)
        results = {}
        for backend in ("local", "ray"):
            extra = {"ray_address": args.ray_address} if backend == "ray" else {}
            clock = time.perf_counter()
            result = compare(sa, sb, backend=backend, **kw, **extra)
            seconds = time.perf_counter() - clock
            results[backend] = result
            t = result.timings
            rate = args.n / t["features"] if t.get("features") else float("nan")
            stages = ", ".join(f"{k} {v:.1f}" for k, v in t.items())
            print(
                f"{backend:<6} {seconds:7.1f} s ({stages}); feature pass {rate:,.0f} rows/s",
                flush=True,
            )
        gap = np.abs(results["ray"].eigenvalues - results["local"].eigenvalues).max()
        ratio = sum(results["ray"].timings.values()) / sum(results["local"].timings.values())
        print(f"max |eigenvalue difference| {gap:.2e}; ray / local time {ratio:.2f}")


if __name__ == "__main__":
    main()
