"""Command line: `python -m spec_core compare A B --out result.json` (and more subcommands).

One module per command (`add(subparsers)` declares its flags, `run(args)` does the work and
returns the exit status); this module builds the parser from them and turns every user error
into a one-line message on stderr naming the file and the problem, and exit status 2; never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spec_core.cli import (
    align,
    align_model,
    app,
    cache,
    compare,
    compare_many,
    embed,
    models,
    scales,
)
from spec_core.cli.common import one_line, state_defaults

#: The commands in the order `--help` lists them.
COMMANDS = (compare, compare_many, scales, align, align_model, models, embed, cache, app)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spec_core",
        description="SPEC Explorer: see which groups of samples one embedding clusters and the "
        "other does not.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(subparsers)
    for sub in subparsers.choices.values():
        state_defaults(sub)
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
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except ArithmeticError as err:  # overflow in a user's parameter: a message, not a traceback
        print(f"error: a number is out of range ({one_line(err)})", file=sys.stderr)
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
