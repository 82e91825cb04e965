"""One differential cluster at a time: its members, their scores, its label make-up, and every
row of the dataset ranked by its score in the mode."""

import math

import streamlit as st

from spec_app import charts, services, views

PAGE_ROWS = 50

comp = views.comparison_page("Clusters")
mode = views.selected_mode(comp, key="clusters_mode")
desc = views.mode_heading(comp, mode)
n_members = len(mode.members)


def remember(widget: str, session_key: str) -> None:
    """A control changed: keep its value in the session (and so in the link) before the run."""
    st.session_state[session_key] = st.session_state[widget]


count = (
    st.slider(
        "Members shown",
        1,
        n_members,
        min(st.session_state.clusters_members or 24, n_members),
        key="clusters_members_shown",
        on_change=remember,
        args=("clusters_members_shown", "clusters_members"),
        help="The mode's highest-scoring rows (up to 'Members kept' in the sidebar); every row "
        "is in the ranking below.",
    )
    if n_members > 1
    else 1
)
views.members_grid(comp, mode, count=count)
if desc.label_counts:
    st.subheader("Label make-up of the members")
    st.plotly_chart(charts.label_makeup_figure(desc.label_counts), width="stretch")

st.subheader("Every row by its score in this mode")
dataset = comp.dataset
ranked = services.projections.ranking(
    comp.key_a, comp.key_b, comp.params, mode.label, mode.sample_scores
)
pages = max(1, math.ceil(len(ranked) / PAGE_ROWS))
page = st.number_input(
    f"Page (of {pages}, {PAGE_ROWS} rows each)",
    min_value=1,
    max_value=pages,
    value=min(int(st.session_state.clusters_rank_page), pages),
    key="clusters_page",
    on_change=remember,
    args=("clusters_page", "clusters_rank_page"),
    help="Rows ranked by their score in the mode: its eigenvector's entry, signed so that the "
    "group scores positive; near 0 means outside the group.",
)
rows = ranked[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
st.dataframe(
    services.export.rows_table(dataset, rows, scores=mode.sample_scores[rows]),
    hide_index=True,
    width="stretch",
    column_config={
        "row": st.column_config.NumberColumn("row", help="The row's position in the dataset"),
        "score": st.column_config.NumberColumn(
            "score", help="The row's entry in the mode's unit eigenvector", format="%.4f"
        ),
    },
)
scores = mode.sample_scores
st.download_button(
    "All rows by score (CSV)",
    lambda: services.export.rows_csv(dataset, ranked, scores=scores[ranked]),  # made on click
    f"{mode.label.replace(' #', '_')}_ranking.csv",
    "text/csv",
    key="clusters_ranking_csv",
)
