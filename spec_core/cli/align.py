"""`align A B --out ALIGNED.npy --report REPORT.json`: SPEC-align, an adapter trained on B
(frozen) so that it captures what A captures. Writes the aligned B (every row, in A's order), the
adapter beside it (ALIGNED.adapter.safetensors) and a JSON report of the before/after metrics;
nothing is written when any of them cannot be.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spec_core import checks as v
from spec_core.cli.common import (
    ProgressLine,
    load_pair,
    naming_files,
    printable,
    refuse_overwrite,
    table_help,
    write_json_atomic,
    write_npy_atomic,
)


def add(subparsers) -> None:
    import spec_core.align as al
    from spec_core.align.threads import DEFAULT_THREADS
    from spec_core.config import DEFAULTS

    p = subparsers.add_parser(
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
    p.add_argument(
        "--kernel", default=DEFAULTS.kernel, choices=al.KERNELS, help=table_help("kernel")
    )
    p.add_argument(
        "--adapter",
        default="linear",
        choices=al.ADAPTERS,
        help="linear: an affine map of B (x W + c); mlp: B plus a small residual network",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=al.DEFAULT_VAL_FRACTION,
        help="share of rows held out for early stopping and the after-metrics (never trained on)",
    )
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help=table_help("seed"))
    p.add_argument("--steps", type=int, default=al.DEFAULT_STEPS, help="most optimiser steps")
    p.add_argument("--batch-size", type=int, default=al.DEFAULT_BATCH, help="rows per step")
    p.add_argument("--lr", type=float, default=al.DEFAULT_LR, help="Adam learning rate")
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
    p.add_argument(
        "--start",
        default=al.DEFAULT_START,
        choices=al.STARTS,
        help="least-squares: the linear adapter starts at the least-squares map of B onto A "
        "(kept when it beats B itself on the validation rows); identity: at B itself",
    )
    p.add_argument(
        "--solver",
        default="eigh",
        choices=al.SOLVERS,
        help="eigh: the exact eigenvalues of each mini-batch; power: the paper's power iteration",
    )
    p.add_argument(
        "--sigma-scale",
        type=float,
        default=DEFAULTS.sigma_scale,
        help=table_help("sigma_scale"),
    )
    p.add_argument(
        "--centre",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.centre,
        help=table_help("centre"),
    )
    p.add_argument("--labels", default=None, help="labels per row, for label kNN accuracy")
    p.add_argument(
        "--device", default=DEFAULTS.device, choices=v.DEVICES, help=table_help("device")
    )
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch threads while training (default {DEFAULT_THREADS}: each step is a small "
        "eigenproblem, and on a 2-core machine one thread trained faster than two, as the app "
        "trains; benchmarks/bench_align_threads.py measures both); restored after",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=run)


def adapter_path(out: Path) -> Path:
    """Where `align --out X.npy` writes its adapter: X.adapter.safetensors beside it."""
    return out.with_suffix(".adapter.safetensors")


def run(args: argparse.Namespace) -> int:
    from spec_core.align import align
    from spec_core.align.threads import MAX_THREADS, torch_threads
    from spec_core.data.io import load_labels

    v.check_positive_int("--threads", args.threads, maximum=MAX_THREADS)
    out, report_path = Path(args.out), Path(args.report)
    weights = adapter_path(out)
    _check_outputs(args, out, report_path, weights)
    emb_a, ids_a, emb_b, notes = load_pair(args.a, args.b)
    labels = load_labels(args.labels, ids=ids_a, n_rows=emb_a.shape[0]) if args.labels else None
    with naming_files(args.a, args.b), torch_threads(args.threads):
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
            start=args.start,
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
    write_npy_atomic(out, result.aligned)
    result.aligner.save(weights, {"a": str(args.a)})
    write_json_atomic(report_path, payload)
    print(printable(result.summary()))
    print(printable(f"wrote {out}, {weights}, {report_path}"))
    return 0


def _check_outputs(args: argparse.Namespace, out: Path, report_path: Path, weights: Path) -> None:
    """The three outputs: of the right types, different files, none of them an input, each in
    a folder that exists."""
    from spec_core.data.io import split_key

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
        refuse_overwrite(path, inputs, flag)
        if not (path.parent if str(path.parent) else Path(".")).is_dir():
            raise ValueError(f"{flag} {path}: the folder {path.parent} does not exist")
