"""Hover cards (issue 20): which rows get a card, what a card holds, and that nothing a user
supplied can become HTML or end the script that carries the cards. The browser test that
hovers a point is in tests/test_e2e_hover.py."""

from __future__ import annotations

import base64
import io
import json
import re
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest
from conftest import png_bytes
from PIL import Image

from spec_app import hover

HOSTILE = '</script><script>alert(1)</script><img src=x onerror=alert(2)> & \u2028 "q" \\'


class Rows(SimpleNamespace):
    def fingerprint(self, modality: str) -> str:  # what names the rows' images in a cache
        return f"{modality}:" + "|".join(self.image_paths or self.ids)

    def __len__(self):
        return len(self.ids)


def text_set(lines, labels=None):
    return Rows(
        kind="text",
        ids=tuple(f"id{i}" for i in range(len(lines))),
        texts=tuple(lines),
        labels=labels,
        image_paths=None,
    )


def test_every_row_has_a_card_up_to_the_limit():
    assert hover.card_rows(5) == [0, 1, 2, 3, 4]
    assert hover.card_rows(hover.MAX_ROWS) == list(range(hover.MAX_ROWS))


def test_beyond_the_limit_the_members_come_first_then_rows_spread_evenly():
    members = [99_999, 5, 5, 70_000, -1, 10**9]  # a repeat and rows out of range too
    rows = hover.card_rows(100_000, members, limit=50)
    assert len(rows) == 50 == len(set(rows))
    assert rows[:3] == [99_999, 5, 70_000]
    assert all(0 <= r < 100_000 for r in rows)
    rest = sorted(rows[3:])
    gaps = np.diff(rest)
    assert gaps.min() > 100_000 / 50 / 2  # spread over the whole dataset, not bunched
    assert rest[0] == 0 or rest[0] < 100_000 / 50


def test_a_card_holds_plain_text_bounded_and_on_one_line():
    lines = ["first\nsecond\tthird", "x" * 5000, HOSTILE]
    cards = hover.row_cards(text_set(lines, labels=["a", "b" * 500, "c"]))
    assert cards["0"] == {"text": "0: first second third", "label": "a"}
    assert len(cards["1"]["text"]) == hover.SNIPPET and cards["1"]["text"].endswith("…")
    assert len(cards["1"]["label"]) == 60
    assert "img" not in cards["2"]  # a text set has no images
    spoof = hover.row_cards(text_set(["abc\u202edef\x00g\u2066h"]))["0"]["text"]
    assert spoof == "0: abc\ufffddef\ufffdg\ufffdh"  # nothing reorders or hides the text


def test_the_payload_cannot_end_its_script_or_become_html():
    cards = hover.row_cards(text_set([HOSTILE] * 3))
    shown = []

    class Frame:
        @staticmethod
        def iframe(html, height):
            shown.append(html)

    original = hover.st
    hover.st = Frame
    try:
        hover.attach(rows=cards, modes={"A-not-B #1": {"title": HOSTILE, "members": []}})
    finally:
        hover.st = original
    (html,) = shown
    data = re.search(r"host\.__specHover = (.*);\nif", html).group(1)
    assert "<" not in data and ">" not in data and "&" not in data and "\u2028" not in data
    assert json.loads(data)["rows"]["0"]["text"] == hover.snippet(f"0: {HOSTILE}")
    assert json.loads(data)["modes"]["A-not-B #1"]["title"] == HOSTILE
    assert html.count("</script>") == 2  # the page's script and the frame's, nothing more
    assert "innerHTML" not in html and "textContent" in html  # text is set as text


def test_an_image_card_is_a_small_jpeg_of_that_image(tmp_path):
    path = tmp_path / "big.png"
    pixels = (np.random.default_rng(3).random((300, 200, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    (tmp_path / "small.png").write_bytes(png_bytes(seed=1, size=8))
    images = Rows(
        kind="image",
        ids=("big.png", "small.png", "gone.png"),
        texts=None,
        labels=None,
        image_paths=(str(path), str(tmp_path / "small.png"), str(tmp_path / "gone.png")),
    )
    cards = hover.row_cards(images)
    prefix = "data:image/jpeg;base64,"
    thumb = Image.open(io.BytesIO(base64.b64decode(cards["0"]["img"].removeprefix(prefix))))
    assert thumb.format == "JPEG" and max(thumb.size) == hover.THUMB_PX
    assert thumb.size == (43, 64)  # the aspect kept (200 x 300)
    # the thumbnail is the image: its mean colour within JPEG's error of the original's
    original = Image.open(path).resize(thumb.size).convert("RGB")
    assert (
        np.abs(np.asarray(thumb, float).mean((0, 1)) - np.asarray(original).mean((0, 1))).max() < 8
    )
    small = Image.open(io.BytesIO(base64.b64decode(cards["1"]["img"].removeprefix(prefix))))
    assert small.size == (8, 8)  # never enlarged
    assert cards["2"]["img"] is None and cards["2"]["text"] == "2: gone.png"


def test_a_bar_card_holds_the_modes_strongest_members():
    data = text_set([f"text {i}" for i in range(10)])
    mode = SimpleNamespace(label="B-not-A #2", members=np.array([7, 3, 9, 1, 0, 2]))
    cards = hover.mode_cards(data, [mode])
    card = cards["B-not-A #2"]
    assert card["title"] == "B-not-A #2: strongest members"
    assert [m["text"] for m in card["members"]] == [
        "7: text 7",
        "3: text 3",
        "9: text 9",
        "1: text 1",
    ]


def test_mark_names_the_kind_and_refuses_others():
    figure = hover.mark(go.Figure(), "rows")
    assert figure.layout.meta == "spec-hover:rows"
    with pytest.raises(ValueError, match="'rows' or 'modes', not 'points'"):
        hover.mark(go.Figure(), "points")


def cards_of(at) -> dict:
    """The cards the page hands to the browser (its hover frame's data)."""
    (frame,) = [f for f in at.get("iframe") if "__specHover" in f.proto.srcdoc]
    return json.loads(re.search(r"host\.__specHover = (.*);\nif", frame.proto.srcdoc).group(1))


@pytest.mark.app
def test_the_pages_hand_their_charts_cards_of_the_demo():
    from test_app_link import assert_clean, fresh

    at = fresh(selected_mode="A-not-B #1")
    assert_clean(at)
    modes = cards_of(at)["modes"]
    (chart,) = at.get("plotly_chart")
    assert '"meta":"spec-hover:modes"' in chart.proto.spec.replace(" ", "")
    assert "A-not-B #1" in modes and "B-not-A #1" in modes
    for card in modes.values():
        assert 1 <= len(card["members"]) <= hover.MEMBERS
        assert all(m["img"].startswith("data:image/jpeg;base64,") for m in card["members"])

    at.switch_page("spec_app/pages/umap.py").run()
    assert_clean(at)
    rows = cards_of(at)["rows"]
    assert sorted(map(int, rows)) == list(range(540))  # the demo: every row has its card
    assert all(card["img"].startswith("data:image/jpeg;base64,") for card in rows.values())
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert all('"meta":"spec-hover:rows"' in c.proto.spec.replace(" ", "") for c in charts)
