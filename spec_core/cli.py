"""Command line: `python -m spec_core compare A B --out result.json` (and more subcommands).

Bad input ends with a one-line message on stderr naming the file and the problem, and exit
status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from spec_core import _validation as v


class ProgressLine:
    """A single self-updating progress line on stderr: 'stage  done/total  pct  elapsed'."""

    def __init__(self, stream=None, *, min_interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._last = 0.0
        self._start = time.perf_counter()
        self._stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        final = done >= total
        if stage == self._stage and not final and now - self._last < self.min_interval:
            return
        self._last, self._stage = now, stage
        pct = 100.0 * done / total if total else 100.0
        line = f"{stage:<20} {done:>9}/{total:<9} {pct:5.1f}%  {now - self._start:6.1f}s"
        if self.stream.isatty():  # one line that updates in place
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:  # logs: one line per update
            self.stream.write(line + "\n")
        self.stream.flush()


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="SPEC comparison of two embedding files of the same rows")
    p.add_argument("a", help="embedding A: .npy, .npz[:key], .csv, .tsv or .parquet")
    p.add_argument("b", help="embedding B, rows in the same order as A")
    p.add_argument("--kernel", default="gaussian", choices=v.KERNELS)
    p.add_argument("--sigma-a", type=float, default=None, help="Gaussian bandwidth for A")
    p.add_argument("--sigma-b", type=float, default=None, help="Gaussian bandwidth for B")
    p.add_argument("--eta", type=float, default=1.0)
    p.add_argument("--method", default="auto", choices=v.METHODS)
    p.add_argument("--n-features", type=int, default=2000)
    p.add_argument("--n-modes", type=int, default=5)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=v.DEVICES)
    p.add_argument("--dtype", default="float32", choices=v.DTYPES)
    p.add_argument("--scores", action="store_true", help="also write every row's mode scores")
    p.add_argument("--out", required=True, help="where to write the result JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from spec_core.io import load_matrix
    from spec_core.spec import compare

    emb_a = load_matrix(args.a)
    emb_b = load_matrix(args.b)
    if emb_a.shape[0] != emb_b.shape[0]:
        raise ValueError(
            f"{args.a} has {emb_a.shape[0]} rows but {args.b} has {emb_b.shape[0]}: "
            "A and B must be the same samples, row for row"
        )
    out = Path(args.out)
    if not out.parent.is_dir():
        raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    result = compare(
        emb_a,
        emb_b,
        kernel=args.kernel,
        sigma_a=args.sigma_a,
        sigma_b=args.sigma_b,
        eta=args.eta,
        method=args.method,
        n_features=args.n_features,
        n_modes=args.n_modes,
        top_k=args.top_k,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        progress=None if args.quiet else ProgressLine(),
    )
    payload = result.to_dict(include_sample_scores=args.scores)
    payload["inputs"] = {"a": str(args.a), "b": str(args.b)}
    _write_json_atomic(out, payload)
    print(result.summary())
    print(f"wrote {out}")
    return 0


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the model registry")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from spec_core.models import list_models

    models = list_models()
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=1))
        return 0
    print(f"{'name':<38} {'modality':<11} {'dim':>5}  {'offline':<8} summary")
    for m in models:
        dim = str(m.dim) if m.dim else "?"
        offline = "yes" if m.offline else "download"
        print(f"{m.name:<38} {'+'.join(m.modalities):<11} {dim:>5}  {offline:<8} {m.summary}")
    print(
        "\nalso: open_clip:ARCH/TAG (any open_clip pretrained pair), "
        "open_clip:ARCH@/path/weights, st:NAME_OR_FOLDER (sentence-transformers)"
    )
    return 0


def _add_embed(sub) -> None:
    p = sub.add_parser("embed", help="embed a dataset with one model (cached)")
    p.add_argument("--model", required=True, help="a registry name (see `models`)")
    p.add_argument(
        "--data",
        required=True,
        help="a folder or .zip of images, or a .txt/.csv/.tsv/.jsonl of texts",
    )
    p.add_argument("--out", required=True, help="FILE.npy; the row ids go to FILE.ids.json")
    p.add_argument(
        "--modality",
        choices=("image", "text"),
        default=None,
        help="image or text (default: the model's first that the data has)",
    )
    p.add_argument("--captions", default=None, help="captions/labels table for an image set")
    p.add_argument("--column", default=None, help="text column of a .csv/.tsv/.jsonl")
    p.add_argument("--device", default="auto", choices=v.DEVICES)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_run_embed)


def _run_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from spec_core.cache import EmbeddingCache
    from spec_core.datasets import load_dataset
    from spec_core.embed import embed
    from spec_core.models import get_model, load_encoder

    out = Path(args.out)
    if out.suffix != ".npy":
        raise ValueError(f"{args.out}: the output must be a .npy file")
    if not out.parent.is_dir():
        raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    if args.batch_size is not None:
        v.check_positive_int("--batch-size", args.batch_size)
    info = get_model(args.model)
    extra = {}
    if args.captions:
        extra["captions"] = args.captions
    if args.column:
        extra["column"] = args.column
    dataset = load_dataset(args.data, **extra)
    modality = args.modality or next((m for m in info.modalities if m in dataset.modalities), None)
    if modality is None or modality not in dataset.modalities or modality not in info.modalities:
        raise ValueError(
            f"{args.data} has {' and '.join(dataset.modalities)}; {args.model} embeds "
            f"{' and '.join(info.modalities)}"
        )
    for item in dataset.skipped:
        print(f"skipped {item.item}: {item.reason}", file=sys.stderr)
    for note in dataset.notes:
        print(f"note: {note}", file=sys.stderr)
    encoder = load_encoder(args.model, modality, device=args.device)
    result = embed(
        dataset,
        encoder,
        modality,
        cache=None if args.no_cache else EmbeddingCache(),
        batch_size=args.batch_size,
        progress=None if args.quiet else ProgressLine(),
    )
    np.save(out, result.matrix, allow_pickle=False)
    ids_path = out.with_suffix(".ids.json")
    _write_json_atomic(
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
        f"{len(result.ids)} rows x {result.matrix.shape[1]} ({source}) -> {out}, {ids_path}; "
        f"{len(dataset.skipped)} skipped"
    )
    return 0


def _add_cache(sub) -> None:
    p = sub.add_parser("cache", help="show or clear the cache (embeddings, images, uploads)")
    p.add_argument(
        "--clear",
        action="store_true",
        help="delete the embeddings, the stored images and every upload kept for links",
    )
    p.set_defaults(run=_run_cache)


def _run_cache(args: argparse.Namespace) -> int:
    from spec_core.cache import EmbeddingCache, clear_all

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


COMMANDS: list[Callable] = [_add_compare, _add_models, _add_embed, _add_cache]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spec_core",
        description="SPEC Explorer: see which groups of samples one embedding clusters and the "
        "other does not.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, RuntimeError) as err:  # ModelLoadError is a RuntimeError
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
