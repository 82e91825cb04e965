"""`embed --model NAME --data DATA --out FILE.npy`: embed a dataset (a folder or .zip of
images, or a text file) with one model, through the embedding cache. The rows' ids go beside the
matrix (FILE.ids.json); with --shard-rows the rows go to a folder of .npy shards as they come,
never all in memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spec_core import checks as v
from spec_core.cli.common import (
    ProgressLine,
    refuse_full_folder,
    refuse_overwrite,
    write_json_atomic,
    write_npy_atomic,
)


def add(subparsers) -> None:
    p = subparsers.add_parser("embed", help="embed a dataset with one model (cached)")
    p.add_argument("--model", required=True, help="a registry name (see `models`)")
    p.add_argument(
        "--data",
        required=True,
        help="a folder or .zip of images, or a .txt/.csv/.tsv/.jsonl of texts",
    )
    p.add_argument(
        "--out",
        required=True,
        help="FILE.npy (the row ids go to FILE.ids.json), or with --shard-rows a FOLDER of shards",
    )
    p.add_argument(
        "--shard-rows",
        type=int,
        default=None,
        help="write .npy shards of this many rows with a manifest into the --out folder, as the "
        "rows come (for outputs larger than memory; the cache is not used)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="with --shard-rows: write into a --out folder that is not empty, replacing its "
        "manifest.json and ids.json and removing every part-NNNNN.npy this run did not write "
        "(an earlier, longer set's); other files stay",
    )
    p.add_argument(
        "--modality",
        choices=("image", "text"),
        default=None,
        help="image or text (default: the model's first that the data has)",
    )
    p.add_argument("--captions", default=None, help="captions/labels table for an image set")
    p.add_argument("--column", default=None, help="text column of a .csv/.tsv/.jsonl")
    p.add_argument(
        "--device", default="auto", choices=v.DEVICES, help="auto: a CUDA GPU when there is one"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="items per forward pass (default: the model's own batch size)",
    )
    p.add_argument(
        "--backend",
        default="local",
        choices=("local", "ray"),
        help="ray: batches through Ray Data on a pool of actors, one model per actor",
    )
    p.add_argument("--ray-address", default=None, help="a running Ray cluster (default: local)")
    p.add_argument("--actors", type=int, default=None, help="Ray actors (default: one per CPU/GPU)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from spec_core.models.registry import get_model

    out, ids_path = _check_outputs(args)
    if args.batch_size is not None:
        v.check_positive_int("--batch-size", args.batch_size)
    info = get_model(args.model)
    dataset, modality = _load_data(args, info.modalities)
    if args.actors is not None:
        v.check_positive_int("--actors", args.actors, maximum=4096)
    result, width = _embed_rows(args, dataset, modality, out)
    write_json_atomic(
        ids_path,
        {
            "ids": list(result.ids),
            "model": args.model,
            "modality": modality,
            "data": str(args.data),
            "skipped": [vars(s) for s in dataset.skipped],
        },
    )
    source = "cache" if result.cached else f"{result.seconds:.1f} s"
    print(
        f"{len(result.ids)} rows x {width} ({source}) -> {out}, {ids_path}; "
        f"{dataset.skipped_count:,} skipped"
    )
    return 0


def _check_outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """(where the rows go, where their ids go), checked before any work: a .npy file with
    FILE.ids.json beside it, or with --shard-rows a folder of shards with ids.json in it; in a
    folder that exists, never an input."""
    out = Path(args.out)
    if args.shard_rows is not None:
        ids_path = _check_shard_folder(args, out)
    else:
        ids_path = _check_npy_file(args, out)
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    if args.captions:
        refuse_overwrite(out, [Path(args.captions)], "--out")
    return out, ids_path


def _check_shard_folder(args: argparse.Namespace, out: Path) -> Path:
    """--out with --shard-rows: a folder outside the data, new or empty unless --overwrite."""
    from spec_core.data.shards import MANIFEST

    v.check_positive_int("--shard-rows", args.shard_rows)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{args.out}: with --shard-rows the output is a folder")
    if not args.overwrite:
        refuse_full_folder(out, MANIFEST)
    for name in (MANIFEST, "ids.json"):
        path = out / name
        if path.exists() and not path.is_file() and not path.is_symlink():
            raise ValueError(
                f"{path}: not a file (a folder?) where --overwrite would write the shards' "
                f"{name}; remove it or choose another --out"
            )
    data = Path(args.data).resolve()
    if out.resolve() == data or data in out.resolve().parents:
        raise ValueError(f"{args.out}: the output folder may not be inside the data")
    return out / "ids.json"


def _check_npy_file(args: argparse.Namespace, out: Path) -> Path:
    """--out without --shard-rows: a .npy file, neither it nor its ids file the data."""
    if out.suffix != ".npy":
        raise ValueError(f"{args.out}: the output must be a .npy file (or use --shard-rows)")
    ids_path = out.with_suffix(".ids.json")
    refuse_overwrite(out, [Path(args.data)], "--out")
    refuse_overwrite(ids_path, [Path(args.data)], "--out")
    return ids_path


def _load_data(args: argparse.Namespace, model_modalities: tuple[str, ...]):
    """(the dataset, the modality to embed): --modality, else the model's first that the data
    has. Skipped items and notes go to stderr."""
    from spec_core.data.datasets import load_dataset

    extra = {}
    if args.captions:
        extra["captions"] = args.captions
    if args.column:
        extra["column"] = args.column
    dataset = load_dataset(args.data, **extra)
    modality = args.modality or next((m for m in model_modalities if m in dataset.modalities), None)
    if modality is None or modality not in dataset.modalities or modality not in model_modalities:
        raise ValueError(
            f"{args.data} has {' and '.join(dataset.modalities)}; {args.model} embeds "
            f"{' and '.join(model_modalities)}"
        )
    for item in dataset.skipped:
        print(f"skipped {item.item}: {item.reason}", file=sys.stderr)
    for note in dataset.notes:
        print(f"note: {note}", file=sys.stderr)
    return dataset, modality


def _embed_rows(args: argparse.Namespace, dataset, modality: str, out: Path):
    """(the embedding result, its width), the matrix written to `out` (a .npy, or shards as
    the rows come). With --backend ray the actors load the model; nothing is loaded here."""
    from spec_core.data.cache import EmbeddingCache
    from spec_core.data.shards import MANIFEST, ShardWriter, remove_other_parts
    from spec_core.models.embed import embed
    from spec_core.models.registry import load_encoder

    sharded = args.shard_rows is not None
    remote = args.backend == "ray"
    encoder = args.model if remote else load_encoder(args.model, modality, device=args.device)
    if sharded and args.overwrite:  # asked for: the earlier set's manifest goes, then its parts
        (out / MANIFEST).unlink(missing_ok=True)
    writer = ShardWriter(out, shard_rows=args.shard_rows) if sharded else None
    result = embed(
        dataset,
        encoder,
        modality,
        cache=None if args.no_cache else EmbeddingCache(),
        batch_size=args.batch_size,
        progress=None if args.quiet else ProgressLine(),
        backend=args.backend,
        ray_address=args.ray_address,
        actors=args.actors,
        device=args.device,
        sink=writer.add if writer is not None else None,
    )
    if writer is not None:
        width = writer.close().shape[1]
        if args.overwrite:  # an earlier, longer set's parts: a reader globbing part-*.npy
            removed = remove_other_parts(out, [entry["file"] for entry in writer.entries])
            if removed:
                print(f"removed {len(removed)} part file(s) of an earlier set", file=sys.stderr)
        return result, width
    write_npy_atomic(out, result.matrix)
    return result, result.matrix.shape[1]
