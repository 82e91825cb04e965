"""Short automatic descriptions of a mode: its label make-up and its most telling words."""

from __future__ import annotations

import math
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


#: The majority label is named only when at least this share of the members carry it.
DOMINANT_SHARE = 0.5
#: A term is telling when it is in at least this many members (and this share of them), at
#: least MIN_RATIO times more often (as a share) than in the other rows, and its log-odds
#: z-score passes Z_MIN.
MIN_MEMBER_COUNT = 2
MIN_MEMBER_SHARE = 0.1
MIN_RATIO = 2.0
Z_MIN = 1.96


@dataclass(frozen=True)
class ModeDescription:
    headline: str
    label_counts: tuple[tuple[str, int], ...]
    top_terms: tuple[str, ...]
    majority_label: str | None = None  # only when it dominates (>= DOMINANT_SHARE)


def terms(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z'-]+", text.lower()) if w not in _STOP]


def contrastive_terms(
    members: Sequence[int], texts: Sequence[str], *, n_terms: int = 5
) -> tuple[str, ...]:
    """The terms frequent in the members' texts and rare in the other rows'.

    Per term, the members that contain it (c_in of m) against the other rows (c_out of N - m):
    the log-odds ratio with +0.5 smoothing and its z-score. A term is kept when it is in at
    least MIN_MEMBER_COUNT members (and 10% of them), MIN_RATIO times more often (as a share)
    than elsewhere, and z >= Z_MIN; ranked by z. So a term that every text shares (ratio ~1) is
    never named, and when nothing stands out nothing is named: no filler.
    """
    member_set = set(int(i) for i in members)
    m, total = len(member_set), len(texts)
    rest = total - m
    if m == 0 or rest <= 0:
        return ()
    inside: Counter[str] = Counter()
    everywhere: Counter[str] = Counter()
    for row, text in enumerate(texts):
        words = set(terms(text or ""))
        everywhere.update(words)
        if row in member_set:
            inside.update(words)
    scored = []
    for term, c_in in inside.items():
        c_out = everywhere[term] - c_in
        if c_in < max(MIN_MEMBER_COUNT, math.ceil(MIN_MEMBER_SHARE * m)):
            continue
        share_in, share_out = c_in / m, c_out / rest
        if share_in < MIN_RATIO * share_out:
            continue
        log_odds = math.log((c_in + 0.5) / (m - c_in + 0.5)) - math.log(
            (c_out + 0.5) / (rest - c_out + 0.5)
        )
        spread = math.sqrt(
            1 / (c_in + 0.5) + 1 / (m - c_in + 0.5) + 1 / (c_out + 0.5) + 1 / (rest - c_out + 0.5)
        )
        z = log_odds / spread
        if z >= Z_MIN:
            scored.append((-z, -c_in, term))
    return tuple(term for _, _, term in sorted(scored)[:n_terms])


def describe_members(
    members: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
    n_terms: int = 5,
) -> ModeDescription:
    """The members' label make-up, their telling terms (`contrastive_terms`), and a one-line
    headline: the majority label only when it dominates, else the mix."""
    label_counts: tuple[tuple[str, int], ...] = ()
    majority = None
    parts = []
    if labels is not None and len(members):
        counts = Counter(labels[i] or "(none)" for i in members)
        label_counts = tuple(counts.most_common())
        top, top_n = label_counts[0]
        if top_n / len(members) >= DOMINANT_SHARE:
            majority = top
            parts.append(f"{top_n}/{len(members)} {top}")
        else:
            mix = ", ".join(f"{count} {label}" for label, count in label_counts[:3])
            parts.append(f"mixed labels: {mix}" + (", ..." if len(label_counts) > 3 else ""))
    top_terms: tuple[str, ...] = ()
    if texts is not None and any(texts):
        top_terms = contrastive_terms(members, texts, n_terms=n_terms)
        if top_terms:
            parts.append("terms: " + ", ".join(top_terms))
    return ModeDescription(
        "; ".join(parts) or "no labels or telling terms", label_counts, top_terms, majority
    )
