"""Damage in the disk cache: how it is named, set aside and logged.

The cache (embeddings, uploads, stored images) lives on a disk that a crash, a full disk, a bad
sync or a careless operator can change between two runs. A read that finds an entry damaged
never serves it and never raises for it: the entry's files are moved aside, to
`<cache root>/damaged/<kind>/<name>.<UTC time>.<random>/` beside a `REASON` file (kept for
inspection; nothing here deletes them), the move is logged once on the `spec_explorer.cache`
logger (with the server's paths: the log is the operator's), and the caller sees a miss (it
recomputes, or tells the user the upload is gone, in words that name no server path).

A path that cache metadata names (an image of an upload, a cache entry) must resolve inside its
folder of the cache: a link that leads elsewhere is damage too, and is never opened.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from tokenize import TokenError

LOG = logging.getLogger("spec_explorer.cache")

#: The folder under the cache root that damaged entries are moved to.
DAMAGED = "damaged"

#: The file beside each set-aside entry that says why it was set aside.
REASON = "REASON"

#: What parsing a damaged file can raise: JSON (ValueError, RecursionError for deep nesting),
#: numpy's .npy header reader (ValueError, SyntaxError, TokenError, EOFError, TypeError on a
#: header that is not a dict), and the file system (OSError).
PARSE_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
    TokenError,
    RecursionError,
    TypeError,
    KeyError,
)

_logged: set[tuple[str, str, str]] = set()
_logged_lock = threading.Lock()


class Damage(Exception):
    """A cache entry that must not be served; the message is the reason, in words that name no
    server path (it is logged, written beside the entry, and printed by `cache --verify`)."""


def json_type(value: object) -> str:
    """What a parsed JSON value is, in JSON's words (for reasons)."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def contained(folder: Path, name: str) -> Path:
    """`folder / name`, when it is a plain name and resolves inside `folder` (links followed);
    Damage otherwise. A link that stays inside the folder is allowed."""
    if not name or name != Path(name).name or name in (".", ".."):
        raise Damage("names something that is not a file name of the cache")
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise Damage("is a link to a place outside the cache")
    return path


def regular_file(path: Path, what: str) -> bool:
    """True for a regular file (a link inside its folder is followed: see `contained`), False
    when nothing is there; Damage for anything else (a folder, a link to nothing, a device)."""
    if not os.path.lexists(path):
        return False
    if path.is_file():
        return True
    if path.is_symlink() and not path.exists():
        raise Damage(f"the {what} is a link to nothing")
    raise Damage(f"the {what} is not a regular file (a folder?)")


def set_aside(root: Path, kind: str, name: str, paths: Iterable[Path], reason: str) -> Path | None:
    """Move the files of one damaged entry (`paths`, in that order; missing ones are skipped)
    to a new folder under `<root>/damaged/<kind>/`, write its REASON, log it once; the folder,
    or None when nothing was there to move (another reader moved it first) or the move failed
    (then the reason is logged once: the entry stays, and every read keeps treating it as a
    miss)."""
    try:
        folder = root / DAMAGED / kind
        for level in (root / DAMAGED, folder):  # private, like the rest of the cache
            level.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = Path(tempfile.mkdtemp(prefix=f"{name}.{stamp}.", dir=folder))
        moved = []
        for path in paths:
            try:
                os.replace(path, target / path.name)  # a link moves as the link
            except FileNotFoundError:
                continue
            moved.append(path)
        if not moved:
            target.rmdir()
            return None
        names = ", ".join(path.name for path in moved)
        fd = os.open(target / REASON, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{reason}\n\n{names}: moved here from {moved[0].parent} at {stamp}\n")
    except OSError as err:
        _log_once(kind, name, f"{reason}; could not move it aside: {err}")
        return None
    LOG.warning("damaged %s entry %s moved aside to %s: %s", kind, name, target, reason)
    return target


def _log_once(kind: str, name: str, message: str) -> None:
    with _logged_lock:
        if (kind, name, message) in _logged:
            return
        _logged.add((kind, name, message))
    LOG.warning("damaged %s entry %s: %s", kind, name, message)


def set_aside_entries(root: Path, kind: str) -> list[Path]:
    """The entries of `kind` set aside so far (their folders), oldest name first."""
    folder = root / DAMAGED / kind
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_dir())
