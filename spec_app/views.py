"""Rendering pieces shared by pages: the page frame, the mode picker and a mode's members.

Every user-supplied string (names, captions, labels, ids) goes through spec_app.safe."""

from __future__ import annotations

import streamlit as st

from spec_app import router, safe, services, sidebar, state
from spec_app.services.comparison import Comparison


def comparison_page(title: str, caption: str | None = None) -> Comparison:
    """The frame of every results page: sidebar, title, the comparison of the applied
    settings (with progress bars); stops the page when there is none to show.

    A link to data that is gone says so and shows nothing else. When the applied settings
    fail (a model that cannot load), the last comparison that worked stays on screen with the
    error above it, and the failed settings stay in the sidebar as pending edits."""
    sidebar.render()
    st.title(title)
    if caption:
        st.caption(caption)
    ss = st.session_state
    applied = state.current_settings()
    try:
        comp = services.comparison.run_comparison(applied)
    except services.errors.DataGone as err:
        data_gone(str(err))
    if comp is None:
        last = ss.last_good
        if last and last != applied and _still_runs(last):
            failed = {**state.pending_settings(), **applied}
            state.apply(last)
            ss.pending = failed  # the user's choice stays in the sidebar, not applied
            st.rerun()
        st.stop()
    ss.last_good = applied
    sidebar.show_in_use(comp.result.params)
    if ss.compare_error and state.has_pending_changes():
        st.error(safe.md(ss.compare_error, limit=1000))
        st.info("Below: the last comparison that worked. The failed settings stay in the sidebar.")
    for note in comp.notes:
        st.caption(safe.md(note))
    return comp


def _still_runs(settings) -> bool:
    try:
        return services.comparison.run_comparison(settings, show_errors=False) is not None
    except services.errors.DataGone:
        return False


def data_gone(message: str):
    """The data of this link is not on the server: say so, offer the Data page, stop."""
    st.error(safe.md(message, limit=1000), icon="🗑️")
    st.page_link(
        router.page_path("data"), label="Choose or upload data", icon=":material/folder_open:"
    )
    st.stop()


def selected_mode(comp: Comparison, *, key: str):
    """The mode picker; stops the page when there are no modes."""
    mode = mode_picker(comp, key=key)
    if mode is None:
        st.stop()
    return mode


def mode_picker(comp: Comparison, *, key: str):
    """A select box over the modes (and a bar picked beyond them), bound to the session's
    selected mode; returns the Mode."""
    labels = [m.label for m in comp.result.modes]
    if not labels:
        st.info("No modes: the two kernels agree on every computed direction.")
        return None
    selected = st.session_state.selected_mode
    extra = mode_on_demand(comp, selected) if selected and selected not in labels else None
    if extra is not None:
        labels.append(extra.label)
    current = extra or comp.mode(selected)
    if selected and current.label != selected:
        no_bar(selected, current.label)
    eigenvalue = {m.label: m.eigenvalue for m in comp.result.modes}
    if extra is not None:
        eigenvalue[extra.label] = extra.eigenvalue
    choice = st.selectbox(
        "Mode",
        labels,
        index=labels.index(current.label),
        key=key,
        format_func=lambda label: f"{label}  ({eigenvalue[label]:+.4f})",
        on_change=_picked_mode,  # before the run, so that the sidebar's link has it
        args=(key,),
        help="A-not-B #k: the k-th group that A clusters and B does not (positive eigenvalue); "
        "B-not-A #k: the reverse (negative eigenvalue). Click any bar on the Spectrum page to "
        "add its mode here.",
    )
    st.session_state.selected_mode = choice
    return extra if extra is not None and choice == extra.label else comp.mode(choice)


def no_bar(label: str, instead: str | None = None) -> None:
    """Say that the selected mode (from a link, or of an earlier comparison) names no bar of
    this spectrum."""
    st.warning(
        safe.fmt("The selected cluster {} is not a bar of this spectrum", label)
        + (safe.fmt("; showing {}.", instead) if instead else "."),
        icon="⚠️",
    )


def _picked_mode(key: str) -> None:
    st.session_state.selected_mode = st.session_state[key]


def mode_on_demand(comp: Comparison, label: str | None):
    """The mode of any bar (see services.comparison.mode_by_label), with a progress bar while
    computed."""
    slot = st.empty()
    mode = services.comparison.mode_by_label(comp, label, slot)
    slot.empty()
    return mode


SPAN_STRENGTH_HELP = (
    "The default finds groups in the span of each side's top eigenvectors (one eigenvector "
    "often mixes two groups): each card is one group, and its strength is its own contrast "
    "(u^T Lambda u of its score vector), at most the largest eigenvalue. The spectrum's bars are "
    "the eigenvalues themselves, so a card's strength need not equal any bar; its number "
    "(#k) ranks the groups by strength. --groups eigenvectors (CLI) gives one eigenvector per mode."
)


def mode_heading(comp: Comparison, mode):
    """The mode's one-line summary, its noise-floor warning and description; returns the
    description (label counts and terms) for the caller's charts."""
    dataset = comp.dataset
    desc = services.comparison.describe_mode(mode, dataset)
    name_a, name_b = comp.names
    who, other = (name_a, name_b) if mode.direction == "A" else (name_b, name_a)
    span = getattr(comp.result.params, "grouping", "eigenvectors") == "span"
    word = "strength" if span else "eigenvalue"
    st.markdown(
        f"**{mode.label}** · {word} **{mode.eigenvalue:+.4f}** · " + headline(mode, who, other),
        help=SPAN_STRENGTH_HELP
        if span
        else "The eigenvalue is about the group's within-group similarity times its share of "
        "the rows; the larger its size, the stronger the difference.",
    )
    evidence = mode.evidence_line(name_a, name_b, comp.result.params.n_resamples)
    st.caption(safe.md(evidence), help=EVIDENCE_HELP)
    for note in mode.notes:
        st.caption(safe.fmt("Note: {}.", note))
    if mode.weak:
        reasons = "; ".join(mode.weak_reasons)
        st.warning(
            safe.md(f"Weak: {reasons}.")
            + (
                f" (noise floor {comp.result.noise_floor:.3g})"
                if not mode.above_noise_floor
                else ""
            )
            + " Not a group to rely on.",
            icon=":material/report:",
        )
    st.caption(safe.md(desc.headline))
    return desc


def headline(mode, who: str, other: str) -> str:
    """What the mode is, in the words its evidence line backs (markdown; the names as plain
    text): "grouped by A, not by B" only when its members are tighter in A than in B beyond
    each one's average pair and the mode is not weak; otherwise what its evidence does say."""
    if mode.contrasting and mode.weak:  # tighter, but the evidence below says not a group
        return safe.fmt("tighter in **{}** than in {}, but weak (see below)", who, other)
    if mode.contrasting:
        return safe.fmt("grouped by **{}**, not by {}", who, other)
    return safe.fmt(
        "set apart from the rest more by **{}** than by {}, but **not a tighter group** in {}",
        who,
        other,
        who,
    )


EVIDENCE_HELP = (
    "Tighter in: the mean kernel value among the members in each embedding, beside that "
    "embedding's average over all pairs of rows (kernels differ in their typical values: a "
    "text model's cosine similarities can all be near 0.8). The group is one side's when it "
    "stands out further above that side's average. Members: the effective "
    "number of rows the mode spreads over. Comes back: in how many of 10 resamples of 80% of "
    "the rows the same members (overlap >= 0.5) come back. The last part: the commonest label "
    "among the members, when the data has labels."
)


def members_grid(comp: Comparison, mode, *, count: int, columns: int = 6) -> None:
    """The mode's top members with their scores: images with captions, or a table of texts."""
    rows_grid(comp.dataset, mode.members[:count], scores=mode.scores[:count], columns=columns)


def row_caption(dataset, row: int) -> str:
    """A row's caption or text, else its id (plain text)."""
    text = dataset.texts[row] if dataset.texts else ""
    return text or dataset.ids[row]


def rows_grid(
    dataset,
    rows,
    *,
    scores=None,
    score_name: str = "score",
    columns: int = 6,
    marks: dict | None = None,
) -> None:
    """Images with captions (and scores), or a table of texts, for the given dataset rows;
    `marks` puts a sign before some rows' captions."""
    rows = [int(r) for r in rows]
    marks = marks or {}
    if dataset.kind == "image":
        cols = st.columns(columns)
        for i, row in enumerate(rows):
            caption = row_caption(dataset, row)
            if scores is not None:
                caption += f" · {float(scores[i]):.3f}"
            image(
                cols[i % columns], dataset, row, caption=f"{marks.get(row, '')} {caption}".strip()
            )
    else:
        table = services.export.rows_table(dataset, rows, scores=scores, score_name=score_name)
        if marks:
            for record in table:
                record["mark"] = marks.get(record["row"], "")
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={
                "score": st.column_config.NumberColumn(
                    "score", help="The row's entry in the mode's eigenvector", format="%.4f"
                ),
                "distance": st.column_config.NumberColumn(
                    "distance", help="Distance to the clicked row in this embedding", format="%.4f"
                ),
            },
        )


def image(container, dataset, row: int, *, caption: str) -> None:
    """One dataset image as a thumbnail (any image mode), its caption as plain text."""
    data = services.projections.thumbnail(dataset.image_paths[row])
    if data is None:
        container.caption(safe.fmt("(image gone) {}", caption))
        return
    # PNG as made: left to "auto", streamlit would re-encode every thumbnail as a JPEG on
    # every run (opaque images), a third of a rerun's time on a page of cards
    container.image(data, caption=safe.md(caption, limit=120), width="stretch", output_format="PNG")


def latest_selection(
    latest: dict | None, seen: dict | None, current: dict[str, list[int]]
) -> tuple[dict | None, dict[str, list[int]]]:
    """The linked views' selection that the list shows: the one made last. `current` holds
    each view's region selection this run ({"A": rows, "B": rows}), `seen` the same at the last
    run; a view whose selection changed is the one the user just used: its new selection
    becomes the latest, or, emptied (a double-click), clears the latest when it was that
    view's. Returns the latest ({"side", "rows"} or None) and what to remember as `seen`."""
    seen = seen or {}
    for side, rows in current.items():
        if rows != seen.get(side, []):
            if rows:
                latest = {"side": side, "rows": list(rows)}
            elif latest and latest["side"] == side:
                latest = None
    return latest, {side: list(rows) for side, rows in current.items()}
