"""What the model registry says of a model (ModelInfo) and the error when one cannot be loaded.

Both the registry (spec_core.models.registry) and the encoders (spec_core.models.encoders) use
them, so they sit below both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry. `modalities`: what it embeds; `dim`: output size when known;
    `offline`: works with no network (weights ship in a package or a local file); `size_mb`:
    about how many MB of weights it loads (and, for a download, fetches once)."""

    name: str
    family: str
    modalities: tuple[str, ...]
    dim: int | None
    offline: bool
    summary: str
    source: str = ""
    size_mb: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "modalities": list(self.modalities),
            "dim": self.dim,
            "offline": self.offline,
            "size_mb": self.size_mb,
            "summary": self.summary,
        }
