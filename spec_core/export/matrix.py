"""Exports of a model map (spec_core.compare_many): the SPEC-diff matrix as CSV, the whole result
as JSON, and the HTML section the report gains (the matrix and the map of the models as inline
SVG, and a table of every pair with its strongest group of each direction in words).

Like the report, the SVG needs no network and no JavaScript; every user string is escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape

from spec_core.engine.describe import describe_members
from spec_core.engine.many_result import ManyResult
from spec_core.export.tables import records_csv

#: The matrix's colours run from white (0) to this blue (the largest SPEC-diff).
COLOR_HIGH = (31, 119, 180)
#: Estimated width of a character and height of a line of the 12 px labels, in pixels.
CHAR_PX, LINE_PX = 7.0, 15.0


def matrix_csv(many: ManyResult) -> str:
    """The SPEC-diff matrix as CSV: a first column (empty header) with the model names, then one
    column per model in the same order (pandas: read_csv(path, index_col=0))."""
    records = []
    for i, name in enumerate(many.names):
        record = {"": name}
        for j, other in enumerate(many.names):
            record[other] = float(many.spec_diff[i, j])
        records.append(record)
    return records_csv(records, empty_fields=("",))


def matrix_json(many: ManyResult, inputs: dict | None = None) -> str:
    """ManyResult.to_dict (strict JSON) with what the caller says about the inputs."""
    payload = many.to_dict()
    if inputs is not None:
        payload["inputs"] = inputs
    return json.dumps(payload, indent=1, allow_nan=False)


def strongest_words(
    many: ManyResult,
    first: str,
    second: str,
    *,
    labels: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
) -> str:
    """The strongest group `first` clusters and `second` does not, in words: its eigenvalue,
    its size and what its members share (the description the Clusters page gives)."""
    mode = many.strongest(first, second)
    if mode is None:
        return "none in the computed spectrum"
    headline = describe_members(mode.members, labels=labels, texts=texts).headline
    weak = " (weak: " + "; ".join(mode.weak_reasons) + ")" if mode.weak else ""
    return f"eigenvalue {mode.eigenvalue:+.4f} · ~{mode.size:.0f} rows · {headline}{weak}"


def _shade(value: float, top: float) -> str:
    share = 0.0 if top <= 0 else min(max(value / top, 0.0), 1.0)
    red, green, blue = (round(255 - share * (255 - c)) for c in COLOR_HIGH)
    return f"rgb({red},{green},{blue})"


def matrix_svg(many: ManyResult, *, cell: int = 58) -> str:
    """The SPEC-diff matrix as inline SVG: a cell per pair of models with its value (white 0,
    blue the largest), the names on both sides, each cell's title naming the pair."""
    names = [_short(name) for name in many.names]
    count = len(names)
    left = 14 + 7 * max(len(name) for name in names)
    top = 24 + int(5 * max(len(name) for name in names))
    # the last column's name, rotated, reaches past the matrix by ~0.77 of its width
    right = max(12, int(5 * max(len(name) for name in names)) - cell // 2 + 8)
    caption = "SPEC-diff: the strength of the most differently clustered group (0: the same groups)"
    size = (
        max(left + count * cell + right, 16 + int(CHAR_PX * len(caption))),
        top + count * cell + 30,
    )
    peak = float(many.spec_diff.max()) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size[0]}" height="{size[1]}" '
        'role="img" aria-label="SPEC-diff matrix" font-family="system-ui,sans-serif" '
        'font-size="12">',
        "<title>SPEC-diff between every pair of models (0: the same groups)</title>",
    ]
    for i, name in enumerate(names):
        y = top + i * cell + cell / 2 + 4
        parts.append(f'<text x="{left - 6}" y="{y:.1f}" text-anchor="end">{escape(name)}</text>')
        x = left + i * cell + cell / 2
        parts.append(
            f'<text transform="translate({x:.1f} {top - 6}) rotate(-40)">{escape(name)}</text>'
        )
    for i in range(count):
        for j in range(count):
            value = float(many.spec_diff[i, j])
            x, y = left + j * cell, top + i * cell
            fill = "#eee" if i == j else _shade(value, peak)
            ink = "#fff" if i != j and value > 0.6 * peak else "#222"
            what = (
                escape(many.names[i])
                if i == j
                else f"{escape(many.names[i])} vs {escape(many.names[j])}: SPEC-diff {value:.4g}"
            )
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}">'
                f"<title>{what}</title></rect>"
            )
            if i != j:
                parts.append(
                    f'<text x="{x + cell / 2 - 1:.1f}" y="{y + cell / 2 + 3:.1f}" '
                    f'text-anchor="middle" fill="{ink}" font-size="11">{value:.3f}</text>'
                )
    parts.append(f'<text x="8" y="{size[1] - 8}" fill="#555">{caption}</text></svg>')
    return "".join(parts)


def map_svg(many: ManyResult, *, width: int = 420, height: int = 320) -> str:
    """The models as points on a plane whose distances follow SPEC-diff (classical MDS), each
    named; the closest and the farthest pair joined by lines."""
    coords = many.model_map
    pad = 40
    spans = [float(coords[:, k].max() - coords[:, k].min()) or 1.0 for k in (0, 1)]
    scale = min((width - 2 * pad - 80) / spans[0], (height - 2 * pad) / spans[1])
    mid = [(coords[:, k].max() + coords[:, k].min()) / 2 for k in (0, 1)]

    def place(i: int) -> tuple[float, float]:
        return (
            width / 2 + (coords[i, 0] - mid[0]) * scale,
            height / 2 - (coords[i, 1] - mid[1]) * scale,
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="map of the models" font-family="system-ui,sans-serif" font-size="12">',
        "<title>The models placed so that their distances follow SPEC-diff (classical MDS)</title>",
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" '
        'stroke="#ccc"/>',
    ]
    closest, farthest = many.extremes()
    for (a, b), colour, what in (
        (closest, "#2ca02c", "closest"),
        (farthest, "#d62728", "farthest"),
    ):
        (x1, y1), (x2, y2) = place(many.index(a)), place(many.index(b))
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
            f'stroke-dasharray="4 3"><title>{what}: {escape(a)} / {escape(b)}</title></line>'
        )
    points = [place(i) for i in range(len(many.names))]
    labels = _label_places(points, [_short(name) for name in many.names], width, height)
    for name, (x, y), (lx, ly, anchor) in zip(many.names, points, labels, strict=True):
        if abs(ly - (y + 4)) > 2:  # moved off a neighbour's label: a thin line to its point
            parts.append(
                f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{lx:.1f}" y2="{ly - 4:.1f}" stroke="#bbb"/>'
            )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#1f77b4"><title>{escape(name)}'
            f'</title></circle><text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}">'
            f"{escape(_short(name))}</text>"
        )
    parts.append(
        f'<text x="8" y="{height - 8}" fill="#555">green: the closest pair · red: the farthest'
        "</text></svg>"
    )
    return "".join(parts)


def _label_places(
    points: list[tuple[float, float]], names: list[str], width: int, height: int
) -> list[tuple[float, float, str]]:
    """Where each point's name goes: right of it (left where it would leave the box), moved
    down, top to bottom, until it overlaps no label placed before it; (x, baseline, anchor)."""
    placed: list[tuple[float, float, float]] = []  # left edge, right edge, baseline
    out: list[tuple[float, float, str]] = [(0.0, 0.0, "start")] * len(points)
    for i in sorted(range(len(points)), key=lambda k: (points[k][1], points[k][0])):
        x, y = points[i]
        wide = CHAR_PX * len(names[i])
        start = x + 9 + wide <= width - 4
        lo, hi = (x + 9, x + 9 + wide) if start else (x - 9 - wide, x - 9)
        baseline = y + 4
        moved = True
        while moved:
            moved = False
            for left, right, other in placed:
                if lo < right and left < hi and abs(baseline - other) < LINE_PX:
                    baseline, moved = other + LINE_PX, True
        baseline = min(baseline, height - 24.0)  # above the caption
        placed.append((lo, hi, baseline))
        out[i] = (x + 9 if start else x - 9, baseline, "start" if start else "end")
    return out


def overview_svg(many: ManyResult) -> str:
    """The matrix and the map side by side, as one SVG (the README's picture)."""
    left, right = matrix_svg(many), map_svg(many)
    sizes = [_svg_size(svg) for svg in (left, right)]
    width = sizes[0][0] + sizes[1][0] + 20
    height = max(sizes[0][1], sizes[1][1])
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="{width}" height="{height}" fill="#fff"/>'
        f'<g>{left}</g><g transform="translate({sizes[0][0] + 20} 0)">{right}</g></svg>'
    )


def _svg_size(svg: str) -> tuple[int, int]:
    head = svg[: svg.index(">")]
    width = head.split('width="', 1)[1].split('"', 1)[0]
    height = head.split('height="', 1)[1].split('"', 1)[0]
    return math.ceil(float(width)), math.ceil(float(height))


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def matrix_section(
    many: ManyResult,
    *,
    labels: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
) -> str:
    """The report's section on the model map: the matrix, the map, and every pair's SPEC-diff,
    context metrics and strongest group of each direction in words."""
    closest, farthest = many.extremes()
    out = [
        "<h2>Model map</h2>",
        f"<p>SPEC between every pair of {len(many.names)} models on the same "
        f"{many.params.n_rows} rows ({escape(many.params.kernel)} kernel, "
        f"{escape(many.params.method)}). Closest: {escape(closest[0])} / {escape(closest[1])} "
        f"({many.pairs[closest].spec_diff:.4g}); farthest: {escape(farthest[0])} / "
        f"{escape(farthest[1])} ({many.pairs[farthest].spec_diff:.4g}).</p>",
        "<div class='grid'>",
        matrix_svg(many),
        map_svg(many),
        "</div>",
        "<table><tr><th>A</th><th>B</th><th>SPEC-diff</th><th>linear CKA</th>"
        "<th>kNN overlap</th><th>strongest group A clusters, B does not</th>"
        "<th>strongest group B clusters, A does not</th></tr>",
    ]
    for (a, b), result in many.pairs.items():
        context = result.context
        cka = "" if context is None else f"{context.linear_cka:.3f}"
        knn = "" if context is None else f"{context.knn_overlap_mean:.3f}"
        words = [
            escape(strongest_words(many, first, second, labels=labels, texts=texts))
            for first, second in ((a, b), (b, a))
        ]
        out.append(
            f"<tr><td>{escape(a)}</td><td>{escape(b)}</td><td>{result.spec_diff:.4g}</td>"
            f"<td>{cka}</td><td>{knn}</td><td>{words[0]}</td><td>{words[1]}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def matrix_report(
    many: ManyResult,
    *,
    dataset_name: str,
    labels: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
) -> str:
    """A self-contained HTML page holding the model map's section."""
    return "\n".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>SPEC model map: {escape(dataset_name)}</title>",
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
            "table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;"
            "vertical-align:top;border-bottom:1px solid #eee}"
            ".grid{display:flex;flex-wrap:wrap;gap:16px}</style></head><body>",
            f"<h1>SPEC model map: {escape(dataset_name)}</h1>",
            matrix_section(many, labels=labels, texts=texts),
            "<p><small>Made with SPEC Explorer.</small></p></body></html>",
        ]
    )
