"""The shared sidebar: the settings form. Nothing recomputes until the user presses Compare.

The form's widgets take their values from the applied settings (`value=` / `index=`), never from
state written into their keys: streamlit forgets the state of widgets that a page switch leaves
undrawn for a run, and keyed state written back by the app does not survive that either. When
the app itself changes the settings (new data), the widget keys move to a new generation so that
the widgets are drawn afresh with the new values.
"""

from __future__ import annotations

import streamlit as st

from spec_app import services, state
from spec_core import _validation as v
from spec_core.models import list_models


def form_key(name: str) -> str:
    """The widget key of setting `name` in the current form generation."""
    return f"form{st.session_state.form_gen}_{name}"


def _model_options(modalities: tuple[str, ...], current: str) -> list[str]:
    names = [m.name for m in list_models() if set(m.modalities) & set(modalities)]
    if st.session_state.precomputed:
        names = ["precomputed:A", "precomputed:B", *names]
    return names if current in names else [current, *names]


def _index(options, value) -> int:
    return list(options).index(value) if value in options else 0


def render() -> None:
    """Draw the settings form.

    On a freshly started server, a deep link such as /umap runs its page file directly, found
    by streamlit's pages/ folder discovery, before any session has run app.py and its
    st.navigation (the navigation then lists raw file names). Such a run is sent through the
    router first.
    """
    if not st.session_state.get("routed"):
        st.switch_page("app.py")
    state.init_state()
    ss = st.session_state
    dataset = services.current_dataset()
    modalities = dataset.modalities if dataset is not None else ("image", "text")
    st.sidebar.caption(
        f"data: **{dataset.name}** ({len(dataset)} rows)" if dataset else "data: none"
    )
    if ss.precomputed:
        st.sidebar.caption(
            f"precomputed A: {ss.precomputed['name_a']} · B: {ss.precomputed['name_b']}"
        )
    with st.sidebar.form("settings"):
        for side in ("a", "b"):
            label = side.upper()
            options = _model_options(modalities, ss[f"model_{side}"])
            st.selectbox(
                f"Model {label}",
                options,
                index=_index(options, ss[f"model_{side}"]),
                key=form_key(f"model_{side}"),
            )
            st.text_input(
                f"…or any model name for {label}",
                key=form_key(f"custom_{side}"),
                placeholder="open_clip:ViT-B-32/openai, st:all-mpnet-base-v2",
                help="Any open_clip pretrained pair (open_clip:ARCH/TAG), a local open_clip "
                "weights file (open_clip:ARCH@/path), or a sentence-transformers model "
                "(st:NAME). Downloads need a network.",
            )
            st.selectbox(
                f"Model {label} embeds the",
                ("image", "text"),
                index=_index(("image", "text"), ss[f"modality_{side}"]),
                key=form_key(f"modality_{side}"),
                help="For paired data (images with captions) an image model and a "
                "text model give a cross-modal comparison.",
            )
        st.radio(
            "Kernel",
            v.KERNELS,
            index=_index(v.KERNELS, ss.kernel),
            key=form_key("kernel"),
            horizontal=True,
        )
        col_a, col_b = st.columns(2)
        col_a.number_input(
            "sigma A",
            min_value=0.0,
            value=float(ss.sigma_a),
            format="%.4g",
            key=form_key("sigma_a"),
            help="Gaussian bandwidth of A; 0 = half the median distance",
        )
        col_b.number_input(
            "sigma B",
            min_value=0.0,
            value=float(ss.sigma_b),
            format="%.4g",
            key=form_key("sigma_b"),
            help="Gaussian bandwidth of B; 0 = half the median distance",
        )
        st.number_input(
            "eta (weight of B)", min_value=0.0, value=float(ss.eta), key=form_key("eta")
        )
        st.selectbox(
            "Method",
            v.METHODS,
            index=_index(v.METHODS, ss.method),
            key=form_key("method"),
            help="auto: exact up to 6,000 rows, Nystroem beyond",
        )
        st.number_input(
            "Feature dimension per embedding",
            min_value=2,
            step=100,
            value=int(ss.n_features),
            key=form_key("n_features"),
            help="rff / nystrom only",
        )
        col_a, col_b = st.columns(2)
        col_a.number_input(
            "Modes per side",
            min_value=1,
            max_value=20,
            value=int(ss.n_modes),
            key=form_key("n_modes"),
        )
        col_b.number_input(
            "Members shown", min_value=1, max_value=200, value=int(ss.top_k), key=form_key("top_k")
        )
        col_a, col_b = st.columns(2)
        col_a.number_input("Seed", min_value=0, value=int(ss.seed), key=form_key("seed"))
        col_b.selectbox(
            "Device", v.DEVICES, index=_index(v.DEVICES, ss.device), key=form_key("device")
        )
        submitted = st.form_submit_button("Compare", type="primary", width="stretch")
    if submitted:
        apply_form()


def apply_form() -> None:
    ss = st.session_state
    for key in state.SETTINGS:
        if key != "data":
            ss[key] = ss[form_key(key)]
    for side in ("a", "b"):
        custom = ss.get(form_key(f"custom_{side}"), "").strip()
        if custom:
            ss[f"model_{side}"] = custom
    ss.selected_mode = None
    state.write_query(state.current_settings())
