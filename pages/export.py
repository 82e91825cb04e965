"""Downloads: the modes as CSV and JSON, a self-contained HTML report, and a link."""

import streamlit as st

from spec_app import state, views
from spec_core.report import ReportContext, html_report, modes_csv, modes_json

comp = views.comparison_page("Export")
dataset = comp.dataset
modality = "image" if dataset.kind == "image" else "text"
ctx = ReportContext(
    dataset_name=dataset.name,
    fingerprint=dataset.fingerprint(modality),
    model_a=comp.model_a,
    model_b=comp.model_b,
    ids=dataset.ids,
    labels=dataset.labels,
    texts=dataset.texts,
    image_paths=dataset.image_paths,
)
stem = f"spec_{comp.model_a}_vs_{comp.model_b}".replace("/", "-").replace(":", "-")
col_csv, col_json, col_html = st.columns(3)
col_csv.download_button("Modes (CSV)", modes_csv(comp.result, ctx), f"{stem}.csv", "text/csv")
col_json.download_button(
    "Modes (JSON)", modes_json(comp.result, ctx), f"{stem}.json", "application/json"
)
col_html.download_button(
    "HTML report", html_report(comp.result, ctx), f"{stem}.html", "text/html", type="primary"
)
st.subheader("Share these settings")
st.caption(
    "The page address holds the settings: open it to restore them (uploaded data is not "
    "in the link)."
)
st.code("?" + "&".join(f"{k}={v}" for k, v in state.current_settings().items()), language=None)
