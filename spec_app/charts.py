"""Plotly figures for the pages (drawing only: every number comes from spec_core).

Plotly renders a subset of HTML (links included) in titles, tick labels and hover texts, so
every user-supplied string goes through `safe.plotly`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from spec_app import safe
from spec_core.engine.result import SpecResult

COLOR_A = "#1f77b4"
COLOR_B = "#d62728"
#: The opacity of bars that are not findings (weak modes, modes not examined yet).
FADED = 0.35


def _rgba(hex_color: str, alpha: float) -> str:
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def spectrum_figure(result: SpecResult, names: tuple[str, str]) -> go.Figure:
    """Eigenvalues as bars, descending: positive (A-not-B) blue, negative (B-not-A) red; every
    bar carries its mode's label as customdata, so a click selects it (its vector is computed
    on demand when it is beyond the modes computed); the noise floor is a labelled band (when it
    is wide enough to see); a bar more than DOMINANT times any other is clipped at a y range the
    others set, its value written beside it. Modes that are findings are drawn in full colour;
    weak ones and bars not examined yet are faded.

    The figure does not depend on the selection: a figure that changed on every click would be
    drawn afresh, which resets Plotly's selection and swallows the next click. Plotly's own
    selection marks the clicked bar (dark), and leaves the others as they are."""
    from spec_app.services.comparison import bar_labels

    values = result.eigenvalues
    custom = bar_labels(values)
    weak = {m.label: "; ".join(m.weak_reasons) for m in result.modes if m.weak}
    strong = {m.label for m in result.modes if not m.weak}
    colors = [
        _rgba(COLOR_A if v > 0 else COLOR_B, 1.0 if c in strong else FADED)
        for v, c in zip(values, custom, strict=True)
    ]
    notes = [
        f"<br>weak: {safe.plotly(weak[c])}"
        if c in weak
        else ("" if c in strong else "<br>not examined yet: click to compute")
        for c in custom
    ]
    fig = go.Figure(
        go.Bar(
            x=list(range(1, len(values) + 1)),
            y=values,
            marker={"color": colors},
            selected={"marker": {"color": "#111", "opacity": 1.0}},
            unselected={"marker": {"opacity": 1.0}},
            customdata=custom,
            hovertext=notes,
            hovertemplate="eigenvalue %{y:.4g}<br>%{customdata}%{hovertext}<extra></extra>",
        )
    )
    floor = result.noise_floor
    y_range, clipped = spectrum_range(values, floor)
    if floor_is_drawn(floor, y_range or _span(values)):
        fig.add_hrect(
            y0=-floor,
            y1=floor,
            fillcolor="#888",
            opacity=0.25,
            line_width=0,
            annotation_text=f"grey band: noise floor (±{floor:.2g})",
            annotation_position="top right",  # above the band at the right end, where the
            annotation_font={"size": 11, "color": "#555"},  # bars (negative) go down
            annotation_bgcolor="rgba(255,255,255,0.8)",
        )
    if clipped is not None:
        value = float(values[clipped])
        left = clipped < len(values) / 2  # the value written on the side with room
        fig.add_annotation(
            x=clipped + 1,
            y=y_range[1] if value > 0 else y_range[0],
            text=f"{value:+.3g} (clipped)",
            showarrow=False,
            yshift=-10 if value > 0 else 10,
            xanchor="left" if left else "right",
            xshift=8 if left else -8,
            font={"size": 12, "color": "#111"},
            bgcolor="rgba(255,255,255,0.8)",
        )
    fig.update_layout(
        height=330,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title="eigenvalue rank (both ends of the spectrum)",
        yaxis={"title": "eigenvalue", **({"range": list(y_range)} if y_range else {})},
        title=f"blue: {safe.plotly(names[0])} clusters, {safe.plotly(names[1])} does not · "
        "red: the reverse",
        showlegend=False,
        clickmode="event+select",
    )
    return fig


#: A bar is dominant (clipped, its value written on it) when it is this many times the next
#: largest |eigenvalue|: beyond it the other bars would be a few pixels high.
DOMINANT = 4.0

#: The noise floor is drawn as a band when it is at least this share of the y range (thinner
#: than a pixel or two it would be invisible: the page says so in words instead).
FLOOR_DRAWN = 0.005


def _span(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return min(float(values.min(initial=0.0)), 0.0), max(float(values.max(initial=0.0)), 0.0)


def spectrum_range(values, floor: float) -> tuple[tuple[float, float] | None, int | None]:
    """The spectrum chart's y range and the index of the bar it clips: (None, None) when no
    bar dominates (Plotly's own range); otherwise a range set by the other bars and the noise
    floor (5% padding, the dominant bar's end of the axis given room), and the dominant bar."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return None, None
    order = np.argsort(-np.abs(values))
    top, rest = int(order[0]), np.delete(values, order[0])
    second = float(np.abs(rest).max())
    if not abs(values[top]) > DOMINANT * max(second, floor):
        return None, None
    low, high = _span(np.append(rest, [-floor, floor]))
    reach = 1.3 * max(high - low, second, floor)  # room for the clipped bar and its label
    if values[top] > 0:
        high = max(high, low + reach)
    else:
        low = min(low, high - reach)
    pad = 0.05 * (high - low)
    return (low - pad, high + pad), top


def spectrum_notes(result: SpecResult) -> list[str]:
    """What the spectrum chart needs said in words: the bar it clips (its value), and a noise
    floor too thin to draw (with the exact method it is round-off: every bar is above it)."""
    values = result.eigenvalues
    floor = result.noise_floor
    y_range, clipped = spectrum_range(values, floor)
    notes = []
    if clipped is not None:
        notes.append(
            f"Bar {clipped + 1} ({values[clipped]:+.4g}) is {DOMINANT:g}+ times any other: it is "
            "clipped (its value written beside it) so that the other bars stay readable."
        )
    if not floor_is_drawn(floor, y_range or _span(values)):
        what = (
            "the round-off of the exact computation"
            if result.params.method == "exact"
            else "what two feature draws alone produce"
        )
        notes.append(
            f"Noise floor {floor:.2g} ({what}): too thin to draw at this scale, so every bar "
            "shown is above it."
        )
    return notes


def floor_is_drawn(floor: float, y_range: tuple[float, float]) -> bool:
    """Whether the noise-floor band is wide enough to see on an axis spanning `y_range`."""
    span = y_range[1] - y_range[0]
    return span > 0 and 2 * floor >= FLOOR_DRAWN * span


def label_makeup_figure(counts: Sequence[tuple[str, int]]) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=[c for _, c in counts],
            y=[safe.plotly(label, limit=60) for label, _ in counts],
            orientation="h",
            marker_color="#555",
        )
    )
    fig.update_layout(
        height=40 + 22 * len(counts),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"autorange": "reversed"},
        xaxis_title="members",
    )
    return fig


#: Colours of the most frequent labels (colour by label); the rest are grey.
LABEL_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f",
)  # fmt: skip


def scatter_figure(
    coords: np.ndarray,
    scores: np.ndarray,
    members: np.ndarray,
    hover: Sequence[str],
    title: str,
    highlight: Sequence[int] = (),
    *,
    labels: Sequence[str] | None = None,
    found: Sequence[int] = (),
    picked: int | None = None,
) -> go.Figure:
    """A 2-D view coloured by the selected mode's score (or, with `labels`, by label, the ten
    most frequent in colour); the mode's members drawn on top, outlined. Each point carries its
    dataset row as customdata, so a click or a box / lasso selection names rows. Rings:
    `highlight` (a selection made in the other view) green, `found` (a search) orange, `picked`
    (the clicked point) black. `hover` and `title` are plain text."""
    hover = [safe.plotly(h) for h in hover]
    title = safe.plotly(title)
    is_member = np.zeros(len(coords), dtype=bool)
    is_member[members] = True
    limit = float(np.abs(scores).max()) or 1.0
    fig = go.Figure()
    if labels is None:
        for mask, size, outline in ((~is_member, 6, 0), (is_member, 10, 1.5)):
            idx = np.flatnonzero(mask)
            fig.add_trace(
                go.Scattergl(
                    x=coords[idx, 0],
                    y=coords[idx, 1],
                    mode="markers",
                    text=[hover[i] for i in idx],
                    customdata=idx,  # the dataset row, for selections
                    hovertemplate="%{text}<br>score %{marker.color:.3f}<extra></extra>",
                    marker={
                        "size": size,
                        "color": scores[idx],
                        "colorscale": "RdBu_r",
                        "cmin": -limit,
                        "cmax": limit,
                        "line": {"width": outline, "color": "#111"},
                        "showscale": bool(outline),
                    },
                    name="members" if outline else "others",
                )
            )
    else:
        _label_traces(fig, coords, scores, is_member, hover, labels)
    rings = (
        (highlight, "#2ca02c", 12, "selected in the other view"),
        (found, "#ff7f0e", 14, "found by the search"),
        (() if picked is None else (picked,), "#111111", 16, "the clicked point"),
    )
    for rows, color, size, what in rings:
        if not len(rows):
            continue
        rows = np.asarray(rows, dtype=int)
        fig.add_trace(
            go.Scattergl(
                x=coords[rows, 0],
                y=coords[rows, 1],
                mode="markers",
                text=[hover[i] for i in rows],
                customdata=rows,
                hovertemplate=f"%{{text}}<br>{what}<extra></extra>",
                marker={
                    "size": size,
                    "symbol": "circle-open",
                    "color": color,
                    "line": {"width": 2},
                },
                name=what,
            )
        )
    fig.update_layout(
        title=title,
        # a drag zooms and a click selects one point; box and lasso selections are tools of the
        # mode bar (streamlit turns clicks off while one of those is the drag mode)
        dragmode="zoom",
        clickmode="event+select",
        height=460,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        showlegend=labels is not None,
        legend={"itemclick": False, "itemdoubleclick": False},
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return fig


def _label_traces(fig, coords, scores, is_member, hover, labels) -> None:
    """One trace per frequent label (members outlined), the rest in grey as 'other'."""
    from collections import Counter

    top = [label for label, _ in Counter(labels).most_common(len(LABEL_COLORS) - 1)]
    colour = {label: LABEL_COLORS[i] for i, label in enumerate(top)}
    groups: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(label if label in colour else "(other labels)", []).append(row)
    for label, rows in groups.items():
        idx = np.asarray(rows, dtype=int)
        fig.add_trace(
            go.Scattergl(
                x=coords[idx, 0],
                y=coords[idx, 1],
                mode="markers",
                text=[hover[i] for i in idx],
                customdata=idx,
                hovertemplate="%{text}<extra></extra>",
                marker={
                    "size": np.where(is_member[idx], 10, 6),
                    "color": colour.get(label, "#c7c7c7"),
                    "line": {"width": np.where(is_member[idx], 1.5, 0), "color": "#111"},
                },
                name=safe.plotly(label or "(no label)", limit=40),
            )
        )


def scales_figure(sweep, current: float, names: tuple[str, str]) -> go.Figure:
    """The spectrum across bandwidth scales: each mode followed across scales is a line
    (blue: A-not-B, red: B-not-A), SPEC-diff a dashed line, the scale in use a vertical line;
    x is the multiplier of the data-driven bandwidths, on a log axis."""
    fig = go.Figure()
    for i, track in enumerate(sweep.tracks):
        xs = [sweep.multipliers[p.scale] for p in track.points]
        ys = [p.eigenvalue for p in track.points]
        tag = f"{track.direction}-not-{'B' if track.direction == 'A' else 'A'}"
        labels = [f"{tag} #{p.rank + 1} at x{sweep.multipliers[p.scale]:g}" for p in track.points]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                line={"color": COLOR_A if track.direction == "A" else COLOR_B, "width": 1.5},
                marker={"size": 6},
                opacity=1.0 if i < 6 else 0.35,  # the strongest tracks stand out
                text=labels,
                hovertemplate="%{text}<br>eigenvalue %{y:.4g}<extra></extra>",
                showlegend=False,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=list(sweep.multipliers),
            y=list(sweep.spec_diffs),
            mode="lines",
            line={"color": "#444", "dash": "dash"},
            name="SPEC-diff",
            hovertemplate="SPEC-diff %{y:.4g} at x%{x:g}<extra></extra>",
        )
    )
    fig.add_vline(
        x=current, line_color="#2ca02c", annotation_text="in use", annotation_position="top"
    )
    fig.add_hline(y=0, line_color="#999", line_width=1)
    low, high = np.log10(min(sweep.multipliers)), np.log10(max(sweep.multipliers))
    pad = 0.05 * max(high - low, 0.3)
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={
            "type": "log",
            "title": "bandwidth scale (x the data-driven bandwidths)",
            "range": [low - pad, high + pad],
            "tickvals": list(sweep.multipliers),
            "ticktext": [f"x{m:g}" for m in sweep.multipliers],
        },
        yaxis_title="eigenvalue",
        title=f"blue: {safe.plotly(names[0])} clusters, {safe.plotly(names[1])} does not · "
        "red: the reverse",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def align_spectra_figure(
    spectra: dict[str, dict], titles: tuple[str, str], names: tuple[str, str]
) -> go.Figure:
    """The spectrum before and after alignment side by side (`spectra` as
    services.align_spectra gives it), on one y axis so that the bars compare: positive
    (A-not-B) blue, negative (B-not-A) red, each panel's noise floor a band. `titles` and
    `names` are plain text."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.03,
        subplot_titles=[safe.plotly(t) for t in titles],
    )
    for col, stage in ((1, "before"), (2, "after")):
        values = np.asarray(spectra[stage]["eigenvalues"], dtype=float)
        fig.add_trace(
            go.Bar(
                x=list(range(1, len(values) + 1)),
                y=values,
                marker={"color": [COLOR_A if v > 0 else COLOR_B for v in values]},
                hovertemplate=f"{stage}: eigenvalue %{{y:.4g}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        floor = spectra[stage]["noise_floor"]
        fig.add_hrect(
            y0=-floor, y1=floor, fillcolor="#888", opacity=0.25, line_width=0, row=1, col=col
        )
        fig.update_xaxes(title_text="eigenvalue rank", row=1, col=col)
    every = np.concatenate([np.asarray(s["eigenvalues"], dtype=float) for s in spectra.values()])
    low, high = min(float(every.min(initial=0.0)), 0.0), max(float(every.max(initial=0.0)), 0.0)
    pad = 0.05 * ((high - low) or 1.0)
    fig.update_yaxes(range=[low - pad, high + pad], title_text="eigenvalue", row=1, col=1)
    fig.update_layout(
        height=340,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        title=f"blue: {safe.plotly(names[0])} clusters, {safe.plotly(names[1])} does not · "
        "red: the reverse",
        showlegend=False,
    )
    return fig


def align_history_figure(history: Sequence[dict], best_step: int) -> go.Figure:
    """The training curve: SPEC-diff of the train batches and of the validation rows per step,
    the step kept marked."""
    fig = go.Figure()
    train = [h for h in history if h.get("train_loss") is not None]
    fig.add_trace(
        go.Scatter(
            x=[h["step"] for h in train],
            y=[h["train_loss"] for h in train],
            mode="lines",
            line={"color": "#999"},
            name="train batch",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[h["step"] for h in history],
            y=[h["val_spec_diff"] for h in history],
            mode="lines+markers",
            line={"color": "#111"},
            name="validation rows",
        )
    )
    fig.add_vline(
        x=best_step, line_color="#2ca02c", annotation_text="kept", annotation_position="top"
    )
    fig.update_layout(
        height=280,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title="step",
        yaxis_title="SPEC-diff",
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def matrix_figure(
    values: np.ndarray,
    names: Sequence[str],
    hover: Sequence[Sequence[str]] | None = None,
    *,
    colorscale: str = "Blues",
    zmax: float | None = None,
    clickable: bool = False,
) -> go.Figure:
    """A model-by-model matrix as a heatmap, each value written in its cell. `hover[i][j]`:
    the cell's text (plain; lines split at newlines). With `clickable`, an invisible square
    marker sits on every cell off the diagonal and carries "row,column" as customdata, so a
    click selects the cell (Plotly selects points of scatter traces, not heatmap cells)."""
    count = len(names)
    labels = [safe.plotly(name, limit=40) for name in names]
    top = float(np.max(values)) if zmax is None else zmax
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(count)),
            y=list(range(count)),
            zmin=0.0,
            zmax=top or 1.0,
            colorscale=colorscale,
            text=[[f"{v:.3f}" for v in row] for row in values],
            texttemplate="%{text}",
            hoverinfo="skip" if clickable else None,
            hovertemplate=None if clickable else "%{text}<extra></extra>",
            showscale=True,
        )
    )
    height = 140 + 62 * count
    if clickable:
        cells = [(i, j) for i in range(count) for j in range(count) if i != j]
        texts = ["" if hover is None else _hover_lines(hover[i][j]) for i, j in cells]
        fig.add_trace(
            go.Scatter(
                x=[j for _, j in cells],
                y=[i for i, _ in cells],
                mode="markers",
                marker={"symbol": "square", "size": 48, "color": "rgba(0,0,0,0)"},
                selected={"marker": {"opacity": 1.0}},
                unselected={"marker": {"opacity": 1.0}},
                customdata=[f"{i},{j}" for i, j in cells],
                hovertext=texts,
                hovertemplate="%{hovertext}<extra></extra>",
                showlegend=False,
            )
        )
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"tickvals": list(range(count)), "ticktext": labels, "tickangle": -35},
        yaxis={"tickvals": list(range(count)), "ticktext": labels, "autorange": "reversed"},
        clickmode="event+select",
        hoverdistance=60,
        hoverlabel={"align": "left"},
        dragmode=False,
    )
    return fig


def _hover_lines(text: str, width: int = 72) -> str:
    """Plain text as Plotly hover text: each line escaped and wrapped at `width` characters."""
    import textwrap

    lines = []
    for line in text.split("\n"):
        lines += textwrap.wrap(line, width, subsequent_indent="  ") or [""]
    return "<br>".join(safe.plotly(line, limit=300) for line in lines)


def model_map_figure(
    coords: np.ndarray, names: Sequence[str], closest: tuple[int, int], farthest: tuple[int, int]
) -> go.Figure:
    """The models on a plane whose distances follow SPEC-diff (classical MDS), each named; the
    closest pair joined in green, the farthest in red."""
    fig = go.Figure()
    for (i, j), colour, what in ((closest, "#2ca02c", "closest"), (farthest, COLOR_B, "farthest")):
        fig.add_trace(
            go.Scatter(
                x=[coords[i, 0], coords[j, 0]],
                y=[coords[i, 1], coords[j, 1]],
                mode="lines",
                line={"color": colour, "dash": "dash"},
                name=f"{what} pair",
                hoverinfo="skip",
            )
        )
    labels = [safe.plotly(name, limit=40) for name in names]
    fig.add_trace(
        go.Scatter(
            x=coords[:, 0],
            y=coords[:, 1],
            mode="markers+text",
            text=labels,
            textposition="top center",
            marker={"size": 12, "color": COLOR_A},
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_layout(
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        legend={"orientation": "h", "y": -0.05},
    )
    return fig
