"""What the commands share: the progress line, the checks of an output before any work starts,
atomic writers, loading a pair of embedding files with B's rows matched to A's, and turning text
from user files into one printable line.

Every check raises a ValueError whose message names the flag, the path and the fix; `entry.main`
prints it as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import unicodedata
from collections.abc import Iterable
from pathlib import Path


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


# --------------------------------------------------------------------------------------------
# Text from user files


def printable(text: str) -> str:
    """Text from user files (labels) may carry terminal escape codes: show them as '?'."""
    return "".join("?" if unicodedata.category(c) == "Cc" and c != "\n" else c for c in text)


def one_line(err: object) -> str:
    """A message on one line, printable: no newlines, no terminal control characters."""
    text = " ".join(str(err).split())
    return "".join("?" if unicodedata.category(c) == "Cc" else c for c in text)


def print_notes(notes: Iterable[str]) -> None:
    """Each note on stderr as one printable line, `note: ...`."""
    for note in notes:
        print(f"note: {one_line(note)}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Outputs: checked before any work starts, written atomically


def refuse_overwrite(out: Path, inputs: list[Path], flag: str) -> None:
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


def refuse_full_folder(out: Path, manifest: str) -> None:
    """A folder of shards (--out of `embed --shard-rows`) must be new or empty: the shards,
    ids.json and the manifest would replace files of the same names there, which the user did
    not ask for."""
    if not out.is_dir():
        return
    held = sorted(entry.name for entry in out.iterdir())
    if not held:
        return
    what = "already holds shards" if manifest in held else "is not empty"
    shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
    raise ValueError(
        f"--out {out} {what} ({one_line(shown)}); choose a new or empty folder, or pass "
        "--overwrite to write the shards there"
    )


def check_checkpoint_folder(
    out: Path,
    inputs: list[Path],
    *,
    resume: bool,
    checkpoint: str,
    outputs: Iterable[str],
) -> None:
    """A folder of checkpoints (--out of `align-model`): a folder (made if missing, its parent
    must exist) outside the inputs; a fresh run never overwrites an earlier run's `outputs`,
    --resume needs its `checkpoint`."""
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
        if not (out / checkpoint).is_file():
            raise ValueError(f"--resume: {out} holds no {checkpoint} to resume from")
        return
    earlier = [name for name in outputs if (out / name).exists()]
    if earlier:
        raise ValueError(
            f"--out {out} already holds {', '.join(earlier)} from an earlier run; pass --resume "
            "to continue it or choose another folder"
        )


def write_json_atomic(path: Path, payload: dict) -> None:
    """Strict JSON (no NaN or Infinity tokens), written atomically (data.cache.atomic_write),
    so a reader never sees half a file."""
    from spec_core.data.cache import atomic_write

    text = json.dumps(payload, indent=1, allow_nan=False)
    atomic_write(path, text.encode(), mode=0o644)  # 0644: readable by the user's group


def write_npy_atomic(path: Path, matrix) -> None:
    """A matrix as .npy (no pickles), written atomically like `write_json_atomic`."""
    import numpy as np

    from spec_core.data.cache import atomic_write

    atomic_write(path, lambda handle: np.save(handle, matrix, allow_pickle=False), mode=0o644)


# --------------------------------------------------------------------------------------------
# Inputs: a pair of embedding files of the same rows


def load_pair(name_a: str, name_b: str):
    """Both files, B's rows matched to A's (notes on stderr): (A, A's ids, B, notes)."""
    from spec_core.data.io import load_matrix_with_ids

    emb_a, ids_a = load_matrix_with_ids(name_a)
    emb_b, ids_b = load_matrix_with_ids(name_b)
    emb_b, notes = match_rows(name_a, emb_a, ids_a, name_b, emb_b, ids_b)
    print_notes(notes)
    return emb_a, ids_a, emb_b, notes


def load_many(files: list[str]):
    """Several files, each one's rows matched to the first's (by id when both carry ids, else
    by order; a file with other rows is refused by name), notes on stderr: (the matrices, the
    first file's ids, notes)."""
    from spec_core.data.io import load_matrix_with_ids

    first, first_ids = load_matrix_with_ids(files[0])
    matrices, notes = [first], []
    for name in files[1:]:
        matrix, ids = load_matrix_with_ids(name)
        if (ids is None or first_ids is None) and matrix.shape[0] != first.shape[0]:
            raise ValueError(
                f"{name} has {matrix.shape[0]} rows but {files[0]} has {first.shape[0]}: every "
                "file must hold the same samples, row for row (or each carry an 'id' column)"
            )
        matched, found = match_rows(files[0], first, first_ids, name, matrix, ids)
        matrices.append(matched)
        notes.extend(found)
    print_notes(notes)
    return matrices, first_ids, notes


def match_rows(name_a, emb_a, ids_a, name_b, emb_b, ids_b):
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


@contextlib.contextmanager
def naming_files(name_a: str, name_b: str):
    """The engine says "A" and "B"; on the command line its messages name the files too."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"comparing {name_a} (A) with {name_b} (B): {err}") from None


# ---------------------------------------------------------------------------------------------
# SPEC parameters as flags, from the parameter table (spec_core.config)


def add_config_flags(parser, *, names: Iterable[str] | None = None, config: type | None = None):
    """The table's command-line parameters (or only `names`) as flags: --kernel, --sigma-a, ...,
    each with its help, its choices and its default."""
    from spec_core.config import CLI, params

    for param in params(config, where=CLI):
        if names is not None and param.name not in names:
            continue
        default = "data-driven" if param.default is None else param.default
        if param.kind is bool:
            default = param.flag if param.default else "--no-" + param.flag.removeprefix("--")
        options = {"dest": param.name, "default": param.default}
        options["help"] = f"{param.help} (default: {default})".replace("%", "%%")
        if param.kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif param.choices:
            options["choices"] = param.choices
        else:
            options["type"] = param.kind
        parser.add_argument(param.flag, **options)


def table_help(name: str) -> str:
    """The parameter table's help for `name`, for a command that declares that flag itself (with
    choices of its own); its default is added by `state_defaults`."""
    from spec_core.config import params

    (param,) = [p for p in params() if p.name == name]
    return param.help.replace("%", "%%")


def state_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's help ends with its default, "(default: X)", unless it already names one;
    options without a default (None) and off-by-default switches say nothing more."""
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        default = action.default
        if default is None or default is argparse.SUPPRESS or "default" in (action.help or ""):
            continue
        if isinstance(action, argparse._StoreTrueAction) and default is False:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            default = action.option_strings[0 if default else 1]
        shown = str(default).replace("%", "%%")
        action.help = f"{(action.help or '').rstrip()} (default: {shown})".lstrip()


def config_from_args(args: argparse.Namespace, config: type | None = None):
    """The SpecConfig of the parsed flags (the table's defaults for parameters without one)."""
    from spec_core.config import SpecConfig, params

    given = {p.name: getattr(args, p.name) for p in params(config) if hasattr(args, p.name)}
    return (config or SpecConfig)(**given)
