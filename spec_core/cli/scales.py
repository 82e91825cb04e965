"""`scales A B`: the differential spectrum across bandwidths (Gaussian kernel), one line per
multiple of the data-driven bandwidths, the largest SPEC-diff marked; --out also writes it as
JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spec_core.cli.common import (
    ProgressLine,
    add_config_flags,
    load_pair,
    naming_files,
    refuse_overwrite,
    write_json_atomic,
)

if TYPE_CHECKING:
    from spec_core.engine.scales import ScaleSweep


def add(subparsers) -> None:
    from spec_core.engine.scales import DEFAULT_MULTIPLIERS

    p = subparsers.add_parser(
        "scales", help="the differential spectrum across bandwidths (Gaussian kernel)"
    )
    p.add_argument("a", help="embedding A (as for compare)")
    p.add_argument("b", help="embedding B (as for compare)")
    p.add_argument(
        "--multipliers",
        default=",".join(f"{m:g}" for m in DEFAULT_MULTIPLIERS),
        help="comma-separated multiples of the data-driven bandwidths",
    )
    add_config_flags(p, names=("n_modes", "method", "n_features", "seed", "device"))
    p.add_argument("--out", default=None, help="also write the sweep as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from spec_core.data.io import split_key
    from spec_core.engine.scales import scale_sweep

    multipliers = _multipliers(args.multipliers)
    out = Path(args.out) if args.out else None
    if out is not None:
        refuse_overwrite(out, [split_key(args.a)[0], split_key(args.b)[0]], "--out")
        if not out.parent.is_dir():
            raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    emb_a, _, emb_b, _ = load_pair(args.a, args.b)
    with naming_files(args.a, args.b):
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
    _print_sweep(sweep)
    if out is not None:
        write_json_atomic(out, sweep.to_dict())
        print(f"wrote {out}")
    return 0


def _multipliers(text: str) -> list[float]:
    """--multipliers '0.5,1,2' as numbers."""
    try:
        return [float(m) for m in text.split(",") if m.strip()]
    except ValueError:
        raise ValueError(f"--multipliers {text!r}: give numbers separated by commas") from None


def _print_sweep(sweep: ScaleSweep) -> None:
    """A table of the sweep: per multiplier the two bandwidths, SPEC-diff, the strongest mode
    and B's strongest; the skipped scales on stderr."""
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
