"""SPEC-align: train a small adapter on top of one embedding (kept frozen) so that it groups the
samples the way the other one does, and see, on rows it never trained on, which differences
closed."""

import streamlit as st

from spec_app import charts, router, safe, services, state, views

comp = views.comparison_page(
    "Align",
    "Train a small adapter on top of one embedding (kept frozen) so that it also groups the "
    "samples the other one groups: it minimises SPEC-diff on training rows, and everything "
    "below is measured on validation rows it never saw.",
)
dataset = comp.dataset
names = dict(zip("AB", comp.names, strict=True))
settings = state.current_settings()
controls = state.align_controls()
origin = state.aligned_origin()
if origin is not None:
    aligned_side, original = origin
    col_note, col_back = st.columns([4, 1], vertical_alignment="center")
    col_note.info(
        f"Model {aligned_side} is the aligned embedding made on this page. Training here aligns it "
        "further; the original pair's alignment is still here."
    )
    if col_back.button("Back to the original pair", key="align_back", width="stretch"):
        state.apply(original)
        st.rerun()

DIRECTIONS = {
    "b_to_a": safe.fmt("Align B ({}) to A ({})", names["B"], names["A"]),
    "a_to_b": safe.fmt("Align A ({}) to B ({})", names["A"], names["B"]),
}
with st.form("align_form", border=True):
    col_dir, col_adapter, col_steps, col_val = st.columns([3, 2, 1, 2])
    direction = col_dir.radio(
        "Which side to change",
        list(DIRECTIONS),
        index=list(DIRECTIONS).index(controls["direction"]),
        format_func=DIRECTIONS.get,
        key="align_direction",
        help="The adapter changes this side; the other side is the target and stays as it "
        "is. Aligning A to B swaps the roles: A gets the adapter.",
    )
    adapter = col_adapter.radio(
        "Adapter",
        ("linear", "mlp"),
        index=("linear", "mlp").index(controls["adapter"]),
        format_func={"linear": "linear (x W + c)", "mlp": "MLP (residual, one hidden layer)"}.get,
        key="align_adapter",
        help="Both start as the identity (before = the embedding as it is). Linear: a linear "
        "map of the embedding; MLP: the embedding plus a small non-linear correction.",
    )
    low, high = state.ALIGN_BOUNDS["steps"]
    steps = col_steps.number_input(
        "Steps",
        min_value=int(low),
        max_value=int(high),
        value=int(controls["steps"]),
        step=50,
        key="align_steps",
        help="Most training steps (mini-batches of up to 512 rows). Training stops earlier "
        "when the validation SPEC-diff has not improved for 8 checks (every 10 steps), and "
        "keeps the best step.",
    )
    low, high = state.ALIGN_BOUNDS["val_fraction"]
    val_fraction = col_val.slider(
        "Validation share",
        min_value=float(low),
        max_value=float(high),
        value=float(controls["val_fraction"]),
        step=0.05,
        key="align_val_fraction",
        help="The share of rows held out (seeded by the sidebar's seed): the adapter never "
        "trains on them; the step kept and every number below are measured on them. Each "
        "part needs at least 10 rows.",
    )
    train = st.form_submit_button("Train", type="primary", key="align_train")

notes = []
if settings["kernel"] == "gaussian" and (settings["sigma_a"] or settings["sigma_b"]):
    notes.append(
        "The adapter trains with the data-driven bandwidths (times the bandwidth scale), not "
        "the sigma set by hand in the sidebar."
    )
if float(settings["eta"]) != 1.0:
    notes.append("Alignment weighs both kernels alike (eta 1), whatever the sidebar's eta.")
for note in notes:
    st.caption(note)

if train:
    controls = {
        "direction": direction,
        "adapter": adapter,
        "steps": int(steps),
        "val_fraction": float(val_fraction),
    }
    st.session_state.align_controls = controls
    state.write_link()  # the link carries the controls trained with
if train or services.alignment.training(comp, settings, controls) is not None:
    slot = st.empty()
    try:
        with slot.container():
            bar = st.progress(0.0, text="training the adapter")
            st.caption(
                "The training runs on the server: you may leave this page, and come back to "
                "its progress or its result."
            )
            services.alignment.alignment(comp, settings, controls, bar=bar, train=True)
    except services.errors.SHOWN_AS_MESSAGE as err:
        slot.empty()
        st.error(safe.md(f"Cannot align: {services.errors.message(err)}", limit=1000))
        st.stop()
    slot.empty()

al = services.alignment.alignment(comp, settings, controls)
if al is None:
    st.info(
        safe.fmt(
            "Press **Train** to fit the adapter on {} ({} rows; a few seconds to a minute on a "
            "CPU for a few hundred rows).",
            dataset.name,
            len(dataset),
        )
    )
    st.stop()

result = al.result
adapted, target = al.adapted_side, al.target_side
params = result.params
val = result.metrics["val"]
st.markdown(
    safe.fmt(
        "**{} ({})** was aligned to **{} ({})**",
        adapted,
        names[adapted],
        target,
        names[target],
    )
    + f": {'an MLP' if params['adapter'] == 'mlp' else 'a linear'} adapter on {adapted}, "
    f"trained on {params['n_train']} rows, measured on "
    f"{val['before']['n_rows']} validation rows it never saw. It is "
    + (
        "the least-squares start, which no step beat"
        if result.kept == "start"
        else f"the adapter of step {result.best_step}"
    )
    + f", the best on the validation rows, of {params['steps_run']} steps run"
    + ("; training stopped early, with no more progress." if result.stopped_early else ".")
)
kind, verdict = services.alignment.verdict(al)
show = {"closed": st.success, "cannot": st.warning}.get(kind, st.info)
show(safe.md(verdict, limit=1000))
for note in result.notes:  # e.g. no step beat the identity: B is kept unchanged
    st.info(note)


def headline(
    col, label: str, entry: str, *, split: str = "val", lower_is_better=False, **metric_options
):
    """A before → after number: the value after alignment, the change and the value before;
    `metric_options` (its help) go to st.metric."""
    before = result.metrics[split]["before"][entry]
    after = result.metrics[split]["after"][entry]
    if lower_is_better and before:
        delta = f"{after / before - 1:+.0%} (was {before:.3g})"
    else:
        delta = f"{after - before:+.3f} (was {before:.3g})"
    col.metric(
        label,
        f"{after:.3g}" if lower_is_better else f"{after:.3f}",
        delta=delta,
        delta_color="inverse" if lower_is_better else "normal",
        **metric_options,
    )


first, second = st.columns(3), st.columns(3)
headline(
    first[0],
    "SPEC-diff (validation)",
    "spec_diff",
    lower_is_better=True,
    help="The largest |eigenvalue| on the validation rows after alignment (was: before): how "
    "strongly the two embeddings disagree about their strongest group. Lower: closer.",
)
headline(
    first[1],
    "SPEC-diff (train rows)",
    "spec_diff",
    split="train",
    lower_is_better=True,
    help="The same on the rows the adapter trained on. When it falls much further than on the "
    "validation rows, the adapter learnt those rows rather than the groups.",
)
if "label_knn_accuracy" in val["before"]:
    headline(
        first[2],
        f"Label kNN accuracy of {adapted}",
        "label_knn_accuracy",
        help=f"The share of validation rows whose {params['knn_k']} nearest training rows in "
        f"{adapted} vote for their own label. A drop: the alignment cost what the labels "
        f"measure. {target} itself: {val['before']['label_knn_accuracy_a']:.3f}.",
    )
headline(
    second[0],
    f"kNN overlap with {target}",
    "knn_overlap_a",
    help=f"Per validation row, the share of its {params['knn_k']} nearest neighbours in {adapted} "
    f"that it also has in {target}, averaged: higher means {adapted} sees {target}'s "
    "neighbourhoods.",
)
headline(
    second[1],
    f"kNN overlap with original {adapted}",
    "knn_overlap_b",
    help=f"The same against {adapted} before alignment (1 before): how much of its own "
    "neighbourhoods the aligned embedding kept.",
)
headline(
    second[2],
    f"Linear CKA with {target}",
    "cka_a",
    help=f"Linear centred kernel alignment of {adapted} with {target}: 1 when they agree up to "
    "rotation and scale.",
)

side = "a" if al.swapped else "b"
col_go, col_adapter_file, col_npy, col_json = st.columns([3, 2, 2, 2])
if col_go.button(
    f"Compare {'aligned A with B' if al.swapped else 'A with aligned B'}",
    type="primary",
    key="align_compare",
    help=f"Opens the Spectrum page with the aligned {adapted} in place of model {adapted}, on "
    "every row (the training rows too): a comparison like any other, which the link carries.",
):
    state.use_aligned(side, services.alignment.store_aligned(al, comp))
    st.switch_page(router.page_path("spectrum"))
stem = safe.filename(f"{names[adapted]}_aligned_to_{names[target]}_{params['adapter']}")
col_adapter_file.download_button(
    "Adapter (.safetensors)",
    services.alignment.adapter_file(al.id, al),
    f"{stem}.safetensors",
    "application/octet-stream",
    key="align_adapter_file",
    help="The adapter's weights and the centre and scale it standardises with; "
    "spec_core.align.load_adapter(path).apply(matrix) aligns new rows.",
)
col_npy.download_button(
    f"Aligned {adapted} (.npy)",
    services.alignment.aligned_file(al.id, al),
    f"{stem}.npy",
    "application/octet-stream",
    key="align_embedding_file",
    help="Every row of the data, in its order (training and validation rows).",
)
col_json.download_button(
    "Report (JSON)",
    services.alignment.align_report(al, comp),
    f"{stem}.json",
    "application/json",
    key="align_report_file",
    help="Every number on this page, the parameters, the training curve and the validation rows.",
)

st.subheader("Spectrum on the validation rows, before and after")
st.plotly_chart(
    charts.align_spectra_figure(
        services.alignment.align_spectra(al),
        (f"before: {adapted} = {names[adapted]}", f"after: {adapted} aligned"),
        (names["A"], names["B"]),
    ),
    width="stretch",
)
st.caption(
    f"One y axis for both; grey band: the noise floor. Training shrinks the largest bar at "
    f"either end (SPEC-diff) first. {target}-not-{adapted} bars are groups only {target} had, "
    f"which the aligned {adapted} now captures as they shrink; {adapted}-not-{target} bars are "
    f"groups only {adapted} had, which it gives up as they shrink."
)

st.subheader("Which modes closed")
modes = services.alignment.closed_modes(al)
if not modes:
    st.info("No modes on the validation rows: the two kernels agreed there before alignment.")
who = {"A": names["A"], "B": names["B"]}
table = []
for mode in modes:
    table.append(
        {
            "mode": mode["label"] + (" (weak)" if mode["weak"] else ""),
            "grouped by": who[mode["label"][0]],
            "eigenvalue before": mode["before"],
            "after": mode["after"],
            "left": 100 * mode["left"],
            "members (best first)": " · ".join(
                views.row_caption(dataset, row)[:40] for row in mode["members"][:6]
            ),
        }
    )
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "eigenvalue before": st.column_config.NumberColumn(
            help="The mode's eigenvalue on the validation rows before alignment.", format="%+.4f"
        ),
        "after": st.column_config.NumberColumn(
            help="The eigenvalue of the same score vector after alignment (its Rayleigh "
            "quotient): how much of that difference is left.",
            format="%+.4f",
        ),
        "left": st.column_config.NumberColumn(
            help="after / before: 0% closed completely, 100% unchanged, above 100% grew.",
            format="%.0f%%",
        ),
        "mode": st.column_config.TextColumn(
            help="(weak): not a finding before alignment (too small, unstable, or below the "
            "noise floor); its change means little."
        ),
    },
)
for i, mode in enumerate(modes):
    title = (
        f"{mode['label']}: {mode['before']:+.4f} → {mode['after']:+.4f}"
        + (f" ({mode['left']:.0%} left)" if mode["before"] else "")
        + (" · weak" if mode["weak"] else "")
    )
    with st.expander(title, expanded=i == 0):
        if mode["weak"]:
            st.caption(safe.md("Weak before alignment: " + "; ".join(mode["weak_reasons"]) + "."))
        views.rows_grid(dataset, mode["members"][:8], columns=8)

st.subheader(f"{adapted} before and after, on the validation rows")
options = [m["label"] for m in modes] + (["label"] if dataset.labels else [])
colour = st.selectbox(
    "Colour by",
    options,
    key="align_colour",
    help="A mode: each row's score in it (before alignment), its members outlined; label: "
    "the ten most frequent labels of the data.",
)
picked = next((m for m in modes if m["label"] == colour), None)
scores, members = (
    (picked["scores"], picked["positions"])
    if picked
    else services.alignment.scores_without_mode(al)
)
view = services.alignment.align_projection(al.id, "pca", al)  # a fast view first, UMAP in its place
rows = view["rows"]
hover = [
    f"{row}: {views.row_caption(dataset, int(row))[:80]}"
    + (f" · {dataset.labels[row]}" if dataset.labels else "")
    for row in rows
]
labels = [dataset.labels[row] for row in rows] if colour == "label" else None
stages = ("before", "after")
slots = [col.empty() for col in st.columns(2)]


def draw(view: dict, kind: str, note: str = "") -> None:
    for slot, stage in zip(slots, stages, strict=True):
        title = f"{adapted}: {names[adapted]}" + (" aligned" if stage == "after" else "")
        figure = charts.scatter_figure(
            view[stage], scores, members, hover, f"{title} ({kind}{note})",
            labels=labels,
        )  # fmt: skip
        slot.plotly_chart(figure, width="stretch", key=f"align_{kind.lower()}_{stage}")


draw(view, "PCA", "; UMAP computing…")
with st.spinner("UMAP…"):
    view = services.alignment.align_projection(al.id, "umap", al)
draw(view, "UMAP")
st.caption(
    f"The same {len(rows)} validation rows in both views, the mode's members outlined. Members "
    f"of {target}-not-{adapted} modes (groups only {target} had) come together in the aligned "
    f"{adapted} as they close; members of {adapted}-not-{target} modes may spread out."
)

with st.expander("Training"):
    st.plotly_chart(charts.align_history_figure(result.history, result.best_step), width="stretch")
    timings = " · ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    st.caption(
        f"{params['steps_run']} steps of {params['batch_size']} rows on {params['device']}, "
        f"learning rate {params['lr']:g}, keep weight {params['keep_weight']:g}, "
        f"{params['kernel']} kernel · {timings}"
    )
