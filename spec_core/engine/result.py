"""What a SPEC comparison returns: frozen dataclasses, with a JSON form for the CLI and exports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Bumped whenever the JSON layout changes.
RESULT_FORMAT_VERSION = 3  # 3: params.grouping; a span group's eigenvalue is its Rayleigh quotient


@dataclass(frozen=True)
class Mode:
    """One differential cluster: an eigenvector of Lambda = (K_A - eta K_B) / n, or (the
    default's span groups, params.grouping "span": engine.groups) one vector of the most
    localised basis of the span of a direction's top eigenvectors, whose `eigenvalue` is then
    its Rayleigh quotient u^T Lambda u (its own contrast), not an entry of `eigenvalues`.

    direction "A": a positive eigenvalue, a group that A clusters and B does not;
    direction "B": a negative eigenvalue, a group that B clusters and A does not.
    `sample_scores` is the unit eigenvector over all n rows (of a near-repeated eigenvalue, the
    most localised vector of its eigenspace: evidence.localize), signed so that the group scores
    positive; `members` are its highest-scoring rows, best first (the top round(size), at
    least 5 and at most `top_k`, of those that stand out), with their `scores`.

    Its evidence (engine.evidence): `size`, the effective number of rows (the participation
    ratio of the scores above their median); `contrast`, the mean kernel value among
    the members in A and in B; `baseline`, each embedding's mean kernel value over all pairs
    (what `contrast` is read against: kernels differ in their typical values); `stability`
    (0 to 1), the mean Jaccard overlap of the members over resamples of the rows, and
    `stability_hits`, in how many of them it came back (None when not measured); `purity` and
    `majority_label` when labels were given; `weak_reasons`, empty for a mode that is a finding;
    `notes`, what to know that is no reason to doubt it (a broad group).
    """

    direction: str
    rank: int
    eigenvalue: float
    members: np.ndarray
    scores: np.ndarray
    sample_scores: np.ndarray = field(repr=False)
    above_noise_floor: bool
    size: float = 0.0
    contrast: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    stability: float | None = None
    stability_hits: int | None = None
    purity: float | None = None
    majority_label: str | None = None
    weak_reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        other = "B" if self.direction == "A" else "A"
        return f"{self.direction}-not-{other} #{self.rank + 1}"

    @property
    def weak(self) -> bool:
        return bool(self.weak_reasons)

    @property
    def contrasting(self) -> bool:
        """Whether the members stand out further above their own side's average pair than above
        the other side's (what the evidence line calls "tighter"); True when not measured."""
        from spec_core.engine.evidence import relative_tightness

        if not self.contrast:
            return True
        own, other = ("a", "b") if self.direction == "A" else ("b", "a")
        lift = relative_tightness(self.contrast, self.baseline)
        return lift[own] > lift[other]

    def evidence_line(self, name_a: str = "A", name_b: str = "B", n_resamples: int = 0) -> str:
        """The evidence in words, e.g. 'tighter in A (0.61) than in B (0.12) · ~42 members ·
        comes back in 9 of 10 resamples · 88% smileys'."""
        from spec_core.engine.evidence import number

        own, other = ("a", "b") if self.direction == "A" else ("b", "a")
        names = {"a": name_a, "b": name_b}
        parts = []
        if self.contrast:

            def side(key: str) -> str:
                base = self.baseline.get(key)
                extra = "" if base is None else f"; all pairs {number(base)}"
                return f"{names[key]} ({number(self.contrast[key])}{extra})"

            word = "tighter" if self.contrasting else "no tighter"
            parts.append(f"{word} in {side(own)} than in {side(other)}")
        parts.append(f"~{self.size:.0f} members")
        if self.stability_hits is not None:
            parts.append(f"comes back in {self.stability_hits} of {n_resamples} resamples")
        if self.purity is not None:
            parts.append(f"{self.purity:.0%} {self.majority_label}")
        return " · ".join(parts)

    def to_dict(self, *, include_sample_scores: bool = False) -> dict[str, Any]:
        out = {
            "direction": self.direction,
            "rank": self.rank,
            "label": self.label,
            "eigenvalue": self.eigenvalue,
            "above_noise_floor": self.above_noise_floor,
            "size": self.size,
            "contrast": dict(self.contrast),
            "contrast_baseline": dict(self.baseline),
            "stability": self.stability,
            "stability_hits": self.stability_hits,
            "purity": self.purity,
            "majority_label": self.majority_label,
            "weak": self.weak,
            "weak_reasons": list(self.weak_reasons),
            "notes": list(self.notes),
            "members": self.members.tolist(),
            "scores": self.scores.tolist(),
        }
        if include_sample_scores:
            out["sample_scores"] = self.sample_scores.tolist()
        return out


@dataclass(frozen=True)
class SpecParams:
    """The parameters actually used, defaults resolved (sigmas chosen from data included)."""

    kernel: str
    method: str
    route: str
    sigma_a: float | None
    sigma_b: float | None
    sigma_rule: str | None
    centre: bool
    eta: float
    n_features_a: int | None
    n_features_b: int | None
    n_modes: int
    top_k: int
    members: str
    n_eigenvalues: int
    seed: int
    device: str
    dtype: str
    n_rows: int
    dim_a: int
    dim_b: int
    eigen_solver: str
    n_resamples: int = 0  # resamples behind each mode's stability (0: not measured)
    stability_rows: int | None = None  # the rows they were drawn from (a sample beyond 20k)
    backend: str = "local"  # where the feature route's passes over the rows ran
    grouping: str = "eigenvectors"  # how the modes were made (engine.groups): span / eigenvectors


@dataclass(frozen=True)
class ContextMetrics:
    """Standard similarity measures beside SPEC, on `rows` (all rows, or a seeded sample).

    linear_cka: Kornblith et al. (2019), 1 for embeddings equal up to rotation and scale.
    knn_overlap: per row, the fraction of its k nearest neighbours shared by A and B.
    """

    linear_cka: float
    knn_k: int
    knn_overlap_mean: float
    knn_overlap: np.ndarray = field(repr=False)
    rows: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "linear_cka": self.linear_cka,
            "knn_k": self.knn_k,
            "knn_overlap_mean": self.knn_overlap_mean,
            "n_rows": len(self.rows),
        }


@dataclass(frozen=True)
class SpecResult:
    """A SPEC comparison of embeddings A and B of the same samples.

    eigenvalues: the computed eigenvalues of Lambda, descending (both ends of the spectrum).
    spec_diff: max |eigenvalue|, the operator norm of Lambda; symmetric in A and B.
    noise_floor: the size of eigenvalues the approximation alone produces (for exact, the size of
        round-off); modes below it are flagged, not findings.
    """

    eigenvalues: np.ndarray
    spec_diff: float
    modes: tuple[Mode, ...]
    params: SpecParams
    noise_floor: float
    timings: dict[str, float]
    context: ContextMetrics | None = None

    def modes_for(self, direction: str) -> tuple[Mode, ...]:
        return tuple(mode for mode in self.modes if mode.direction == direction)

    def to_dict(self, *, include_sample_scores: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: every number finite (the engine refuses NaN and infinity), so
        json.dumps(..., allow_nan=False) always succeeds."""
        return {
            "format_version": RESULT_FORMAT_VERSION,
            "spec_diff": self.spec_diff,
            "noise_floor": self.noise_floor,
            "eigenvalues": self.eigenvalues.tolist(),
            "modes": [m.to_dict(include_sample_scores=include_sample_scores) for m in self.modes],
            "params": dataclasses.asdict(self.params),
            "timings": dict(self.timings),
            "context": None if self.context is None else self.context.to_dict(),
        }

    def summary(self) -> str:
        """A few human-readable lines: the headline numbers and the strongest modes."""
        p = self.params
        lines = [
            f"SPEC-diff {self.spec_diff:.4g} over {p.n_rows} rows "
            f"({p.kernel} kernel, {p.method}/{p.route}, noise floor {self.noise_floor:.2g}, "
            f"{sum(self.timings.values()):.2f} s on {p.device})",
        ]
        if self.context is not None:
            c = self.context
            lines.append(
                f"linear CKA {c.linear_cka:.3f}, mean {c.knn_k}-NN overlap {c.knn_overlap_mean:.3f}"
            )
        for mode in self.modes:
            head = ", ".join(str(i) for i in mode.members[:8].tolist())
            lines.append(f"  {mode.label}: eigenvalue {mode.eigenvalue:+.4g}; rows {head}")
            lines.append(f"      {mode.evidence_line(n_resamples=p.n_resamples)}")
            if mode.weak:
                lines.append(f"      WEAK: {'; '.join(mode.weak_reasons)}")
            lines.extend(f"      note: {note}" for note in mode.notes)
        if not self.modes:
            lines.append(
                "  no modes: every computed eigenvalue is 0, the two kernels agree on every "
                "computed direction"
            )
        return "\n".join(lines)
