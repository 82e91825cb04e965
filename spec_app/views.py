"""Rendering pieces shared by pages: the mode picker and a mode's members."""

from __future__ import annotations

import streamlit as st

from spec_app import services, sidebar, state
from spec_app.services import Comparison
from spec_core.describe import describe_members


def comparison_page(title: str, caption: str | None = None) -> Comparison:
    """The frame of every results page: sidebar, title, the comparison of the applied
    settings (with progress bars); stops the page when there is none to show."""
    sidebar.render()
    st.title(title)
    if caption:
        st.caption(caption)
    comp = services.run_comparison(state.current_settings())
    if comp is None:
        st.stop()
    return comp


def selected_mode(comp: Comparison, *, key: str):
    """The mode picker; stops the page when there are no modes."""
    mode = mode_picker(comp, key=key)
    if mode is None:
        st.stop()
    return mode


def mode_picker(comp: Comparison, *, key: str):
    """A select box over the modes, bound to the session's selected mode; returns the Mode."""
    labels = [m.label for m in comp.result.modes]
    if not labels:
        st.info("No modes: the two kernels agree on every computed direction.")
        return None
    current = comp.mode(st.session_state.selected_mode)
    choice = st.selectbox(
        "Mode",
        labels,
        index=labels.index(current.label),
        key=key,
        format_func=lambda label: f"{label}  ({comp.mode(label).eigenvalue:+.4f})",
    )
    st.session_state.selected_mode = choice
    return comp.mode(choice)


def mode_heading(comp: Comparison, mode):
    """The mode's one-line summary, its noise-floor warning and description; returns the
    description (label counts and terms) for the caller's charts."""
    dataset = comp.dataset
    desc = describe_members(mode.members, labels=dataset.labels, texts=dataset.texts)
    who, other = (
        (comp.model_a, comp.model_b) if mode.direction == "A" else (comp.model_b, comp.model_a)
    )
    st.markdown(
        f"**{mode.label}** · eigenvalue **{mode.eigenvalue:+.4f}** · "
        f"grouped by **{who}**, not by {other}"
    )
    if not mode.above_noise_floor:
        st.warning(f"Below the noise floor ({comp.result.noise_floor:.3g}): not a finding.")
    st.caption(desc.headline)
    return desc


def members_grid(comp: Comparison, mode, *, count: int, columns: int = 6) -> None:
    """The mode's top members with their scores: images with captions, or a table of texts."""
    rows_grid(comp.dataset, mode.members[:count], scores=mode.scores[:count], columns=columns)


def rows_grid(dataset, rows, *, scores=None, columns: int = 6) -> None:
    """Images with captions (and scores), or a table of texts, for the given dataset rows."""
    rows = [int(r) for r in rows]
    score_of = (lambda i: f" · {float(scores[i]):.3f}") if scores is not None else (lambda i: "")
    if dataset.kind == "image":
        cols = st.columns(columns)
        for i, row in enumerate(rows):
            caption = dataset.texts[row] if dataset.texts else dataset.ids[row]
            cols[i % columns].image(
                dataset.image_paths[row], caption=f"{caption}{score_of(i)}", width="stretch"
            )
    else:
        table = [
            {
                **({"score": float(scores[i])} if scores is not None else {}),
                "id": dataset.ids[row],
                "text": dataset.texts[row],
                **({"label": dataset.labels[row]} if dataset.labels else {}),
            }
            for i, row in enumerate(rows)
        ]
        st.dataframe(table, hide_index=True, width="stretch")
