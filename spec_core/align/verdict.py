"""What an alignment's numbers mean, in words: how much of the difference it closed on rows it
never trained on, and which of A's groups B cannot gain because B does not hold the
information.

"B does not hold the information" is decided from measurements, not assumed: besides the
adapter, the best linear map of B onto A (`linear_reach`: least squares on the train rows,
applied to the validation rows, compared with A by the engine) is measured on the same modes.
A group of A (an A-not-B mode on the validation rows before alignment, above the noise floor
and at least MIN_MODE_SHARE of the SPEC-diff) that neither the adapter nor that map closes (each
leaves at least CANNOT_LEFT of its eigenvalue) is one B cannot gain: when even the map that
reproduces every linear trace of A in B leaves it, what tells its members apart in A is not in B
(a distortion a linear map undoes leaves such a group at ~0 under the least-squares map;
information deleted from B leaves it at ~1; benchmarks/bench_align_planted.py measures both).
That check needs the map to be learnable from the train rows: with fewer than
MIN_ROWS_PER_DIM x the map's degrees of freedom (start.RidgeFit: B's rank for plain least
squares, fewer under the ridge penalty align chose on the validation rows), the fit follows the
train rows but not the validation rows even where a linear map undoes the distortion exactly
(the held-out set's 400-row, 384-dimension WordNet case), so the verdict is then "undecided",
not "cannot". B with many columns but few directions (a wide embedding of low rank, or low rank
plus noise that the ridge damps) is decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spec_core.align.start import RIDGE, RidgeFit

#: A group of A that both the adapter and the best linear map leave at this share or more of
#: its eigenvalue is one B cannot gain.
CANNOT_LEFT = 0.5
#: Modes weaker than this share of the validation SPEC-diff before are not named (a mode's
#: `weak` flag is about reading its members, e.g. a contrast of two classes is "broad").
MIN_MODE_SHARE = 0.25
#: The verdict "closed": at least this share of the validation SPEC-diff closed.
CLOSED_SHARE = 0.8
#: The best linear map is a check only when fitted on at least this many train rows per
#: degree of freedom of the fit (B's dimension for plain least squares): least squares' excess
#: error on new rows is noise x d / (n - d - 1), at most the noise itself from n = 2d + 1 on.
MIN_ROWS_PER_DIM = 2


@dataclass(frozen=True)
class ModeReach:
    """One strongest mode on the validation rows before alignment: its eigenvalue, and the
    share of it left by the adapter and by the best linear map of B (the Rayleigh quotient of
    the same score vector after, over the eigenvalue before; 0 closed, 1 unchanged)."""

    label: str
    direction: str
    before: float
    left: float
    linear_left: float
    weak: bool
    counts: bool  # above the noise floor, not barely tighter, at least MIN_MODE_SHARE of it


@dataclass(frozen=True)
class Verdict:
    """Which case the user is in. `kind`: "closed" (at least CLOSED_SHARE of the validation
    SPEC-diff closed), "cannot" (some of A's groups are ones B cannot gain: `cannot_gain`),
    "undecided" (groups of A left that the check could not judge: too few train rows for B's
    dimension, `cannot_gain` then names them), "partly" (neither), or "agree" (no mode on the
    validation rows before: nothing to close).
    `closed_share`: 1 - after / before of the validation SPEC-diff; `linear_closed_share`: the
    same for the best linear map of B; `text`: all of it in words."""

    kind: str
    closed_share: float
    linear_closed_share: float
    cannot_gain: tuple[str, ...]
    modes: tuple[ModeReach, ...]
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "closed_share": self.closed_share,
            "linear_closed_share": self.linear_closed_share,
            "cannot_gain": list(self.cannot_gain),
            "modes": [vars(mode).copy() for mode in self.modes],
            "text": self.text,
        }


def linear_reach(
    emb_a, emb_b, train_rows, val_rows, *, kernel: str, penalty: float = RIDGE
) -> np.ndarray:
    """The best linear map of B onto A, fitted by (ridge) least squares on `train_rows` and
    applied to `val_rows`: its rows there (float64, in A's scaled units). The fit is of what
    each kernel sees: standardised rows for the Gaussian kernel, the rows scaled as a whole for
    the cosine (a per-row scale is not linear). Scales and centres come from the train rows
    alone (a far validation row changes nothing else). `penalty`: the ridge relative to the
    mean eigenvalue of B's covariance (align uses the one its start chose on the validation
    rows). The inputs are only read."""
    return linear_reach_fit(emb_a, emb_b, train_rows, val_rows, kernel=kernel, penalty=penalty)[0]


def linear_reach_fit(
    emb_a, emb_b, train_rows, val_rows, *, kernel: str, penalty: float = RIDGE
) -> tuple[np.ndarray, float]:
    """linear_reach's rows and the fit's degrees of freedom (start.RidgeFit): how many
    parameters per output column the map learned from the train rows."""
    rows = np.concatenate([train_rows, val_rows])
    n = len(train_rows)
    a, b = (_fit_frame(emb, rows, n, kernel) for emb in (emb_a, emb_b))
    fit = RidgeFit(b[:n], a[:n])
    predicted = (b[n:] - fit.mean_x) @ fit.matrix(penalty) + fit.mean_y
    return predicted, fit.degrees_of_freedom(penalty)


def _fit_frame(emb, rows, n: int, kernel: str) -> np.ndarray:
    """The rows in float64 in a safe range, in the frame the kernel's features are linear in:
    divided by the largest |value| of the first n (the train rows; cosine: as a whole, a per-row
    scale is not linear), and for the Gaussian kernel centred by their column means."""
    x = np.array(emb[rows], dtype=np.float64)
    x /= max(float(np.abs(x[:n]).max()), 1e-300)
    if kernel != "cosine":
        x -= x[:n].mean(axis=0)
        x /= max(float(np.abs(x[:n]).max()), 1e-300)
    return x


def make_verdict(
    before: float,
    after: float,
    linear_after: float,
    closed,
    linear_closed,
    *,
    fit_rows: int | None = None,
    dof: float | None = None,
) -> Verdict:
    """The verdict from the validation SPEC-diff before, after and under the best linear map,
    and the closed-mode entries of the adapter (`closed`) and of that map (`linear_closed`,
    the same modes in the same order). `fit_rows` and `dof`: the train rows the map was
    fitted on and its degrees of freedom (B's dimension for plain least squares; None: the map
    is taken as a valid check)."""
    modes = tuple(
        ModeReach(
            label=entry["label"],
            direction=entry["direction"],
            before=entry["before"],
            left=_left(entry),
            linear_left=_left(linear),
            weak=bool(entry["weak_before"]),
            counts=bool(entry["above_noise_floor"])
            and not entry.get("barely_before", False)
            and abs(entry["before"]) >= MIN_MODE_SHARE * before,
        )
        for entry, linear in zip(closed, linear_closed, strict=True)
    )
    share = 1.0 - after / before if before > 0 else 0.0
    linear_share = 1.0 - linear_after / before if before > 0 else 0.0
    cannot = tuple(
        mode.label
        for mode in modes
        if mode.direction == "A" and mode.counts and min(mode.left, mode.linear_left) >= CANNOT_LEFT
    )
    learnable = fit_rows is None or dof is None or fit_rows >= MIN_ROWS_PER_DIM * dof
    if not any(mode.counts for mode in modes):  # no difference to close beyond noise
        kind = "agree"
    elif cannot:
        kind = "cannot" if learnable else "undecided"
    else:
        kind = "closed" if share >= CLOSED_SHARE else "partly"
    text = _words(kind, share, linear_share, cannot, modes)
    if not learnable:
        text += (
            f" (the best linear map of B has {dof:.0f} degrees of freedom and there were "
            f"{fit_rows} train rows: telling that takes at least "
            f"{math.ceil(MIN_ROWS_PER_DIM * dof)}, {MIN_ROWS_PER_DIM} per degree of freedom)"
        )
    text += _which_side(modes) + "."
    return Verdict(kind, share, linear_share, cannot, modes, text)


def _which_side(modes: tuple[ModeReach, ...]) -> str:
    """Where the closing came from, when it came mostly from B losing its own groups (B-not-A
    modes closed) rather than from B gaining A's (A-not-B modes closed): words that say so,
    else nothing. Shares weighted by each mode's eigenvalue."""
    closed = {}
    for side in ("A", "B"):
        counted = [m for m in modes if m.direction == side and m.counts]
        weight = sum(abs(m.before) for m in counted)
        if weight > 0:
            closed[side] = 1.0 - sum(abs(m.before) * min(m.left, 1.0) for m in counted) / weight
    gained, lost = closed.get("A"), closed.get("B")
    if lost is None or lost < 0.2 or (gained is not None and gained >= lost / 2):
        return ""
    gained_words = "" if gained is None else f"; A's groups (A-not-B) {max(gained, 0.0):.0%}"
    return (
        f"; most of it came from B losing its own groups (B-not-A modes {lost:.0%} closed"
        f"{gained_words}), not from B gaining A's"
    )


def _left(entry: dict[str, Any]) -> float:
    """The share of a mode's eigenvalue left after (0 closed, 1 unchanged), from 0 up."""
    if not entry["before"]:
        return 1.0
    return max(0.0, float(entry["after"]) / float(entry["before"]))


def _words(kind, share, linear_share, cannot, modes) -> str:
    """The verdict in words, in the core's frame (A the target, B the side changed)."""
    closed = f"closed {share:.0%} of the difference on rows it never trained on"
    if kind == "agree":
        return (
            "A and B already group the validation rows alike: no difference before training "
            "stood above the noise floor or beyond noise-level tightness, so there was "
            "nothing to close"
        )
    if kind == "cannot":
        left = {mode.label: mode for mode in modes}
        groups = ", ".join(
            f"{label} ({left[label].linear_left:.0%} left by the best linear map)"
            for label in cannot
        )
        return (
            f"B does not hold the information to capture A's groups {groups}: no linear map of "
            f"B adds it, so no linear adapter on B can; the alignment {closed}"
        )
    text = f"The alignment {closed}"
    if kind == "undecided":
        return (
            f"The alignment {closed}; whether B holds the information to capture A's groups "
            f"{', '.join(cannot)} cannot be decided from these rows"
        )
    if kind == "partly":
        text += f"; the best linear map of B closes {linear_share:.0%}" + (
            ": more training (steps, learning rate) may close more"
            if linear_share > share + 0.1
            else ""
        )
    return text
