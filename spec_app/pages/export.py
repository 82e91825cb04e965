"""Downloads: the modes as CSV and JSON, a self-contained HTML report, and a link."""

import streamlit as st

from spec_app import safe, services, state, views

comp = views.comparison_page("Export")
name_a, name_b = comp.names
stem = safe.filename(f"spec_{name_a}_vs_{name_b}")
col_csv, col_json, col_html = st.columns(3)
col_csv.download_button("Modes (CSV)", services.export.modes_csv(comp), f"{stem}.csv", "text/csv")
col_json.download_button(
    "Modes (JSON)", services.export.modes_json(comp), f"{stem}.json", "application/json"
)
col_html.download_button(
    "HTML report", services.export.html_report(comp), f"{stem}.html", "text/html", type="primary"
)
st.subheader("Share this comparison")
st.caption(
    "This link opens the same comparison (data, models and settings) for anyone who can reach "
    "this server; uploaded data is kept for a while after its last use (see the Data page)."
)
base = st.context.url or ""
st.code(f"{base}?{state.link_string()}", language=None)
