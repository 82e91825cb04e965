"""Short automatic descriptions of a mode: its label make-up and its most telling words."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_STOP = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "to",
        "in",
        "on",
        "for",
        "with",
        "by",
        "from",
        "at",
        "as",
        "is",
        "are",
        "be",
        "that",
        "this",
        "it",
        "its",
        "into",
        "any",
        "some",
        "other",
        "e",
        "g",
        "especially",
    }
)


@dataclass(frozen=True)
class ModeDescription:
    headline: str
    label_counts: tuple[tuple[str, int], ...]
    top_terms: tuple[str, ...]


def terms(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z'-]+", text.lower()) if w not in _STOP]


def describe_members(
    members: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
    n_terms: int = 5,
) -> ModeDescription:
    """Label counts of the members; the terms over-represented in their texts relative to the
    whole set (document frequency ratio, at least two members); a one-line headline."""
    label_counts: tuple[tuple[str, int], ...] = ()
    parts = []
    if labels is not None:
        counts = Counter(labels[i] or "(none)" for i in members)
        label_counts = tuple(counts.most_common())
        top, top_n = label_counts[0]
        parts.append(f"{top_n}/{len(members)} {top}")
    top_terms: tuple[str, ...] = ()
    if texts is not None and any(texts):
        everywhere = Counter(t for text in texts for t in set(terms(text)))
        inside = Counter(t for i in members for t in set(terms(texts[i])))
        total = max(len(texts), 1)
        score = {
            t: (c / len(members)) / (everywhere[t] / total) for t, c in inside.items() if c >= 2
        }
        top_terms = tuple(sorted(score, key=lambda t: (-score[t], -inside[t], t))[:n_terms])
        if top_terms:
            parts.append("terms: " + ", ".join(top_terms))
    return ModeDescription("; ".join(parts) or "no labels or texts", label_counts, top_terms)
