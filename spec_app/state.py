"""Every session_state key and its default, in one place, and the URL form of the settings.

Two sets of settings: the *applied* ones (`settings_defaults()` keys at the top level of
session_state),
which the result on screen was computed with and the URL carries, and the *pending* ones
(`session_state.pending`), the sidebar's edits, which survive page switches and become the
applied ones when the user presses Compare.

Links are untrusted: `settings_from_query` keeps only values within the same bounds as the
form (numbers out of range are clamped, anything malformed ignored), each change with a note
that the page shows.
"""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from spec_app import view_state
from spec_core import config

#: The settings that choose what is compared (the data, and each side's model and what it
#: embeds); the SPEC parameters come from the parameter table (spec_core.config).
DATA_AND_MODELS: dict[str, Any] = {
    "data": "demo:emoji",
    "model_a": "efficientnet-lite0",
    "modality_a": "image",
    "model_b": "minilm-l6",
    "modality_b": "text",
}
MODALITIES = ("image", "text")
#: The Models page's choice, applied with its button and carried by the link: "" (none yet) or
#: comma-separated entries MODALITY:NAME (e.g. "image:pixels-16,text:char-ngrams,..."), in order.
MODEL_MAP: dict[str, Any] = {"models": ""}
#: How many models the Models page compares at once.
MAP_MODELS = (3, 8)


def app_params() -> dict[str, config.Param]:
    """The SPEC parameters the app sets (the sidebar's widgets), by name, in the table's
    order."""
    return {p.name: p for p in config.params(where=config.APP)}


def link_params() -> dict[str, config.Param]:
    """The SPEC parameters a link carries."""
    return {p.name: p for p in config.params(where=config.LINK)}


def settings_defaults() -> dict[str, Any]:
    """Every setting the user applies with Compare, with its default; they live in the URL
    too (restorable links). Read from the table at each call."""
    spec = {name: p.default_in(config.APP) for name, p in app_params().items()}
    return {**DATA_AND_MODELS, **MODEL_MAP, **spec}


#: Everything else a session keeps.
SESSION: dict[str, Any] = {
    "selected_mode": None,  # a Mode.label, shared by every page
    "pending": None,  # the sidebar's edits (like the applied settings, plus custom_a/b), or None
    "url_loaded": False,  # this session has read its URL
    "url_notes": [],  # what was wrong with the link's settings (shown until the next Compare)
    "compare_error": None,  # why the last Compare was refused or failed
    "last_good": None,  # the applied settings of the last comparison that worked
    "form_gen": 0,  # the sidebar widgets' generation (see spec_app.sidebar)
    "my_uploads": [],  # upload refs this session made ("Delete my data" deletes them)
    "my_matrices": [],  # precomputed-matrix refs this session uploaded (model choices)
    "picked_row": None,  # the UMAP point whose neighbours are shown
    "spectrum_click": None,  # the bar last clicked in the spectrum chart (see pages/spectrum)
    "sigmas_in_use": None,  # {"sigma_a": value, ...}: the bandwidths the shown result used
    "sidebar_slots": None,  # {"sigma_a": placeholder, ...}: where the sidebar shows them
    "umap_selection": None,  # {"side": "A" | "B", "rows": [...]}: the latest UMAP selection
    "umap_seen": None,  # {"A": rows, "B": rows}: each UMAP chart's selection at the last run
    "umap_gen": 0,  # the UMAP charts' generation: a new one clears their selections
    "routed": False,  # this session runs through the router (see spec_app.sidebar)
    "deep_link": None,  # the page a link named before the router ran (see app.py)
    "align_controls": None,  # the Align page's last trained controls (a dict like ALIGN)
    "aligned_from": None,  # {aligned matrix REF: the applied settings it was trained on}
    "models_click": None,  # the matrix cell last clicked on the Models page (see pages/models)
    "model_map_key": None,  # the model map this session last computed (services.model_map)
    "umap_colour": "mode score",  # what the UMAP page colours by (view_state.UMAP_COLOURS)
    "umap_find": "",  # the UMAP page's search
    "clusters_members": None,  # the Clusters page's "Members shown" (None: its default)
    "clusters_rank_page": 1,  # the Clusters page's page of the ranking
    "spectrum_scroll": False,  # a bar was just clicked: the Spectrum page scrolls to its card
}

#: The Align page's controls and their defaults, and their bounds (spec_app.view_state: the
#: link carries the last ones trained with).
ALIGN = view_state.ALIGN
ALIGN_BOUNDS = view_state.ALIGN_BOUNDS

#: Keys of widgets drawn by pages (the sidebar's are `form<gen>_<setting>`, see sidebar.py).
WIDGET_KEYS = (
    "compare_button",
    "discard_button",
    "delete_my_data",
    "data_source",
    "upload_images",
    "upload_captions",
    "upload_texts",
    "text_column",
    "label_column",
    "upload_a",
    "upload_b",
    "upload_row_labels",
    "precomputed_rows",
    "clusters_mode",
    "clusters_page",
    "clusters_members_shown",
    "clusters_ranking_csv",
    "umap_selection_csv",
    "umap_mode",
    "umap_color",
    "umap_search",
    "umap_A",  # with the charts' generation (umap_gen) appended: umap_A_0, umap_A_1, ...
    "umap_B",
    "umap_clear",
    "spectrum_chart",
    "spectrum_reference",
    "scales_pick",
    "scales_open",
    "pca_A",
    "pca_B",
    "align_form",
    "align_direction",
    "align_adapter",
    "align_steps",
    "align_val_fraction",
    "align_train",
    "align_colour",
    "align_pca_before",
    "align_pca_after",
    "align_umap_before",
    "align_umap_after",
    "align_compare",
    "align_back",
    "align_adapter_file",
    "align_embedding_file",
    "align_report_file",
    "models_pick",
    "models_run",
    "models_chart",
    "models_pair",
    "models_open",
    "models_csv",
    "models_json",
    "models_html",
)

DATA = re.compile(r"demo:[a-z]{1,32}|upload:[0-9a-f]{40}")
MODEL_FIELDS = ("model_a", "model_b")


def init_state() -> None:
    """Defaults for missing keys; on a session's first run, settings from the URL."""
    for key, value in {**settings_defaults(), **SESSION}.items():
        if key not in st.session_state:
            st.session_state[key] = list(value) if isinstance(value, list) else value
    if not st.session_state.url_loaded:
        st.session_state.url_loaded = True
        query = query_dict()
        settings, notes = settings_from_query(query)
        view, view_notes = view_state.view_from_query(query)
        for key, value in {**settings, **view}.items():
            st.session_state[key] = value
        st.session_state.url_notes = notes + view_notes


def query_dict() -> dict[str, str]:
    """The page's query string; a repeated key keeps its last value."""
    params = st.query_params
    return {key: params.get_all(key)[-1] for key in params if params.get_all(key)}


_shown = view_state.shown
_fmt = view_state.fmt


def parse_setting(key: str, raw: Any) -> tuple[Any, str | None]:
    """(value, note) for one URL value: value None means ignored (the note says why); a
    clamped number comes with a note too."""
    if isinstance(raw, list | tuple):
        raw = raw[-1] if raw else ""
    text = str(raw).strip()
    if key == "data":
        if not DATA.fullmatch(text):
            return None, f"data={_shown(raw)} ignored: not a demo or an upload link"
        from spec_core.data.demo import list_demos

        if text.startswith("demo:") and text.removeprefix("demo:") not in list_demos():
            return None, f"data={_shown(raw)} ignored: no such demo"
        return text, None
    if key in MODEL_FIELDS:
        from spec_app.policy import ModelRefused, check_model

        try:
            return check_model(text), None
        except ModelRefused as err:
            return None, f"{key}={_shown(raw)} ignored: {err}"
    if key == "models":
        return parse_map_models(raw, text)
    if key in ("modality_a", "modality_b"):
        if text not in MODALITIES:
            return None, f"{key}={_shown(raw)} ignored: choose one of {', '.join(MODALITIES)}"
        return text, None
    param = link_params().get(key)
    if param is None:
        return None, f"{key}={_shown(raw)} ignored: not a setting a link carries"
    return _parse_parameter(param, raw, text)


def parse_map_models(raw: Any, text: str) -> tuple[str, str | None]:
    """The Models page's entries from a link: MODALITY:NAME each, a model this server loads
    (spec_app.policy), at most MAP_MODELS[1], no repeats; a note for each one left out."""
    from spec_app.policy import ModelRefused, check_model

    entries, notes = [], []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        modality, sep, name = item.partition(":")
        if not sep or modality not in MODALITIES:
            notes.append(f"models entry {_shown(item)} ignored: write MODALITY:NAME")
            continue
        try:
            entry = f"{modality}:{check_model(name)}"
        except ModelRefused as err:
            notes.append(f"models entry {_shown(item)} ignored: {err}")
            continue
        if entry not in entries:
            entries.append(entry)
    most = MAP_MODELS[1]
    if len(entries) > most:
        notes.append(f"models={_shown(raw)} names {len(entries)} models; using the first {most}")
        entries = entries[:most]
    return ",".join(entries), "; ".join(notes) or None


def map_entries(value: str | None = None) -> list[str]:
    """The Models page's applied entries (MODALITY:NAME), in order."""
    text = st.session_state.models if value is None else value
    return [entry for entry in str(text or "").split(",") if entry]


def use_map_models(entries: list[str]) -> None:
    """Apply the Models page's choice (its link then carries it); pending sidebar edits keep
    it too, so it is not counted as one of them."""
    for entry in entries:
        if "," in entry or entry.partition(":")[0] not in MODALITIES:
            raise ValueError(f"not a model entry: {entry!r}")
    value = ",".join(entries)
    st.session_state.models = value
    if st.session_state.pending is not None:
        st.session_state.pending = {**st.session_state.pending, "models": value}


def open_pair(entry_a: str, entry_b: str) -> None:
    """Make a pair of the Models page's entries the applied comparison (A and B, what each
    embeds), everything else as applied now."""
    settings = current_settings()
    for side, entry in (("a", entry_a), ("b", entry_b)):
        modality, _, name = entry.partition(":")
        settings[f"model_{side}"] = name
        settings[f"modality_{side}"] = modality
        if name.startswith("precomputed:"):
            ref = name.removeprefix("precomputed:")
            if ref not in st.session_state.my_matrices:
                st.session_state.my_matrices.append(ref)
    apply(settings)
    st.session_state.compare_error = None


def _parse_parameter(param: config.Param, raw: Any, text: str) -> tuple[Any, str | None]:
    """A SPEC parameter from a link, within the form's bounds (see parse_setting)."""
    key = param.name
    if param.choices:
        if text not in param.choices:
            return None, f"{key}={_shown(raw)} ignored: choose one of {', '.join(param.choices)}"
        return text, None
    if param.kind is bool:
        if text.lower() not in ("true", "false"):
            return None, f"{key}={_shown(raw)} ignored: true or false"
        return text.lower() == "true", None
    if param.optional and text.lower() in ("auto", "", "0", "0.0", "none"):
        return None, None
    number, refused = view_state.finite_number(key, raw, text)
    if refused:
        return None, refused
    low, high = param.bounds
    value = min(max(number, low), high)
    if param.kind is int:
        value = int(value)  # bounds of integers are >= 0: truncation is floor
    note = None
    if value != number:
        note = f"{key}={_shown(raw)} is outside {_fmt(low)} to {_fmt(high)}; using {_fmt(value)}"
        if param.kind is int and low <= number <= high:
            note = f"{key}={_shown(raw)} is not a whole number; using {value}"
    return value, note


def settings_from_query(query: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The settings in a query string, each within the form's bounds, and a note for every
    value that was ignored or changed. Keys that are not settings are ignored silently."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    optional = {name for name, p in link_params().items() if p.optional}
    for key in settings_defaults():
        if key not in query:
            continue
        value, note = parse_setting(key, query[key])
        if note:
            notes.append(note)
        if value is not None or (key in optional and note is None):
            out[key] = value
    return out, notes


def query_value(key: str, value: Any) -> str:
    param = link_params().get(key)
    if param is not None and param.optional:
        return "auto" if value is None else f"{value:g}"
    return str(value)


def current_settings() -> dict[str, Any]:
    """The applied settings."""
    return {key: st.session_state[key] for key in settings_defaults()}


def pending_settings() -> dict[str, Any]:
    """The sidebar's settings: its edits, else the applied settings (and no typed names)."""
    pending = st.session_state.pending
    if pending is None:
        return {**current_settings(), "custom_a": "", "custom_b": ""}
    return dict(pending)


def has_pending_changes() -> bool:
    pending = st.session_state.pending
    if pending is None:
        return False
    applied = current_settings()
    return any(pending[k] != applied[k] for k in applied) or any(
        pending.get(f"custom_{side}", "").strip() for side in "ab"
    )


def set_pending(**changes: Any) -> None:
    """Change sidebar values (an edit, or the app on the user's behalf: the widgets are drawn
    afresh with the new values)."""
    pending = pending_settings()
    pending.update(changes)
    st.session_state.pending = pending


def redraw_form() -> None:
    """Draw the sidebar widgets afresh from the pending values (new widget keys)."""
    st.session_state.form_gen += 1


def apply(settings: dict[str, Any]) -> None:
    """Make `settings` the applied ones (the sidebar then shows them, nothing pending)."""
    for key in settings_defaults():
        st.session_state[key] = settings[key]
    st.session_state.pending = None
    st.session_state.selected_mode = None
    st.session_state.picked_row = None
    redraw_form()


def link_values(settings: dict[str, Any]) -> dict[str, str]:
    """The settings as a link carries them (no `models` before the Models page chose some)."""
    return {
        key: query_value(key, value)
        for key, value in settings.items()
        if not (key in MODEL_MAP and not value)
    }


def write_query(settings: dict[str, Any]) -> None:
    """Mirror the applied settings in the URL, so that a link (or a reload) restores them."""
    wanted = link_values(settings)
    if query_dict() != wanted:
        st.query_params.from_dict(wanted)


def query_string(settings: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    return urlencode(link_values(settings))


def link_dict() -> dict[str, str]:
    """The whole state a link carries: the applied settings, then what the pages show (the
    selected mode, the Align controls, the pages' own controls; see spec_app.view_state)."""
    session = {key.session: st.session_state.get(key.session) for key in view_state.VIEW}
    return {**link_values(current_settings()), **view_state.view_link(session)}


def write_link() -> None:
    """Mirror the whole state in the URL (see `link_dict`): a reload or a shared link opens
    what this session shows. Called by the sidebar on every run, and by a page that changes
    what it shows during its run."""
    wanted = link_dict()
    if query_dict() != wanted:
        st.query_params.from_dict(wanted)


def link_string() -> str:
    """The query string of `link_dict`, for the Share box."""
    from urllib.parse import urlencode

    return urlencode(link_dict())


def use_data(data: str, dataset) -> None:
    """Switch to a dataset, with offline models that fit it (applied at once: there is no
    result of the new data to keep)."""
    if dataset.kind == "text":
        pairs = (("minilm-l6", "text"), ("e5-small", "text"))
    elif dataset.texts is not None:
        pairs = (("efficientnet-lite0", "image"), ("minilm-l6", "text"))
    else:
        pairs = (("efficientnet-lite0", "image"), ("opennsfw-resnet50", "image"))
    settings = {**pending_settings(), "data": data}
    for side, (model, modality) in zip("ab", pairs, strict=True):
        settings[f"model_{side}"] = model
        settings[f"modality_{side}"] = modality
    apply(settings)
    st.session_state.last_good = None
    st.session_state.compare_error = None


def use_precomputed(ref_a: str, ref_b: str, modality: str) -> None:
    """Compare two uploaded matrices of the current dataset's rows (`modality`: what they
    embed, for the labels)."""
    for ref in (ref_a, ref_b):
        if ref not in st.session_state.my_matrices:
            st.session_state.my_matrices.append(ref)
    settings = {
        **pending_settings(),
        "model_a": f"precomputed:{ref_a}",
        "model_b": f"precomputed:{ref_b}",
        "modality_a": modality,
        "modality_b": modality,
    }
    apply(settings)
    st.session_state.compare_error = None


def align_controls() -> dict[str, Any]:
    """The Align page's controls: the last ones trained with, else the defaults."""
    return {**ALIGN, **(st.session_state.align_controls or {})}


def use_aligned(side: str, ref: str) -> None:
    """Compare with an aligned embedding (an uploaded-matrix REF) in place of model `side`
    ("a" or "b"), everything else as applied now (remembered, see `aligned_origin`)."""
    if ref not in st.session_state.my_matrices:
        st.session_state.my_matrices.append(ref)
    st.session_state.aligned_from = {
        **(st.session_state.aligned_from or {}),
        ref: current_settings(),
    }
    apply({**current_settings(), f"model_{side}": f"precomputed:{ref}"})
    st.session_state.compare_error = None


def aligned_origin() -> tuple[str, dict[str, Any]] | None:
    """When a model of the applied settings is an aligned embedding this session made: its
    side ("A" or "B") and the settings of the pair it was trained on."""
    origins = st.session_state.aligned_from or {}
    for side in ("a", "b"):
        ref = str(st.session_state[f"model_{side}"]).removeprefix("precomputed:")
        if ref in origins:
            return side.upper(), origins[ref]
    return None
