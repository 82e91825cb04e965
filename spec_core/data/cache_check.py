"""Checking the whole disk cache (`python -m spec_core cache --verify [--repair]`): every
embedding entry (its checksum computed afresh), every upload's manifest, and every stored image
against the sha256 its name carries. Checking changes nothing; `repair` moves the damaged
entries aside as a read in the app would (spec_core.data.integrity), never deleting them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from spec_core.data import uploads
from spec_core.data.cache import CHUNK, EmbeddingCache, default_cache_root, image_store
from spec_core.data.integrity import (
    DAMAGED,
    Damage,
    contained,
    regular_file,
    set_aside,
    set_aside_entries,
)

#: The kinds of entries, in the order they are checked and reported.
KINDS = ("embeddings", "uploads", "images")


@dataclass(frozen=True)
class Finding:
    """One entry: its `kind` (KINDS), `name` (key, reference or file name), `state` ("ok",
    "old", "incomplete" or "damaged"), what is wrong, and where `repair` moved it."""

    kind: str
    name: str
    state: str
    reason: str = ""
    moved_to: Path | None = None


@dataclass(frozen=True)
class CacheReport:
    """Every entry's finding, and how many entries were set aside before this check."""

    root: Path
    findings: tuple[Finding, ...]
    set_aside_before: int

    def counts(self, kind: str) -> Counter:
        return Counter(f.state for f in self.findings if f.kind == kind)

    @property
    def damaged(self) -> list[Finding]:
        return [f for f in self.findings if f.state == "damaged"]


def verify_cache(root: str | Path | None = None, *, repair: bool = False) -> CacheReport:
    """Check every entry of the cache at `root` (default: the app's); `repair` moves the
    damaged ones aside (to `<root>/damaged/`)."""
    root = Path(root).expanduser() if root is not None else default_cache_root()
    before = sum(len(set_aside_entries(root, kind)) for kind in KINDS)
    findings = [
        Finding("embeddings", c.key, c.state, c.reason, c.moved_to)
        for c in EmbeddingCache(root).check_all(repair=repair)
    ]
    findings += _check_uploads(root, repair)
    findings += _check_images(root, repair)
    return CacheReport(root, tuple(findings), before)


def _check_uploads(root: Path, repair: bool) -> list[Finding]:
    folder = root / "uploads"
    if not folder.is_dir():
        return []
    refs = sorted(p.stem for p in folder.glob("*.json") if uploads.REF.fullmatch(p.stem))
    findings = []
    for ref in refs:
        state, reason = uploads.check(ref, root=root)
        moved = None
        if state == "damaged" and repair:
            moved = uploads.set_aside_upload(ref, reason, root=root)
        findings.append(Finding("uploads", ref, state, reason, moved))
    return findings


def _check_images(root: Path, repair: bool) -> list[Finding]:
    store = image_store(root)
    if not store.is_dir():
        return []
    findings = []
    for path in sorted(store.iterdir()):
        if path.name.startswith("."):  # a write in progress (or one that died: see cleanup)
            continue
        try:
            _check_image(store, path.name)
        except Damage as damage:
            moved = set_aside(root, "images", path.name, [path], str(damage)) if repair else None
            findings.append(Finding("images", path.name, "damaged", str(damage), moved))
            continue
        findings.append(Finding("images", path.name, "ok"))
    return findings


def _check_image(store: Path, name: str) -> None:
    """Damage unless `name` is a file of the store whose content's sha256 its name carries."""
    if not uploads.IMAGE_NAME.fullmatch(name):
        raise Damage("its name is not the sha256 of its content and a suffix")
    path = contained(store, name)
    if not regular_file(path, "image"):
        return  # removed meanwhile
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != name.partition(".")[0]:
        raise Damage("its content does not match the sha256 in its name")


def describe(report: CacheReport, *, repair: bool) -> list[str]:
    """The report as lines for people: a summary per kind, then every entry that is not ok."""
    lines = [f"cache at {report.root}"]
    for kind in KINDS:
        counts = report.counts(kind)
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"
        lines.append(f"{kind}: {sum(counts.values())} checked ({summary})")
        for f in report.findings:
            if f.kind == kind and f.state != "ok":
                moved = f" -> moved to {f.moved_to}" if f.moved_to else ""
                lines.append(f"  {f.state:<10} {f.name[:16]:<16}  {f.reason}{moved}")
    damaged = len(report.damaged)
    if damaged and not repair:
        lines.append(f"{damaged} damaged: `cache --repair` moves them aside (kept, not deleted)")
    if report.set_aside_before:
        lines.append(
            f"{report.set_aside_before} entries set aside before, kept for inspection in "
            f"{report.root / DAMAGED} (delete them when done)"
        )
    return lines
