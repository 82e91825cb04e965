"""`models [--json]`: the model registry, one line per built-in model (or as JSON)."""

from __future__ import annotations

import argparse
import json


def add(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the model registry")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
