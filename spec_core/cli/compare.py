"""`compare A B --out RESULT.json`: the SPEC comparison of two embedding files of the same rows.

Writes the modes (and with --scores every row's mode scores) as strict JSON; with row ids, each
mode also lists its members' ids.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spec_core import checks as v
from spec_core.cli.common import (
    ProgressLine,
    load_pair,
    naming_files,
    printable,
    refuse_overwrite,
    write_json_atomic,
)


def add(subparsers) -> None:
    from spec_core.config import DEFAULTS

    p = subparsers.add_parser(
        "compare", help="SPEC comparison of two embedding files of the same rows"
    )
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
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from spec_core.config import DEFAULTS
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
