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
    state.write_link()
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
        in_use = (ss.sigmas_in_use or {}).get(side)
        pending[side] = None if value else float(ss.get(form_key(side)) or in_use or 1.0)
    else:
        pending[name] = value
    if name in ("model_a", "model_b"):
        redraw = _fit_modality(pending, name[-1])
    for param in state.app_params().values():  # a choice the new settings rule out
        options = param.options(pending)
        if param.choices and pending[param.name] not in options:
            pending[param.name] = options[0]  # e.g. rff / nystrom after the cosine kernel
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
    st.session_state.sidebar_slots = None  # this run's places for the bandwidths in use
    _data_caption(dataset)
    modalities = dataset.modalities if dataset is not None else ("image", "text")
    for side in ("a", "b"):
        _model_pickers(pending, side, modalities)
    _spec_parameters(pending)
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
    if services.models.is_precomputed(pending[f"model_{side}"]):  # a matrix embeds nothing here
        sb.caption(f"Model {label} is an uploaded embedding: one vector per row, used as it is.")
        return
    sb.selectbox(
        f"Model {label} embeds the",
        state.MODALITIES,
        index=_index(state.MODALITIES, pending[f"modality_{side}"]),
        **_bound(f"modality_{side}"),
        help="For paired data (images with captions) an image model and a text model give "
        "a cross-modal comparison.",
    )


def _spec_parameters(pending: dict) -> None:
    """A widget for every SPEC parameter the app sets, from the parameter table
    (spec_core.config) in its order: parameters of one group share a row; one that does not
    apply to the other settings is disabled, its reason as its help."""
    table = list(state.app_params().values())
    while table:
        row = [table.pop(0)]
        while row[0].group and table and table[0].group == row[0].group:
            row.append(table.pop(0))
        places = st.sidebar.columns(len(row)) if len(row) > 1 else [st.sidebar]
        for place, param in zip(places, row, strict=True):
            _parameter(place, param, pending)


def _parameter(place, param, pending: dict) -> None:
    """One parameter's widget in `place` (the sidebar or a column of it)."""
    unused = param.unused_reason(pending)
    value = pending[param.name]
    common = {**_bound(param.name), "disabled": unused is not None, "help": unused or param.help}
    if param.choices:
        options = param.options(pending)
        if param.widget == "radio":
            place.radio(
                param.label, options, index=_index(options, value), horizontal=True, **common
            )
        else:
            place.selectbox(param.label, options, index=_index(options, value), **common)
    elif param.kind is bool:
        place.checkbox(param.label, value=bool(value), **common)
    elif param.optional:
        _auto_or_number(param, value, unused)
    else:
        _number(place, param, value, common)


def _number(place, param, value, common: dict) -> None:
    number = int if param.kind is int else float
    low, high = param.bounds
    place.number_input(
        param.label,
        min_value=number(low),
        max_value=number(high),
        value=number(value),
        step=number(param.step) if param.step else number(1) if number is int else None,
        format=param.number_format,
        **common,
    )


def _auto_or_number(param, value, unused: str | None) -> None:
    """A parameter whose None is a choice (a bandwidth left to the data-driven rule): an
    "auto" checkbox on its own row (its label in full), and below it the value in use (filled
    in by `show_in_use` once the comparison is there) or, unticked, the value to use."""
    auto = value is None
    st.sidebar.checkbox(
        f"{param.label}: from the data",
        value=auto,
        **_bound(f"{param.name}_auto"),
        disabled=unused is not None,
        help=unused or param.help,
    )
    if unused is not None:
        return
    if auto:
        slots = st.session_state.sidebar_slots or {}
        slots[param.name] = st.sidebar.empty()
        slots[param.name].caption(f"{param.label} in use: set by the data on Compare")
        st.session_state.sidebar_slots = slots
        return
    common = {**_bound(param.name), "disabled": False, "help": param.help}
    _number(st.sidebar, param, value, common)


def show_in_use(params) -> None:
    """Write the bandwidths a comparison used (`params`: its SpecParams) where the sidebar
    keeps their places, and remember them: unticking "from the data" starts from them."""
    used = {"sigma_a": params.sigma_a, "sigma_b": params.sigma_b}
    st.session_state.sigmas_in_use = {k: v for k, v in used.items() if v is not None}
    rule = (params.sigma_rule or "").split(":")[0]
    for name, slot in (st.session_state.sidebar_slots or {}).items():
        if used.get(name) is not None:
            label = state.app_params()[name].label
            slot.caption(f"{label} in use: {used[name]:.4g}" + (f" ({rule} rule)" * bool(rule)))
    st.session_state.sidebar_slots = None


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
    settings = {key: pending[key] for key in state.settings_defaults()}
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
    """The full link of this page with the whole state (state.link_dict), to copy."""
    with st.sidebar.popover("Share", icon=":material/link:", width="stretch"):
        base = st.context.url or ""
        st.caption(
            "This link opens the same comparison (the same data, models and settings), the "
            "selected cluster and this page's controls for anyone who can reach this server."
        )
        st.code(f"{base}?{state.link_string()}", language=None)
