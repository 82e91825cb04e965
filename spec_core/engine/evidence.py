"""The evidence each mode carries: how big, how tight, how stable, how pure.

- size: the effective number of rows that stand out in the mode's score vector u: the
  participation ratio (sum d^2)^2 / sum d^4 of d = max(u - median(u), 0) (k for the indicator
  of k rows, 5n/18 for a linear gradient across the data). The eigenvectors of a near-repeated
  eigenvalue (equal groups) are first rotated to their most localised basis (`localize`).
- contrast: the mean kernel value among the top-k members, in A and in B (off-diagonal pairs,
  the kernels themselves, exactly, whatever the route): why it is an A-not-B or a B-not-A group.
- stability: the eigenproblem is solved again on resamples of the rows (10 x 80% by default);
  each resample's matching mode (same direction, the largest overlap with the mode's scores) is
  extended to every row by its eigen-equation, and its members are compared with the mode's:
  the mean Jaccard overlap, and in how many resamples it is at least 0.5 ("comes back"). The
  members compared are the top round(size) rows (at least 5): a group of 30 near-equal scores
  cut at a top-k of 20 would otherwise be called unstable for the arbitrariness of the cut.
  The resamples reuse what the comparison built (the n x n matrix, or the kept features) and
  start the eigensolver from the comparison's own vectors for a fixed few Krylov steps, so they
  cost a few matrix products each, not another comparison; the ten are solved together, one
  wide product per Krylov round (spec_core.engine.resample). Beyond STABILITY_POOL_ROWS rows (or
  when the feature route streams its features) stability is measured on a seeded sample of
  that many rows.
- purity: the share of the top-k members that carry the majority label, when labels are given.

A mode is weak when it is below the noise floor, unstable, tiny, not tighter on its own side,
or broad with nothing (stability, labels) to back it as a group: `ModeItem.weak_reasons` says
which, in words. Size alone never makes a stable, contrasting (and, with labels, pure) group
weak: a broad one gets a neutral note (`ModeItem.notes`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from spec_core.engine.eigenspaces import REPEATED_GAP as REPEATED_GAP
from spec_core.engine.eigenspaces import localize as localize
from spec_core.engine.eigenspaces import near_repeated as near_repeated
from spec_core.engine.operators import STABILITY_POOL_ROWS as STABILITY_POOL_ROWS
from spec_core.engine.operators import STABILITY_SEED_OFFSET as STABILITY_SEED_OFFSET
from spec_core.engine.operators import DenseOperator as DenseOperator
from spec_core.engine.operators import FeatureOperator as FeatureOperator
from spec_core.engine.resample import RESAMPLE_STEPS as RESAMPLE_STEPS
from spec_core.engine.resample import solve_resamples

if TYPE_CHECKING:
    from spec_core.engine.rows import KernelRows

#: Resamples of the rows, and the share of the rows each keeps.
STABILITY_RESAMPLES = 10
STABILITY_FRACTION = 0.8
#: A resample "brings the mode back" when its members' overlap (Jaccard) is at least this.
COMES_BACK_JACCARD = 0.5
#: The members compared are the top round(size) rows, at least this many.
MIN_STABILITY_MEMBERS = 5
#: A mode lists at least this many members (the cut), whatever its size, among the rows that
#: stand out: at least MEMBER_SHARE of the top score's distance from the median score.
MIN_MEMBERS = 5
MEMBER_SHARE = 0.1
#: The mean kernel value over pairs (an embedding's baseline) is taken on this many rows.
BASELINE_ROWS = 1000
#: Weak-mode thresholds: unstable below this stability; tiny below this effective size; broad
#: above this share of the rows (weak only when stability or labels do not back it as a group).
UNSTABLE_BELOW = 0.5
BROAD_SHARE = 0.1
BROAD_MIN_ROWS = 20  # small datasets: a group of 8 in 31 rows is still a group
TINY_SIZE = 3.0
#: A broad mode counts as a group when (with labels) at least this share of its members carry
#: the commonest label, besides being stable and contrasting.
PURE_SHARE = 0.6
#: ... or, without labels, when its members' relative_tightness on their own side is at least
#: this (halfway from the average pair to identical).
BROAD_TIGHT = 0.5
#: A mode tighter on its own side by less than this (relative_tightness, own minus other) is
#: weak: "barely tighter". Two embeddings that differ only by noise (B = A + 1% noise) give
#: modes of 0.001-0.002; a group one embedding captures, tenths.
MIN_LIFT_GAP = 0.01
#: Krylov expansions per resample started from the whole span of the top eigenvectors
#: (groups.span_starts): a start that already holds every group needs fewer expansions than
#: resample.RESAMPLE_STEPS (and a span's wider block costs more per step).
SPAN_STEPS = 2


@dataclass
class ModeItem:
    """One mode's vector and evidence, before it becomes a result.Mode."""

    direction: str
    rank: int
    index: int  # the eigenvalue's position in the spectrum
    scores: np.ndarray  # unit score vector over all rows, signed so the group scores > 0
    members: np.ndarray
    size: float
    contrast: dict[str, float]
    baseline: dict[str, float] = field(default_factory=dict)
    stability: float | None = None
    stability_hits: int | None = None
    n_resamples: int = 0
    purity: float | None = None
    majority_label: str | None = None
    value: float | None = None  # a group of a span (groups.py): its Rayleigh quotient

    def weak_reasons(self, *, above_noise_floor: bool, n_rows: int) -> tuple[str, ...]:
        """Why the mode is not a group to rely on, in words (empty: a finding). A group is
        judged by what makes it one: above the noise floor, tighter on its own side than on
        the other, stable on resamples and, with labels, pure; its size alone never makes it
        weak (a broad group that this evidence backs gets a `notes` entry instead)."""
        reasons = []
        if not above_noise_floor:
            reasons.append("below the noise floor")
        if self.stability is not None and self.stability < UNSTABLE_BELOW:
            reasons.append(
                f"unstable: comes back in {self.stability_hits} of {self.n_resamples} resamples"
            )
        if self._broad(n_rows) and not self._backed():
            reasons.append(f"broad: spread over ~{self.size:.0f} of {n_rows} rows, {self._why()}")
        if self.size < TINY_SIZE:
            reasons.append(f"tiny: ~{self.size:.1f} rows (near-duplicates?)")
        own, other = ("a", "b") if self.direction == "A" else ("b", "a")
        lift = relative_tightness(self.contrast, self.baseline) if self.contrast else {}
        if self.contrasting() and lift and lift[own] - lift[other] < MIN_LIFT_GAP:
            reasons.append(
                f"barely tighter in {own.upper()} than in {other.upper()}: "
                f"{lift[own]:.3f} vs {lift[other]:.3f} of the way from each one's average "
                f"pair to identical (a difference under {MIN_LIFT_GAP})"
            )
        if not self.contrasting():
            reasons.append(
                f"not tighter in {own.upper()} than in {other.upper()} beyond each one's "
                f"average pair ({own.upper()} {number(self.contrast[own])} vs "
                f"{number(self.baseline.get(own, 0.0))}, {other.upper()} "
                f"{number(self.contrast[other])} vs {number(self.baseline.get(other, 0.0))})"
            )
        return tuple(reasons)

    def notes(self, *, n_rows: int) -> tuple[str, ...]:
        """What a reader should know about a mode that is not a reason to doubt it: a broad
        group backed by its contrast, stability and purity."""
        if self._broad(n_rows) and self._backed():
            return (f"broad: about {self.size:.0f} rows, {self.size / n_rows:.0%} of the data",)
        return ()

    def contrasting(self) -> bool:
        """Whether the members stand out further above their own side's average pair than
        above the other side's (relative_tightness); True when not measured."""
        if not self.contrast:
            return True
        own, other = ("a", "b") if self.direction == "A" else ("b", "a")
        lift = relative_tightness(self.contrast, self.baseline)
        return lift[own] > lift[other]

    def _broad(self, n_rows: int) -> bool:
        return self.size > max(BROAD_SHARE * n_rows, BROAD_MIN_ROWS)

    def _backed(self) -> bool:
        """What makes a broad mode a group rather than a spread over the data: contrasting,
        stable (when measured) and pure (with labels), and either pure or, without labels,
        clearly tight on its own side (relative_tightness at least BROAD_TIGHT: halfway from
        the average pair to identical; a smooth region of one cloud reaches ~0.1-0.3)."""
        own = "a" if self.direction == "A" else "b"
        stable = self.stability is not None and self.stability >= UNSTABLE_BELOW
        pure = self.purity is not None and self.purity >= PURE_SHARE
        if not self.contrasting() or (self.stability is not None and not stable):
            return False
        if self.purity is not None:
            return pure
        tight = relative_tightness(self.contrast, self.baseline)[own] >= BROAD_TIGHT
        return stable and tight

    def _why(self) -> str:
        if self.purity is not None and self.purity < PURE_SHARE:
            return f"mixed (the commonest label on {self.purity:.0%} of the members)"
        if self.stability is None and self.purity is None:
            return "with no stability or labels to show it is one group"
        if self.stability is not None and self.stability < UNSTABLE_BELOW:
            return "not a stable group"
        if not self.contrasting():
            return "not a group of its own side"
        return "not clearly tighter than the average pair"


def relative_tightness(contrast: dict, baseline: dict) -> dict[str, float]:
    """How far the members' mean kernel value sits from the embedding's average pair towards
    identical (1): (contrast - baseline) / (1 - baseline). Kernels differ in their typical
    values (cosine similarities of one text model ~0.8, of another ~0.1), so raw means are not
    comparable across embeddings; this is."""
    out = {}
    for side, value in contrast.items():
        base = baseline.get(side, 0.0)
        out[side] = (value - base) / max(1.0 - base, 1e-6)
    return out


def number(value: float) -> str:
    """Two decimals, or two significant digits for values that would read 0.00."""
    return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"


@dataclass
class ModeEvidence:
    """The modes picked from a spectrum with their evidence, and how stability was measured."""

    modes: list[ModeItem] = field(default_factory=list)
    n_resamples: int = 0
    pool_rows: int | None = None  # rows stability was measured over (None: no stability)


def evidence_for_modes(
    values: np.ndarray,
    vectors: np.ndarray,
    operator,
    *,
    rows_a: KernelRows,
    rows_b: KernelRows,
    n_modes: int,
    top_k: int,
    labels: Sequence[str] | None,
    stability: bool,
    seed: int,
    report: Callable[[str, int, int], None],
    members: str = "cut",
    noise_floor: float = 0.0,
    grouping: str = "eigenvectors",
) -> ModeEvidence:
    """Pick each direction's strongest modes from the spectrum and attach their evidence.

    members "cut": a mode's members are its top round(size) rows (at least MIN_MEMBERS, at
    most top_k): the rows its score vector actually spreads over, not a fixed top_k whose tail
    would be rows with near-zero scores. members "top_k": always the top_k rows.
    grouping "span": each mode is a group of the span of its direction's top eigenvectors
    (spec_core.engine.groups); "eigenvectors": one eigenvector each."""
    span = 0
    if grouping == "span":  # issue 16: groups from the span of the top eigenvectors
        from spec_core.engine.groups import SPAN_VECTORS, span_groups

        span = SPAN_VECTORS  # the resamples resolve and match within a span this wide
        eigenvalues = values
        values, vectors = span_groups(values, vectors, noise_floor)
    else:
        vectors = localize(values, vectors, noise_floor)
    items = _pick_modes(values, vectors, n_modes, top_k, cut=members == "cut")
    starts = None
    if span:  # the resamples start from the whole span (groups.span_starts)
        from spec_core.engine.groups import span_starts

        starts = span_starts(eigenvalues, vectors, noise_floor)
    baseline = (
        {"a": baseline_kernel(rows_a, seed), "b": baseline_kernel(rows_b, seed)} if items else {}
    )
    for item in items:
        item.contrast = {
            "a": mean_kernel(rows_a, item.members),
            "b": mean_kernel(rows_b, item.members),
        }
        item.baseline = dict(baseline)
        if labels is not None:
            counts = Counter(str(labels[i]) or "(none)" for i in item.members)
            item.majority_label, top = counts.most_common(1)[0]
            item.purity = top / len(item.members)
    out = ModeEvidence(items)
    if stability and items and operator is not None:
        out.n_resamples, out.pool_rows = _stability(
            items, operator, seed, report, noise_floor, span=span, starts=starts
        )
    return out


def _pick_modes(values, vectors, n_modes: int, top_k: int, *, cut: bool) -> list[ModeItem]:
    items = []
    for direction in ("A", "B"):
        order = np.arange(len(values))
        if direction == "B":
            order = order[::-1]
        picked = [i for i in order if (values[i] > 0 if direction == "A" else values[i] < 0)]
        for rank, idx in enumerate(picked[:n_modes]):
            scores = vectors[:, idx].astype(np.float64)
            cubes = float(np.sum(scores**3))
            if cubes < 0 or (cubes == 0 and scores[np.argmax(np.abs(scores))] < 0):
                scores = -scores
            size = participation_ratio(scores)
            count = member_count(size, top_k, len(scores)) if cut else top_k
            if cut:  # members stand out from the bulk of the rows (no zero-score padding)
                lift = scores - np.median(scores)
                standing = int((lift >= MEMBER_SHARE * lift.max()).sum()) if lift.max() > 0 else 1
                count = max(1, min(count, standing))
            members = np.argsort(-scores, kind="stable")[:count]
            items.append(ModeItem(direction, rank, int(idx), scores, members, size, {}))
            items[-1].value = float(values[idx])
    return items


def member_count(size: float, top_k: int, n: int) -> int:
    """The data-driven cut: round(size) members, at least MIN_MEMBERS, at most top_k."""
    return int(min(max(round(size), MIN_MEMBERS), top_k, n))


def participation_ratio(scores: np.ndarray) -> float:
    """The effective number of rows that stand out in a mode's scores: the participation ratio
    (sum d^2)^2 / sum d^4 of d = max(u - median(u), 0) (k for an indicator of k rows, 5n/18
    for a linear gradient). Measured from the median, the bulk of the rows counts as zero:
    centring gives every non-member the same small negative score, which would otherwise make
    30 planted rows read as ~55. Only the rows above the median count: the group is the rows
    that score high (the scores are signed so), and a mode that sets a group against others
    (a centred kernel's contrast of one group with the rest of several equal groups) would
    otherwise count the others too (200 planted rows read as ~250)."""
    d = np.asarray(scores, dtype=np.float64)
    if d.size == 0:
        return 0.0
    d = np.maximum(d - np.median(d), 0.0)
    peak = float(d.max())
    if peak <= 0:
        return 0.0
    squares = (d / peak) ** 2  # no overflow or underflow in the fourth powers
    return float(squares.sum() ** 2 / np.sum(squares**2))


def baseline_kernel(rows: KernelRows, seed: int) -> float:
    """The embedding's average pair: the mean kernel value over distinct pairs of a seeded
    sample of at most BASELINE_ROWS rows."""
    from spec_core.engine.kernels import sample_rows

    return mean_kernel(rows, sample_rows(rows.n_rows, BASELINE_ROWS, seed))


def mean_kernel(rows: KernelRows, members: np.ndarray) -> float:
    """The mean kernel value over distinct pairs of `members` (exact, from the rows)."""
    import torch

    if len(members) < 2:
        return 1.0
    x = rows.take(np.sort(members)).double()
    gram = rows.matrix(x, x)
    m = len(members)
    off = (gram.sum() - torch.diagonal(gram).sum()) / (m * (m - 1))
    return float(off)


def jaccard(first, second) -> float:
    """|first & second| / |first | second| of two sets of row indices (1 when both are empty)."""
    a, b = set(np.asarray(first).tolist()), set(np.asarray(second).tolist())
    return len(a & b) / len(a | b) if a or b else 1.0


def stability_members(size: float, pool_n: int) -> int:
    """How many top rows are compared between a mode and its resample: the mode's effective
    size (its members, rather than an arbitrary top-k cut through a group of near-equal
    scores), at least MIN_STABILITY_MEMBERS and at most half the pool."""
    return int(min(max(round(size), MIN_STABILITY_MEMBERS), max(pool_n // 2, 1)))


def _stability(items, operator, seed, report, floor: float = 0.0, span: int = 0, starts=None):
    """Fill each item's stability from resamples of the operator's pool of rows; (resamples,
    pool rows). span > 0: the modes are groups of the span of each direction's top `span`
    eigenvectors: each resample resolves that many eigenpairs at each end (at least) and
    matches a group within them (groups.span_positions). starts (n x s): the vectors each
    resample's solver starts from (default: the modes' own), then for SPAN_STEPS expansions."""
    import torch

    pool_n = operator.size
    keep = round(STABILITY_FRACTION * pool_n)
    per_side = Counter(item.direction for item in items)
    n_each = max(max(per_side.values()) + 2, span)
    if keep < 2 * n_each + 2:
        return 0, pool_n
    pool = operator.pool
    dtype, device = operator.dtype, operator.device
    reference = np.stack([it.scores if pool is None else it.scores[pool] for it in items], axis=1)
    sizes = [stability_members(item.size, pool_n) for item in items]
    targets = [np.argsort(-reference[:, j], kind="stable")[: sizes[j]] for j in range(len(items))]
    n_resamples = STABILITY_RESAMPLES
    rng = np.random.default_rng(seed + STABILITY_SEED_OFFSET)
    first = reference if starts is None else starts if pool is None else starts[pool]
    chosen = [np.sort(rng.choice(pool_n, size=keep, replace=False)) for _ in range(n_resamples)]
    subsets = [torch.from_numpy(subset).to(device) for subset in chosen]
    blocks = [torch.from_numpy(first[rows]).to(device=device, dtype=dtype) for rows in chosen]
    report("stability", 0, n_resamples)
    steps = RESAMPLE_STEPS if starts is None else SPAN_STEPS
    solved = solve_resamples(operator, subsets, blocks, n_each=n_each, seed=seed, max_steps=steps)
    overlaps = np.zeros((n_resamples, len(items)))
    for r, (eigs, extended) in enumerate(solved):
        extended = extended.double().cpu().numpy()
        found_values = eigs.values.double().cpu().numpy()
        on_subset = eigs.vectors.double().cpu().numpy()
        for j, item in enumerate(items):
            found = _matching_members(
                item.direction,
                reference[chosen[r], j],
                sizes[j],
                found_values,
                on_subset,
                extended,
                floor,
                span,
            )
            if found is not None:
                overlaps[r, j] = jaccard(found, targets[j])
    report("stability", n_resamples, n_resamples)
    for j, item in enumerate(items):
        item.stability = float(overlaps[:, j].mean())
        item.stability_hits = int((overlaps[:, j] >= COMES_BACK_JACCARD).sum())
        item.n_resamples = n_resamples
    return n_resamples, pool_n


def _matching_members(
    direction, scores_on_subset, size, values, on_subset, extended, floor, span=0
):
    """A mode's top `size` rows in one resample, or None when no eigenvalue there has its sign.

    The matching mode has the mode's direction (the sign of its eigenvalue) and the largest
    |cosine| between its vector on the resample's rows (`on_subset`) and the mode's own scores
    there; its rows are ranked by its vector `extended` to the whole pool, signed like the mode.
    When its eigenvalue is near-repeated in the resample (`near_repeated`), the mode's scores
    are projected onto that eigenspace instead (its vectors are an arbitrary basis there); with
    `span`, onto the span of the resample's top `span` eigenvectors of that sign (groups.py).
    """
    want = 1.0 if direction == "A" else -1.0
    candidates = np.flatnonzero(np.sign(values) == want)
    if candidates.size == 0:
        return None
    cosines = scores_on_subset @ on_subset[:, candidates]
    best = int(np.argmax(np.abs(cosines)))
    runs = near_repeated(values[candidates], floor)
    run = next((r for r in runs if best in r), np.array([best]))
    if span:  # a group of the span: its projection onto the resample's span
        from spec_core.engine.groups import span_positions

        run = span_positions(values[candidates], want, floor, span)
    if run.size == 1:
        ranking = extended[:, candidates[best]] * np.sign(cosines[best] or 1.0)
    else:
        ranking = extended[:, candidates[run]] @ cosines[run]
    return np.argsort(-ranking, kind="stable")[:size]
