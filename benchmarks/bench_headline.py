"""The headline case through the command line, with every trust signal on: n = 4,000,
d_A = 512, d_B = 768 (float32 .npy files, read as memory maps), Gaussian, rff with 2 x 2,000
features. Work is timed after the imports (the CLI's start-up is the same for every run).

    python benchmarks/bench_headline.py [--n 4000] [--repeat 3]

Prints, best of --repeat, the whole `compare` command (read, compare, write the JSON) with
the defaults (every trust signal: stability, context metrics, noise floor), the same with
the modes one eigenvector each (`--groups eigenvectors`, the default before issue 16), then without
stability, uncentred, and the bare route (no stability, no context metrics), each with its
stages; the ratios are of runs in this one process. Beside each wall time, the CPU time of
the same run (this process's): on a machine shared with other jobs, the wall time grows with
their load and the CPU time much less, so both are printed (and the load average).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's spec_core
sys.path.insert(1, str(Path(__file__).resolve().parent))
from _data import clustered_pair

from spec_core.cli.entry import main as cli


def run(folder: Path, extra: list[str], repeat: int) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds, stage timings) of the best of `repeat` runs."""
    best, cpu, timings = float("inf"), 0.0, {}
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli(
                [
                    "compare",
                    str(folder / "a.npy"),
                    str(folder / "b.npy"),
                    "--method",
                    "rff",
                    "--n-features",
                    "2000",
                    "--out",
                    str(folder / "r.json"),
                    "--quiet",
                    *extra,
                ]
            )
        seconds, used = time.perf_counter() - start, time.process_time() - start_cpu
        assert code == 0
        if seconds < best:
            best, cpu = seconds, used
            timings = json.loads((folder / "r.json").read_text())["timings"]
    return best, cpu, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    a, b = clustered_pair(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "a.npy", a)
        np.save(folder / "b.npy", b)
        run(folder, ["--no-stability"], 1)  # warm-up: first-call costs of torch and LAPACK
        rows = [
            ("defaults: every trust signal", []),
            ("defaults, --groups eigenvectors (before #16)", ["--groups", "eigenvectors"]),
            ("without stability", ["--no-stability"]),
            ("without stability, uncentred", ["--no-stability", "--no-centre"]),
            ("bare (no stability, no context metrics)", ["--no-stability", "--no-context"]),
        ]
        base = None
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"n = {args.n}, d = 512 / 768, rff 2 x 2000, best of {args.repeat}; load {load}")
        for name, extra in rows:
            seconds, cpu, timings = run(folder, extra, args.repeat)
            base = base or seconds
            stages = ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
            print(
                f"{name:<40} {seconds:6.2f} s (CPU {cpu:5.2f} s, {seconds / base:4.2f}x)  "
                f"[{stages}]"
            )
        print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
