"""The shared sidebar: the settings, the Compare button, the share link.

Edits are *pending* (state.pending) until Compare applies them; they survive page switches
because the widgets take their values from the pending settings (`value=` / `index=`), never
from widget state alone: streamlit forgets the state of widgets that a page switch leaves
undrawn for a run. When the app itself changes a value (a model picks its modality, new data),
the widget keys move to a new generation so that the widgets are drawn afresh.
"""

from __future__ import annotations

import streamlit as st

from spec_app import safe, services, state
from spec_core import checks

SIGMA_HELP = (
    "Gaussian bandwidth of {side}, in the units of its embedding. Auto: the bandwidth scale x "
    "0.3 x the median pairwise distance of a seeded sample of rows (the value used is shown "
    "with the result)."
)


def form_key(name: str) -> str:
    """The widget key of setting `name` in the current generation."""
    return f"form{st.session_state.form_gen}_{name}"


def _index(options, value) -> int:
    return list(options).index(value) if value in options else 0


def render() -> None:
    """Draw the sidebar; mirror the applied settings in the URL.

    A run that did not come through the router (a page file run on its own: streamlit's pages/
    folder discovery when the entry script's folder has one, as spec_app/app.py's has) is sent
    through the router first, with its query string, and the router then opens the page the
    link named.
    """
    if not st.session_state.get("routed"):
        from urllib.parse import urlparse

        path = urlparse(st.context.url or "").path.rstrip("/")
        st.session_state.deep_link = path.rsplit("/", 1)[-1]  # app.py then opens this page
        st.switch_page("app.py", query_params=state.query_dict())
    state.init_state()
    services.data.cleanup_uploads()
    state.write_query(state.current_settings())
    for note in st.session_state.url_notes:
        st.warning(safe.fmt("This link's settings were adjusted: {}", note), icon="⚠️")
    try:
        dataset = services.data.current_dataset()
    except services.errors.DataGone:
        dataset = None
    _settings(dataset)
    _share()


def _on_edit(name: str) -> None:
    """A widget changed: record its value as pending, and keep the other values consistent."""
    ss = st.session_state
    value = ss.get(form_key(name))
    pending = state.pending_settings()
    redraw = False
    if name.endswith("_auto"):
        side = name.removesuffix("_auto")
        pending[side] = None if value else float(ss.get(form_key(side)) or 1.0)
    else:
        pending[name] = value
    if name in ("model_a", "model_b"):
        redraw = _fit_modality(pending, name[-1])
    if name == "kernel" and value == "cosine" and pending["method"] in ("rff", "nystrom"):
        pending["method"] = "auto"  # rff / nystrom approximate the Gaussian kernel only
        redraw = True
    ss.pending = pending
    ss.compare_error = None
    if redraw:
        state.redraw_form()


def _fit_modality(pending: dict, side: str) -> bool:
    """A model was picked: choose what it can embed, preferring what the data has; True when
    the modality changed."""
    try:
        dataset = services.data.current_dataset()
    except services.errors.DataGone:
        dataset = None
    try:
        modalities = services.models.model_modalities(pending[f"model_{side}"], dataset)
    except ValueError:
        return False
    have = dataset.modalities if dataset is not None else ("image", "text")
    current = pending[f"modality_{side}"]
    if current in modalities and current in have:
        return False
    fitting = [m for m in modalities if m in have] or list(modalities)
    pending[f"modality_{side}"] = fitting[0]
    return fitting[0] != current


def _model_options(modalities: tuple[str, ...], current: str) -> list[str]:
    """Offline models first, then those that need a download; this session's uploaded
    matrices at the top."""
    names = services.models.model_names(modalities)
    matrices = [f"precomputed:{ref}" for ref in st.session_state.my_matrices]
    names = [*matrices, *names]
    return names if current in names else [current, *names]


def _bound(name: str) -> dict:
    """The keyword arguments that bind a widget to setting `name`: its key in the current
    generation, and the callback that records its edits as pending."""
    return {"key": form_key(name), "on_change": _on_edit, "args": (name,)}


def _settings(dataset) -> None:
    """The settings form in the sidebar, section by section, from the pending settings."""
    pending = state.pending_settings()
    _data_caption(dataset)
    modalities = dataset.modalities if dataset is not None else ("image", "text")
    for side in ("a", "b"):
        _model_pickers(pending, side, modalities)
    _kernel_and_bandwidths(pending)
    _weight_of_b(pending)
    _method_and_features(pending)
    _modes_and_members(pending)
    _seed_and_device(pending)
    _buttons()


def _data_caption(dataset) -> None:
    if dataset is None:
        st.sidebar.caption("data: none (the data of this link is gone)")
    else:
        st.sidebar.caption(safe.fmt("data: **{}** ({} rows)", dataset.name, len(dataset)))


def _model_pickers(pending: dict, side: str, modalities: tuple[str, ...]) -> None:
    """Model A or B: a known model, or another name typed in, and what it embeds."""
    sb = st.sidebar
    label = side.upper()
    options = _model_options(modalities, pending[f"model_{side}"])
    sb.selectbox(
        f"Model {label}",
        options,
        index=_index(options, pending[f"model_{side}"]),
        format_func=services.models.model_choice_label,
        **_bound(f"model_{side}"),
        help="Offline models work with no network; 'download' ones fetch their weights on "
        "first use (size shown).",
    )
    sb.text_input(
        f"…or another model name for {label}",
        value=pending.get(f"custom_{side}", ""),
        **_bound(f"custom_{side}"),
        placeholder="open_clip:ViT-B-32/openai",
        help="Any pretrained pair open_clip knows (open_clip:ARCH/TAG; needs a network). "
        "Local weights and sentence-transformers models only where the operator enabled "
        "them (see the README).",
        max_chars=200,
    )
    sb.selectbox(
        f"Model {label} embeds the",
        ("image", "text"),
        index=_index(("image", "text"), pending[f"modality_{side}"]),
        **_bound(f"modality_{side}"),
        help="For paired data (images with captions) an image model and a text model give "
        "a cross-modal comparison.",
    )


def _kernel_and_bandwidths(pending: dict) -> None:
    """The kernel, the Gaussian bandwidths of A and B (auto or by hand) and their scale."""
    sb = st.sidebar
    sb.radio(
        "Kernel",
        checks.KERNELS,
        index=_index(checks.KERNELS, pending["kernel"]),
        **_bound("kernel"),
        horizontal=True,
        help="gaussian: exp(-|x - y|^2 / 2 sigma^2) per embedding; cosine: the cosine "
        "similarity (no bandwidth).",
    )
    cosine = pending["kernel"] == "cosine"
    for side in ("sigma_a", "sigma_b"):
        _bandwidth(pending, side, cosine=cosine)
    both_set = pending["sigma_a"] is not None and pending["sigma_b"] is not None
    low, high = state.BOUNDS["sigma_scale"]
    sb.number_input(
        "Bandwidth scale",
        min_value=low,
        max_value=high,
        value=float(pending["sigma_scale"]),
        step=0.1,
        format="%.3g",
        **_bound("sigma_scale"),
        disabled=cosine or both_set,
        help="The cosine kernel has no bandwidth."
        if cosine
        else "Not used: both bandwidths are set by hand."
        if both_set
        else "Multiplies the auto bandwidths: smaller finds smaller, tighter groups; larger, "
        "broader ones. The Scales page shows the spectrum across scales.",
    )


def _bandwidth(pending: dict, side: str, *, cosine: bool) -> None:
    """One side's bandwidth (`side` "sigma_a" or "sigma_b"): auto, or a value set by hand."""
    label = side[-1].upper()
    auto = pending[side] is None
    col_auto, col_value = st.sidebar.columns([2, 3], vertical_alignment="bottom")
    col_auto.checkbox(
        f"sigma {label} auto",
        value=auto,
        **_bound(f"{side}_auto"),
        disabled=cosine,
        help="The cosine kernel has no bandwidth." if cosine else SIGMA_HELP.format(side=label),
    )
    low, high = state.BOUNDS[side]
    col_value.number_input(
        f"sigma {label}",
        min_value=low,
        max_value=high,
        value=float(pending[side]) if pending[side] is not None else 1.0,
        format="%.4g",
        **_bound(side),
        disabled=cosine or auto,
        help="The cosine kernel has no bandwidth."
        if cosine
        else "Untick auto to set it."
        if auto
        else SIGMA_HELP.format(side=label),
    )


def _weight_of_b(pending: dict) -> None:
    low, high = state.BOUNDS["eta"]
    st.sidebar.number_input(
        "eta (weight of B)",
        min_value=low,
        max_value=high,
        value=float(pending["eta"]),
        **_bound("eta"),
        help="SPEC compares K_A with eta x K_B; 1 weighs both embeddings alike.",
    )


def _method_and_features(pending: dict) -> None:
    """The method (exact or a feature approximation) and the feature dimension."""
    sb = st.sidebar
    cosine = pending["kernel"] == "cosine"
    methods = ("auto", "exact") if cosine else checks.METHODS
    sb.selectbox(
        "Method",
        methods,
        index=_index(methods, pending["method"]),
        **_bound("method"),
        help="auto: exact up to 6,000 rows, Nystroem beyond (the cosine kernel is always exact); "
        "rff / nystrom: feature approximations of the Gaussian kernel, linear in the rows.",
    )
    exact = cosine or pending["method"] == "exact"
    low, high = state.BOUNDS["n_features"]
    sb.number_input(
        "Feature dimension per embedding",
        min_value=int(low),
        max_value=int(high),
        step=100,
        value=int(pending["n_features"]),
        **_bound("n_features"),
        disabled=exact,
        help="Not used: the exact method needs no features."
        if exact
        else "Random Fourier / Nystroem features per embedding (rff / nystrom, and auto beyond "
        "6,000 rows): more is closer to exact and slower.",
    )


def _modes_and_members(pending: dict) -> None:
    col_a, col_b = st.sidebar.columns(2)
    for col, name, label, help_text in (
        (col_a, "n_modes", "Modes per side", "Clusters listed for each direction."),
        (col_b, "top_k", "Members kept", "Highest-scoring rows kept per mode (the Clusters "
         "page lists every row by score)."),
    ):  # fmt: skip
        low, high = state.BOUNDS[name]
        col.number_input(
            label,
            min_value=int(low),
            max_value=int(high),
            value=int(pending[name]),
            **_bound(name),
            help=help_text,
        )


def _seed_and_device(pending: dict) -> None:
    col_a, col_b = st.sidebar.columns(2)
    low, high = state.BOUNDS["seed"]
    col_a.number_input(
        "Seed",
        min_value=int(low),
        max_value=int(high),
        value=int(pending["seed"]),
        **_bound("seed"),
        help="Every random draw (bandwidth sample, features, solver start) follows it.",
    )
    col_b.selectbox(
        "Device",
        checks.DEVICES,
        index=_index(checks.DEVICES, pending["device"]),
        **_bound("device"),
        help="auto: a CUDA GPU when there is one.",
    )


def _buttons() -> None:
    """Compare (and Discard, with a note, when there are pending edits); the last refusal."""
    sb = st.sidebar
    changed = state.has_pending_changes()
    if changed:
        sb.warning("Settings changed: press **Compare** to apply them.", icon="✏️")
    if st.session_state.compare_error:
        sb.error(safe.md(st.session_state.compare_error, limit=1000))
    col_go, col_undo = sb.columns([3, 2])
    col_go.button(
        "Compare", type="primary", on_click=compare, key="compare_button", width="stretch"
    )
    if changed:
        col_undo.button("Discard", on_click=discard, key="discard_button", width="stretch")


def compare() -> None:
    """Apply the pending settings, unless they cannot run (the reason shows in the sidebar,
    on whatever page the user is on, and nothing is embedded)."""
    ss = st.session_state
    pending = state.pending_settings()
    settings = {key: pending[key] for key in state.SETTINGS}
    for side in ("a", "b"):
        custom = str(pending.get(f"custom_{side}", "") or "").strip()
        if custom:
            settings[f"model_{side}"] = custom
            _fit_modality(settings, side)
    try:
        dataset = services.data.dataset_for(settings["data"])
    except services.errors.DataGone as err:
        ss.compare_error = str(err)
        return
    problems = services.comparison.check_settings(settings, dataset)
    if problems:
        ss.compare_error = " ".join(problems)
        ss.pending = {**pending, **{k: settings[k] for k in ("modality_a", "modality_b")}}
        state.redraw_form()
        return
    state.apply(settings)
    ss.compare_error = None
    ss.url_notes = []


def discard() -> None:
    st.session_state.pending = None
    st.session_state.compare_error = None
    state.redraw_form()


def _share() -> None:
    """The full link of this page with the applied settings, to copy."""
    with st.sidebar.popover("Share", icon=":material/link:", width="stretch"):
        base = st.context.url or ""
        st.caption(
            "This link opens the same comparison (the same data, models and settings) for "
            "anyone who can reach this server."
        )
        st.code(f"{base}?{state.query_string(state.current_settings())}", language=None)
