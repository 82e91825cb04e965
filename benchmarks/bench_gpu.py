"""GPU figures for the README (run by benchmarks/gpu_check.sh on a machine with a CUDA device).

    python benchmarks/bench_gpu.py [--device cuda] [--small]

Prints, one line each (the card's name first):
- compare at n = 100,000 and 1,000,000 (rff and nystrom, 2 x 2,000 features, d = 512 / 768,
  float32, no stability, no context metrics): seconds and the stages;
- exact at n = 20,000 (the n x n route): seconds;
- SPEC-align on the planted case (1,500 rows, 300 steps): seconds;
- embedding throughput: a random-init open_clip ViT-B-32 on random 224 px images at batch 256
  under autocast (float16), images/s; and the offline models that are installed (others are
  listed as skipped).
--small shrinks every size (a dry run of the script on a CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import clustered_pair, emoji_rows


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _compare(n: int, method: str, device: str, n_features: int = 2000) -> None:
    from spec_core import compare

    a, b = clustered_pair(n)
    kw = dict(method=method, n_features=n_features, device=device, stability=False, context=False)
    compare(a[:2000], b[:2000], **kw)  # warm-up: kernels, cuBLAS handles
    _sync(device)
    start = time.perf_counter()
    result = compare(a, b, **kw)
    _sync(device)
    seconds = time.perf_counter() - start
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items())
    print(f"compare {method:<8} n = {n:>9,}: {seconds:7.2f} s ({stages})", flush=True)


def _align(device: str, steps: int) -> None:
    from spec_core.align.train import align
    from spec_core.engine.synthetic import merged_pair

    a, b, labels = merged_pair(n=1500)
    start = time.perf_counter()
    result = align(a, b, labels=labels, steps=steps, device=device)
    seconds = time.perf_counter() - start
    sd = result.spec_diff
    print(
        f"align planted (1,500 rows, {steps} steps): {seconds:.1f} s (train "
        f"{result.timings['train']:.1f}); validation SPEC-diff {sd['before']['val']:.4f} -> "
        f"{sd['after']['val']:.4f}",
        flush=True,
    )


def _open_clip(device: str, batch: int, repeats: int) -> None:
    try:
        import open_clip
    except ImportError:
        print("embed open_clip ViT-B-32: skipped (open_clip is not installed)", flush=True)
        return
    import torch

    model, _, _ = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    model = model.to(device).eval()
    images = torch.randn(batch, 3, 224, 224, device=device)
    amp = device.startswith("cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        model.encode_image(images)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model.encode_image(images)
        _sync(device)
    rate = batch * repeats / (time.perf_counter() - start)
    print(
        f"embed open_clip ViT-B-32 (random init, batch {batch}, "
        f"{'AMP float16' if amp else 'float32'}): {rate:,.0f} images/s",
        flush=True,
    )


def _offline_models(device: str, rows: int) -> None:

    from spec_core.models.embed import embed
    from spec_core.models.registry import load_encoder

    data = emoji_rows(rows, "gpu")
    n = len(data)
    for name, modality in (
        ("efficientnet-lite0", "image"),
        ("opennsfw-resnet50", "image"),
        ("minilm-l6", "text"),
        ("e5-small", "text"),
    ):
        try:
            encoder = load_encoder(name, modality, device=device)
        except Exception as err:  # a package missing on the GPU machine: say so, go on
            print(f"embed {name}: skipped ({type(err).__name__}: {err})"[:160], flush=True)
            continue
        start = time.perf_counter()
        embed(data, encoder, modality, cache=None)
        rate = n / (time.perf_counter() - start)
        print(f"embed {name} ({modality}, {n} emoji): {rate:,.0f} items/s", flush=True)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny sizes: a dry run")
    args = parser.parse_args()
    device = args.device
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    sizes = [4000, 8000] if args.small else [100_000, 1_000_000]
    for n in sizes:
        for method in ("rff", "nystrom"):
            _compare(n, method, device)
    _compare(3000 if args.small else 20_000, "exact", device)
    _align(device, 30 if args.small else 300)
    _open_clip(device, 8 if args.small else 256, 1 if args.small else 10)
    _offline_models(device, 16 if args.small else 540)


if __name__ == "__main__":
    main()
