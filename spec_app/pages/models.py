"""Models: 3 to 8 models of the current data compared at once. The SPEC-diff matrix (linear
CKA beside it), each cell naming the strongest group of each direction; a map of the models;
a click on a cell (or the pair picker) opens that pair on the Spectrum page."""

import streamlit as st

from spec_app import charts, router, safe, services, sidebar, state, views

sidebar.render()
st.title("Models")
st.caption(
    "Which of several models see this data alike, and which differ most? Every pair is "
    "compared with SPEC (the settings in the sidebar), each model's features computed once."
)
try:
    dataset = services.data.current_dataset()
except services.errors.DataGone as err:
    views.data_gone(str(err))

applied = state.map_entries()
low, high = state.MAP_MODELS
options = services.model_map.choices(dataset, st.session_state.my_matrices)
options += [entry for entry in applied if entry not in options]
picked = st.multiselect(
    f"Models ({low} to {high})",
    options,
    default=applied,
    format_func=services.model_map.entry_label,
    max_selections=high,
    key="models_pick",
    help="Registry models, with what each embeds (a model that embeds images and texts is "
    "listed for each), and the embedding matrices you uploaded for this data (Data page).",
)
if st.button("Compare these models", type="primary", key="models_run", disabled=len(picked) < low):
    state.use_map_models(list(picked))
    st.rerun()
if not applied:
    st.info(f"Pick {low} to {high} models and press **Compare these models**.")
    st.stop()

problems = services.model_map.check_entries(applied, dataset)
if problems:
    for problem in problems:
        st.error(safe.md(problem))
    st.stop()
try:
    model_map = services.model_map.run_model_map(state.current_settings(), applied)
except services.errors.DataGone as err:
    views.data_gone(str(err))
if model_map is None:
    st.stop()

result = model_map.result
names = model_map.names
count = len(names)
for note in model_map.notes:
    st.caption(safe.md(note))
hover = [
    [services.model_map.cell_text(model_map, row, col) for col in range(count)]
    for row in range(count)
]
col_diff, col_cka = st.columns(2)
with col_diff:
    st.markdown("**SPEC-diff** (row = A, column = B)")
    event = st.plotly_chart(
        charts.matrix_figure(result.spec_diff, names, hover, clickable=True),
        on_select="rerun",
        selection_mode="points",
        key="models_chart",
        width="stretch",
    )
with col_cka:
    if result.linear_cka is not None:
        st.markdown("**Linear CKA** (1: the same up to rotation and scale)")
        st.plotly_chart(
            charts.matrix_figure(result.linear_cka, names, colorscale="Greens", zmax=1.0),
            width="stretch",
        )
st.caption(
    "SPEC-diff: the strength of the group one model clusters most differently from the other "
    "(0: the same groups). Hover a cell for the strongest group of each direction in words; "
    "click it to open the pair on the Spectrum page."
)
points = event.selection.points if event and event.selection else []
clicked = points[0].get("customdata") if points else None
if clicked and clicked != st.session_state.models_click:  # a new click, not a kept one
    st.session_state.models_click = clicked
    row, col = (int(part) for part in str(clicked).split(","))
    state.open_pair(model_map.entries[row], model_map.entries[col])
    st.switch_page(router.page_path("spectrum"))
st.session_state.models_click = clicked

st.subheader("Map of the models")
(close_a, close_b), (far_a, far_b) = result.extremes()
index = {name: i for i, name in enumerate(names)}
st.plotly_chart(
    charts.model_map_figure(
        result.model_map,
        names,
        (index[close_a], index[close_b]),
        (index[far_a], index[far_b]),
    ),
    width="stretch",
)
st.caption(
    safe.fmt(
        "Models close on the map compare with a small SPEC-diff (classical MDS of the matrix). "
        "Closest: {} and {} ({}); farthest: {} and {} ({}).",
        close_a,
        close_b,
        f"{result.pairs[(close_a, close_b)].spec_diff:.4f}",
        far_a,
        far_b,
        f"{result.pairs[(far_a, far_b)].spec_diff:.4f}",
    )
)

st.subheader("Every pair")
st.dataframe(services.model_map.pairs_table(model_map), hide_index=True, width="stretch")
cells = [f"{i},{j}" for i in range(count) for j in range(count) if i != j]
col_pick, col_go = st.columns([3, 2], vertical_alignment="bottom")
choice = col_pick.selectbox(
    "Open a pair",
    cells,
    format_func=lambda cell: services.model_map.pair_label(model_map, cell),
    key="models_pair",
)
if col_go.button("Open on the Spectrum page", key="models_open"):
    row, col = (int(part) for part in choice.split(","))
    state.open_pair(model_map.entries[row], model_map.entries[col])
    st.switch_page(router.page_path("spectrum"))

for problem in model_map.failed:
    st.caption(safe.md(f"Left out: {problem}", limit=600))
st.subheader("Downloads")
col_csv, col_json, col_html = st.columns(3)
stem = safe.filename(f"spec_models_{dataset.name}")
col_csv.download_button(
    "SPEC-diff matrix (CSV)",
    services.model_map.matrix_csv(model_map),
    f"{stem}.csv",
    "text/csv",
    key="models_csv",
)
col_json.download_button(
    "Model map (JSON)",
    services.model_map.matrix_json(model_map),
    f"{stem}.json",
    "application/json",
    key="models_json",
)
col_html.download_button(
    "HTML report",
    lambda: services.model_map.matrix_report(model_map),  # made on click
    f"{stem}.html",
    "text/html",
    key="models_html",
    type="primary",
)
st.caption("This page's link opens the same models, data and settings.")
base = (st.context.url or "").split("?")[0]
st.code(f"{base}?{state.link_string()}", language=None)
