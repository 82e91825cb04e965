"""The router: page config, session defaults, navigation. `app.py` (the checkout's entry,
`streamlit run app.py`) and `spec_app/app.py` (the installed one, `spec-explorer app`) both call
`run()`.

Each page draws the shared sidebar (`spec_app.sidebar.render()`) as its first line rather than
the router: streamlit's AppTest drops elements of the entry script on reruns of a st.navigation
app, and the settings form must stay testable. Pages are named by absolute paths, so they are
found wherever the package is installed.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from spec_app import state

PAGES_DIR = Path(__file__).resolve().parent / "pages"

#: (file stem, title, icon, url path); the first is the default page.
PAGES = (
    ("spectrum", "Spectrum", ":material/bar_chart:", None),
    ("models", "Models", ":material/hub:", "models"),
    ("data", "Data", ":material/folder_open:", "data"),
    ("clusters", "Clusters", ":material/grid_view:", "clusters"),
    ("umap", "UMAP", ":material/scatter_plot:", "umap"),
    ("scales", "Scales", ":material/stacked_line_chart:", "scales"),
    ("align", "Align", ":material/join_inner:", "align"),
    ("export", "Export", ":material/download:", "export"),
)


def page_path(stem: str) -> str:
    """A page's file, for st.switch_page and st.page_link."""
    return str(PAGES_DIR / f"{stem}.py")


def run() -> None:
    # Every table's toolbar would offer Streamlit's own CSV download (and copy), which writes
    # the raw cells, formulas included; exports go through the app's download buttons and
    # spec_core/export/tables.py instead. .streamlit/config.toml and `spec-explorer app` set it
    # from the first run; this covers any other way of starting the app from its second run.
    st.set_option("client.disableDataExport", True)
    st.set_page_config(page_title="SPEC Explorer", page_icon="🔭", layout="wide")
    state.init_state()
    st.session_state.routed = True  # this session runs through the router (see sidebar)
    pages = [
        st.Page(page_path(stem), title=title, icon=icon, url_path=url, default=url is None)
        for stem, title, icon, url in PAGES
    ]
    page = st.navigation(pages)
    target = st.session_state.deep_link  # a deep link that reached a page before the router
    if target:
        st.session_state.deep_link = None
        for candidate in pages:
            if candidate.url_path == target and target != page.url_path:
                st.switch_page(candidate, query_params=state.query_dict())
    page.run()
