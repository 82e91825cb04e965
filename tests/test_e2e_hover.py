"""Hover cards in a real headless Chromium (issue 20): hovering a point of the demo's UMAP shows
that row's thumbnail beside the pointer, and hovering a bar of the spectrum its mode's strongest
members. Screenshots go to $SPEC_HOVER_SHOTS (default /tmp/link20/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_e2e import SLOW, browser, page, server, wait_idle  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("SPEC_HOVER_SHOTS", "/tmp/link20"))
BASELINE = "model_a=pixels-16&model_b=char-ngrams"

#: The page position of a point of the first chart that has a card with an image: a member of
#: the mode (drawn on top, larger), from Plotly's own axes.
POINT_WITH_A_CARD = """() => {
    const chart = document.querySelectorAll('.js-plotly-plot')[0];
    const cards = (window.__specHover || {}).rows || {};
    const area = chart.querySelector('.nsewdrag').getBoundingClientRect();
    const xa = chart._fullLayout.xaxis, ya = chart._fullLayout.yaxis;
    const traces = chart._fullData.filter((t) => t.name === 'members');
    for (const trace of traces) {
        for (let i = 0; i < trace.x.length; i++) {
            const row = String(trace.customdata[i]);
            if (cards[row] && cards[row].img) {
                return {x: area.left + xa.l2p(trace.x[i]), y: area.top + ya.l2p(trace.y[i]), row};
            }
        }
    }
    return null;
}"""

CARD = "#spec-hover-card"


def hover_at(tab, x: float, y: float) -> None:
    """Move the pointer onto (x, y) as a person does (Plotly hovers on pointer moves)."""
    tab.mouse.move(x - 30, y - 30)
    tab.mouse.move(x, y, steps=6)


def test_hovering_a_umap_point_shows_its_thumbnail(server, page):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server}/umap?{BASELINE}&mode=A-not-B+%231")
    page.get_by_text("B: char-ngrams (UMAP)").wait_for(timeout=SLOW)
    wait_idle(page)
    page.wait_for_function("() => window.__specHover && window.__specHoverInstalled")
    point = page.evaluate(POINT_WITH_A_CARD)
    assert point is not None
    hover_at(page, point["x"], point["y"])
    card = page.locator(CARD)
    card.wait_for(state="visible", timeout=10_000)
    image = card.locator("img")
    assert image.count() == 1
    assert image.get_attribute("src").startswith("data:image/jpeg;base64,")
    size = image.evaluate("(img) => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert size[0] and 0 < max(size[1:]) <= 64  # a decoded image, at most 64 px a side
    assert card.inner_text().split(":")[0].strip().isdigit()  # "ROW: caption · label"
    page.screenshot(path=str(SHOTS / "umap_hover.png"))
    page.mouse.move(5, 5)  # off the chart: the card goes
    card.wait_for(state="hidden", timeout=10_000)


def test_hovering_a_bar_shows_its_modes_strongest_members(server, page):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server}/?{BASELINE}")
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    wait_idle(page)
    page.wait_for_function("() => window.__specHover && window.__specHoverInstalled")
    bar = page.locator(".js-plotly-plot .bars path").first
    box = bar.bounding_box()
    hover_at(page, box["x"] + box["width"] / 2, box["y"] + min(box["height"] / 2, 20))
    card = page.locator(CARD)
    card.wait_for(state="visible", timeout=10_000)
    assert "A-not-B #1: strongest members" in card.inner_text()
    images = card.locator("img")
    assert 1 <= images.count() <= 4
    page.screenshot(path=str(SHOTS / "spectrum_hover.png"))
