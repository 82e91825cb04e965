"""`cache [--clear | --verify | --repair]`: what the disk cache holds (embeddings, with their
model and dataset), clear it (the embeddings, the stored images, every upload kept for links and
the damaged entries set aside), or check every entry: `--verify` reports what is damaged (exit
status 1 when something is), `--repair` moves the damaged entries aside, to `damaged/` under the
cache root, kept for inspection."""

from __future__ import annotations

import argparse


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "cache", help="show, check or clear the cache (embeddings, images, uploads)"
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--clear",
        action="store_true",
        help="delete the embeddings, the stored images, every upload kept for links and the "
        "damaged entries set aside",
    )
    what.add_argument(
        "--verify",
        action="store_true",
        help="check every entry (embedding checksums, upload manifests, stored images) and "
        "report the damaged ones (exit status 1 when there are any); changes nothing",
    )
    what.add_argument(
        "--repair",
        action="store_true",
        help="check every entry as --verify does and move the damaged ones aside, to damaged/ "
        "under the cache root (kept for inspection, not deleted)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from spec_core.data.cache import EmbeddingCache, clear_all

    cache = EmbeddingCache()
    if args.clear:
        freed = clear_all(cache.root)
        for name in ("embeddings", "images", "uploads", "damaged"):
            size = freed.get(name, 0)
            print(f"cleared {cache.root / name} ({size / 2**20:.1f} MiB)")
        return 0
    if args.verify or args.repair:
        import logging

        from spec_core.data.cache_check import describe, verify_cache
        from spec_core.data.integrity import LOG

        LOG.addHandler(logging.NullHandler())  # the report says what moved, once
        report = verify_cache(cache.root, repair=args.repair)
        print("\n".join(describe(report, repair=args.repair)))
        return 1 if report.damaged and not args.repair else 0
    entries = cache.entries()
    print(
        f"{cache.folder}: {len(entries)} entries, {sum(e.bytes for e in entries) / 2**20:.1f} MiB"
    )
    for e in entries:
        m = e.meta
        print(
            f"  {e.key[:12]}  {m.get('model', '?')!s:<28} {m.get('modality', '?')!s:<6} "
            f"{m.get('shape')}  {m.get('dataset', '')}"
        )
    return 0
