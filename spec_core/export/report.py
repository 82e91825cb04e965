"""Exports of a comparison: modes as CSV / JSON, and a self-contained HTML report.

The report needs no network and no JavaScript: the spectrum is inline SVG and the thumbnails
are data URIs, so it can be mailed or dropped in a wiki as one file. Every user string is
escaped.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from spec_core.engine.describe import describe_members
from spec_core.engine.many_result import ManyResult
from spec_core.engine.result import SpecResult
from spec_core.export.matrix import matrix_section
from spec_core.export.tables import records_csv

COLOR_A = "#1f77b4"
COLOR_B = "#d62728"


@dataclass(frozen=True)
class ReportContext:
    """What the report says about the inputs (the result holds the numbers)."""

    dataset_name: str
    fingerprint: str
    model_a: str
    model_b: str
    ids: Sequence[str]
    labels: Sequence[str] | None = None
    texts: Sequence[str] | None = None
    image_paths: Sequence[str] | None = None


def modes_table(result: SpecResult, ctx: ReportContext) -> list[dict]:
    """One row per (mode, member): the long format that spreadsheets and pandas read."""
    rows = []
    for mode in result.modes:
        for rank, (row, score) in enumerate(zip(mode.members, mode.scores, strict=True)):
            rows.append(
                {
                    "mode": mode.label,
                    "direction": mode.direction,
                    "eigenvalue": mode.eigenvalue,
                    "above_noise_floor": mode.above_noise_floor,
                    "size": round(mode.size, 2),
                    "contrast_a": round(mode.contrast.get("a", float("nan")), 4),
                    "contrast_b": round(mode.contrast.get("b", float("nan")), 4),
                    "baseline_a": round(mode.baseline.get("a", float("nan")), 4),
                    "baseline_b": round(mode.baseline.get("b", float("nan")), 4),
                    "stability": "" if mode.stability is None else round(mode.stability, 3),
                    "purity": "" if mode.purity is None else round(mode.purity, 3),
                    "majority_label": mode.majority_label or "",
                    "weak": "; ".join(mode.weak_reasons),
                    "member_rank": rank + 1,
                    "row": int(row),
                    "id": ctx.ids[row],
                    "score": float(score),
                    "label": ctx.labels[row] if ctx.labels else "",
                    "text": ctx.texts[row] if ctx.texts else "",
                }
            )
    return rows


def modes_csv(result: SpecResult, ctx: ReportContext) -> str:
    """modes_table as CSV, through the one export writer (user text that a spreadsheet would
    run as a formula is written as text; see spec_core.export.tables)."""
    return records_csv(modes_table(result, ctx), empty_fields=("mode",))


def modes_json(result: SpecResult, ctx: ReportContext) -> str:
    payload = result.to_dict()
    payload["inputs"] = {
        "dataset": ctx.dataset_name,
        "fingerprint": ctx.fingerprint,
        "model_a": ctx.model_a,
        "model_b": ctx.model_b,
    }
    for mode in payload["modes"]:
        mode["ids"] = [ctx.ids[i] for i in mode["members"]]
    return json.dumps(payload, indent=1)


def spectrum_svg(result: SpecResult, *, width: int = 760, height: int = 320) -> str:
    """The spectrum as inline SVG: one bar per eigenvalue (descending; blue A-not-B, red
    B-not-A) with its value, a y axis with ticks, the rank on the x axis, and the noise floor
    as a grey band with its value."""
    import math

    values = [float(v) for v in result.eigenvalues]
    if not values:
        return "<p>No eigenvalues.</p>"
    floor = float(result.noise_floor)
    top = max(max(abs(v) for v in values), floor, 1e-12) * 1.15
    raw_step = top / 3
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    top = step * math.ceil(top / step)
    left, right, upper, lower = 64, 12, 28, 44
    plot_w, plot_h = width - left - right, height - upper - lower
    mid = upper + plot_h / 2

    def y_of(value: float) -> float:
        return mid - value / top * (plot_h / 2)

    def num(value: float) -> str:
        return f"{value:.3g}" if value else "0"

    step_x = plot_w / len(values)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="eigenvalue spectrum" font-family="system-ui,sans-serif" '
        f'font-size="11">',
        f"<title>Eigenvalues of (K_A - eta K_B) / n, descending; noise floor {num(floor)}</title>",
        f'<rect x="{left}" y="{y_of(floor):.1f}" width="{plot_w}" '
        f'height="{max(y_of(-floor) - y_of(floor), 0.5):.1f}" fill="#999" opacity="0.3">'
        f"<title>noise floor: |eigenvalue| &lt; {num(floor)}</title></rect>",
        f'<text x="{width - right}" y="{y_of(floor) - 3:.1f}" text-anchor="end" fill="#666">'
        f"noise floor ±{num(floor)}</text>",
    ]
    tick = -top
    while tick <= top + step / 2:  # y axis: ticks and grid
        y = y_of(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="{1.5 if abs(tick) < step / 2 else 0.5}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{num(0.0 if abs(tick) < step / 2 else tick)}</text>"
        )
        tick += step
    parts.append(
        f'<line x1="{left}" y1="{upper}" x2="{left}" y2="{upper + plot_h}" stroke="#444"/>'
        f'<text transform="translate(14 {mid:.1f}) rotate(-90)" text-anchor="middle">'
        "eigenvalue</text>"
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
        "rank (both ends of the spectrum; blue: A clusters, B does not; red: the reverse)</text>"
    )
    strong = {m.eigenvalue for m in result.modes if not m.weak}
    for i, value in enumerate(values):
        x = left + i * step_x
        y0, y1 = sorted((y_of(0.0), y_of(value)))
        color = COLOR_A if value > 0 else COLOR_B
        fade = "" if float(value) in strong else ' fill-opacity="0.35"'  # as in the app
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{y0:.1f}" width="{max(step_x - 2, 1):.1f}" '
            f'height="{max(y1 - y0, 0.5):.1f}" fill="{color}"{fade}><title>rank {i + 1}: '
            f"{value:+.4g}</title></rect>"
        )
        label_y = y0 - 3 if value > 0 else y1 + 3
        anchor = "start" if value > 0 else "end"
        parts.append(
            f'<text transform="translate({x + step_x / 2 + 3:.1f} {label_y:.1f}) rotate(-90)" '
            f'text-anchor="{anchor}" font-size="8" fill="#333">{value:+.3g}</text>'
        )
        if i == 0 or (i + 1) % 5 == 0:
            parts.append(
                f'<text x="{x + step_x / 2:.1f}" y="{upper + plot_h + 14}" '
                f'text-anchor="middle">{i + 1}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _thumbnail(path: str, size: int = 72) -> str:
    from spec_core.data.images import load_rgb

    try:
        img = load_rgb(path)
    except Exception:  # a file that vanished since: show nothing rather than fail the report
        return ""
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def html_report(
    result: SpecResult,
    ctx: ReportContext,
    *,
    members_shown: int = 12,
    model_map: ManyResult | None = None,
) -> str:
    """The comparison as one self-contained HTML page: its inputs and parameters, the spectrum,
    every mode with its evidence and members; with `model_map` (compare_many over models of the
    same rows) also the model map's section (spec_core.export.matrix)."""
    p = result.params
    c = result.context
    head = [
        ("dataset", f"{ctx.dataset_name} ({p.n_rows} rows)"),
        ("fingerprint", ctx.fingerprint),
        ("model A", f"{ctx.model_a} (dim {p.dim_a})"),
        ("model B", f"{ctx.model_b} (dim {p.dim_b})"),
        ("SPEC-diff", f"{result.spec_diff:.4g}"),
        ("noise floor", f"{result.noise_floor:.3g}"),
        (
            "parameters",
            (
                f"{p.kernel} kernel, sigma A {p.sigma_a:.4g}, sigma B {p.sigma_b:.4g} "
                f"({p.sigma_rule or 'set by hand'}), "
                if p.sigma_a is not None and p.sigma_b is not None
                else f"{p.kernel} kernel, "
            )
            + f"{'centred' if p.centre else 'uncentred'}, eta {p.eta:g}, {p.method} "
            f"({p.route}), seed {p.seed}, {p.device}",
        ),
    ]
    if c is not None:
        head.append(
            (
                "context",
                f"linear CKA {c.linear_cka:.3f}; mean {c.knn_k}-NN overlap "
                f"{c.knn_overlap_mean:.3f}",
            )
        )
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>SPEC report: {escape(ctx.model_a)} vs {escape(ctx.model_b)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;"
        "vertical-align:top}.grid{display:flex;flex-wrap:wrap;gap:8px}"
        ".item{width:110px;font-size:12px}.A{color:" + COLOR_A + "}.B{color:" + COLOR_B + "}"
        ".low{opacity:.6}</style></head><body>",
        f"<h1>SPEC: <span class='A'>{escape(ctx.model_a)}</span> vs "
        f"<span class='B'>{escape(ctx.model_b)}</span></h1>",
        "<table>",
        *(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in head),
        "</table><h2>Spectrum</h2>",
        "<p>Blue bars (positive): groups A clusters and B does not. Red bars (negative): groups "
        "B clusters and A does not. The grey band is the noise floor.</p>",
        spectrum_svg(result),
        "<h2>Modes</h2>",
    ]
    for mode in result.modes:
        members = mode.members[:members_shown]
        desc = describe_members(mode.members, labels=ctx.labels, texts=ctx.texts)
        flag = f" (weak: {'; '.join(mode.weak_reasons)})" if mode.weak else ""
        evidence = mode.evidence_line(ctx.model_a, ctx.model_b, p.n_resamples)
        out.append(
            f"<h3 class='{mode.direction}{' low' if mode.weak else ''}'>"
            f"{escape(mode.label)}: eigenvalue {mode.eigenvalue:+.4g}{escape(flag)}</h3>"
            f"<p>{escape(evidence)}</p><p>{escape(desc.headline)}</p>"
        )
        if ctx.image_paths is not None:
            out.append("<div class='grid'>")
            for row, score in zip(members, mode.scores, strict=False):
                caption = ctx.texts[row] if ctx.texts else ctx.ids[row]
                out.append(
                    f"<div class='item'><img src='{_thumbnail(ctx.image_paths[row])}' "
                    f"alt='{escape(ctx.ids[row])}'><br>{escape(caption)}<br>"
                    f"<small>{score:.3f}</small></div>"
                )
            out.append("</div>")
        else:
            out.append("<table><tr><th>score</th><th>id</th><th>text</th><th>label</th></tr>")
            for row, score in zip(members, mode.scores, strict=False):
                text = ctx.texts[row] if ctx.texts else ""
                label = ctx.labels[row] if ctx.labels else ""
                out.append(
                    f"<tr><td>{score:.3f}</td><td>{escape(ctx.ids[row])}</td>"
                    f"<td>{escape(text)}</td><td>{escape(label)}</td></tr>"
                )
            out.append("</table>")
    if model_map is not None:
        out.append(matrix_section(model_map, labels=ctx.labels, texts=ctx.texts))
    out.append("<p><small>Made with SPEC Explorer.</small></p></body></html>")
    return "\n".join(out)
