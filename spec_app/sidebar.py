"""The shared sidebar: the settings form. Nothing recomputes until the user presses Compare."""

from __future__ import annotations

import streamlit as st

from spec_app import services, state
from spec_core import _validation as v
from spec_core.models import list_models


def _model_options(modalities: tuple[str, ...]) -> list[str]:
    names = [m.name for m in list_models() if set(m.modalities) & set(modalities)]
    if st.session_state.precomputed:
        names = ["precomputed:A", "precomputed:B", *names]
    return names


def render() -> None:
    """Draw the settings form. Also initialises the session: on a fresh server, a deep link
    such as /data can run its page before app.py has (streamlit's pages/ folder discovery)."""
    state.init_state()
    dataset = services.current_dataset()
    modalities = dataset.modalities if dataset is not None else ("image", "text")
    st.sidebar.caption(
        f"data: **{dataset.name}** ({len(dataset)} rows)" if dataset else "data: none"
    )
    pre = st.session_state.precomputed
    if pre:
        st.sidebar.caption(f"precomputed A: {pre['name_a']} · B: {pre['name_b']}")
    # The form starts from the applied settings. Streamlit forgets the state of widgets that a
    # page switch leaves undrawn for a run, so every run writes the values back explicitly (the
    # documented way to keep widget values across pages).
    for key in [*state.SETTINGS, "custom_a", "custom_b"]:
        form_key = f"form_{key}"
        applied = st.session_state.get(key, "")
        if st.session_state.form_sync or form_key not in st.session_state:
            st.session_state[form_key] = applied
        else:
            st.session_state[form_key] = st.session_state[form_key]
    st.session_state.form_sync = False
    with st.sidebar.form("settings"):
        for side in ("a", "b"):
            options = _model_options(modalities)
            current = st.session_state[f"form_model_{side}"]
            if current not in options:
                options = [current, *options]
            st.selectbox(f"Model {side.upper()}", options, key=f"form_model_{side}")
            st.text_input(
                f"…or any model name for {side.upper()}",
                key=f"form_custom_{side}",
                placeholder="open_clip:ViT-B-32/openai, st:all-mpnet-base-v2",
                help="Any open_clip pretrained pair (open_clip:ARCH/TAG), a local open_clip "
                "weights file (open_clip:ARCH@/path), or a sentence-transformers model "
                "(st:NAME). Downloads need a network.",
            )
            st.selectbox(
                f"Model {side.upper()} embeds the",
                ("image", "text"),
                key=f"form_modality_{side}",
                help="For paired data (images with captions) an image model and a "
                "text model give a cross-modal comparison.",
            )
        st.radio("Kernel", v.KERNELS, key="form_kernel", horizontal=True)
        col_a, col_b = st.columns(2)
        col_a.number_input(
            "sigma A",
            min_value=0.0,
            key="form_sigma_a",
            format="%.4g",
            help="Gaussian bandwidth of A; 0 = half the median distance",
        )
        col_b.number_input(
            "sigma B",
            min_value=0.0,
            key="form_sigma_b",
            format="%.4g",
            help="Gaussian bandwidth of B; 0 = half the median distance",
        )
        st.number_input("eta (weight of B)", min_value=0.0, key="form_eta")
        st.selectbox(
            "Method",
            v.METHODS,
            key="form_method",
            help="auto: exact up to 6,000 rows, Nystroem beyond",
        )
        st.number_input(
            "Feature dimension per embedding",
            min_value=2,
            step=100,
            key="form_n_features",
            help="rff / nystrom only",
        )
        col_a, col_b = st.columns(2)
        col_a.number_input("Modes per side", min_value=1, max_value=20, key="form_n_modes")
        col_b.number_input("Members shown", min_value=1, max_value=200, key="form_top_k")
        col_a, col_b = st.columns(2)
        col_a.number_input("Seed", min_value=0, key="form_seed")
        col_b.selectbox("Device", v.DEVICES, key="form_device")
        submitted = st.form_submit_button("Compare", type="primary", width="stretch")
    if submitted:
        apply_form()


def apply_form() -> None:
    for key in state.SETTINGS:
        if key != "data":
            st.session_state[key] = st.session_state[f"form_{key}"]
    for side in ("a", "b"):
        custom = st.session_state.get(f"form_custom_{side}", "").strip()
        if custom:
            st.session_state[f"model_{side}"] = custom
    st.session_state.selected_mode = None
    state.write_query(state.current_settings())
