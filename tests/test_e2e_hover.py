"""Hover cards in a real headless Chromium (issue 20): hovering a point of the demo's UMAP shows
that row's thumbnail beside the pointer, and hovering a bar of the spectrum its mode's strongest
members. Screenshots go to $SPEC_HOVER_SHOTS (default /tmp/link20/)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_e2e import SLOW, browser, page, server, wait_idle  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("SPEC_HOVER_SHOTS", "/tmp/link20"))
BASELINE = "model_a=pixels-16&model_b=char-ngrams"


def point_with_a_card(tab, wanted: str):
    """The page position (and row) of a point of the first chart whose card satisfies the JS
    expression `wanted` (of `card`), from Plotly's own axes; members first (drawn on top)."""
    return tab.evaluate(
        """(wanted) => {
        const chart = document.querySelectorAll('.js-plotly-plot')[0];
        const cards = (window.__specHover || {}).rows || {};
        const test = new Function('card', 'return ' + wanted);
        const area = chart.querySelector('.nsewdrag').getBoundingClientRect();
        const xa = chart._fullLayout.xaxis, ya = chart._fullLayout.yaxis;
        const data = chart._fullData;
        const traces = data.filter((t) => t.name === 'members')
            .concat(data.filter((t) => t.name !== 'members'));
        for (const trace of traces) {
            for (let i = 0; i < trace.x.length; i++) {
                const card = cards[String(trace.customdata[i])];
                if (card && test(card)) {
                    const x = area.left + xa.l2p(trace.x[i]), y = area.top + ya.l2p(trace.y[i]);
                    return {x, y, row: trace.customdata[i]};
                }
            }
        }
        return null;
    }""",
        wanted,
    )


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
    point = point_with_a_card(page, "Boolean(card.img)")
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


def test_a_hostile_text_is_shown_as_text_in_its_card(server, page):  # noqa: F811
    """Texts a user uploaded reach the card as text: no element, no script, no request."""
    evil = "<img src=x onerror=window.__pwned=1><b>bold</b>"
    rows = ["id,text"] + [f'r{i},"{evil} apple pie {i}"' for i in range(15)]
    rows += [f"s{i},zebra crossing the road {i}" for i in range(15)]
    page.goto(server + "/data")
    page.get_by_text("Upload texts").first.click(timeout=120_000)
    page.locator("input[type='file']").first.set_input_files(
        files=[{"name": "evil.csv", "mimeType": "text/csv", "buffer": "\n".join(rows).encode()}]
    )
    page.get_by_role("button", name="Use these texts").click(timeout=60_000)
    page.wait_for_url(lambda url: "data=upload" in url, timeout=60_000)
    data = re.search(r"data=(upload[^&]+)", page.url).group(1)
    models = "model_a=char-ngrams&modality_a=text&model_b=char-ngrams&modality_b=text"
    models += "&sigma_a=0.3&sigma_b=3"  # one model at two scales: a spectrum with modes
    page.goto(f"{server}/umap?data={data}&{models}")
    page.get_by_text("B: char-ngrams (UMAP)").wait_for(timeout=SLOW)
    wait_idle(page)
    page.wait_for_function("() => window.__specHover && window.__specHoverInstalled")
    point = point_with_a_card(page, "card.text.includes('<img')")
    assert point is not None
    hover_at(page, point["x"], point["y"])
    card = page.locator(CARD)
    card.wait_for(state="visible", timeout=10_000)
    text = card.inner_text()
    assert evil in text  # the text itself, as text
    assert card.locator("img, b, script").count() == 0  # no element made of a text
    assert page.evaluate("() => window.__pwned") is None
    page.screenshot(path=str(SHOTS / "hostile_text_hover.png"))
