"""The two embeddings side by side in 2-D, coloured by the selected mode's score."""

import streamlit as st

from spec_app import charts, services, views

comp = views.comparison_page("UMAP")
mode = views.selected_mode(comp, key="umap_mode")
dataset = comp.dataset
hover = [
    f"{i}: {dataset.texts[i][:80]}" if dataset.texts else f"{i}: {dataset.ids[i]}"
    for i in range(len(dataset))
]
st.caption(
    "Colour: the row's score in the selected mode (red high); outlined: its members. "
    "Box- or lasso-select points to see them below."
)
left, right = st.columns(2)
slots = []
sides = (("A", left, comp.model_a, comp.key_a), ("B", right, comp.model_b, comp.key_b))
for side, col, name, key in sides:  # a fast PCA view first...
    slot = col.empty()
    coords = services.projection(key, "pca")
    title = f"{side}: {name} (PCA; UMAP computing…)"
    figure = charts.scatter_figure(coords, mode.sample_scores, mode.members, hover, title)
    slot.plotly_chart(figure, width="stretch", key=f"pca_{side}")
    slots.append(slot)


def selected_rows(key: str) -> list[int]:
    """Dataset rows selected (box, lasso or click) in the chart with this key, in order."""
    event = st.session_state.get(key)
    points = event.selection.points if event and event.selection else []
    rows = [int(p["customdata"]) for p in points if p.get("customdata") is not None]
    return list(dict.fromkeys(rows))


chosen = {"A": selected_rows("umap_A"), "B": selected_rows("umap_B")}
for (side, _, name, key), slot in zip(sides, slots, strict=True):  # ...then UMAP in its place
    with st.spinner(f"UMAP of {side}…"):
        coords = services.projection(key, "umap", 0)
    other = chosen["B" if side == "A" else "A"]  # linked views: ring the other's selection
    figure = charts.scatter_figure(
        coords, mode.sample_scores, mode.members, hover, f"{side}: {name} (UMAP)", highlight=other
    )
    slot.plotly_chart(
        figure,
        width="stretch",
        key=f"umap_{side}",
        on_select="rerun",
        selection_mode=("box", "lasso", "points"),
    )
rows = chosen["A"] or chosen["B"]
if rows:
    source = "A" if chosen["A"] else "B"
    st.subheader(f"Selected in {source}: {len(rows)} point(s) (ringed in green in the other view)")
    views.rows_grid(dataset, rows[:48], scores=mode.sample_scores[rows[:48]], columns=8)
    if len(rows) > 48:
        st.caption(f"showing the first 48 of {len(rows)}")
