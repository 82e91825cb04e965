"""An adapter's training outlives the page (issue 20): press Train on the Align page, leave for
the Spectrum page while it trains, come back: the page shows the training's progress or its
result, without a second press of Train."""

from __future__ import annotations

import pytest
from test_e2e import SLOW, browser, page, server, visible_text, wait_idle  # noqa: F401

pytestmark = pytest.mark.e2e


def test_a_training_survives_leaving_the_page(server, page):  # noqa: F811
    # the link sets the Align page's controls: many steps, so that the training lasts
    page.goto(f"{server}/align?model_a=pixels-16&model_b=char-ngrams&align_steps=5000")
    page.get_by_text("to fit the adapter").wait_for(timeout=SLOW)
    wait_idle(page)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("training the adapter").first.wait_for(timeout=60_000)  # its progress bar
    page.get_by_role("link", name="Spectrum").click()  # leave while it trains
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    assert "training the adapter" not in visible_text(page)
    page.get_by_role("link", name="Align").click()
    page.get_by_text("was aligned to").first.wait_for(timeout=SLOW)  # no second Train
    wait_idle(page)
    assert "to fit the adapter" not in visible_text(page)
    assert page.locator("[data-testid='stException']").count() == 0
