"""Choose the data: a demo set, uploaded images or texts, or two precomputed embeddings."""

import streamlit as st

from spec_app import safe, services, sidebar, state, views
from spec_core.limits import CAPS

sidebar.render()
st.title("Data")
SOURCES = {
    "demo:emoji": "Demo: emoji images with their names",
    "demo:wordnet": "Demo: WordNet definitions",
    "images": "Upload images",
    "texts": "Upload texts",
    "precomputed": "Upload two precomputed embeddings",
}
try:
    dataset = services.data.current_dataset()
except services.errors.DataGone as err:
    dataset = None
    st.error(safe.md(err, limit=1000), icon="🗑️")


def use_upload(loaded) -> bool:
    """Keep an uploaded dataset and switch to it, unless it is too small to compare (then
    False, and nothing is kept)."""
    if len(loaded) < CAPS.min_rows:
        st.error(
            safe.fmt(
                "{} has {} usable row(s); a comparison needs at least {}.",
                loaded.name,
                len(loaded),
                CAPS.min_rows,
            )
        )
        for item in loaded.skipped[:20]:
            st.caption(safe.fmt("skipped {}: {}", item.item, item.reason))
        return False
    try:
        stored = services.data.store_dataset(loaded)
    except OSError as err:  # a full disk: said without the server's paths
        st.error(safe.md(services.errors.message(err)))
        return False
    state.use_data(stored, loaded)
    return True


current = st.session_state.data if st.session_state.data in SOURCES else None
if current is None:  # an upload: the form it came from
    precomputed = any(st.session_state[f"model_{s}"].startswith("precomputed:") for s in "ab")
    current = (
        "precomputed"
        if precomputed
        else ("texts" if dataset is not None and dataset.kind == "text" else "images")
    )
source = st.radio(
    "Source",
    list(SOURCES),
    format_func=SOURCES.get,
    index=list(SOURCES).index(current),
    key="data_source",
)
st.caption(
    f"Uploads stay on this server {services.data.upload_retention()}, so that a shared link "
    "can open them; **Delete my data** below removes them at once."
)

if source.startswith("demo:"):
    st.caption(services.data.demo_descriptions()[source.removeprefix("demo:")])
    if st.session_state.data != source and st.button("Use this demo", type="primary"):
        state.use_data(source, services.data.demo_dataset(source.removeprefix("demo:")))
        st.rerun()

elif source == "images":
    files = st.file_uploader(
        "Images (png, jpg, webp, bmp, gif) or one .zip",
        accept_multiple_files=True,
        type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "zip"],
        key="upload_images",
    )
    table = st.file_uploader(
        "Optional captions / labels table (columns: file, caption, label)",
        type=["csv", "tsv", "jsonl"],
        key="upload_captions",
    )
    if files and st.button("Use these images", type="primary"):
        captions = (table.name, table.getvalue()) if table else None
        loaded, kept = None, False
        with services.data.ingesting():  # the stored images are held before anyone can delete them
            try:
                loaded = services.data.load_uploaded_images(
                    [(f.name, f.getvalue()) for f in files], captions
                )
            except services.errors.SHOWN_AS_MESSAGE as err:
                st.error(safe.md(services.errors.message(err), limit=1000))
            else:
                kept = use_upload(loaded)
        if kept:
            st.rerun()
        elif loaded is not None:  # refused: its images go, unless another upload holds them
            services.data.discard_images(loaded)

elif source == "texts":
    upload = st.file_uploader(
        "Texts: .txt (one per line), .csv / .tsv, or .jsonl",
        type=["txt", "csv", "tsv", "jsonl"],
        key="upload_texts",
    )
    columns = services.data.text_columns(upload.name, upload.getvalue()) if upload else []
    column = label = None
    if columns:
        likely = (
            "text" if "text" in columns else next((c for c in columns if c != "id"), columns[0])
        )
        column = st.selectbox(
            "Text column",
            columns,
            index=columns.index(likely),
            format_func=lambda c: safe.clip(c, 80),
            key="text_column",
        )
        label_options = ["(none)", *[c for c in columns if c != column]]
        label = st.selectbox(
            "Label column (optional)",
            label_options,
            index=label_options.index("label") if "label" in label_options else 0,
            format_func=lambda c: safe.clip(c, 80),
            key="label_column",
        )
        label = None if label == "(none)" else label
    if upload and st.button("Use these texts", type="primary"):
        try:
            loaded = services.data.load_uploaded_texts(
                upload.name, upload.getvalue(), column=column, label_column=label
            )
        except services.errors.SHOWN_AS_MESSAGE as err:
            st.error(safe.md(services.errors.message(err), limit=1000))
        else:
            if use_upload(loaded):
                st.rerun()

else:
    ROWS = {
        "own": "Their own rows (no images or texts: rows named by an 'id' column, else numbered)",
        "dataset": "The rows of the current data"
        + ("" if dataset is None else safe.fmt(" ({}, {} rows)", dataset.name, len(dataset))),
    }
    on_demo = dataset is None or st.session_state.data.startswith("demo:")
    rows_of = st.radio(
        "Whose rows are these?",
        list(ROWS) if dataset is not None else ["own"],
        format_func=ROWS.get,
        index=0 if on_demo else 1,
        key="precomputed_rows",
        help="Row i of A and row i of B must be the same sample. With the current data, the "
        "matrices' rows follow its rows (by an 'id' column, else in its order) and the pages "
        "show its images and texts.",
    )
    if rows_of == "dataset":
        st.caption(
            safe.fmt("Rows must follow **{}** ({} rows), in its order.", dataset.name, len(dataset))
        )
    up_a = st.file_uploader(
        "Embedding A (.npy, .npz, .csv, .tsv, .parquet)",
        type=["npy", "npz", "csv", "tsv", "parquet"],
        key="upload_a",
    )
    up_b = st.file_uploader(
        "Embedding B", type=["npy", "npz", "csv", "tsv", "parquet"], key="upload_b"
    )
    up_labels = None
    if rows_of == "own":
        up_labels = st.file_uploader(
            "Labels for these rows (optional: columns id, label and/or caption)",
            type=["csv", "tsv", "jsonl"],
            key="upload_row_labels",
            help="Matched to the rows by id (the matrices' 'id' column, else the row number "
            "from 0). Rows it does not name get no label; labels describe the groups found.",
        )
    if up_a and up_b and st.button("Use these embeddings", type="primary"):
        try:
            target = dataset
            if rows_of == "own":
                target = services.data.rows_of_matrices(
                    up_a.name, up_a.getvalue(), up_b.name, up_b.getvalue()
                )
                if len(target) < CAPS.min_rows:
                    raise ValueError(
                        f"{len(target)} row(s); a comparison needs at least {CAPS.min_rows}"
                    )
                if up_labels is not None:
                    target = services.data.with_row_labels(
                        target, up_labels.name, up_labels.getvalue()
                    )
            ref_a, ref_b, notes = services.data.store_precomputed_pair(
                (up_a.name, up_a.getvalue()), (up_b.name, up_b.getvalue()), target
            )
        except services.errors.SHOWN_AS_MESSAGE as err:
            st.error(safe.md(services.errors.message(err), limit=1000))
        else:
            for note in notes:
                st.toast(safe.md(note))
            if rows_of == "own":
                state.use_data(services.data.store_dataset(target), target)
            state.use_precomputed(ref_a, ref_b, target.kind)
            st.rerun()

if services.data.my_data():
    with st.expander("Delete my data", icon=":material/delete:"):
        st.caption(
            "Removes the uploads of this session and of this link from the server now: the "
            "links to them (a shared link then says the data is gone), and the files and "
            "embeddings that no other upload uses (another user's upload of the same files "
            "keeps working)."
        )
        if st.button("Delete my uploads now", type="primary", key="delete_my_data"):
            names, freed = services.data.delete_my_data()
            if st.session_state.data.startswith("upload:") or any(
                st.session_state[f"model_{s}"].startswith("precomputed:") for s in "ab"
            ):
                state.use_data("demo:emoji", services.data.demo_dataset("emoji"))
            st.toast(
                safe.fmt(
                    "Deleted {} upload(s): {} ({} freed; files another upload uses stay).",
                    len(names),
                    ", ".join(names),
                    f"{freed / 2**20:.1f} MiB" if freed >= 2**20 else f"{freed / 2**10:.0f} KiB",
                )
            )
            st.rerun()

st.divider()
if dataset is None:
    st.stop()
st.subheader(safe.fmt("Current data: {}", dataset.name))
st.markdown(
    f"**{len(dataset)}** rows · "
    + ("rows of two uploaded embeddings, named by id" if dataset.texts_are_ids else "")
    + ("" if dataset.texts_are_ids else f"{dataset.kind}s")
    + (" with captions" if dataset.kind == "image" and dataset.texts else "")
    + ((", with labels" if dataset.texts_are_ids else " and labels") if dataset.labels else ""),
    help="Rows: the samples both models embed and SPEC compares (skipped items are not "
    "counted). Captions can be embedded by a text model; labels describe the clusters.",
)
for note in dataset.notes:
    st.info(safe.md(note))
if dataset.skipped:
    st.warning(f"{dataset.skipped_count:,} item(s) skipped")
    st.table(
        [{"item": safe.md(i.item), "reason": safe.md(i.reason)} for i in dataset.skipped[:200]]
    )
if dataset.kind == "image":
    cols = st.columns(8)
    for i in range(min(16, len(dataset))):
        views.image(cols[i % 8], dataset, i, caption=views.row_caption(dataset, i))
else:
    st.dataframe(
        [
            {
                "id": dataset.ids[i],
                **({} if dataset.texts_are_ids else {"text": dataset.texts[i]}),
                **({"label": dataset.labels[i]} if dataset.labels else {}),
            }
            for i in range(min(50, len(dataset)))
        ],
        hide_index=True,
        width="stretch",
    )
