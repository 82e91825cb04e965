"""Hover cards on the wire: the bytes the browser receives over streamlit's websocket on the
demo's UMAP page (baseline models), for the first load, a rerun that keeps the cards (a search
typed) and a rerun that changes them (another mode). Streamlit sends an element it sent before
by reference (its message cache, for messages of 10 kB or more), so a rerun with the same cards
should not carry their ~1.3 MB again.

    python benchmarks/bench_hover_wire.py

Needs Chromium and Playwright (as the browser tests); starts its own server on a free port with
a fresh cache folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_e2e import CHROMIUM, FLAGS, SLOW, start_server, stop_server, wait_idle  # noqa: E402


def main() -> None:
    from playwright.sync_api import sync_playwright

    received = {"bytes": 0}

    def count(ws) -> None:
        def add(payload) -> None:
            received["bytes"] += len(payload)

        ws.on("framereceived", add)

    with tempfile.TemporaryDirectory() as cache:
        proc, url = start_server(Path(cache))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("websocket", count)
                page.goto(f"{url}/umap?model_a=pixels-16&model_b=char-ngrams&mode=A-not-B+%231")
                page.get_by_text("B: char-ngrams (UMAP)").wait_for(timeout=SLOW)
                wait_idle(page)
                page.wait_for_function("() => window.__specHover !== undefined")
                steps = [("first load (both UMAPs computed)", received["bytes"])]

                received["bytes"] = 0
                box = page.get_by_label("Find rows (text, caption or id)", exact=True)
                box.fill("flag")
                box.press("Enter")
                page.get_by_text("row(s) found").wait_for(timeout=SLOW)
                wait_idle(page)
                steps.append(("rerun, same cards (a search)", received["bytes"]))

                received["bytes"] = 0
                page.get_by_label("Find rows (text, caption or id)", exact=True).fill("")
                page.get_by_label("Find rows (text, caption or id)", exact=True).press("Enter")
                wait_idle(page)
                steps.append(("rerun, same cards (search cleared)", received["bytes"]))
                frame = page.evaluate("() => JSON.stringify(window.__specHover).length")
                browser.close()
        finally:
            stop_server(proc)
    print(f"cards in the page: {frame:,} characters of JSON")
    for name, size in steps:
        print(f"{name:<40} {size:>12,} bytes received")


if __name__ == "__main__":
    main()
