"""The two embeddings side by side in 2-D, coloured by the selected mode's score or by label.
Find rows by text or id; click a point to see its nearest neighbours in A and in B; select a
region (box or lasso) to list its rows and export them."""

import streamlit as st

from spec_app import charts, hover, safe, services, state, views

NEIGHBOURS = 8

comp = views.comparison_page("UMAP")
mode = views.selected_mode(comp, key="umap_mode")
dataset = comp.dataset
name_a, name_b = comp.names
hover_text = [
    f"{i}: {views.row_caption(dataset, i)[:80]}"
    + (f" · {dataset.labels[i]}" if dataset.labels else "")
    for i in range(len(dataset))
]


def remember(widget: str, session_key: str) -> None:
    """A control changed: keep its value in the session (and so in the link) before the run."""
    st.session_state[session_key] = st.session_state[widget]


col_colour, col_search = st.columns([1, 2])
colours = ["mode score", "label"] if dataset.labels else ["mode score"]
if st.session_state.umap_colour not in colours:
    st.warning("Colour by label: this data has no labels; colouring by the mode score.")
    st.session_state.umap_colour = colours[0]
colour = col_colour.selectbox(
    "Colour by",
    colours,
    index=colours.index(st.session_state.umap_colour),
    key="umap_color",
    on_change=remember,
    args=("umap_color", "umap_colour"),
    help="mode score: each row's entry in the selected mode's eigenvector (red high, blue "
    "low); label: the ten most frequent labels of the data.",
)
query = col_search.text_input(
    "Find rows (text, caption or id)",
    value=st.session_state.umap_find,
    key="umap_search",
    on_change=remember,
    args=("umap_search", "umap_find"),
    max_chars=200,
    help="Rows whose text, caption or id contains this (any case) are ringed in orange.",
)
found = services.projections.find_rows(query, dataset) if query else []
if query:
    st.caption(
        f"{len(found)} row(s) found, ringed in orange" + (" (first 500)" * (len(found) == 500))
    )
st.caption(
    "Outlined: the mode's members. Hover a point for its image or text; click it for its nearest "
    "neighbours in A and in B; drag to zoom (double-click: back). To list and export a region's "
    "rows, pick Box or Lasso Select in the chart's tool bar and drag (the list follows the "
    "latest selection, in either view)."
)
st.caption(
    "A 2-D map keeps only part of each embedding's geometry: a tight blob here need not be a "
    "group for the kernel at this bandwidth (nor the reverse). Which groups each embedding "
    "holds is the spectrum's answer, not the map's."
)


def selection(key: str) -> tuple[list[int], bool]:
    """Dataset rows selected in the chart with this key, in order, and whether it was a click
    (one point, no box or lasso)."""
    event = st.session_state.get(key)
    chosen = event.selection if event and event.selection else {}
    points = chosen.get("points", []) if chosen else []
    rows = [int(p["customdata"]) for p in points if p.get("customdata") is not None]
    region = bool(chosen and (chosen.get("box") or chosen.get("lasso")))
    return list(dict.fromkeys(rows)), len(rows) == 1 and not region


hover.attach(rows=hover.row_cards(dataset, first=mode.members))  # thumbnails on hover
gen = st.session_state.umap_gen  # a new generation of the charts clears their selections
regions, clicked = {}, None
for side in ("A", "B"):
    rows, is_click = selection(f"umap_{side}_{gen}")
    regions[side] = [] if is_click else rows
    if is_click:
        clicked = rows[0]
latest, st.session_state.umap_seen = views.latest_selection(
    st.session_state.umap_selection, st.session_state.umap_seen, regions
)
latest = latest if latest and all(0 <= r < len(dataset) for r in latest["rows"]) else None
st.session_state.umap_selection = latest
if clicked is not None:
    st.session_state.picked_row = clicked
if len(found) == 1:
    st.session_state.picked_row = found[0]
labels = dataset.labels if colour == "label" else None
picked = st.session_state.picked_row
if picked is not None and not 0 <= picked < len(dataset):
    st.warning(f"Row {picked} is not a row of this data ({len(dataset)} rows); none is picked.")
    picked = st.session_state.picked_row = None
state.write_link()  # a click on a point picks its row during this run

left, right = st.columns(2)
slots = []
sides = (("A", left, name_a, comp.key_a), ("B", right, name_b, comp.key_b))
for side, col, name, key in sides:  # a fast PCA view first...
    slot = col.empty()
    coords = services.projections.projection(key, "pca")
    figure = charts.scatter_figure(
        coords, mode.sample_scores, mode.members, hover_text,
        f"{side}: {name} (PCA; UMAP computing…)", labels=labels,
    )  # fmt: skip
    hover.mark(figure, "rows")
    slot.plotly_chart(figure, width="stretch", key=f"pca_{side}")
    slots.append(slot)
for (side, _, name, key), slot in zip(sides, slots, strict=True):  # ...then UMAP in its place
    with st.spinner(f"UMAP of {side}…"):
        coords = services.projections.projection(key, "umap", 0)
    # linked views: the latest selection, made in the other view, ringed in this one
    other = latest["rows"] if latest and latest["side"] != side else []
    figure = charts.scatter_figure(
        coords,
        mode.sample_scores,
        mode.members,
        hover_text,
        f"{side}: {name} (UMAP)",
        highlight=other,
        labels=labels,
        found=found,
        picked=picked,
    )
    hover.mark(figure, "rows")
    slot.plotly_chart(
        figure,
        width="stretch",
        key=f"umap_{side}_{gen}",
        on_select="rerun",
        selection_mode=("points", "box", "lasso"),
    )

if picked is not None:
    st.subheader(f"Row {picked} and its nearest neighbours")
    views.rows_grid(dataset, [picked], columns=8)
    metric = "cosine" if comp.result.params.kernel == "cosine" else "euclidean"
    near = {
        side: services.projections.neighbours(key, picked, NEIGHBOURS, metric)
        for side, _, _, key in sides
    }
    shared = set(near["A"][0]) & set(near["B"][0])
    st.caption(
        f"{len(shared)} of its {NEIGHBOURS} nearest neighbours are the same in A and in B "
        f"(marked ●); {metric} distance in each embedding's own units."
    )
    for col, (side, _, name, _) in zip(st.columns(2), sides, strict=True):
        with col:
            st.markdown(safe.fmt("**Nearest in {}: {}**", side, name))
            rows, distances = near[side]
            views.rows_grid(
                dataset,
                rows,
                scores=distances,
                score_name="distance",
                columns=4,
                marks={row: "●" for row in shared},
            )


def clear_selection() -> None:
    st.session_state.umap_gen += 1  # charts drawn afresh, with no selection
    st.session_state.umap_selection = None
    st.session_state.umap_seen = None


if latest:
    rows, source = latest["rows"], latest["side"]
    st.subheader(f"Selected in {source}: {len(rows)} point(s) (ringed in green in the other view)")
    st.button("Clear the selection", on_click=clear_selection, key="umap_clear")
    views.rows_grid(dataset, rows[:48], scores=mode.sample_scores[rows[:48]], columns=8)
    if len(rows) > 48:
        st.caption(f"showing the first 48 of {len(rows)}")
    st.download_button(
        f"Selected rows (CSV, {len(rows)})",
        services.export.rows_csv(
            dataset, rows, scores=mode.sample_scores[rows], score_name=f"score {mode.label}"
        ),
        f"selection_{source}.csv",
        "text/csv",
        key="umap_selection_csv",
    )
