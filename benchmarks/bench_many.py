"""compare_many against the pairwise compare calls it replaces, in the same run: N = 5 embeddings
of the same n = 20,000 rows (d = 384, 512, 768, 896, 1024), Gaussian, rff with 2,000 features
each, every other parameter at its default (stability resamples and context metrics included).

    python benchmarks/bench_many.py [--n 20000] [--n-features 2000] [--models 5] [--no-evidence]

Each side runs in a fresh process on the same seeded matrices (written once to a temporary
folder), so its peak resident memory (ru_maxrss) is its own; "beyond the inputs" subtracts the
process's peak before the comparison started (the matrices loaded). Prints both times (wall and
the process's CPU time: on a machine shared with other jobs the wall time grows with their
load), their ratios, both peaks, compare_many's shared stages and its pairs' own work, and
the largest difference between a pair's eigenvalues and the pairwise compare's (relative to
SPEC-diff).
--no-evidence turns the stability resamples and context metrics off on both sides (the
spectra alone).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's spec_core

DIMS = (384, 512, 768, 896, 1024, 640, 448, 576)


def make_models(n: int, count: int, folder: Path, seed: int = 0) -> list[Path]:
    """`count` embeddings of n rows (float32, d from DIMS) written as .npy: one set of 60 latent
    groups, each model keeping some of them apart, merging others and spreading a share of the
    rows out, so that every pair differs in some groups."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 60, n)
    paths = []
    for m in range(count):
        dim = DIMS[m]
        merge = rng.permutation(60) % (60 - 10 * m // 2 or 1)  # model m merges more groups
        centres = rng.normal(size=(60, dim)).astype(np.float32)
        matrix = centres[merge[groups]] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
        spread = rng.random(n) < 0.05 * (m + 1)
        matrix[spread] = 2.0 * rng.standard_normal((int(spread.sum()), dim), dtype=np.float32)
        paths.append(folder / f"model{m}_d{dim}.npy")
        np.save(paths[-1], matrix)
    return paths


def run_side(side: str, paths: list[str], kwargs: dict) -> dict:
    """One side in this process: load the matrices, then time compare_many or every pair's
    compare; the peak memory before and after; every pair's eigenvalues."""
    from spec_core import compare, compare_many

    matrices = {Path(p).stem: np.load(p) for p in paths}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start, start_cpu = time.perf_counter(), time.process_time()
    stages: dict[str, float] = {}
    if side == "many":
        many = compare_many(matrices, **kwargs)
        spectra = {f"{a}|{b}": r.eigenvalues.tolist() for (a, b), r in many.pairs.items()}
        stages = {k: v for k, v in many.timings.items()}
    else:
        names = list(matrices)
        spectra = {}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                result = compare(matrices[a], matrices[b], **kwargs)
                spectra[f"{a}|{b}"] = result.eigenvalues.tolist()
                for stage, seconds in result.timings.items():
                    stages[stage] = stages.get(stage, 0.0) + seconds
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "seconds": seconds,
        "cpu": cpu,
        "before_gib": before,
        "peak_gib": peak,
        "stages": stages,
        "spectra": spectra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=2000)
    parser.add_argument("--models", type=int, default=5, choices=range(2, len(DIMS) + 1))
    parser.add_argument("--no-evidence", action="store_true")
    parser.add_argument("--side", choices=("many", "pairwise"), help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    kwargs = {"method": "rff", "n_features": args.n_features}
    if args.no_evidence:
        kwargs.update(stability=False, context=False)
    if args.side:
        print(json.dumps(run_side(args.side, args.paths, kwargs)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_models(args.n, args.models, Path(tmp))
        dims = [int(np.load(p, mmap_mode="r").shape[1]) for p in paths]
        pairs = args.models * (args.models - 1) // 2
        print(
            f"{args.models} embeddings of n = {args.n:,} rows, d = {dims}, rff "
            f"{args.n_features:,} features each, {pairs} pairs"
            + (", no stability or context" if args.no_evidence else ", defaults otherwise"),
            flush=True,
        )
        results = {}
        for side in ("many", "pairwise"):
            command = [sys.executable, __file__, "--side", side, "--paths", *map(str, paths)]
            command += ["--n", str(args.n), "--n-features", str(args.n_features)]
            command += ["--no-evidence"] if args.no_evidence else []
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
            row = results[side]
            label = "compare_many" if side == "many" else f"{pairs} x compare"
            print(
                f"{label:<14} {row['seconds']:8.1f} s (CPU {row['cpu']:.1f} s, load "
                f"{os.getloadavg()[0]:.1f})   peak {row['peak_gib']:.2f} GiB "
                f"({row['peak_gib'] - row['before_gib']:.2f} GiB beyond the inputs)",
                flush=True,
            )
    many, pairwise = results["many"], results["pairwise"]
    print(
        f"ratio (pairwise / compare_many): {pairwise['seconds'] / many['seconds']:.2f}x "
        f"(CPU time: {pairwise['cpu'] / many['cpu']:.2f}x)"
    )
    print("compare_many stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in many["stages"].items()))
    print("pairwise stages (summed): " + ", ".join(
        f"{k} {v:.1f} s" for k, v in pairwise["stages"].items()
    ))  # fmt: skip
    gaps = []
    for pair, values in many["spectra"].items():
        theirs = np.asarray(pairwise["spectra"][pair])
        gaps.append(np.abs(np.asarray(values) - theirs).max() / np.abs(theirs).max())
    print(f"largest eigenvalue difference of a pair: {max(gaps):.1e} of its SPEC-diff")


if __name__ == "__main__":
    main()
