"""What the pages show beyond the settings, in the link: the selected mode, the Align page's
controls and each page's own controls, so that a shared link opens what the sender saw.

Each entry of `VIEW` is one link key: the session key it fills, its default, and how a link's
value is read (allowed names, or a number's bounds). A link is untrusted: a value outside the
bounds is clamped, anything else malformed is ignored, each with a note that the page shows;
the link carries a value only when it differs from the default, so links stay short.

Nothing here imports streamlit: `spec_app.state` reads and writes the session with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

#: The Align page's controls and their defaults (the last ones trained with are what the page
#: and the link show).
ALIGN: dict[str, Any] = {
    "direction": "b_to_a",  # or "a_to_b": A is adapted to B
    "adapter": "linear",
    "steps": 300,  # spec_core.align.settings.DEFAULT_STEPS; early stopping usually ends sooner
    "val_fraction": 0.2,
}
ALIGN_CHOICES: dict[str, tuple[str, ...]] = {
    "direction": ("b_to_a", "a_to_b"),
    "adapter": ("linear", "mlp"),
}
ALIGN_BOUNDS: dict[str, tuple[float, float]] = {"steps": (1, 5000), "val_fraction": (0.05, 0.5)}
#: The Align page's validation share moves in steps of this (its slider's step).
VAL_STEP = 0.05

#: A bar's label, as the spectrum names it: the k-th group one side holds and the other not.
MODE_LABEL = re.compile(r"(A-not-B|B-not-A) #([1-9][0-9]{0,3})")
#: The most rows a link may point into (any larger row number names no row of any dataset the
#: app loads); the page checks a row against its dataset.
MAX_ROW = 10_000_000
#: What the UMAP page colours by.
UMAP_COLOURS = ("mode score", "label")
#: The longest search a link may carry (the UMAP page's search box takes as many characters).
MAX_FIND = 200
#: The Clusters page's "Members shown" and its ranking's page number, before the page narrows
#: them to the mode and the dataset.
MAX_MEMBERS = 5000
MAX_RANK_PAGE = 1_000_000


@dataclass(frozen=True)
class ViewKey:
    """One link key of the view: the session key (and, for the Align controls, the control) it
    fills, its default, and its allowed names or bounds (`kind` int or float)."""

    link: str
    session: str
    default: Any
    choices: tuple[str, ...] = ()
    kind: type | None = None
    bounds: tuple[float, float] = (0, 0)
    control: str | None = None  # a key of the Align controls (session key align_controls)


VIEW: tuple[ViewKey, ...] = (
    ViewKey("mode", "selected_mode", None),
    ViewKey("align_direction", "align_controls", ALIGN["direction"],
            choices=ALIGN_CHOICES["direction"], control="direction"),
    ViewKey("align_adapter", "align_controls", ALIGN["adapter"],
            choices=ALIGN_CHOICES["adapter"], control="adapter"),
    ViewKey("align_steps", "align_controls", ALIGN["steps"], kind=int,
            bounds=ALIGN_BOUNDS["steps"], control="steps"),
    ViewKey("align_val", "align_controls", ALIGN["val_fraction"], kind=float,
            bounds=ALIGN_BOUNDS["val_fraction"], control="val_fraction"),
    ViewKey("umap_colour", "umap_colour", UMAP_COLOURS[0], choices=UMAP_COLOURS),
    ViewKey("umap_find", "umap_find", ""),
    ViewKey("umap_row", "picked_row", None, kind=int, bounds=(0, MAX_ROW)),
    ViewKey("members", "clusters_members", None, kind=int, bounds=(1, MAX_MEMBERS)),
    ViewKey("rank_page", "clusters_rank_page", 1, kind=int, bounds=(1, MAX_RANK_PAGE)),
)  # fmt: skip
LINK_KEYS = tuple(key.link for key in VIEW)


def shown(raw: Any) -> str:
    """A link's value as a note quotes it: at most 40 characters."""
    text = str(raw)
    return repr(text if len(text) <= 40 else text[:39] + "…")


def finite_number(name: str, raw: Any, text: str) -> tuple[float | None, str | None]:
    """A link value as a finite float, or None and the note saying why it was ignored (shared
    by the settings and the view parsers)."""
    try:
        number = float(text)
    except ValueError:
        return None, f"{name}={shown(raw)} ignored: not a number"
    if not math.isfinite(number):
        return None, f"{name}={shown(raw)} ignored: not a finite number"
    return number, None


def fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def parse_view(key: ViewKey, raw: Any) -> tuple[Any, str | None]:
    """(value, note) for one link value: value None means ignored (the note says why); a
    clamped number comes with a note too."""
    if isinstance(raw, list | tuple):
        raw = raw[-1] if raw else ""
    text = str(raw).strip()
    name = key.link
    if key.link == "mode":
        if not MODE_LABEL.fullmatch(text):
            return None, f"mode={shown(raw)} ignored: write A-not-B #k or B-not-A #k"
        return text, None
    if key.link == "umap_find":
        if len(text) > MAX_FIND:
            return None, f"umap_find={shown(raw)} ignored: longer than {MAX_FIND} characters"
        if not text.isprintable():
            return None, f"umap_find={shown(raw)} ignored: it holds control characters"
        return text, None
    if key.choices:
        if text not in key.choices:
            return None, f"{name}={shown(raw)} ignored: choose one of {', '.join(key.choices)}"
        return text, None
    return _number(key, raw, text)


def _number(key: ViewKey, raw: Any, text: str) -> tuple[Any, str | None]:
    name = key.link
    if len(text) > 40:
        return None, f"{name}={shown(raw)} ignored: not a number"
    number, refused = finite_number(name, raw, text)
    if refused:
        return None, refused
    low, high = key.bounds
    value = min(max(number, low), high)
    if key.kind is int:
        value = int(value)  # the bounds are >= 0: truncation is floor
    elif key.link == "align_val":
        value = round(round(value / VAL_STEP) * VAL_STEP, 2)  # the slider's grid
    if value == number:
        return value, None
    if low <= number <= high:
        what = "a whole number" if key.kind is int else f"a multiple of {VAL_STEP:g}"
        return value, f"{name}={shown(raw)} is not {what}; using {fmt(value)}"
    return value, f"{name}={shown(raw)} is outside {fmt(low)} to {fmt(high)}; using {fmt(value)}"


def view_from_query(query: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The view in a query string as session values ({session key: value}; the Align controls
    as one dict), and a note for every value that was ignored or changed."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    controls: dict[str, Any] = {}
    for key in VIEW:
        if key.link not in query:
            continue
        value, note = parse_view(key, query[key.link])
        if note:
            notes.append(note)
        if value is None:
            continue
        if key.control:
            controls[key.control] = value
        else:
            out[key.session] = value
    if controls:
        out["align_controls"] = {**ALIGN, **controls}
    return out, notes


def view_link(session: dict[str, Any]) -> dict[str, str]:
    """The view as a link carries it: the values of `session` (a mapping of session keys) that
    differ from their defaults, as text."""
    out: dict[str, str] = {}
    controls = {**ALIGN, **(session.get("align_controls") or {})}
    for key in VIEW:
        value = controls.get(key.control) if key.control else session.get(key.session)
        if value is None or value == key.default:
            continue
        out[key.link] = f"{value:g}" if isinstance(value, float) else str(value)
    return out
