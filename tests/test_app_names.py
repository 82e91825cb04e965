"""Two uploaded embeddings on their own rows, as a newcomer sees them (issue 22): called
embeddings by their file names, the id shown once, and labels attached by an id table."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from spec_app import safe
from spec_core.data import uploads
from spec_core.data.datasets import DatasetError, rows_dataset

APP = str(Path(__file__).resolve().parents[1] / "app.py")

pytestmark = pytest.mark.app


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "names-cache"))


def npy(matrix) -> bytes:
    buf = io.BytesIO()
    np.save(buf, matrix.astype(np.float32))
    return buf.getvalue()


def labels_table(n: int) -> bytes:
    """Labels for the first n - 10 rows, in reverse order, and two ids the data lacks."""
    lines = ["id,label"] + [f"{i},group{i // 30}" for i in reversed(range(n - 10))]
    return ("\n".join([*lines, "x1,none", "x2,none"]) + "\n").encode()


def uploaded_pair(n: int = 90) -> dict:
    """Two matrices of n numbered rows (3 planted groups in A only) with labels, stored as
    the Data page stores them; the session settings that compare them."""
    from spec_app import services

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(3), n // 3)
    a = rng.normal(scale=4, size=(3, 6))[groups] + rng.normal(size=(n, 6))
    b = rng.normal(size=(n, 5))
    rows = services.data.rows_of_matrices("A.npy", npy(a), "B.npy", npy(b))
    rows = services.data.with_row_labels(rows, "labels.csv", labels_table(n))
    ref_a, ref_b, _ = services.data.store_precomputed_pair(
        ("A.npy", npy(a)), ("B.npy", npy(b)), rows
    )
    return {
        "data": f"upload:{uploads.save_dataset(rows)}",
        "model_a": f"precomputed:{ref_a}",
        "model_b": f"precomputed:{ref_b}",
        "modality_a": "text",
        "modality_b": "text",
        "my_matrices": [ref_a, ref_b],
    }


def test_the_labels_service_matches_by_id_and_refuses_a_duplicate():
    from spec_app import services

    rows = rows_dataset("A.npy + B.npy", [str(i) for i in range(90)])
    labelled = services.data.with_row_labels(rows, "labels.csv", labels_table(90))
    assert labelled.labels[:3] == ("group0", "group0", "group0") and labelled.labels[-1] == ""
    assert any("10 row(s) have no row in labels.csv" in note for note in labelled.notes)
    assert any("2 id(s) of labels.csv name no row" in note for note in labelled.notes)
    with pytest.raises(DatasetError, match="row 3 repeats the id '0' of row 2"):
        services.data.with_row_labels(rows, "labels.csv", b"id,label\n0,a\n0,b\n")


def test_uploaded_pair_is_called_embeddings_by_file_name_and_keeps_its_labels():
    settings = uploaded_pair()
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in settings.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = " ".join(safe.unescape(c.value) for c in at.caption).replace(safe.ZWSP, "")
    assert "A = A.npy (uploaded) (embeddings) · B = B.npy (uploaded) (embeddings)" in captions
    assert "uploaded embedding: one vector per row" in captions  # the sidebar, per side
    assert not [s for s in at.selectbox if "embeds the" in s.label]
    assert "(texts)" not in captions and "precomputed" not in captions
    model_pickers = [s for s in at.selectbox if s.label in ("Model A", "Model B")]
    assert [s.format_func(s.value) for s in model_pickers] == [
        "A.npy (uploaded)",
        "B.npy (uploaded)",
    ]

    at.switch_page("spec_app/pages/data.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.columns) == ["id", "label"]  # the id once, no "text" repeating it
    assert list(table["id"][:2]) == ["0", "1"] and list(table["label"][:2]) == ["group0"] * 2
    notes = " ".join(safe.unescape(i.value) for i in at.info)
    assert "2 id(s) of labels.csv name no row" in notes


def test_progress_names_an_uploaded_embedding_by_its_file(monkeypatch):
    """The bars while a comparison runs say "model A: A.npy (uploaded)", never the
    upload's reference ("precomputed:a423025a...")."""
    import streamlit

    shown = []
    original = streamlit.progress

    def recording(value, text=None, **kwargs):
        shown.append(text)
        return original(value, text=text, **kwargs)

    monkeypatch.setattr(streamlit, "progress", recording)
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in uploaded_pair().items():
        at.session_state[key] = value
    at.run()
    assert not at.exception and not at.error
    bars = [text for text in shown if text and text.startswith("model")]
    assert [safe.unescape(text) for text in bars] == [
        "model A: A.npy (uploaded)",
        "model B: B.npy (uploaded)",
    ]
