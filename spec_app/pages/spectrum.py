"""Landing page: the spectrum of the comparison and its strongest clusters."""

import streamlit as st

from spec_app import charts, hover, safe, services, state, views

comp = views.comparison_page(
    "SPEC Explorer",
    "Which groups of samples does one embedding cluster together and the other not?",
)
result = comp.result
name_a, name_b = comp.names
#: Cards per side: the two strongest modes always, then further modes that are findings (not
#: weak) up to this many, so a strong third mode is not left off.
CARDS_PER_SIDE = 4

cols = st.columns(6)
cols[0].metric(
    "SPEC-diff",
    f"{result.spec_diff:.4f}",
    help="The largest |eigenvalue| of (K_A - eta K_B) / n: how strongly the two embeddings "
    "disagree about their strongest group. 0 for identical kernels; symmetric in A and B. "
    "Beside it: the same for B's rows shuffled, what two unrelated embeddings give here.",
)
#: The reference SPEC-diff is one more solve: its tile and words are filled in at the end of
#: the page (show_reference), so that the chart and the cards do not wait for it.
reference_tile = cols[1].empty()
reference_tile.metric("SPEC-diff, B shuffled", "…")
cols[2].metric(
    "Noise floor",
    f"{result.noise_floor:.2g}",
    help="The size of eigenvalues the computation alone produces (round-off for exact, two "
    "independent feature draws for rff / nystrom). Modes below it are not findings.",
)
if result.context is not None:
    cols[3].metric(
        "Linear CKA",
        f"{result.context.linear_cka:.3f}",
        help="Linear centred kernel alignment (Kornblith et al. 2019): 1 when the embeddings "
        "agree up to rotation and scale, near 0 when unrelated. One number, no groups.",
    )
    cols[4].metric(
        f"{result.context.knn_k}-NN overlap",
        f"{result.context.knn_overlap_mean:.3f}",
        help=f"Per row, the share of its {result.context.knn_k} nearest neighbours that A and "
        "B have in common, averaged over the rows: 1 when both embeddings see the same "
        "neighbourhoods.",
    )
cols[5].metric("Rows", f"{result.params.n_rows}", help="Samples compared (rows of A and of B).")
reference_words = st.empty()
params = result.params
st.caption(
    safe.fmt("A = {} ({}) · B = {} ({}) · ", name_a, comp.embeds[0], name_b, comp.embeds[1])
    + (
        f"{params.kernel} kernel, sigma A {params.sigma_a:.4g} / B {params.sigma_b:.4g} · "
        if params.kernel == "gaussian"
        else "cosine kernel · "
    )
    + f"{params.method} ({params.route}) on {params.device} in {sum(result.timings.values()):.2f} s"
)


def clicked_bar() -> str | None:
    """The label of the bar selected in the chart, if any."""
    event = st.session_state.get("spectrum_chart")
    points = event.selection.points if event and event.selection else []
    return points[0].get("customdata") if points else None


def on_click() -> None:
    """A new click selects its bar's mode before the run (so that the sidebar's link has it)
    and brings its card into view; a selection kept from an earlier run does neither."""
    clicked = clicked_bar()
    if clicked and clicked != st.session_state.spectrum_click:
        st.session_state.selected_mode = clicked
        st.session_state.spectrum_scroll = True
    st.session_state.spectrum_click = clicked


hover.attach(modes=hover.mode_cards(comp.dataset, result.modes))  # members on hover
st.plotly_chart(
    hover.mark(charts.spectrum_figure(result, (name_a, name_b)), "modes"),
    on_select=on_click,
    selection_mode="points",
    key="spectrum_chart",
    width="stretch",
)
clicked = clicked_bar()
if clicked and clicked != st.session_state.spectrum_click:  # a click its callback did not see
    st.session_state.selected_mode = clicked
    st.session_state.spectrum_scroll = True
    state.write_link()
st.session_state.spectrum_click = clicked  # also when a new figure dropped the selection
new_click, st.session_state.spectrum_scroll = st.session_state.spectrum_scroll, False
for note in charts.spectrum_notes(result):
    st.caption(note)
st.caption(
    "Click any bar to select its cluster on every page"
    + (f" (selected: {st.session_state.selected_mode})" if st.session_state.selected_mode else "")
    + ". Full colour: modes that are findings; faded: weak modes (hover for why) and bars not "
    "examined yet (click to compute)."
)


def card(mode) -> None:
    with st.container(border=True):
        views.mode_heading(comp, mode)
        views.members_grid(comp, mode, count=8, columns=8)


def scroll_to_selected(label: str) -> None:
    """Bring the selected card into view: streamlit has no scroll API, so a one-pixel frame
    whose script scrolls its parent page to the card's anchor (the label in it makes each new
    click a new frame, so its script runs again)."""
    import json

    st.iframe(
        "<script>/* " + json.dumps(label).replace("*/", "") + " */"
        "const card = window.parent.document.getElementById('selected-card');"
        "if (card) card.scrollIntoView({behavior: 'smooth', block: 'start'});</script>",
        height=1,
    )


selected = st.session_state.selected_mode
chosen = views.mode_on_demand(comp, selected) if selected else None
if selected and chosen is None:
    views.no_bar(selected)
if chosen is not None:
    st.subheader("Selected cluster", anchor="selected-card")
    st.caption(safe.fmt("{}: the bar you clicked (its cluster on every page)", chosen.label))
    card(chosen)
    if new_click:
        scroll_to_selected(chosen.label)

st.subheader("Strongest clusters")
for direction, model in (("A", name_a), ("B", name_b)):
    modes = result.modes_for(direction)
    modes = [m for i, m in enumerate(modes[:CARDS_PER_SIDE]) if i < 2 or not m.weak]
    if not modes:
        st.caption(safe.fmt("{}: no cluster of its own in the computed spectrum.", model))
    for mode in modes:
        if chosen is None or mode.label != chosen.label:
            card(mode)


def show_reference() -> None:
    """The reference SPEC-diff (B's rows shuffled, what unrelated embeddings give here) in its
    tile and words above the chart: computed with the page when it is cheap, else a button."""
    cheap = services.comparison.reference_is_cheap(comp)
    words = reference_words.container()
    try:
        reference = services.comparison.spec_diff_reference(comp, compute=cheap)
    except services.errors.SHOWN_AS_MESSAGE as err:
        reference = None
        words.caption(safe.fmt("No reference SPEC-diff: {}", services.errors.message(err)))
    reference_tile.metric(
        "SPEC-diff, B shuffled",
        f"{reference.shuffled:.4f}" if reference else "—",
        help="SPEC-diff of the same data with the rows of B shuffled (a seeded permutation): "
        "each embedding keeps its own geometry, the pairing of rows is lost, so this is what "
        "two embeddings that agree on nothing give on this data. Identical embeddings give 0.",
    )
    if reference is not None:
        words.caption(
            f"SPEC-diff {result.spec_diff:.4g}, against {reference.shuffled:.4g} for B's rows "
            "shuffled (unrelated embeddings of this data) and 0 for identical embeddings: "
            + services.comparison.reference_words(result.spec_diff, reference.shuffled)
        )
    elif words.button(
        "Compute the reference SPEC-diff (B's rows shuffled: one more solve)",
        key="spectrum_reference",
    ):
        with words, st.spinner("SPEC with B's rows shuffled…"):
            services.comparison.spec_diff_reference(comp)
        st.rerun()


show_reference()
