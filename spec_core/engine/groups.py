"""Groups from the span of each direction's top eigenvectors (the default grouping).

One eigenvector of Lambda = (K_A - eta K_B) / n often mixes several groups that A captures and
B does not (real data has groups at several scales, and groups of similar strength give close
eigenvalues whose vectors a solver returns in an arbitrary mixture). The differential-clustering
view (Jalali et al., FINC, CVPR 2025) looks for groups in the span of the top eigenvectors
instead: here each direction's top eigenvectors (at most `SPAN_VECTORS`, above the noise floor
and above `SPAN_SHARE` of the direction's largest eigenvalue, never cutting between eigenvalues
closer than a near-repeated one's) are rotated to their most localised orthonormal basis
(quartimax, as eigenspaces.localize does for one near-repeated eigenvalue), and each rotated
vector is one group, ranked by its own contrast: its Rayleigh quotient
u^T Lambda u = sum_j lambda_j (v_j . u)^2, exact within the span. The rotated vectors span the
same space as the eigenvectors, so nothing is invented: where the data has one strong
difference, the span holds one strong group and the rest stay weak (below the floor, unstable
or not contrasting, judged by the same evidence as every mode).

The rotation costs O(n r^2) per step on the n x r scores: linear in n on every route.

grouping "eigenvectors" keeps the paper's modes (one eigenvector each, near-repeated eigenvalues
localised); "auto" (the default) uses the span for the default settings (centred kernels with
data-driven bandwidths) and the eigenvectors for explicit ones (--no-centre, bandwidths given by
hand), whose spectrum the user asked for as it is.
"""

from __future__ import annotations

import numpy as np

from spec_core.config import GROUPINGS
from spec_core.engine.eigenspaces import _close, _quartimax, localize, near_repeated

#: The eigenvectors per direction whose span is rotated: at most SPAN_VECTORS, each with
#: |eigenvalue| at least SPAN_SHARE of its direction's largest (groups of comparable strength:
#: a weak eigenvector mixed in lets the rotation split a strong group into pieces), chosen with
#: benchmarks/bench_legibility.py.
SPAN_VECTORS = 12
SPAN_SHARE = 0.25


def grouping_for(groups: str, *, centre: bool, data_driven: bool) -> str:
    """The grouping a comparison uses: "span" or "eigenvectors". "auto" is "span" for the
    default settings (centred kernels, a data-driven bandwidth) and "eigenvectors" for the
    paper's definition (uncentred) or bandwidths given by hand."""
    if groups not in GROUPINGS:
        raise ValueError(f"groups={groups!r} is not one of {', '.join(GROUPINGS)}")
    if groups == "auto":
        return "span" if centre and data_driven else "eigenvectors"
    return groups


def span_groups(
    values: np.ndarray,
    vectors: np.ndarray,
    floor: float = 0.0,
    *,
    span: int | None = None,
    share: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(values, vectors) of the groups. Each direction's span (`span_positions`: its top
    `span` eigenvectors, default SPAN_VECTORS, above `floor` and above `share`, default
    SPAN_SHARE, of its largest |eigenvalue|) is rotated to its most localised orthonormal
    basis; the rotated vectors take the span's positions in the order of their Rayleigh
    quotients (strongest first), and each position's value becomes its vector's quotient
    (between the span's extreme eigenvalues, of their sign: the order of the values is kept).
    Every other vector is as eigenspaces.localize leaves it, with its eigenvalue.
    values: (m,), vectors: (n, m), only read."""
    span = SPAN_VECTORS if span is None else span
    share = SPAN_SHARE if share is None else share
    out = localize(values, vectors, floor)
    quotients = np.array(values, dtype=np.float64, copy=True)
    for sign in (1.0, -1.0):
        picked = span_positions(values, sign, floor, span, share)
        if len(picked) < 2:
            continue
        basis = out[:, picked]
        rotation = _quartimax(basis)
        rotated = basis @ rotation
        # each rotated vector's u^T Lambda u from the eigenpairs of `out`'s basis (localize
        # kept each near-repeated run's quotients in place: its values stay the eigenvalues)
        own = rayleigh_quotients(values[picked], basis, rotated)
        order = np.argsort(-sign * own, kind="stable")
        out[:, picked] = rotated[:, order]
        quotients[picked] = own[order]
    return quotients, out


def span_positions(
    values: np.ndarray, sign: float, floor: float, span: int, share: float | None = None
) -> np.ndarray:
    """The positions of one direction's span, strongest first: its top `span` eigenvalues above
    `floor` and above `share` of its largest, extended to whole near-repeated runs (a cut
    through a run of equal groups would leave the rotation the sum of the groups cut off)."""
    share = SPAN_SHARE if share is None else share
    picked = np.flatnonzero(sign * values > floor)
    picked = picked[np.argsort(-sign * values[picked], kind="stable")]
    if not len(picked):
        return picked
    picked = picked[sign * values[picked] >= share * sign * values[picked[0]]]
    end = min(span, len(picked))
    while end < len(picked) and _close(values[picked[end - 1]], values[picked[end]], floor):
        end += 1  # never cut between eigenvalues closer than a near-repeated one's
    chosen = set(picked[:end].tolist())
    for run in near_repeated(values, floor):
        if chosen & set(run.tolist()):
            chosen |= set(run.tolist())
    return np.array([i for i in picked if i in chosen] or [], dtype=int)


def span_starts(values: np.ndarray, groups: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """The score vectors of both directions' spans (`span_groups`' output `groups`, at the
    positions `span_positions` gives for the eigenvalues `values`): where the stability
    resamples start their solver, n x (width A + width B)."""
    positions = [span_positions(values, sign, floor, SPAN_VECTORS) for sign in (1.0, -1.0)]
    return groups[:, np.concatenate(positions).astype(int)]


def rayleigh_quotients(values: np.ndarray, vectors: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """u^T Lambda u of each column u of `scores` (unit vectors in the span of `vectors`), from
    the eigenpairs: sum_j values_j (vectors_j . u)^2."""
    return values @ (vectors.T @ scores) ** 2
