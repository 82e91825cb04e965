"""One differential cluster at a time: its members, their scores and its label make-up."""

import streamlit as st

from spec_app import charts, views

comp = views.comparison_page("Clusters")
mode = views.selected_mode(comp, key="clusters_mode")
desc = views.mode_heading(comp, mode)
n_members = len(mode.members)
count = st.slider("Members shown", 1, n_members, min(24, n_members)) if n_members > 1 else 1
views.members_grid(comp, mode, count=count)
if desc.label_counts:
    st.subheader("Label make-up of the members")
    st.plotly_chart(charts.label_makeup_figure(desc.label_counts), width="stretch")
