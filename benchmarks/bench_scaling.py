"""Scaling of the feature route in n, every trust signal on: time and peak memory at n = 10k,
40k, 160k, 1M.

    python benchmarks/bench_scaling.py [--sizes 10000 40000 160000 1000000] [--n-features 1000]
                                       [--bare] [--no-blas]

Each size runs in a fresh process so that its peak resident memory (ru_maxrss) is its own;
torch's import and first calls are made (on 300 rows) before the clock starts.
The inputs alone take n x (d_A + d_B) x 4 bytes; the column 'beyond start' is the peak less the
process's peak before the comparison started (the inputs made): what the comparison itself
adds. The comparison runs with
its defaults (stability resamples, context metrics, noise floor); --bare turns stability and
the context metrics off. Besides the wall time: the CPU time of the process (on a machine
shared with other jobs, the wall time grows with their load), the stages, and the load
average. Last, the bare-BLAS figure: the same products the feature route must do over the
largest n (the feature maps' products and sines and cosines twice, once per pass, and the
Gram's three blocks), timed on a share of the rows in blocks as the engine cuts them and
scaled to n: the physical limit of this CPU for the route.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(n: int, dim_a: int, dim_b: int, n_features: int, method: str, bare: bool) -> dict:
    sys.path.insert(0, str(HERE.parent))  # this checkout's spec_core
    sys.path.insert(1, str(HERE))
    from _data import clustered_pair

    from spec_core import compare

    a, b = clustered_pair(n, dim_a, dim_b)
    compare(a[:300], b[:300], method=method, n_features=n_features)  # imports, first calls
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    signals = {"stability": False, "context": False} if bare else {}
    start, start_cpu = time.perf_counter(), time.process_time()
    result = compare(a, b, method=method, n_features=n_features, **signals)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "n": n,
        "seconds": elapsed,
        "cpu": cpu,
        "peak_gib": peak,
        "inputs_gib": (a.nbytes + b.nbytes) / 2**30,
        "before_gib": base,
        "timings": result.timings,
        "top": float(result.eigenvalues[0]),
    }


def blas(n: int, dim_a: int, dim_b: int, n_features: int, rows: int = 100_000) -> tuple:
    """(seconds for the route's products over n rows, scaled from `rows` of them; CPU seconds,
    scaled): two passes of the feature maps (x W, cos, sin) and one of the Gram (A^T A, B^T B,
    A^T B), in float32, in the engine's row blocks."""
    import torch

    half = n_features // 2
    step = int(min(65536, max(256, 2**24 // (4 * half + dim_a + dim_b))))
    rows = min(rows, n)
    gen = torch.Generator().manual_seed(0)
    w_a = torch.randn(dim_a, half, generator=gen)
    w_b = torch.randn(dim_b, half, generator=gen)
    x_a = torch.randn(step, dim_a, generator=gen)
    x_b = torch.randn(step, dim_b, generator=gen)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _block in range(-(-rows // step)):
        for _ in range(2):  # the Gram pass and the score pass both make the features
            proj_a, proj_b = x_a @ w_a, x_b @ w_b
            phi_a = torch.cat([proj_a.cos(), proj_a.sin()], 1)
            phi_b = torch.cat([proj_b.cos(), proj_b.sin()], 1)
        _ = phi_a.T @ phi_a, phi_b.T @ phi_b, phi_a.T @ phi_b
    scale = n / (step * -(-rows // step))
    return (time.perf_counter() - start) * scale, (time.process_time() - start_cpu) * scale


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 40_000, 160_000, 1_000_000]
    )
    parser.add_argument("--dim-a", type=int, default=512)
    parser.add_argument("--dim-b", type=int, default=768)
    parser.add_argument("--n-features", type=int, default=1000)
    parser.add_argument("--method", default="rff")
    parser.add_argument("--bare", action="store_true", help="stability and context off")
    parser.add_argument("--no-blas", action="store_true", help="skip the bare-BLAS figure")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        row = one(args.one, args.dim_a, args.dim_b, args.n_features, args.method, args.bare)
        print(json.dumps(row))
        return
    signals = "bare (no stability, no context)" if args.bare else "every trust signal"
    print(
        f"{args.method}, D={args.n_features} per embedding, d_A={args.dim_a}, "
        f"d_B={args.dim_b}, {signals}; threads {os.environ.get('OMP_NUM_THREADS', 'default')}"
    )
    print(
        f"{'n':>9} {'seconds':>8} {'CPU s':>8} {'s per 10k':>9} {'peak GiB':>9} "
        f"{'inputs GiB':>10} {'beyond start':>13}  load   stages"
    )
    for n in args.sizes:
        command = [sys.executable, __file__, "--one", str(n), "--dim-a", str(args.dim_a)]
        command += ["--dim-b", str(args.dim_b), "--n-features", str(args.n_features)]
        command += ["--method", args.method] + (["--bare"] if args.bare else [])
        proc = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        stages = ", ".join(f"{k} {v:.1f}" for k, v in row["timings"].items())
        print(
            f"{n:>9} {row['seconds']:>8.2f} {row['cpu']:>8.2f} "
            f"{1e4 * row['seconds'] / n:>9.3f} {row['peak_gib']:>9.2f} "
            f"{row['inputs_gib']:>10.2f} {row['peak_gib'] - row['before_gib']:>13.2f}  "
            f"{os.getloadavg()[0]:4.1f}   [{stages}]",
            flush=True,
        )
    if not args.no_blas:
        n = max(args.sizes)
        seconds, cpu = blas(n, args.dim_a, args.dim_b, args.n_features)
        print(f"bare BLAS, the same products at n = {n}: {seconds:.1f} s (CPU {cpu:.1f} s)")


if __name__ == "__main__":
    main()
