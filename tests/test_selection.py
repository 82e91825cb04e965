"""Rows picked by a user: rankings, nearest neighbours, search, tables and CSV."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from spec_core.data.text_sets import load_texts
from spec_core.engine.selection import nearest, ranked_rows, search
from spec_core.export.tables import rows_table, to_csv


def test_ranked_rows_is_every_row_by_score():
    scores = np.array([0.1, 0.5, -0.2, 0.5, 0.0])
    assert ranked_rows(scores).tolist() == [1, 3, 0, 4, 2]  # ties keep row order


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_matches_a_direct_computation(metric):
    x = np.random.default_rng(3).normal(size=(200, 7)).astype(np.float32)
    row, k = 17, 9
    if metric == "euclidean":
        direct = np.sqrt(((x.astype(np.float64) - x[row]) ** 2).sum(1))
    else:
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        direct = 1 - unit.astype(np.float64) @ unit[row]
    direct[row] = np.inf
    expected = np.argsort(direct, kind="stable")[:k]
    rows, distances = nearest(x, row, k, metric=metric)
    assert rows.tolist() == expected.tolist() and row not in rows
    np.testing.assert_allclose(distances, direct[expected], rtol=1e-5, atol=1e-6)


def test_nearest_edges():
    x = np.zeros((3, 2), np.float32)
    assert nearest(x, 0, 10)[0].tolist() == [1, 2]  # k capped by the rows, ties by row
    with pytest.raises(ValueError, match="row 3 is not a row"):
        nearest(x, 3, 1)
    with pytest.raises(ValueError, match="metric='manhattan'"):
        nearest(x, 0, 1, metric="manhattan")


def test_search_texts_and_ids():
    data = load_texts(("t.csv", b"id,text\nA1,Red Apple\nB2,green pear\nC3,apple pie\n"))
    assert search("APPLE", data.ids, data.texts) == [0, 2]
    assert search("b2", data.ids, data.texts) == [1]
    assert search("  ", data.ids, data.texts) == []
    assert search("e", data.ids, data.texts, limit=2) == [0, 1]


def test_rows_table_and_csv_guard_formulas():
    data = load_texts(
        ("t.csv", b'id,text,label\nr1,=HYPERLINK("http://evil.example"),x\nr2,fine,+1\n')
    )
    table = rows_table(data, [1, 0], scores=[0.5, -0.25])
    assert table[0] == {"row": 1, "id": "r2", "score": 0.5, "text": "fine", "label": "+1"}
    parsed = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert parsed[1]["text"] == '\'=HYPERLINK("http://evil.example")'
    assert parsed[0]["label"] == "'+1" and parsed[1]["score"] == "-0.25"
    assert to_csv([]) == "row\r\n"


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_quotes_every_hostile_prefix_and_keeps_numbers(prefix):
    records = [
        {"row": 0, "id": f"{prefix}1+1", "score": -0.25, "text": f"{prefix}cmd", "label": "ok"},
        {"row": 1, "id": "plain", "score": 2.0, "text": "a - b", "label": f"{prefix}x"},
    ]
    parsed = list(csv.DictReader(io.StringIO(to_csv(records), newline="")))
    assert parsed[0] == {
        "row": "0", "id": f"'{prefix}1+1", "score": "-0.25", "text": f"'{prefix}cmd", "label": "ok"
    }  # fmt: skip
    assert parsed[1] == {
        "row": "1", "id": "plain", "score": "2.0", "text": "a - b", "label": f"'{prefix}x"
    }  # fmt: skip
