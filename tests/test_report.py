"""Exports carry each mode's evidence, and user text stays text."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from conftest import planted

from spec_core import compare
from spec_core.export.report import ReportContext, html_report, modes_csv, modes_json

N = 200


def _result_and_context(label="group"):
    a, b = planted(N, {range(10, 40): 0.8}, {range(60, 80): 0.9})
    labels = [label if 10 <= i < 40 else "rest" for i in range(N)]
    result = compare(a, b, sigma_a=1.0, sigma_b=1.0, n_modes=2, top_k=30, labels=labels)
    ctx = ReportContext(
        dataset_name="planted",
        fingerprint="f" * 16,
        model_a="model <a>",
        model_b="model b",
        ids=[f"row{i}" for i in range(N)],
        labels=labels,
        texts=[f"text {i}" for i in range(N)],
    )
    return result, ctx


def test_csv_and_json_carry_the_evidence():
    result, ctx = _result_and_context()
    rows = list(csv.DictReader(io.StringIO(modes_csv(result, ctx))))
    first = rows[0]
    assert {"size", "contrast_a", "contrast_b", "stability", "purity", "weak"} <= first.keys()
    top = result.modes_for("A")[0]
    assert float(first["size"]) == round(top.size, 2)
    assert float(first["contrast_a"]) == round(top.contrast["a"], 4)
    payload = json.loads(modes_json(result, ctx), parse_constant=lambda c: 1 / 0)
    for mode in payload["modes"]:
        assert {"size", "contrast", "stability", "purity", "weak_reasons"} <= mode.keys()
        assert len(mode["ids"]) == len(mode["members"])


def test_html_report_shows_evidence_and_escapes_user_text():
    result, ctx = _result_and_context(label="<img src=https://evil.example/x>")
    html = html_report(result, ctx)
    top = result.modes_for("A")[0]
    assert (
        top.evidence_line("model <a>", "model b", result.params.n_resamples)
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        in html
    )
    assert "<img src=https://evil.example" not in html
    assert "&lt;img src=https://evil.example/x&gt;" in html
    for mode in result.modes:
        if mode.weak:
            assert f"{mode.label}: eigenvalue {mode.eigenvalue:+.4g} (weak: " in html
        else:
            assert f"{mode.label}: eigenvalue {mode.eigenvalue:+.4g}</h3>" in html
    assert np.isfinite(result.spec_diff)


#: Every start that OWASP lists for CSV injection, as user text.
HOSTILE = ["=L8", "+1+1", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"]


def _hostile_context():
    """Ids and texts that start with every hostile prefix, and the planted A group's and B
    group's labels hostile too (so both modes' majority labels are)."""
    a, b = planted(N, {range(10, 40): 0.8}, {range(60, 80): 0.9})
    labels = ["=L8" if 10 <= i < 40 else "-2+3" if 60 <= i < 80 else "rest" for i in range(N)]
    result = compare(a, b, sigma_a=1.0, sigma_b=1.0, n_modes=2, top_k=30, labels=labels)
    ctx = ReportContext(
        dataset_name="planted",
        fingerprint="f" * 16,
        model_a="a",
        model_b="b",
        ids=[f"{HOSTILE[i % len(HOSTILE)]}id{i}" for i in range(N)],
        labels=labels,
        texts=[f"{HOSTILE[(i + 1) % len(HOSTILE)]} text {i}" for i in range(N)],
    )
    return result, ctx


def test_modes_csv_writes_hostile_text_as_text_and_numbers_as_numbers():
    result, ctx = _hostile_context()
    rows = list(csv.DictReader(io.StringIO(modes_csv(result, ctx), newline="")))
    assert rows
    for row in rows:
        i = int(row["row"])
        assert row["id"] == "'" + ctx.ids[i]
        assert row["text"] == "'" + ctx.texts[i]
        assert row["label"] == (ctx.labels[i] if ctx.labels[i] == "rest" else "'" + ctx.labels[i])
    majority = {row["mode"]: row["majority_label"] for row in rows}
    top_a, top_b = result.modes_for("A")[0].label, result.modes_for("B")[0].label
    assert (majority[top_a], majority[top_b]) == ("'=L8", "'-2+3")  # the planted groups' labels
    seen = {cell[1] for row in rows for cell in (row["id"], row["text"])}
    assert seen == {p[0] for p in HOSTILE}  # every prefix went through
    # numbers the code computed stay numbers: B's eigenvalues are negative and unquoted
    b_rows = [row for row in rows if row["direction"] == "B"]
    assert b_rows and all(float(row["eigenvalue"]) < 0 for row in b_rows)
    by_label = {mode.label: mode.eigenvalue for mode in result.modes}
    assert all(float(row["eigenvalue"]) == by_label[row["mode"]] for row in rows)
    assert all(float(row["score"]) == float(row["score"].strip()) for row in rows)


def test_modes_csv_and_the_clusters_csv_are_one_writer():
    from spec_core.export.report import modes_table
    from spec_core.export.tables import records_csv, to_csv

    result, ctx = _hostile_context()
    table = modes_table(result, ctx)
    assert modes_csv(result, ctx) == records_csv(table) == to_csv(table)


# a formula sign after white space or invisible characters that an importer may trim or drop
HIDDEN_FORMULAS = [
    " =1+1",
    "\n=2+2",
    "\u00a0=8+8",
    "\ufeff=1+1",
    "\u200b=1+1",
    "\uff1d3+3",
    "\uff0b3",
    "\uff0d3",
    "\uff20SUM(A1)",
    " \u200b\ufeff\r\n\t\u3000-2+3",
    "\ufe66HYPERLINK()",
]


@pytest.mark.parametrize("cell", HIDDEN_FORMULAS)
def test_a_formula_behind_white_space_or_invisible_characters_is_text(cell):
    from spec_core.export.tables import records_csv, safe_cell

    assert safe_cell(cell) == "'" + cell
    written = next(csv.DictReader(io.StringIO(records_csv([{"id": cell}]))))
    assert written["id"] == "'" + cell


def test_the_formula_signs_are_what_compatibility_folding_makes_a_formula_sign():
    """Every character NFKC folds to = + - @ (derived here from the Unicode tables) is a sign;
    text that only has a sign later, or nothing but white space, stays as it is."""
    import unicodedata

    from spec_core.export.tables import FORMULA_SIGNS, safe_cell

    folded = {chr(c) for c in range(0x110000) if unicodedata.normalize("NFKC", chr(c)) in "=+-@"}
    assert folded == FORMULA_SIGNS
    for cell in ("a=b", " x=1", "\u00a0", " ", "", "\u200b", "1-2", "\u2212 1"):
        assert safe_cell(cell) == cell
