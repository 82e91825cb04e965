"""What every dataset loader builds and reports: the rows of a dataset (`Dataset`, with a
fingerprint per modality that keys the embedding cache), the caps on what a dataset may hold
(`Limits`), the items skipped with their reasons (`Skipped`, kept in a bounded list), and the
error when a dataset as a whole cannot be used (`DatasetError`).

`spec_core.data.datasets` is where users import these from; the loaders (image_sets.py,
text_sets.py) import them here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar


@dataclass(frozen=True)
class Limits:
    """Caps on what a dataset may hold; every one is reported by name when hit."""

    max_files: int = 20_000
    max_file_bytes: int = 32 * 2**20
    max_total_bytes: int = 2 * 2**30
    max_pixels: int = 40_000_000
    max_zip_ratio: float = 200.0
    max_text_rows: int = 200_000
    max_text_chars: int = 20_000
    #: Skipped items (and notes of one kind) listed one by one; the rest are counted in one entry.
    max_listed: int = 1_000


@dataclass(frozen=True)
class Skipped:
    """An item left out and why; `count` items when one entry stands for several (the rows
    over the cap, the skipped items past the listed ones)."""

    item: str
    reason: str
    count: int = 1


T = TypeVar("T")


class Bounded(Generic[T]):
    """The first `limit` items of a stream that may be huge, and a count of the rest: a zip of a
    million bad members, or a file of a million bad lines, costs `limit` entries, not a million.
    `len()` is the count of every item appended."""

    def __init__(self, limit: int):
        self.limit = limit
        self.kept: list[T] = []
        self.more = 0

    def append(self, item: T) -> None:
        if len(self.kept) < self.limit:
            self.kept.append(item)
        else:
            self.more += 1

    def __len__(self) -> int:
        return len(self.kept) + self.more

    def listed(self, summary: Callable[[int], T]) -> tuple[T, ...]:
        """The kept items, then `summary(count of the rest)` when some were not kept."""
        return tuple(self.kept) + ((summary(self.more),) if self.more else ())


def listed_skips(skipped: Bounded[Skipped]) -> tuple[Skipped, ...]:
    """A dataset's skipped items: the first ones with their reasons, then one entry counting
    the rest."""
    return skipped.listed(
        lambda more: Skipped(
            counted(more, "more item"),
            f"also skipped; only the first {skipped.limit:,} skipped items are listed",
            more,
        )
    )


@dataclass(frozen=True)
class Dataset:
    """Rows of one dataset. `texts` are the texts (text sets) or the captions (image sets, when
    a captions table was given); `image_paths` are files on disk (image sets)."""

    name: str
    kind: str
    ids: tuple[str, ...]
    texts: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None
    image_paths: tuple[str, ...] | None = None
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def skipped_count(self) -> int:
        """How many items were left out (an entry may stand for several)."""
        return sum(s.count for s in self.skipped)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def modalities(self) -> tuple[str, ...]:
        """What can be embedded: images (image sets), texts (text sets and captioned images)."""
        out = ("image",) if self.kind == "image" else ()
        return out + (("text",) if self.texts is not None else ())

    def items(self, modality: str) -> tuple[str, ...]:
        """The inputs of an encoder for `modality`: image paths or texts, in row order."""
        if modality not in self.modalities:
            have = " and ".join(self.modalities) or "nothing"
            raise ValueError(f"dataset {self.name!r} has no {modality}s (it has {have})")
        return self.image_paths if modality == "image" else self.texts

    @property
    def texts_are_ids(self) -> bool:
        """Rows with no text of their own (two uploaded matrices on their own rows): the ids
        stand in as their texts, so a table shows the id once."""
        return self.kind == "text" and self.texts is not None and tuple(self.texts) == self.ids

    def fingerprint(self, modality: str) -> str:
        self.items(modality)
        return self.fingerprints[modality]


class DatasetError(ValueError):
    """The dataset as a whole cannot be used (empty, over a cap, unreadable table)."""


def fingerprint_rows(kind: str, pairs: Iterator[tuple[str, str]]) -> str:
    """sha256 over the rows in order: (id, content) pairs, length-prefixed so that no two
    different datasets hash alike."""
    hasher = hashlib.sha256(f"spec-explorer-dataset/v1/{kind}\n".encode())
    for row_id, content in pairs:
        for part in (row_id, content):
            encoded = part.encode("utf-8", "surrogatepass")
            hasher.update(len(encoded).to_bytes(8, "little"))
            hasher.update(encoded)
    return hasher.hexdigest()


def counted(number: int, unit: str) -> str:
    """'1 row', '2,000 rows'."""
    return f"{number:,} {unit}{'' if number == 1 else 's'}"


def over_file_limit(size: int, limit: int) -> str:
    """Why a file of `size` bytes is skipped or refused (`limit` in bytes; shown in MiB)."""
    return f"{size / 2**20:.1f} MiB is over the per-file limit of {limit / 2**20:.0f} MiB"
