"""SPEC-align's training time with 1 and with 2 torch threads, in one run (the choice behind
`align --threads`'s default).

    python benchmarks/bench_align_threads.py [--repeats 3] [--steps 60]

For each case the same seeded `align` call (start="identity", patience large, so every run
takes all `steps` steps) with torch.set_num_threads(1) and (2), alternated `repeats` times; it
prints the best and the median training seconds per step of each and their ratio, and the
machine's load average before and after (times on a shared machine move with its load).

Cases: the planted blobs (1,500 rows, 32 dims: batch 512, adapter 32 x 32) and a demo-sized
pair of random features (540 rows, 384 and 1,280 dims: every row a batch, adapter 1,280 x
1,280), the sizes the app and the README's benchmarks train.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from spec_core.align import align
from spec_core.align.threads import torch_threads
from spec_core.engine.synthetic import merged_pair


def _cases():
    a, b, _ = merged_pair(n=1500, seed=0)
    rng = np.random.default_rng(0)
    wide_a = rng.normal(size=(540, 384)).astype(np.float32)
    wide_b = np.maximum(wide_a @ rng.normal(size=(384, 1280)), 0).astype(np.float32)
    return [("planted blobs 1,500 x 32", a, b), ("demo-sized 540 x 384 / 1,280", wide_a, wide_b)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}")
    for name, a, b in _cases():
        per_step: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for threads in (1, 2):
                with torch_threads(threads):
                    result = align(
                        a, b, steps=args.steps, start="identity", patience=10_000,
                        eval_every=args.steps,
                    )  # fmt: skip
                per_step[threads].append(result.timings["train"] / result.params["steps_run"])
        best = {t: min(v) for t, v in per_step.items()}
        median = {t: float(np.median(v)) for t, v in per_step.items()}
        print(
            f"{name}: s/step 1 thread best {best[1]:.4f} median {median[1]:.4f}; "
            f"2 threads best {best[2]:.4f} median {median[2]:.4f}; "
            f"2/1 best {best[2] / best[1]:.2f}x median {median[2] / median[1]:.2f}x",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
