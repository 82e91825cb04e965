"""SPEC Explorer: the router. Page config, session defaults, the shared sidebar, navigation."""

import streamlit as st

from spec_app import sidebar, state

st.set_page_config(page_title="SPEC Explorer", page_icon="🔭", layout="wide")
state.init_state()
pages = [
    st.Page("pages/spectrum.py", title="Spectrum", icon="📊", default=True),
    st.Page("pages/data.py", title="Data", icon="📁", url_path="data"),
    st.Page("pages/clusters.py", title="Clusters", icon="🧩", url_path="clusters"),
    st.Page("pages/umap.py", title="UMAP", icon="🗺️", url_path="umap"),
    st.Page("pages/export.py", title="Export", icon="📤", url_path="export"),
]
navigation = st.navigation(pages)
sidebar.render()
navigation.run()
