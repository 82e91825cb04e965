"""`compare A B --out RESULT.json`: the SPEC comparison of two embedding files of the same rows.

Writes the modes (and with --scores every row's mode scores) as strict JSON; with row ids, each
mode also lists its members' ids.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spec_core.cli.common import (
    ProgressLine,
    add_config_flags,
    config_from_args,
    load_pair,
    naming_files,
    printable,
    refuse_overwrite,
    write_json_atomic,
)


def add(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="SPEC comparison of two embedding files of the same rows"
    )
    p.add_argument("a", help="embedding A: .npy, .npz[:key], .csv, .tsv or .parquet")
    p.add_argument(
        "b",
        help="embedding B: rows matched to A's by an 'id' column (tables) or 'ids' array (.npz) "
        "when both files have one, else by order",
    )
    add_config_flags(p)
    p.add_argument(
        "--labels",
        default=None,
        help="a label per row, for each mode's purity: a .txt (one per line) or a .csv/.tsv "
        "with a 'label' column (and an 'id' column to match A's ids)",
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
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from spec_core.data.io import load_labels, split_key
    from spec_core.engine.compare import compare

    out = Path(args.out)
    refuse_overwrite(out, [split_key(args.a)[0], split_key(args.b)[0]], "--out")
    if args.labels:
        refuse_overwrite(out, [Path(args.labels)], "--out")
    if not out.parent.is_dir():
        raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    emb_a, ids_a, emb_b, notes = load_pair(args.a, args.b)
    labels = load_labels(args.labels, ids=ids_a, n_rows=emb_a.shape[0]) if args.labels else None
    if args.backend == "ray" and args.method == "exact" and args.kernel == "gaussian":
        print(
            "note: --backend ray distributes the feature route (rff, nystrom, cosine); the exact "
            "Gaussian route runs here",
            file=sys.stderr,
        )
    config = config_from_args(args)
    with naming_files(args.a, args.b):
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
    write_json_atomic(out, payload)
    print(printable(result.summary()))
    print(f"wrote {out}")
    return 0
