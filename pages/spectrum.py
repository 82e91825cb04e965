"""Landing page: the spectrum of the comparison and its strongest clusters."""

import streamlit as st

from spec_app import charts, views

comp = views.comparison_page(
    "SPEC Explorer",
    "Which groups of samples does one embedding cluster together and the other not?",
)
result = comp.result
cols = st.columns(5)
cols[0].metric("SPEC-diff", f"{result.spec_diff:.4f}", help="max |eigenvalue|")
cols[1].metric("Noise floor", f"{result.noise_floor:.2g}")
if result.context is not None:
    cols[2].metric("Linear CKA", f"{result.context.linear_cka:.3f}")
    cols[3].metric(f"{result.context.knn_k}-NN overlap", f"{result.context.knn_overlap_mean:.3f}")
cols[4].metric("Rows", f"{result.params.n_rows}")
p = result.params
st.caption(
    f"A = {comp.model_a} ({comp.modality_a}s) · B = {comp.model_b} ({comp.modality_b}s) · "
    f"{p.kernel} kernel, sigma A {p.sigma_a:.4g} / B {p.sigma_b:.4g} · "
    f"{p.method} ({p.route}) on {p.device} in {sum(result.timings.values()):.2f} s"
    if p.kernel == "gaussian"
    else f"A = {comp.model_a} · B = {comp.model_b} · cosine kernel · {p.method} on {p.device}"
)
event = st.plotly_chart(
    charts.spectrum_figure(result, st.session_state.selected_mode, (comp.model_a, comp.model_b)),
    on_select="rerun",
    selection_mode="points",
    key="spectrum_chart",
    width="stretch",
)
points = event.selection.points if event and event.selection else []
if points and points[0].get("customdata"):
    st.session_state.selected_mode = points[0]["customdata"]
st.caption("Click a bar to select its cluster on every page.")

st.subheader("Strongest clusters")
for direction, model in (("A", comp.model_a), ("B", comp.model_b)):
    modes = result.modes_for(direction)[:2]
    if not modes:
        st.caption(f"{model}: no cluster of its own in the computed spectrum.")
    for mode in modes:
        with st.container(border=True):
            views.mode_heading(comp, mode)
            views.members_grid(comp, mode, count=8, columns=8)
