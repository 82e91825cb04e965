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


COMMANDS: list[Callable] = [_add_compare]


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
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
