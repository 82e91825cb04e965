"""`compare-many A B C ... --out many.json`: SPEC between every pair of several embedding files
of the same rows (spec_core.compare_many), each model's pieces computed once.

Models are named by their files (the file name without its suffix; --names to choose); every
file's rows are matched to the first file's (by id when both carry ids, else by order). Writes
strict JSON (ManyResult.to_dict: the names, the SPEC-diff / linear CKA / kNN overlap matrices,
the 2-D map of the models, every pair's result with its modes; with row ids each mode also lists
its members' ids) and prints the matrix and each pair's strongest groups.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from spec_core.cli.common import (
    ProgressLine,
    add_config_flags,
    config_from_args,
    load_many,
    one_line,
    printable,
    refuse_overwrite,
    write_json_atomic,
)

#: The parameter table's flags this command takes: a bandwidth per model comes from --sigmas.
NOT_FLAGS = ("sigma_a", "sigma_b")


def add(subparsers) -> None:
    from spec_core.config import CLI, params

    p = subparsers.add_parser(
        "compare-many",
        help="SPEC between every pair of several embedding files of the same rows",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="2 or more embeddings (.npy, .npz[:key], .csv, .tsv, .parquet or a folder of "
        "shards), the same rows in each: matched to the first file's by an id column when "
        "both have one, else by order",
    )
    p.add_argument(
        "--names",
        default=None,
        help="comma-separated model names, one per file (default: the file names)",
    )
    p.add_argument(
        "--sigmas",
        default=None,
        help="comma-separated Gaussian bandwidths, one per file, each a number or 'auto' "
        "(default: auto, the data-driven rule x --sigma-scale for every file)",
    )
    names = [param.name for param in params(where=CLI) if param.name not in NOT_FLAGS]
    add_config_flags(p, names=names)
    p.add_argument(
        "--labels",
        default=None,
        help="a label per row, for each mode's purity (as for compare; ids match the first file's)",
    )
    p.add_argument("--scores", action="store_true", help="also write every row's mode scores")
    p.add_argument(
        "--backend",
        default="local",
        choices=("local", "ray"),
        help="ray: the feature route's two passes over the rows run as Ray tasks",
    )
    p.add_argument("--ray-address", default=None, help="a running Ray cluster")
    p.add_argument("--out", required=True, help="where to write the result JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from spec_core.data.io import load_labels, split_key
    from spec_core.engine.many import compare_many

    files = list(args.files)
    names = model_names(files, args.names)
    sigmas = _sigmas(args.sigmas, names)
    out = Path(args.out)
    refuse_overwrite(out, [split_key(name)[0] for name in files], "--out")
    if args.labels:
        refuse_overwrite(out, [Path(args.labels)], "--out")
    if not out.parent.is_dir():
        raise ValueError(f"{args.out}: the folder {out.parent} does not exist")
    matrices, ids, notes = load_many(files)
    labels = load_labels(args.labels, ids=ids, n_rows=matrices[0].shape[0]) if args.labels else None
    config = config_from_args(args)
    kwargs = {k: v for k, v in config.kwargs().items() if k not in NOT_FLAGS}
    with naming_models(names, files):
        result = compare_many(
            dict(zip(names, matrices, strict=True)),
            **kwargs,
            sigmas=sigmas,
            labels=labels,
            progress=None if args.quiet else ProgressLine(),
            backend=args.backend,
            ray_address=args.ray_address,
        )
    payload = result.to_dict(include_sample_scores=args.scores)
    payload["inputs"] = {"files": [str(f) for f in files], "names": names, "notes": notes}
    if ids is not None:
        for pair in payload["pairs"]:
            for mode in pair["modes"]:
                mode["ids"] = [ids[i] for i in mode["members"]]
    write_json_atomic(out, payload)
    print(printable(result.summary()))
    print(f"wrote {out}")
    return 0


def model_names(files: list[str], given: str | None) -> list[str]:
    """--names split at commas, else each file's name without its suffix (with it where two
    files would share a name; an .npz key after a colon); distinct and one per file."""
    from spec_core.data.io import split_key

    if len(files) < 2:
        raise ValueError("compare-many needs 2 or more embedding files")
    if given is not None:
        names = [name.strip() for name in given.split(",")]
        if len(names) != len(files) or not all(names):
            raise ValueError(
                f"--names gives {len(names)} name(s) for {len(files)} files: one non-empty "
                "name per file, separated by commas"
            )
    else:
        names, full = [], []
        for spec in files:
            path, key = split_key(spec)
            stem = path.name if path.is_dir() else path.stem
            names.append(f"{stem}:{key}" if key else stem)
            full.append(f"{path.name}:{key}" if key else path.name)
        # B.npy and B.parquet: their file names, suffix included
        names = [full[i] if names.count(name) > 1 else name for i, name in enumerate(names)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"two files have the model name {one_line(repeated[0])!r}; give --names (one per "
            "file, separated by commas)"
        )
    return names


def _sigmas(text: str | None, names: list[str]) -> dict[str, float] | None:
    """--sigmas as {name: bandwidth}, 'auto' entries left to the data-driven rule."""
    if text is None:
        return None
    values = [value.strip() for value in text.split(",")]
    if len(values) != len(names):
        raise ValueError(
            f"--sigmas gives {len(values)} value(s) for {len(names)} files: one per file, each "
            "a number or 'auto'"
        )
    out = {}
    for name, value in zip(names, values, strict=True):
        if value.lower() == "auto":
            continue
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"--sigmas: {value!r} for {name} is not a number or 'auto'") from None
    return out


@contextlib.contextmanager
def naming_models(names: list[str], files: list[str]):
    """The engine names models; when --names renamed them, its messages name the files too."""
    try:
        yield
    except ValueError as err:
        renamed = [f"{name} = {file}" for name, file in zip(names, files, strict=True)]
        if any(Path(file).stem != name for name, file in zip(names, files, strict=True)):
            raise ValueError(f"{err} (models: {', '.join(renamed)})") from None
        raise
