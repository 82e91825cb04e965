"""Command line: `python -m spec_core compare A B --out result.json` (and more subcommands).

Bad input ends with a one-line message on stderr naming the file and the problem, and exit
status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from spec_core import checks as v


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
    from spec_core.config import DEFAULTS

    p = sub.add_parser("compare", help="SPEC comparison of two embedding files of the same rows")
    p.add_argument("a", help="embedding A: .npy, .npz[:key], .csv, .tsv or .parquet")
    p.add_argument(
        "b",
        help="embedding B: rows matched to A's by an 'id' column (tables) or 'ids' array (.npz) "
        "when both files have one, else by order",
    )
    p.add_argument("--kernel", default=DEFAULTS.kernel, choices=v.KERNELS)
    p.add_argument("--sigma-a", type=float, default=None, help="Gaussian bandwidth for A")
    p.add_argument("--sigma-b", type=float, default=None, help="Gaussian bandwidth for B")
    p.add_argument(
        "--sigma-rule",
        default=DEFAULTS.sigma_rule,
        choices=v.SIGMA_RULES,
        help="data-driven bandwidth when --sigma-a/--sigma-b are not given",
    )
    p.add_argument(
        "--sigma-scale",
        type=float,
        default=DEFAULTS.sigma_scale,
        help="multiply the data-driven bandwidths by this (see the `scales` command)",
    )
    p.add_argument(
        "--centre",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.centre,
        help="compare the centred kernels H K H (--no-centre: the paper's definition)",
    )
    p.add_argument("--eta", type=float, default=DEFAULTS.eta)
    p.add_argument("--method", default=DEFAULTS.method, choices=v.METHODS)
    p.add_argument("--n-features", type=int, default=DEFAULTS.n_features)
    p.add_argument("--n-modes", type=int, default=DEFAULTS.n_modes)
    p.add_argument("--top-k", type=int, default=DEFAULTS.top_k)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--device", default=DEFAULTS.device, choices=v.DEVICES)
    p.add_argument("--dtype", default=DEFAULTS.dtype, choices=v.DTYPES)
    p.add_argument(
        "--labels",
        default=None,
        help="a label per row, for each mode's purity: a .txt (one per line) or a .csv/.tsv "
        "with a 'label' column (and an 'id' column to match A's ids)",
    )
    p.add_argument(
        "--stability",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.stability,
        help="measure each mode's stability on resamples of the rows",
    )
    p.add_argument("--scores", action="store_true", help="also write every row's mode scores")
    p.add_argument(
        "--backend",
        default="local",
        choices=("local", "ray"),
        help="ray: the feature route's passes over the rows run as Ray tasks (one per shard)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="a running Ray cluster (default: start a local Ray on this machine)",
    )
    p.add_argument("--out", required=True, help="where to write the result JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from spec_core.config import DEFAULTS
    from spec_core.data.io import load_labels, split_key
    from spec_core.engine.compare import compare

    out = Path(args.out)
    _refuse_overwrite(out, [split_key(args.a)[0], split_key(args.b)[0]], "--out")
    if args.labels:
        _refuse_overwrite(out, [Path(args.labels)], "--out")
    if not out.parent.is_dir():
        raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    emb_a, ids_a, emb_b, notes = _load_pair(args.a, args.b)
    labels = load_labels(args.labels, ids=ids_a, n_rows=emb_a.shape[0]) if args.labels else None
    if args.backend == "ray" and args.method == "exact" and args.kernel == "gaussian":
        print(
            "note: --backend ray distributes the feature route (rff, nystrom, cosine); the exact "
            "Gaussian route runs here",
            file=sys.stderr,
        )
    config = DEFAULTS.replace(
        kernel=args.kernel,
        sigma_a=args.sigma_a,
        sigma_b=args.sigma_b,
        sigma_rule=args.sigma_rule,
        sigma_scale=args.sigma_scale,
        centre=args.centre,
        eta=args.eta,
        method=args.method,
        n_features=args.n_features,
        n_modes=args.n_modes,
        top_k=args.top_k,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        stability=args.stability,
    )
    with _naming_files(args.a, args.b):
        result = compare(
            emb_a,
            emb_b,
            **config.kwargs(),
            labels=labels,
            progress=None if args.quiet else ProgressLine(),
            backend=args.backend,
            ray_address=args.ray_address,
        )
    payload = result.to_dict(include_sample_scores=args.scores)
    payload["inputs"] = {"a": str(args.a), "b": str(args.b), "notes": notes}
    if ids_a is not None:
        for mode in payload["modes"]:
            mode["ids"] = [ids_a[i] for i in mode["members"]]
    _write_json_atomic(out, payload)
    print(_printable(result.summary()))
    print(f"wrote {out}")
    return 0


@contextlib.contextmanager
def _naming_files(name_a: str, name_b: str):
    """The engine says "A" and "B"; on the command line its messages name the files too."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"comparing {name_a} (A) with {name_b} (B): {err}") from None


def _refuse_overwrite(out: Path, inputs: list[Path], flag: str) -> None:
    """An output may never name an input (that would destroy the user's data), nor anything but
    a regular file in a folder we can write to: checked before any work starts."""
    if out.exists() and not out.is_file():
        what = "a folder" if out.is_dir() else "not a regular file"
        raise ValueError(f"{flag} {out} is {what}; name a file to write")
    if out.exists() and str(out.resolve()).startswith(("/proc/", "/sys/", "/dev/")):
        raise ValueError(f"{flag} {out} is a system file; name a file of your own")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.is_dir() and not os.access(parent, os.W_OK):
        raise ValueError(f"{flag} {out}: the folder {parent} cannot be written to")
    for source in inputs:
        same = out.resolve() == source.resolve()
        if not same and out.exists() and source.exists():
            try:
                same = out.samefile(source)
            except OSError:
                same = False
        if same:
            raise ValueError(f"{flag} {out} names an input file; choose another output path")


def _load_pair(name_a: str, name_b: str):
    """Both files, B's rows matched to A's (notes on stderr): (A, A's ids, B, notes)."""
    from spec_core.data.io import load_matrix_with_ids

    emb_a, ids_a = load_matrix_with_ids(name_a)
    emb_b, ids_b = load_matrix_with_ids(name_b)
    emb_b, notes = _match_rows(name_a, emb_a, ids_a, name_b, emb_b, ids_b)
    for note in notes:
        print(f"note: {_one_line(note)}", file=sys.stderr)
    return emb_a, ids_a, emb_b, notes


def _match_rows(name_a, emb_a, ids_a, name_b, emb_b, ids_b):
    """B's rows in A's order: by id when both files carry ids, else by order."""
    from spec_core.data.io import align_to_ids

    if ids_a is not None and ids_b is not None:
        return align_to_ids(emb_b, ids_b, ids_a, name=str(name_b))
    if emb_a.shape[0] != emb_b.shape[0]:
        raise ValueError(
            f"{name_a} has {emb_a.shape[0]} rows but {name_b} has {emb_b.shape[0]}: "
            "A and B must be the same samples, row for row (or both carry an 'id' column)"
        )
    notes = []
    if (ids_a is None) != (ids_b is None):
        which = name_a if ids_a is not None else name_b
        notes.append(f"only {which} has row ids: rows are matched by order")
    return emb_b, notes


def _write_json_atomic(path: Path, payload: dict) -> None:
    """Strict JSON (no NaN or Infinity tokens), written atomically (data.cache.atomic_write),
    so a reader never sees half a file."""
    from spec_core.data.cache import atomic_write

    text = json.dumps(payload, indent=1, allow_nan=False)
    atomic_write(path, text.encode(), mode=0o644)  # 0644: readable by the user's group


def _add_align(sub) -> None:
    import spec_core.align as al
    from spec_core.config import DEFAULTS

    p = sub.add_parser(
        "align",
        help="SPEC-align: train an adapter on B so that it captures what A captures",
        description="Trains an adapter g on top of B (frozen) to minimise SPEC-diff(A, g(B)) on "
        "train rows, early-stopped on validation rows it never trains on. Writes the aligned B "
        "(all rows, A's order), the adapter (OUT with .adapter.safetensors) and a JSON report.",
    )
    p.add_argument("a", help="embedding A, the reference: .npy, .npz[:key], .csv, .tsv, .parquet")
    p.add_argument("b", help="embedding B, the one to align (rows matched to A's as in compare)")
    p.add_argument("--out", required=True, help="ALIGNED.npy: the aligned B, every row")
    p.add_argument("--report", required=True, help="REPORT.json: before/after metrics")
    p.add_argument("--kernel", default=DEFAULTS.kernel, choices=al.KERNELS)
    p.add_argument("--adapter", default="linear", choices=al.ADAPTERS)
    p.add_argument("--val-fraction", type=float, default=al.DEFAULT_VAL_FRACTION)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--steps", type=int, default=al.DEFAULT_STEPS)
    p.add_argument("--batch-size", type=int, default=al.DEFAULT_BATCH)
    p.add_argument("--lr", type=float, default=al.DEFAULT_LR)
    p.add_argument(
        "--keep-weight",
        type=float,
        default=al.DEFAULT_KEEP_WEIGHT,
        help="weight of the term that keeps B close to itself (its mean squared change in units "
        "of B's spread)",
    )
    p.add_argument(
        "--target",
        default="both",
        choices=al.TARGETS,
        help="both: minimise SPEC-diff (close differences both ways); a-not-b: close only the "
        "groups A captures and B misses (B keeps its own)",
    )
    p.add_argument("--solver", default="eigh", choices=al.SOLVERS)
    p.add_argument("--sigma-scale", type=float, default=DEFAULTS.sigma_scale)
    p.add_argument("--centre", action=argparse.BooleanOptionalAction, default=DEFAULTS.centre)
    p.add_argument("--labels", default=None, help="labels per row, for label kNN accuracy")
    p.add_argument("--device", default=DEFAULTS.device, choices=v.DEVICES)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=_run_align)


def adapter_path(out: Path) -> Path:
    """Where `align --out X.npy` writes its adapter: X.adapter.safetensors beside it."""
    return out.with_suffix(".adapter.safetensors")


def _run_align(args: argparse.Namespace) -> int:
    from spec_core.align.train import align
    from spec_core.data.io import load_labels, split_key

    out, report_path = Path(args.out), Path(args.report)
    weights = adapter_path(out)
    if out.suffix != ".npy":
        raise ValueError(f"--out {args.out}: the aligned embedding is written as a .npy file")
    if report_path.suffix.lower() != ".json":
        raise ValueError(f"--report {args.report}: the report is written as a .json file")
    outputs = {out.resolve(), report_path.resolve(), weights.resolve()}
    if len(outputs) < 3:
        raise ValueError("--out and --report must name different files")
    inputs = [split_key(args.a)[0], split_key(args.b)[0]]
    if args.labels:
        inputs.append(Path(args.labels))
    for path, flag in ((out, "--out"), (report_path, "--report"), (weights, "--out (adapter)")):
        _refuse_overwrite(path, inputs, flag)
        if not (path.parent if str(path.parent) else Path(".")).is_dir():
            raise ValueError(f"{flag} {path}: the folder {path.parent} does not exist")
    emb_a, ids_a, emb_b, notes = _load_pair(args.a, args.b)
    labels = load_labels(args.labels, ids=ids_a, n_rows=emb_a.shape[0]) if args.labels else None
    with _naming_files(args.a, args.b):
        result = align(
            emb_a,
            emb_b,
            kernel=args.kernel,
            adapter=args.adapter,
            val_fraction=args.val_fraction,
            seed=args.seed,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            keep_weight=args.keep_weight,
            target=args.target,
            solver=args.solver,
            sigma_scale=args.sigma_scale,
            centre=args.centre,
            labels=labels,
            device=args.device,
            progress=None if args.quiet else ProgressLine(),
        )
    payload = result.to_dict()
    payload["inputs"] = {"a": str(args.a), "b": str(args.b), "notes": notes}
    payload["outputs"] = {"aligned": str(out), "adapter": str(weights)}
    if ids_a is not None:
        payload["val_ids"] = [ids_a[i] for i in result.val_rows.tolist()]
        payload["inputs"]["row_order"] = f"the aligned rows follow {args.a}'s ids"
    json.dumps(payload, allow_nan=False)  # a report that cannot be written: nothing written
    _write_npy_atomic(out, result.aligned)
    result.aligner.save(weights, {"a": str(args.a)})
    _write_json_atomic(report_path, payload)
    print(_printable(result.summary()))
    print(_printable(f"wrote {out}, {weights}, {report_path}"))
    return 0


def _write_npy_atomic(path: Path, matrix) -> None:
    import numpy as np

    from spec_core.data.cache import atomic_write

    atomic_write(path, lambda handle: np.save(handle, matrix, allow_pickle=False), mode=0o644)


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the model registry")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from spec_core.models.registry import list_models

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
        "manifest.json, ids.json and part-NNNNN.npy (other files stay)",
    )
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
    p.add_argument(
        "--backend",
        default="local",
        choices=("local", "ray"),
        help="ray: batches through Ray Data on a pool of actors, one model per actor",
    )
    p.add_argument("--ray-address", default=None, help="a running Ray cluster (default: local)")
    p.add_argument("--actors", type=int, default=None, help="Ray actors (default: one per CPU/GPU)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_run_embed)


def _run_embed(args: argparse.Namespace) -> int:

    from spec_core.data.cache import EmbeddingCache
    from spec_core.data.datasets import load_dataset
    from spec_core.data.shards import MANIFEST, ShardWriter
    from spec_core.models.embed import embed
    from spec_core.models.registry import get_model, load_encoder

    out = Path(args.out)
    sharded = args.shard_rows is not None
    if sharded:  # a folder of shards: rows go to disk as they come, never all in memory
        v.check_positive_int("--shard-rows", args.shard_rows)
        if out.exists() and not out.is_dir():
            raise ValueError(f"{args.out}: with --shard-rows the output is a folder")
        if not args.overwrite:
            _refuse_full_folder(out, MANIFEST)
        data = Path(args.data).resolve()
        if out.resolve() == data or data in out.resolve().parents:
            raise ValueError(f"{args.out}: the output folder may not be inside the data")
        ids_path = out / "ids.json"
    else:
        if out.suffix != ".npy":
            raise ValueError(f"{args.out}: the output must be a .npy file (or use --shard-rows)")
        ids_path = out.with_suffix(".ids.json")
        _refuse_overwrite(out, [Path(args.data)], "--out")
        _refuse_overwrite(ids_path, [Path(args.data)], "--out")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    if args.captions:
        _refuse_overwrite(out, [Path(args.captions)], "--out")
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
    if args.actors is not None:
        v.check_positive_int("--actors", args.actors, maximum=4096)
    remote = args.backend == "ray"  # the actors load the model; nothing is loaded here
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
    else:
        width = result.matrix.shape[1]
        _write_npy_atomic(out, result.matrix)
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
        f"{len(result.ids)} rows x {width} ({source}) -> {out}, {ids_path}; "
        f"{len(dataset.skipped)} skipped"
    )
    return 0


def _refuse_full_folder(out: Path, manifest: str) -> None:
    """The shards' --out folder must be new or empty: the shards, ids.json and the manifest
    would replace files of the same names there, which the user did not ask for."""
    if not out.is_dir():
        return
    held = sorted(entry.name for entry in out.iterdir())
    if not held:
        return
    what = "already holds shards" if manifest in held else "is not empty"
    shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
    raise ValueError(
        f"--out {out} {what} ({_one_line(shown)}); choose a new or empty folder, or pass "
        "--overwrite to write the shards there"
    )


def _add_cache(sub) -> None:
    p = sub.add_parser("cache", help="show or clear the cache (embeddings, images, uploads)")
    p.add_argument(
        "--clear",
        action="store_true",
        help="delete the embeddings, the stored images and every upload kept for links",
    )
    p.set_defaults(run=_run_cache)


def _run_cache(args: argparse.Namespace) -> int:
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


def _add_scales(sub) -> None:
    from spec_core.config import DEFAULTS
    from spec_core.engine.scales import DEFAULT_MULTIPLIERS

    p = sub.add_parser(
        "scales", help="the differential spectrum across bandwidths (Gaussian kernel)"
    )
    p.add_argument("a", help="embedding A (as for compare)")
    p.add_argument("b", help="embedding B (as for compare)")
    p.add_argument(
        "--multipliers",
        default=",".join(f"{m:g}" for m in DEFAULT_MULTIPLIERS),
        help="comma-separated multiples of the data-driven bandwidths",
    )
    p.add_argument("--n-modes", type=int, default=DEFAULTS.n_modes)
    p.add_argument("--method", default=DEFAULTS.method, choices=v.METHODS)
    p.add_argument("--n-features", type=int, default=DEFAULTS.n_features)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--device", default=DEFAULTS.device, choices=v.DEVICES)
    p.add_argument("--out", default=None, help="also write the sweep as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_run_scales)


def _run_scales(args: argparse.Namespace) -> int:
    from spec_core.data.io import split_key
    from spec_core.engine.scales import scale_sweep

    try:
        multipliers = [float(m) for m in args.multipliers.split(",") if m.strip()]
    except ValueError:
        raise ValueError(
            f"--multipliers {args.multipliers!r}: give numbers separated by commas"
        ) from None
    out = Path(args.out) if args.out else None
    if out is not None:
        _refuse_overwrite(out, [split_key(args.a)[0], split_key(args.b)[0]], "--out")
        if not out.parent.is_dir():
            raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    emb_a, _, emb_b, _ = _load_pair(args.a, args.b)
    with _naming_files(args.a, args.b):
        sweep = scale_sweep(
            emb_a,
            emb_b,
            multipliers=multipliers,
            n_modes=args.n_modes,
            method=args.method,
            n_features=args.n_features,
            seed=args.seed,
            device=args.device,
            progress=None if args.quiet else ProgressLine(),
        )
    print(f"{'multiplier':>10} {'sigma A':>10} {'sigma B':>10} {'SPEC-diff':>10}  top modes")
    for i, m in enumerate(sweep.multipliers):
        result = sweep.results[i]
        tops = ", ".join(f"{mode.label} {mode.eigenvalue:+.3g}" for mode in result.modes[:1])
        tops += "".join(
            f", {mode.label} {mode.eigenvalue:+.3g}" for mode in result.modes_for("B")[:1]
        )
        mark = "  <- largest" if i == sweep.strongest_scale else ""
        print(
            f"{m:>10g} {sweep.sigmas_a[i]:>10.4g} {sweep.sigmas_b[i]:>10.4g} "
            f"{result.spec_diff:>10.4g}  {tops}{mark}"
        )
    for m, reason in sweep.skipped:
        print(f"skipped x{m:g}: {reason}", file=sys.stderr)
    print(
        f"{len(sweep.tracks)} modes followed across scales; open one scale with "
        "`compare --sigma-scale M`"
    )
    if out is not None:
        _write_json_atomic(out, sweep.to_dict())
        print(f"wrote {out}")
    return 0


def _add_align_model(sub) -> None:
    from spec_core.align import finetune as ft

    p = sub.add_parser(
        "align-model",
        help="fine-tune an open_clip image tower so it captures what a reference embedding does",
        description="SPEC-align by full fine-tuning: train the image tower of an open_clip model "
        "on spec_weight x SPEC-diff(reference, image features) + contrastive_weight x the CLIP "
        "loss (with captions), over mini-batches of the same rows in both; checkpoints and a "
        "report (held-out SPEC-diff and retrieval before and after) go to --out.",
    )
    p.add_argument("--model", required=True, help="open_clip:ARCH/TAG or open_clip:ARCH@/weights")
    p.add_argument(
        "--reference",
        required=True,
        help="REF.npy (row i = image i in the dataset's order; ids in a table/.npz or a "
        "REF.ids.json beside it match rows by id) or a model name to embed the images with",
    )
    p.add_argument("--data", required=True, help="a folder or .zip of images")
    p.add_argument("--captions", default=None, help="captions table for the contrastive term")
    p.add_argument("--out", required=True, help="checkpoint folder (created if missing)")
    p.add_argument(
        "--spec-weight",
        type=float,
        default=ft.DEFAULT_SPEC_WEIGHT,
        help="weight of the SPEC-diff term (cosine kernel, same rows; 0: off)",
    )
    p.add_argument(
        "--contrastive-weight",
        type=float,
        default=None,
        help=f"weight of the CLIP contrastive term: default {ft.DEFAULT_CONTRASTIVE_WEIGHT:g} "
        "with captions, 0 without (a non-zero weight needs captions)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="optimiser steps")
    length.add_argument(
        "--epochs", type=int, default=None, help=f"default {ft.DEFAULT_EPOCHS} (without --steps)"
    )
    p.add_argument("--batch-size", type=int, default=ft.DEFAULT_BATCH, help="rows per step")
    p.add_argument("--lr", type=float, default=ft.DEFAULT_LR, help="peak AdamW learning rate")
    p.add_argument(
        "--weight-decay", type=float, default=ft.DEFAULT_WEIGHT_DECAY, help="AdamW, on matrices"
    )
    p.add_argument(
        "--warmup", type=int, default=ft.DEFAULT_WARMUP, help="linear warm-up steps, then cosine"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=ft.DEFAULT_VAL_FRACTION,
        help="share of rows held out (never trained on) for the before/after metrics",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=v.DEVICES)
    p.add_argument(
        "--checkpoint-every", type=int, default=ft.DEFAULT_CHECKPOINT_EVERY, help="steps"
    )
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=_run_align_model)


def _check_out_folder(out: Path, inputs: list[Path], resume: bool) -> None:
    """--out of align-model: a folder (made if missing, its parent must exist) outside the
    inputs; a fresh run never overwrites an earlier run's files, --resume needs its checkpoint."""
    from spec_core.align import finetune as ft

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is not a folder; name a folder for the checkpoints")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: the folder {out.parent} does not exist")
    for source in inputs:
        if source.exists() and (
            out.resolve() == source.resolve()
            or (source.is_dir() and out.resolve().is_relative_to(source.resolve()))
        ):
            raise ValueError(f"--out {out} is inside the input {source}; choose another folder")
    where = out if out.is_dir() else out.parent
    if not os.access(where, os.W_OK):
        raise ValueError(f"--out {out}: the folder {where} cannot be written to")
    if resume:
        if not (out / ft.CHECKPOINT).is_file():
            raise ValueError(f"--resume: {out} holds no {ft.CHECKPOINT} to resume from")
        return
    earlier = [name for name in ft.OUTPUT_FILES if (out / name).exists()]
    if earlier:
        raise ValueError(
            f"--out {out} already holds {', '.join(earlier)} from an earlier run; pass --resume "
            "to continue it or choose another folder"
        )


def _run_align_model(args: argparse.Namespace) -> int:
    import dataclasses

    from spec_core.align import finetune as ft
    from spec_core.data.cache import EmbeddingCache
    from spec_core.data.datasets import load_dataset
    from spec_core.data.io import split_key
    from spec_core.models.registry import get_model

    out = Path(args.out)
    inputs = [Path(args.data), split_key(args.reference)[0]]
    if args.captions:
        inputs.append(Path(args.captions))
    _check_out_folder(out, inputs, args.resume)
    if get_model(args.model).family != "open_clip":
        raise ValueError(
            f"--model {args.model}: align-model fine-tunes open_clip models "
            "(open_clip:ARCH/TAG or open_clip:ARCH@/path/weights)"
        )
    config = ft.FinetuneConfig(
        model=args.model,
        spec_weight=args.spec_weight,
        contrastive_weight=0.0 if args.contrastive_weight is None else args.contrastive_weight,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
    )
    dataset = load_dataset(args.data, **({"captions": args.captions} if args.captions else {}))
    if dataset.kind != "image":
        raise ValueError(f"--data {args.data}: a text set; align-model needs images")
    if args.contrastive_weight is None and dataset.texts is not None:
        config = dataclasses.replace(config, contrastive_weight=ft.DEFAULT_CONTRASTIVE_WEIGHT)
    if config.contrastive_weight > 0 and dataset.texts is None:
        raise ValueError(
            f"--contrastive-weight {config.contrastive_weight:g} needs captions and {args.data} "
            "has none: give --captions FILE, or --contrastive-weight 0"
        )
    config.check()
    for item in dataset.skipped:
        print(f"skipped {item.item}: {_one_line(item.reason)}", file=sys.stderr)
    for note in dataset.notes:
        print(f"note: {_one_line(note)}", file=sys.stderr)
    progress = None if args.quiet else ProgressLine()
    reference, notes = ft.load_reference(
        args.reference, dataset, device=args.device, cache=EmbeddingCache(), progress=progress
    )
    for note in notes:
        print(f"note: {_one_line(note)}", file=sys.stderr)
    out.mkdir(exist_ok=True)
    result = ft.finetune(
        dataset,
        reference,
        config,
        out=out,
        resume=args.resume,
        progress=progress,
        log=lambda text: print(_one_line(text), file=sys.stderr),
        inputs={
            "model": args.model,
            "reference": args.reference,
            "data": args.data,
            "captions_file": args.captions,
        },
    )
    print(_printable(result.summary()))
    print(f"wrote {out / ft.REPORT}, {result.model_file} (use it as {result.report['use_with']})")
    return 0


def _add_app(sub) -> None:
    p = sub.add_parser("app", help="start the web app (streamlit) on this machine")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    p.set_defaults(run=_run_app)


def app_script() -> Path:
    """The installed app's entry script (spec_app/app.py)."""
    return Path(__file__).resolve().parents[2] / "spec_app" / "app.py"


def _run_app(args: argparse.Namespace) -> int:
    import importlib.util
    import subprocess

    script = app_script()
    if not script.is_file() or importlib.util.find_spec("streamlit") is None:
        raise ValueError(
            "the web app is not installed here: pip install 'spec-explorer[app]' (or run "
            "`make run` in a checkout)"
        )
    v.check_positive_int("--port", args.port, maximum=65535)
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
               "--server.port", str(args.port), "--server.address", args.address]  # fmt: skip
    print(f"SPEC Explorer on http://{args.address}:{args.port} (Ctrl-C stops it)", flush=True)
    return subprocess.call(command, cwd=script.parent)


COMMANDS: list[Callable] = [
    _add_compare,
    _add_scales,
    _add_align,
    _add_align_model,
    _add_models,
    _add_embed,
    _add_cache,
    _add_app,
]


def _printable(text: str) -> str:
    """Text from user files (labels) may carry terminal escape codes: show them as '?'."""
    import unicodedata

    return "".join("?" if unicodedata.category(c) == "Cc" and c != "\n" else c for c in text)


def _one_line(err: object) -> str:
    """A message on one line, printable: no newlines, no terminal control characters."""
    import unicodedata

    text = " ".join(str(err).split())
    return "".join("?" if unicodedata.category(c) == "Cc" else c for c in text)


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
    import warnings

    import numpy as np

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # numbers out of range are reported as errors, not as numpy's warnings on stderr
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return args.run(args)
    except (ValueError, OSError, RuntimeError) as err:  # ModelLoadError is a RuntimeError
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except ArithmeticError as err:  # overflow in a user's parameter: a message, not a traceback
        print(f"error: a number is out of range ({_one_line(err)})", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "error: out of memory; use fewer rows, a lower --n-features or --method nystrom",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
