"""Choose the data: a demo set, uploaded images or texts, or two precomputed embeddings."""

import streamlit as st

from spec_app import services, sidebar, state
from spec_core.cache import image_store
from spec_core.datasets import (
    Limits,
    load_image_files,
    load_image_zip,
    load_texts,
    text_columns,
)
from spec_core.demo import list_demos

sidebar.render()
st.title("Data")
SOURCES = {
    "demo:emoji": "Demo: emoji images with their names",
    "demo:wordnet": "Demo: WordNet definitions",
    "images": "Upload images",
    "texts": "Upload texts",
    "precomputed": "Upload two precomputed embeddings",
}
current = st.session_state.data if st.session_state.data in SOURCES else None
source = st.radio(
    "Source",
    list(SOURCES),
    format_func=SOURCES.get,
    index=list(SOURCES).index(current) if current else 2,
    key="data_source",
)

if source.startswith("demo:"):
    st.caption(list_demos()[source.removeprefix("demo:")])
    if st.session_state.data != source and st.button("Use this demo", type="primary"):
        state.use_data(source, services.demo_dataset(source.removeprefix("demo:")))
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
        zips = [f for f in files if f.name.lower().endswith(".zip")]
        try:
            if zips:
                if len(files) > 1:
                    raise ValueError("upload one .zip, or image files, not both")
                dataset = load_image_zip(
                    zips[0].getvalue(),
                    store=image_store(),
                    name=zips[0].name,
                    captions=captions,
                    limits=Limits(),
                )
            else:
                dataset = load_image_files(
                    [(f.name, f.getvalue()) for f in files],
                    store=image_store(),
                    captions=captions,
                )
        except services.USER_ERRORS as err:
            st.error(str(err))
        else:
            state.use_data("upload", dataset)
            st.rerun()

elif source == "texts":
    upload = st.file_uploader(
        "Texts: .txt (one per line), .csv / .tsv, or .jsonl",
        type=["txt", "csv", "tsv", "jsonl"],
        key="upload_texts",
    )
    columns = text_columns(upload.name, upload.getvalue()) if upload else []
    column = label = None
    if columns:
        likely = (
            "text" if "text" in columns else next((c for c in columns if c != "id"), columns[0])
        )
        column = st.selectbox("Text column", columns, index=columns.index(likely))
        label_options = ["(none)", *[c for c in columns if c != column]]
        label = st.selectbox(
            "Label column (optional)",
            label_options,
            index=label_options.index("label") if "label" in label_options else 0,
        )
        label = None if label == "(none)" else label
    if upload and st.button("Use these texts", type="primary"):
        try:
            dataset = load_texts(
                (upload.name, upload.getvalue()), column=column, label_column=label
            )
        except services.USER_ERRORS as err:
            st.error(str(err))
        else:
            state.use_data("upload", dataset)
            st.rerun()

else:
    dataset = services.current_dataset()
    if dataset is None:
        st.info("Choose or upload the dataset first: its rows give the embeddings their meaning.")
    else:
        st.caption(f"Rows must follow **{dataset.name}** ({len(dataset)} rows), in its order.")
        up_a = st.file_uploader(
            "Embedding A (.npy, .npz, .csv, .tsv, .parquet)",
            type=["npy", "npz", "csv", "tsv", "parquet"],
            key="upload_a",
        )
        up_b = st.file_uploader(
            "Embedding B", type=["npy", "npz", "csv", "tsv", "parquet"], key="upload_b"
        )
        if up_a and up_b and st.button("Use these embeddings", type="primary"):
            try:
                key_a, notes_a = services.precomputed_key(up_a.name, up_a.getvalue(), dataset)
                key_b, notes_b = services.precomputed_key(up_b.name, up_b.getvalue(), dataset)
            except services.USER_ERRORS as err:
                st.error(str(err))
            else:
                for note in notes_a + notes_b:
                    st.toast(note)
                state.use_precomputed(key_a, key_b, up_a.name, up_b.name, dataset.kind)
                st.rerun()

st.divider()
dataset = services.current_dataset()
if dataset is None:
    st.stop()
st.subheader(f"Current data: {dataset.name}")
st.write(
    f"**{len(dataset)}** rows · {dataset.kind}s"
    + (" with captions" if dataset.kind == "image" and dataset.texts else "")
    + (" and labels" if dataset.labels else "")
)
for note in dataset.notes:
    st.info(note)
if dataset.skipped:
    st.warning(f"{len(dataset.skipped)} item(s) skipped")
    st.table([{"item": s.item, "reason": s.reason} for s in dataset.skipped[:200]])
if dataset.kind == "image":
    cols = st.columns(8)
    for i in range(min(16, len(dataset))):
        caption = dataset.texts[i] if dataset.texts else dataset.ids[i]
        cols[i % 8].image(dataset.image_paths[i], caption=caption, width="stretch")
else:
    st.dataframe(
        [
            {
                "id": dataset.ids[i],
                "text": dataset.texts[i],
                **({"label": dataset.labels[i]} if dataset.labels else {}),
            }
            for i in range(min(50, len(dataset)))
        ],
        hide_index=True,
        width="stretch",
    )
