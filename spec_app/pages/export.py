"""Downloads: the modes as CSV and JSON, a self-contained HTML report, and a link."""

import streamlit as st

from spec_app import safe, state, views
from spec_core.export.report import ReportContext, html_report, modes_csv, modes_json

comp = views.comparison_page("Export")
dataset = comp.dataset
name_a, name_b = comp.names
modality = "image" if dataset.kind == "image" else "text"
ctx = ReportContext(
    dataset_name=dataset.name,
    fingerprint=dataset.fingerprint(modality),
    model_a=name_a,
    model_b=name_b,
    ids=dataset.ids,
    labels=dataset.labels,
    texts=dataset.texts,
    image_paths=dataset.image_paths,
)
stem = safe.filename(f"spec_{name_a}_vs_{name_b}")
col_csv, col_json, col_html = st.columns(3)
col_csv.download_button("Modes (CSV)", modes_csv(comp.result, ctx), f"{stem}.csv", "text/csv")
col_json.download_button(
    "Modes (JSON)", modes_json(comp.result, ctx), f"{stem}.json", "application/json"
)
col_html.download_button(
    "HTML report", html_report(comp.result, ctx), f"{stem}.html", "text/html", type="primary"
)
st.subheader("Share this comparison")
st.caption(
    "This link opens the same comparison (data, models and settings) for anyone who can reach "
    "this server; uploaded data is kept for a while after its last use (see the Data page)."
)
base = st.context.url or ""
st.code(f"{base}?{state.query_string(state.current_settings())}", language=None)
