"""Every session_state key and its default, in one place, and the URL form of the settings."""

from __future__ import annotations

from typing import Any

import streamlit as st

from spec_core import _validation as v

#: Settings the user applies with the form; they live in the URL too (restorable links).
SETTINGS: dict[str, Any] = {
    "data": "demo:emoji",
    "model_a": "efficientnet-lite0",
    "modality_a": "image",
    "model_b": "minilm-l6",
    "modality_b": "text",
    "kernel": "gaussian",
    "sigma_a": 0.0,  # 0 = data-driven default
    "sigma_b": 0.0,
    "eta": 1.0,
    "method": "auto",
    "n_features": 2000,
    "n_modes": 5,
    "top_k": 24,
    "seed": 0,
    "device": "auto",
}

#: Everything else a session keeps.
SESSION: dict[str, Any] = {
    "selected_mode": None,  # a Mode.label, shared by every page
    "upload": None,  # the uploaded Dataset, when data == "upload"
    "precomputed": None,  # {"a": cache key, "b": cache key, "name": ...} for uploaded matrices
    "url_loaded": False,
    "form_gen": 0,  # the settings form's widget generation (see spec_app.sidebar)
}

CHOICES = {
    "kernel": v.KERNELS,
    "method": v.METHODS,
    "device": v.DEVICES,
    "modality_a": ("image", "text"),
    "modality_b": ("image", "text"),
}


def init_state() -> None:
    """Defaults for missing keys; on a session's first run, settings from the URL."""
    for key, value in {**SETTINGS, **SESSION}.items():
        st.session_state.setdefault(key, value)
    if not st.session_state.url_loaded:
        st.session_state.url_loaded = True
        for key, value in settings_from_query(dict(st.query_params)).items():
            st.session_state[key] = value


def settings_from_query(query: dict[str, str]) -> dict[str, Any]:
    """The valid settings in a query string; anything malformed is ignored, not trusted."""
    out: dict[str, Any] = {}
    for key, default in SETTINGS.items():
        if key not in query:
            continue
        raw = query[key]
        try:
            value = type(default)(raw)
        except (TypeError, ValueError):
            continue
        if key in CHOICES and value not in CHOICES[key]:
            continue
        if isinstance(value, int | float) and (value != value or value < 0):
            continue
        out[key] = value
    return out


def current_settings() -> dict[str, Any]:
    return {key: st.session_state[key] for key in SETTINGS}


def write_query(settings: dict[str, Any]) -> None:
    """Mirror the applied settings in the URL, so that a link restores them."""
    st.query_params.from_dict(
        {k: str(v) for k, v in settings.items() if k != "data" or not str(v).startswith("upload")}
    )


def _set(key: str, value: Any) -> None:
    """Set an applied setting; the form shows it from the next run on, drawn afresh."""
    st.session_state[key] = value
    st.session_state.form_gen += 1


def use_data(data: str, dataset) -> None:
    """Switch to a dataset, with models that fit it (offline ones by default)."""
    if data == "upload":
        st.session_state.upload = dataset
    st.session_state.precomputed = None
    _set("data", data)
    if dataset.kind == "text":
        pairs = (("minilm-l6", "text"), ("e5-small", "text"))
    elif dataset.texts is not None:
        pairs = (("efficientnet-lite0", "image"), ("minilm-l6", "text"))
    else:
        pairs = (("efficientnet-lite0", "image"), ("opennsfw-resnet50", "image"))
    for side, (model, modality) in zip("ab", pairs, strict=True):
        _set(f"model_{side}", model)
        _set(f"modality_{side}", modality)
    st.session_state.selected_mode = None


def use_precomputed(key_a: str, key_b: str, name_a: str, name_b: str, modality: str) -> None:
    """Compare two uploaded matrices of the current dataset's rows (`modality`: what they
    embed, for the labels)."""
    st.session_state.precomputed = {"a": key_a, "b": key_b, "name_a": name_a, "name_b": name_b}
    _set("model_a", "precomputed:A")
    _set("model_b", "precomputed:B")
    _set("modality_a", modality)
    _set("modality_b", modality)
    st.session_state.selected_mode = None
