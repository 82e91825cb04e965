"""The model map's exports (spec_core.export.matrix): the CSV holds the matrix, the JSON is strict,
the HTML section and its SVGs escape every user string, and the map's names stay apart and
inside their box."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

from spec_core import compare_many
from spec_core.engine.synthetic import merged_pair
from spec_core.export.matrix import (
    CHAR_PX,
    LINE_PX,
    map_svg,
    matrix_csv,
    matrix_json,
    matrix_report,
    matrix_svg,
    overview_svg,
    strongest_words,
)
from spec_core.export.report import ReportContext, html_report

EVIL = "<img src=https://evil.example/x>"


@pytest.fixture(scope="module")
def four():
    """Four models of 240 rows: A with 6 groups, B merging pairs of them, C and D (hostile
    names) nearly copies of B, so that their points and names on the map would overlap."""
    a, b, labels = merged_pair(n=240, dim=8, groups=6, merged=2, seed=3)
    rng = np.random.default_rng(0)
    near = [b + 1e-3 * rng.normal(size=b.shape) for _ in range(2)]
    embeddings = {"alpha": a, "beta": b, f"{EVIL} one": near[0], f"{EVIL} two": near[1]}
    labels = [f"{EVIL} {x}" for x in labels]
    return compare_many(embeddings, labels=labels, method="rff", n_features=80, n_modes=2), labels


def test_csv_is_the_matrix_in_the_names_order(four):
    many, _ = four
    rows = list(csv.reader(io.StringIO(matrix_csv(many))))
    assert rows[0][1:] == list(many.names)
    assert [row[0] for row in rows[1:]] == list(many.names)
    values = np.array([[float(x) for x in row[1:]] for row in rows[1:]])
    np.testing.assert_allclose(values, many.spec_diff, rtol=1e-12)
    assert values[0, 1] == many.pair("alpha", "beta").spec_diff


def test_json_is_strict_and_carries_the_inputs(four):
    many, _ = four
    text = matrix_json(many, inputs={"dataset": "demo"})
    data = json.loads(text, parse_constant=lambda c: 1 / 0)  # NaN or Infinity would raise
    assert data["names"] == list(many.names) and data["inputs"] == {"dataset": "demo"}
    np.testing.assert_allclose(data["spec_diff"], many.spec_diff, rtol=1e-12)


def test_strongest_words_name_each_direction(four):
    many, labels = four
    words = strongest_words(many, "alpha", "beta", labels=labels)
    mode = many.strongest("alpha", "beta")
    assert words.startswith(f"eigenvalue {mode.eigenvalue:+.4f} · ~{mode.size:.0f} rows")
    reverse = many.strongest("beta", "alpha")
    if reverse is not None:  # B's direction: a negative eigenvalue of the pair (alpha, beta)
        assert strongest_words(many, "beta", "alpha").startswith(
            f"eigenvalue {reverse.eigenvalue:+.4f}"
        )


def test_report_section_escapes_every_user_string(four):
    many, labels = four
    page = matrix_report(many, dataset_name=EVIL, labels=labels)
    assert "evil.example" in page  # shown, as text
    assert "<img" not in page and "&lt;img" in page
    assert page.count("<tr>") == 1 + len(many.pairs)  # the header and one row per pair
    for svg in (matrix_svg(many), map_svg(many), overview_svg(many)):
        assert "<img" not in svg and svg.startswith("<svg") and svg.endswith("</svg>")


def test_the_pair_report_gains_the_matrix_section(four):
    many, labels = four
    result = many.pair("alpha", "beta")
    ctx = ReportContext(
        dataset_name="d", fingerprint="f" * 16, model_a="alpha", model_b="beta",
        ids=[str(i) for i in range(240)], labels=labels, texts=None,
    )  # fmt: skip
    assert "<h2>Model map</h2>" not in html_report(result, ctx)
    page = html_report(result, ctx, model_map=many)
    assert page.count("<h2>Model map</h2>") == 1 and "<img" not in page


def label_boxes(svg: str) -> list[tuple[float, float, float, str]]:
    """(left, right, baseline, text) of each model's name on the map, from its anchor."""
    boxes = []
    pattern = r'<text x="([\d.-]+)" y="([\d.-]+)" text-anchor="(start|end)">([^<]*)</text>'
    for x, y, anchor, text in re.findall(pattern, svg):
        wide = CHAR_PX * len(text.replace("&lt;", "<").replace("&gt;", ">"))
        left = float(x) if anchor == "start" else float(x) - wide
        boxes.append((left, left + wide, float(y), text))
    return boxes


def test_map_names_stay_apart_and_inside(four):
    many, _ = four
    width, height = 420, 320
    svg = map_svg(many, width=width, height=height)
    boxes = label_boxes(svg)
    assert len(boxes) == len(many.names)
    for i, (left, right, baseline, _) in enumerate(boxes):
        assert left >= 0 and right <= width and 0 < baseline <= height - 24
        for other in boxes[i + 1 :]:
            overlap_x = left < other[1] and other[0] < right
            assert not (overlap_x and abs(baseline - other[2]) < LINE_PX), (boxes[i], other)
    # the near copies of beta sit on one spot: a name moved off it gets a line to its point
    assert 'stroke="#bbb"' in svg


def test_matrix_svg_is_wide_enough_for_its_names(four):
    many, _ = four
    svg = matrix_svg(many)
    width = float(re.search(r'width="([\d.]+)"', svg).group(1))
    longest = max(min(len(name), 28) for name in many.names)  # names past 28 are cut short
    cells = re.findall(r'<rect x="(\d+)" y="\d+" width="(\d+)"', svg)
    right_edge = max(int(x) + int(w) for x, w in cells)
    # the last column's name, rotated by 40 degrees, ends ~0.77 of its width to the right
    assert width >= right_edge - 29 + 0.7 * CHAR_PX * longest
