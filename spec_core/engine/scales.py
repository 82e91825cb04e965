"""The differential spectrum across bandwidths: at which scale do the two embeddings differ?

A Gaussian bandwidth sets the size of the groups a kernel sees: small, and only near-duplicates
are similar; large, and whole regions are. `scale_sweep` runs the comparison at a range of
multipliers of the data-driven bandwidths (the same multiplier for A and B, so the two stay on
an equal footing) and follows each mode across neighbouring scales: a mode at one scale and one
at the next are the same group when their score vectors overlap (|cosine| >= TRACK_COSINE).
Every scale's result is kept, so a user can open the modes of any scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from spec_core.engine.result import SpecResult

#: The default multipliers of the data-driven bandwidths.
DEFAULT_MULTIPLIERS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
#: Two modes at neighbouring scales are the same group above this |cosine| of their scores.
TRACK_COSINE = 0.6


@dataclass(frozen=True)
class TrackPoint:
    scale: int  # index into ScaleSweep.multipliers
    rank: int  # the mode's rank on its side at that scale
    eigenvalue: float


@dataclass(frozen=True)
class Track:
    """One group followed across scales: its direction and its points, by increasing scale."""

    direction: str
    points: tuple[TrackPoint, ...]

    @property
    def strongest(self) -> TrackPoint:
        return max(self.points, key=lambda p: abs(p.eigenvalue))


@dataclass(frozen=True)
class ScaleSweep:
    multipliers: tuple[float, ...]
    sigmas_a: tuple[float, ...]
    sigmas_b: tuple[float, ...]
    results: tuple[SpecResult, ...] = field(repr=False)
    tracks: tuple[Track, ...]
    skipped: tuple[tuple[float, str], ...] = ()  # multipliers refused, with the reason

    @property
    def spec_diffs(self) -> tuple[float, ...]:
        return tuple(r.spec_diff for r in self.results)

    @property
    def strongest_scale(self) -> int:
        """The index of the scale with the largest SPEC-diff."""
        return int(np.argmax(self.spec_diffs))

    def to_dict(self) -> dict:
        return {
            "multipliers": list(self.multipliers),
            "sigmas_a": list(self.sigmas_a),
            "sigmas_b": list(self.sigmas_b),
            "spec_diff": list(self.spec_diffs),
            "eigenvalues": [r.eigenvalues.tolist() for r in self.results],
            "tracks": [
                {
                    "direction": t.direction,
                    "points": [
                        {
                            "multiplier": self.multipliers[p.scale],
                            "rank": p.rank,
                            "eigenvalue": p.eigenvalue,
                        }
                        for p in t.points
                    ],
                }
                for t in self.tracks
            ],
        }


def scale_sweep(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    *,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    progress: Callable[[str, int, int], None] | None = None,
    **compare_kwargs,
) -> ScaleSweep:
    """`compare` at each multiplier x the data-driven bandwidths of A and B (Gaussian kernel),
    and the modes followed across scales. `compare_kwargs` go to every comparison (stability
    and context metrics are off unless asked for: the sweep is for seeing where the
    differences are)."""
    from spec_core import checks as v
    from spec_core.config import DEFAULTS
    from spec_core.data import arrays
    from spec_core.engine.compare import compare
    from spec_core.engine.kernels import bandwidth

    if compare_kwargs.get("kernel", "gaussian") != "gaussian":
        raise ValueError("a scale sweep varies the Gaussian bandwidth; the cosine kernel has none")
    for key in ("sigma_a", "sigma_b"):
        if compare_kwargs.get(key) is not None:
            raise ValueError(f"{key} is set by the sweep (multipliers x the data-driven value)")
        compare_kwargs.pop(key, None)
    multipliers = tuple(float(m) for m in multipliers)
    if not multipliers or len(multipliers) > 25:
        raise ValueError("give between 1 and 25 multipliers")
    for m in multipliers:
        v.check_positive("multiplier", m, allow_none=False)
    multipliers = tuple(sorted(set(multipliers)))
    rule = compare_kwargs.get("sigma_rule", DEFAULTS.sigma_rule)
    seed = compare_kwargs.get("seed", 0)
    arr_a = arrays.check_embedding(emb_a, "A")
    arr_b = arrays.check_embedding(emb_b, "B")
    arrays.check_pair(arr_a, arr_b)
    n = arr_a.shape[0]
    compare_kwargs["top_k"] = min(compare_kwargs.get("top_k", 20), n)  # small data: all rows
    compare_kwargs["n_modes"] = min(compare_kwargs.get("n_modes", 5), max(n // 2, 1))
    base_a = bandwidth(arr_a, rule, seed=seed)
    base_b = bandwidth(arr_b, rule, seed=seed)
    compare_kwargs.setdefault("stability", False)
    compare_kwargs.setdefault("context", False)
    report = progress or (lambda stage, done, total: None)
    results, kept, skipped = [], [], []
    for i, m in enumerate(multipliers):
        report("scales", i, len(multipliers))
        try:
            results.append(
                compare(arr_a, arr_b, sigma_a=m * base_a, sigma_b=m * base_b, **compare_kwargs)
            )
            kept.append(m)
        except ValueError as err:
            if "bandwidth" not in str(err):  # only a degenerate scale is skipped
                raise
            skipped.append((m, str(err)))
    report("scales", len(multipliers), len(multipliers))
    if not results:
        raise ValueError(f"every scale was refused; the first: {skipped[0][1]}")
    return ScaleSweep(
        tuple(kept),
        tuple(m * base_a for m in kept),
        tuple(m * base_b for m in kept),
        tuple(results),
        _follow(results),
        tuple(skipped),
    )


def _follow(results: Sequence[SpecResult]) -> tuple[Track, ...]:
    """Chain each scale's modes to the next scale's: greedy by |cosine| of the score vectors,
    same direction, each mode used once."""
    tracks: list[list[tuple[int, object]]] = []
    open_tracks: dict[int, list] = {}  # mode index at the previous scale -> its track
    previous = None
    for scale, result in enumerate(results):
        modes = list(result.modes)
        linked: dict[int, list] = {}
        if previous is not None and modes and previous:
            pairs = []
            for i, old in enumerate(previous):
                for j, new in enumerate(modes):
                    if old.direction != new.direction:
                        continue
                    cosine = abs(float(old.sample_scores @ new.sample_scores))
                    if cosine >= TRACK_COSINE:
                        pairs.append((cosine, i, j))
            used_old, used_new = set(), set()
            for _, i, j in sorted(pairs, reverse=True):
                if i in used_old or j in used_new or i not in open_tracks:
                    continue
                used_old.add(i)
                used_new.add(j)
                track = open_tracks[i]
                track.append((scale, modes[j]))
                linked[j] = track
        for j, mode in enumerate(modes):
            if j not in linked:
                track = [(scale, mode)]
                tracks.append(track)
                linked[j] = track
        open_tracks = linked
        previous = modes
    out = []
    for track in tracks:
        points = tuple(TrackPoint(scale, mode.rank, mode.eigenvalue) for scale, mode in track)
        out.append(Track(track[0][1].direction, points))
    out.sort(key=lambda t: -abs(t.strongest.eigenvalue))
    return tuple(out)
