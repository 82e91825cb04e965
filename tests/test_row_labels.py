"""Labels (and captions) for the rows of two uploaded matrices, matched by id (issue 22)."""

from __future__ import annotations

import json

import pytest

from spec_core.data.dataset_types import fingerprint_rows
from spec_core.data.datasets import DatasetError, rows_dataset
from spec_core.data.row_labels import attach_row_labels, read_row_labels
from spec_core.export.tables import rows_table


def _rows(n=6):
    return rows_dataset("A.npy + B.npy", [f"r{i}" for i in range(n)])


def test_labels_by_id_in_any_order_rows_not_named_get_none_and_unused_ids_counted():
    table = b"id,label\nr3,cats\nr0,dogs\nzz,birds\nyy,fish\n"
    dataset = attach_row_labels(_rows(), read_row_labels(("labels.csv", table)))
    assert dataset.labels == ("dogs", "", "", "cats", "", "")
    assert dataset.texts == dataset.ids  # no captions: the ids stay the rows' texts
    assert dataset.fingerprints == _rows().fingerprints  # the matrices stay this dataset's
    notes = " | ".join(dataset.notes)
    assert "4 row(s) have no row in labels.csv" in notes
    assert "2 id(s) of labels.csv name no row" in notes and "'zz'" in notes


def test_tsv_and_jsonl_with_captions_give_texts_and_a_new_text_fingerprint():
    tsv = b"id\tlabel\tcaption\nr1\tx\ta red car\nr2\ty\t\n"
    dataset = attach_row_labels(_rows(3), read_row_labels(("t.tsv", tsv)))
    assert dataset.labels == ("", "x", "y")
    assert dataset.texts == ("r0", "a red car", "r2")  # no caption: the id stays
    expected = fingerprint_rows("text", zip(dataset.ids, ("r0", "a red car", "r2"), strict=True))
    assert dataset.fingerprints["text"] == expected
    assert (
        "Captions from t.tsv" in dataset.notes[0] and "no images or texts" not in dataset.notes[0]
    )
    lines = [{"id": "r0", "label": 7}, {"id": "r2", "label": "b"}]
    jsonl = "\n".join(json.dumps(x) for x in lines).encode()
    dataset = attach_row_labels(_rows(3), read_row_labels(("t.jsonl", jsonl)))
    assert dataset.labels == ("7", "", "b")


def test_duplicate_id_is_refused_naming_both_rows():
    table = b"id,label\nr0,a\nr1,b\nr0,c\n"
    with pytest.raises(DatasetError, match=r"labels\.csv: row 4 repeats the id 'r0' of row 2"):
        read_row_labels(("labels.csv", table))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("l.csv", b"name,label\na,b\n", "expected the columns id and label"),
        ("l.csv", b"id,colour\na,b\n", "expected the columns id and label"),
        ("l.txt", b"a\n", "must be .csv, .tsv or .jsonl"),
        ("l.csv", b"id,label\n", "has no rows"),
        ("l.jsonl", b'{"id": "r0", "label": "a"}\nnot json\n', "row 2 is not valid JSON"),
        ("l.csv", b"id,label\n,a\n", "row 2 has no id"),
    ],
)
def test_unusable_tables_are_refused_by_name(name, data, message):
    with pytest.raises(DatasetError, match=message) as err:
        read_row_labels((name, data))
    assert str(err.value).startswith(name)


def test_a_table_naming_no_row_is_refused_with_the_rows_ids():
    with pytest.raises(DatasetError, match=r"none of its 1 ids names a row.*'r0'"):
        attach_row_labels(_rows(), read_row_labels(("l.csv", b"id,label\n7,a\n")))


def test_rows_on_their_own_show_the_id_once():
    dataset = _rows(3)
    assert dataset.texts_are_ids
    assert rows_table(dataset, [1]) == [{"row": 1, "id": "r1"}]
    labelled = attach_row_labels(dataset, read_row_labels(("l.csv", b"id,caption\nr1,hi\n")))
    assert not labelled.texts_are_ids
    assert rows_table(labelled, [1]) == [{"row": 1, "id": "r1", "text": "hi"}]
