"""`cache [--clear]`: what the disk cache holds (embeddings, with their model and dataset), or
clear it: the embeddings, the stored images and every upload kept for links."""

from __future__ import annotations

import argparse


def add(subparsers) -> None:
    p = subparsers.add_parser("cache", help="show or clear the cache (embeddings, images, uploads)")
    p.add_argument(
        "--clear",
        action="store_true",
        help="delete the embeddings, the stored images and every upload kept for links",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from spec_core.data.cache import EmbeddingCache, clear_all

    cache = EmbeddingCache()
    if args.clear:
        freed = clear_all(cache.root)
        for name in ("embeddings", "images", "uploads"):
            size = freed.get(name, 0)
            print(f"cleared {cache.root / name} ({size / 2**20:.1f} MiB)")
        return 0
    entries = cache.entries()
    print(
        f"{cache.folder}: {len(entries)} entries, {sum(e.bytes for e in entries) / 2**20:.1f} MiB"
    )
    for e in entries:
        m = e.meta
        print(
            f"  {e.key[:12]}  {m.get('model', '?'):<28} {m.get('modality', '?'):<6} "
            f"{m.get('shape')}  {m.get('dataset', '')}"
        )
    return 0
