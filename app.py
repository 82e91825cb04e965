"""SPEC Explorer: the router. Page config, session defaults, navigation.

Each page draws the shared sidebar (`spec_app.sidebar.render()`) as its first line rather than
this file: streamlit's AppTest drops elements of the entry script on reruns of a st.navigation
app, and the settings form must stay testable.
"""

import streamlit as st

from spec_app import state

st.set_page_config(page_title="SPEC Explorer", page_icon="🔭", layout="wide")
state.init_state()
st.session_state.routed = True  # this session runs through the router (see spec_app.sidebar)
pages = [
    st.Page("pages/spectrum.py", title="Spectrum", icon=":material/bar_chart:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/folder_open:", url_path="data"),
    st.Page(
        "pages/clusters.py", title="Clusters", icon=":material/grid_view:", url_path="clusters"
    ),
    st.Page("pages/umap.py", title="UMAP", icon=":material/scatter_plot:", url_path="umap"),
    st.Page(
        "pages/scales.py", title="Scales", icon=":material/stacked_line_chart:", url_path="scales"
    ),
    st.Page("pages/align.py", title="Align", icon=":material/join_inner:", url_path="align"),
    st.Page("pages/export.py", title="Export", icon=":material/download:", url_path="export"),
]
page = st.navigation(pages)
target = st.session_state.deep_link  # a deep link that reached a page before this router
if target:
    st.session_state.deep_link = None
    for candidate in pages:
        if candidate.url_path == target and target != page.url_path:
            st.switch_page(candidate, query_params=state.query_dict())
page.run()
