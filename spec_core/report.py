"""Exports of a comparison: modes as CSV / JSON, and a self-contained HTML report.

The report needs no network and no JavaScript: the spectrum is inline SVG and the thumbnails
are data URIs, so it can be mailed or dropped in a wiki as one file. Every user string is
escaped.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from spec_core.describe import describe_members
from spec_core.result import SpecResult

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
    buf = io.StringIO()
    rows = modes_table(result, ctx)
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["mode"])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


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


def spectrum_svg(result: SpecResult, *, width: int = 720, height: int = 260) -> str:
    values = list(result.eigenvalues)
    if not values:
        return "<p>No eigenvalues.</p>"
    top = max(max(abs(v) for v in values), result.noise_floor, 1e-12)
    mid = height / 2
    step = width / len(values)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="eigenvalue spectrum">',
        f'<rect x="0" y="{mid - result.noise_floor / top * (mid - 10):.1f}" width="{width}" '
        f'height="{2 * result.noise_floor / top * (mid - 10):.1f}" fill="#999" opacity="0.25"/>',
        f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="#444" stroke-width="1"/>',
    ]
    for i, value in enumerate(values):
        bar = abs(value) / top * (mid - 10)
        y = mid - bar if value > 0 else mid
        color = COLOR_A if value > 0 else COLOR_B
        parts.append(
            f'<rect x="{i * step + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{bar:.1f}" fill="{color}"><title>{value:+.4g}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _thumbnail(path: str, size: int = 72) -> str:
    from spec_core.embed import load_rgb

    try:
        img = load_rgb(path)
    except Exception:  # a file that vanished since: show nothing rather than fail the report
        return ""
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def html_report(result: SpecResult, ctx: ReportContext, *, members_shown: int = 12) -> str:
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
            f"{p.kernel} kernel, sigma A {p.sigma_a}, sigma B {p.sigma_b}, eta "
            f"{p.eta}, {p.method} ({p.route}), seed {p.seed}, {p.device}",
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
    out.append("<p><small>Made with SPEC Explorer.</small></p></body></html>")
    return "\n".join(out)
