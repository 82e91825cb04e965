"""Landing page: the spectrum of the comparison and its strongest clusters."""

import streamlit as st

from spec_app import charts, safe, views

comp = views.comparison_page(
    "SPEC Explorer",
    "Which groups of samples does one embedding cluster together and the other not?",
)
result = comp.result
name_a, name_b = comp.names
cols = st.columns(5)
cols[0].metric(
    "SPEC-diff",
    f"{result.spec_diff:.4f}",
    help="The largest |eigenvalue| of (K_A - eta K_B) / n: how strongly the two embeddings "
    "disagree about their strongest group. 0 for identical kernels; symmetric in A and B.",
)
cols[1].metric(
    "Noise floor",
    f"{result.noise_floor:.2g}",
    help="The size of eigenvalues the computation alone produces (round-off for exact, two "
    "independent feature draws for rff / nystrom). Modes below it are not findings.",
)
if result.context is not None:
    cols[2].metric(
        "Linear CKA",
        f"{result.context.linear_cka:.3f}",
        help="Linear centred kernel alignment (Kornblith et al. 2019): 1 when the embeddings "
        "agree up to rotation and scale, near 0 when unrelated. One number, no groups.",
    )
    cols[3].metric(
        f"{result.context.knn_k}-NN overlap",
        f"{result.context.knn_overlap_mean:.3f}",
        help=f"Per row, the share of its {result.context.knn_k} nearest neighbours that A and "
        "B have in common, averaged over the rows: 1 when both embeddings see the same "
        "neighbourhoods.",
    )
cols[4].metric("Rows", f"{result.params.n_rows}", help="Samples compared (rows of A and of B).")
params = result.params
st.caption(
    safe.fmt("A = {} ({}) · B = {} ({}) · ", name_a, comp.embeds[0], name_b, comp.embeds[1])
    + (
        f"{params.kernel} kernel, sigma A {params.sigma_a:.4g} / B {params.sigma_b:.4g} · "
        if params.kernel == "gaussian"
        else "cosine kernel · "
    )
    + f"{params.method} ({params.route}) on {params.device} in {sum(result.timings.values()):.2f} s"
)
event = st.plotly_chart(
    charts.spectrum_figure(result, (name_a, name_b)),
    on_select="rerun",
    selection_mode="points",
    key="spectrum_chart",
    width="stretch",
)
points = event.selection.points if event and event.selection else []
clicked = points[0].get("customdata") if points else None
if clicked and clicked != st.session_state.spectrum_click:  # a new click, not a kept one
    st.session_state.selected_mode = clicked
st.session_state.spectrum_click = clicked
st.caption(
    "Click any bar to select its cluster on every page"
    + (f" (selected: {st.session_state.selected_mode})" if st.session_state.selected_mode else "")
    + ". Full colour: modes that are findings; faded: weak modes (hover for why) and bars not "
    "examined yet (click to compute)."
)

shown = {m.label for d in "AB" for m in result.modes_for(d)[:2]}
selected = st.session_state.selected_mode
if selected and selected not in shown:
    mode = views.mode_on_demand(comp, selected)
    if mode is not None:
        st.subheader("Selected cluster")
        with st.container(border=True):
            views.mode_heading(comp, mode)
            views.members_grid(comp, mode, count=8, columns=8)

st.subheader("Strongest clusters")
for direction, model in (("A", name_a), ("B", name_b)):
    modes = result.modes_for(direction)[:2]
    if not modes:
        st.caption(safe.fmt("{}: no cluster of its own in the computed spectrum.", model))
    for mode in modes:
        with st.container(border=True):
            views.mode_heading(comp, mode)
            views.members_grid(comp, mode, count=8, columns=8)
