"""The whole state in the link, in a real browser (issue 20): a bar clicked on the Spectrum page
is in the address bar at once, and a teammate's browser opening that address sees the same
selected cluster. (A click on a Plotly bar cannot be made under AppTest.)"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from test_e2e import (  # noqa: F401 (fixtures)
    SLOW,
    Foreign,
    browser,
    page,
    server,
    visible_text,
    wait_idle,
    wait_rendered,
)

pytestmark = pytest.mark.e2e


def test_a_clicked_bar_is_in_the_link_and_opens_for_a_teammate(server, browser, page):  # noqa: F811
    page.goto(f"{server}/?model_a=pixels-16&model_b=char-ngrams")
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    wait_idle(page)
    bars = page.locator(".js-plotly-plot .bars path")
    bars.nth(2).click(force=True)  # A-not-B #3
    page.get_by_text("A-not-B #3: the bar you clicked").wait_for(timeout=60_000)
    page.wait_for_url(re.compile(r"mode=A-not-B"), timeout=10_000)
    assert parse_qs(urlparse(page.url).query)["mode"] == ["A-not-B #3"]
    # the Share box has it too (written before the run, by the click's callback)
    page.get_by_role("button", name=re.compile("Share")).click()
    shared = page.locator("[data-testid='stCode']").filter(has_text="mode=").first
    shared.wait_for(timeout=10_000)
    assert "mode=A-not-B+%233" in shared.inner_text()

    teammate = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        teammate.goto(page.url)
        teammate.get_by_text("A-not-B #3: the bar you clicked").wait_for(timeout=SLOW)
        wait_idle(teammate)
        teammate.get_by_role("link", name="Clusters").click()
        teammate.get_by_text("A-not-B #3 · ").first.wait_for(timeout=60_000)
    finally:
        teammate.context.close()


HOSTILE_VIEW = [
    "mode=<img src=x onerror=alert(1)>&umap_find=" + "x" * 10_000,
    "mode=A-not-B%20%239999&align_steps=1e308&align_val=nan&umap_row=99999",
    "members=1e999&rank_page=%F0%9F%92%A9&umap_colour=%E2%80%AE&umap_row=-1",
    "mode=[evil](https://evil.example)&align_direction=x&align_direction=a_to_b",
]


@pytest.mark.parametrize("query", HOSTILE_VIEW)
def test_hostile_view_links_cannot_inject_or_break_a_page(server, page, query):  # noqa: F811
    foreign = Foreign(page, server)
    page.goto(f"{server}/?model_a=pixels-16&model_b=char-ngrams&{query}")
    wait_rendered(page)
    assert "adjusted" in visible_text(page)  # the notes say what was ignored or clamped
    for link, heading in (("UMAP", "UMAP"), ("Align", "Align"), ("Clusters", "Clusters")):
        page.get_by_role("link", name=link).click()
        page.get_by_role("heading", name=heading).wait_for(timeout=SLOW)
        wait_idle(page)
        assert page.locator("[data-testid='stException']").count() == 0, link
        assert "Traceback" not in visible_text(page)
        assert page.locator("a[href*='evil'], img[src*='evil'], img[src='x']").count() == 0
        assert foreign.found() == [], link
