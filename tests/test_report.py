"""Exports carry each mode's evidence, and user text stays text."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
from conftest import planted

from spec_core import compare
from spec_core.report import ReportContext, html_report, modes_csv, modes_json

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
