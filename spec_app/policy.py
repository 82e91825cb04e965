"""Which model names a web user may ask this server to load (the CLI, a local user, may load any).

Always allowed: the registry's names (`python -m spec_core models`), `open_clip:ARCH/TAG` pairs
that `open_clip.list_pretrained()` knows, and this session's or a shared link's uploaded
matrices (`precomputed:REF`). Only when the operator enables them:

- `SPEC_EXPLORER_ALLOW_LOCAL_MODELS=1`: files and folders on the server
  (`open_clip:ARCH@/path/weights.bin`, `st:/path/to/folder`);
- `SPEC_EXPLORER_ALLOW_ST=1`: any sentence-transformers model on the Hugging Face Hub
  (`st:ORG/NAME`, downloaded onto the server), or `SPEC_EXPLORER_ALLOW_ST=ORG/A,ORG/B`: only those.

A refusal never touches the file system first and never says whether a path exists, so the
answer is the same for every path.
"""

from __future__ import annotations

import os
import re

from spec_core.models.registry import BUILTIN, get_model

ALLOW_LOCAL_ENV = "SPEC_EXPLORER_ALLOW_LOCAL_MODELS"
ALLOW_ST_ENV = "SPEC_EXPLORER_ALLOW_ST"
MAX_NAME_CHARS = 200
#: An uploaded matrix: 'precomputed:' and its upload reference (see spec_core.data.uploads).
PRECOMPUTED = re.compile(r"precomputed:[0-9a-f]{40}")
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
_OPEN_CLIP_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,95}")


class ModelRefused(ValueError):
    """This server does not load that model for web users; the message says what it does."""


def _enabled(env: str) -> bool:
    return os.environ.get(env, "").strip().lower() in ("1", "true", "yes", "on")


def _st_allowed(repo: str) -> bool:
    raw = os.environ.get(ALLOW_ST_ENV, "").strip()
    if _enabled(ALLOW_ST_ENV):
        return True
    return repo in {item.strip() for item in raw.split(",") if item.strip()}


def _looks_local(source: str) -> bool:
    return (
        source.startswith(("/", "~", ".", "\\"))
        or "\\" in source
        or ".." in source
        or re.match(r"[A-Za-z]:", source) is not None
    )


def check_model(name: str) -> str:
    """`name` when a web user may use it, else ModelRefused with a message safe to show.

    open_clip pairs are checked against open_clip's list (imports open_clip, a few seconds
    once per process)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise ModelRefused(f"a model name has 1 to {MAX_NAME_CHARS} characters")
    if not name.isprintable():
        raise ModelRefused("a model name cannot hold control characters")
    if any(info.name == name for info in BUILTIN) or PRECOMPUTED.fullmatch(name):
        return name
    if name.startswith("open_clip:"):
        spec = name.removeprefix("open_clip:")
        if "@" in spec:
            if not _enabled(ALLOW_LOCAL_ENV):
                raise ModelRefused(
                    "local weights files (open_clip:ARCH@PATH) are disabled on this server; "
                    f"its operator can enable them with {ALLOW_LOCAL_ENV}=1"
                )
            return name
        arch, _, tag = spec.partition("/")
        if not (_OPEN_CLIP_PART.fullmatch(arch) and _OPEN_CLIP_PART.fullmatch(tag)):
            raise ModelRefused("expected open_clip:ARCH/TAG, e.g. open_clip:ViT-B-32/openai")
        try:
            get_model(name)  # is it a pair open_clip knows?
        except ValueError as err:
            raise ModelRefused(str(err)) from None
        return name
    if name.startswith("st:"):
        source = name.removeprefix("st:")
        if _looks_local(source):
            if not _enabled(ALLOW_LOCAL_ENV):
                raise ModelRefused(
                    "local model folders (st:PATH) are disabled on this server; its operator "
                    f"can enable them with {ALLOW_LOCAL_ENV}=1"
                )
            return name
        if not _HUB_ID.fullmatch(source) or not _st_allowed(source):
            raise ModelRefused(
                "sentence-transformers models from the Hub (st:ORG/NAME) are not enabled on this "
                f"server; its operator can enable them with {ALLOW_ST_ENV}=1 or a list of names"
            )
        if os.path.lexists(source) and not _enabled(ALLOW_LOCAL_ENV):
            # sentence-transformers would load a relative path before the Hub
            raise ModelRefused(f"{name} cannot be loaded on this server")
        return name
    valid = ", ".join(info.name for info in BUILTIN)
    raise ModelRefused(f"unknown model; use one of {valid}, or open_clip:ARCH/TAG")
