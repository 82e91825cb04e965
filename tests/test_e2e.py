"""The main journeys in a real headless Chromium (Debian's package) against `streamlit run`.

Landing chart, a .zip of images uploaded and compared with two offline models, the cluster grid,
and the HTML report download. Skipped only where no Chromium is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SLOW = 300_000  # ms: the first comparison embeds the demo set with real models on 2 CPU cores

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cache: Path):
    """`streamlit run app.py` on a free local port; returns (process, url) once healthy."""
    port = free_port()
    env = {**os.environ, "SPEC_EXPLORER_CACHE": str(cache)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("streamlit did not start: " + proc.stdout.read().decode()[-2000:])


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, url = start_server(tmp_path_factory.mktemp("e2e-cache"))
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    yield page
    context.close()


def test_landing_shows_the_demo_spectrum(server, page):
    page.goto(server)
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    bars = page.locator(".js-plotly-plot .bars path")
    bars.first.wait_for(timeout=60_000)
    assert bars.count() >= 10  # both ends of the spectrum
    assert page.get_by_text("SPEC-diff").first.is_visible()
    assert page.get_by_text("A-not-B #1").first.is_visible()
    assert page.locator("[data-testid='stException']").count() == 0
    # clicking a bar selects its cluster on every page: the second most negative is B-not-A #2
    bars.nth(bars.count() - 2).click(force=True)
    page.wait_for_timeout(3000)
    page.get_by_role("link", name="Clusters").click()
    page.get_by_text("B-not-A #2 · eigenvalue").first.wait_for(timeout=60_000)
    # the settings form keeps its values across page switches (streamlit forgets undrawn
    # widgets' state unless the app writes it back)
    assert page.get_by_label("eta (weight of B)").input_value() == "1.00"
    # UMAP: a box selection in A lists its rows and rings them in B
    page.get_by_role("link", name="UMAP").click()
    page.get_by_text("A: efficientnet-lite0 (UMAP)").wait_for(timeout=SLOW)
    page.wait_for_timeout(2000)
    box = page.locator(".js-plotly-plot").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.8, steps=5)
    page.mouse.up()
    page.get_by_text("Selected in A:").wait_for(timeout=60_000)


def emoji_zip() -> bytes:
    images = sorted((ROOT / "assets" / "demo" / "emoji" / "images").glob("*.png"))[:40:2]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for path in images:
            archive.write(path, f"emoji/{path.name}")
        archive.writestr("emoji/broken.png", b"not an image")
        archive.writestr("../escape.png", images[0].read_bytes())
    return buf.getvalue()


def test_zip_upload_compare_clusters_and_report(server, page):
    page.goto(server + "/data")
    page.get_by_text("Upload images").first.click(timeout=120_000)
    page.locator("input[type='file']").first.set_input_files(
        files=[{"name": "emoji.zip", "mimeType": "application/zip", "buffer": emoji_zip()}]
    )
    page.get_by_role("button", name="Use these images").click(timeout=60_000)
    page.get_by_text("Current data: emoji.zip").wait_for(timeout=60_000)
    page.get_by_text("2 item(s) skipped").wait_for(timeout=10_000)
    page.get_by_text("unsafe path inside the archive").wait_for(timeout=10_000)
    page.get_by_text("not a recognised image format").wait_for(timeout=10_000)

    page.get_by_role("link", name="Spectrum").click()
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    assert page.get_by_text("A = efficientnet-lite0").first.is_visible()

    page.get_by_role("link", name="Clusters").click()
    page.get_by_text("Label make-up").or_(page.get_by_text("Members shown")).first.wait_for(
        timeout=SLOW
    )
    # the settings form keeps its values across page switches (streamlit forgets undrawn
    # widgets' state unless the app writes it back)
    assert page.get_by_label("eta (weight of B)").input_value() == "1.00"
    images = page.locator("[data-testid='stMain'] [data-testid='stImage'] img")
    images.first.wait_for(timeout=60_000)
    assert images.count() >= 6

    page.get_by_role("link", name="Export").click()
    button = page.get_by_role("button", name="HTML report")
    button.wait_for(timeout=SLOW)
    with page.expect_download(timeout=60_000) as info:
        button.click()
    report = Path(info.value.path()).read_text()
    assert "<svg" in report and "efficientnet-lite0" in report and "data:image/png" in report


def test_text_upload_with_column_picker(server, page):
    rows = ["id,body,topic"] + [f"r{i},a recipe for apple pie number {i},food" for i in range(15)]
    rows += [f"s{i},the zebra crossed the road {i},animals" for i in range(15)]
    page.goto(server + "/data")
    page.get_by_text("Upload texts").first.click(timeout=120_000)
    page.locator("input[type='file']").first.set_input_files(
        files=[{"name": "notes.csv", "mimeType": "text/csv", "buffer": "\n".join(rows).encode()}]
    )
    page.get_by_text("Text column").wait_for(timeout=60_000)
    assert page.get_by_label("Text column").input_value() == "body"  # not the id column
    assert page.get_by_label("Label column (optional)").input_value() == "(none)"
    page.get_by_role("button", name="Use these texts").click(timeout=60_000)
    page.get_by_text("Current data: notes.csv").wait_for(timeout=60_000)
    page.get_by_role("link", name="Spectrum").click()
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    assert page.get_by_text("A = minilm-l6").first.is_visible()


def test_deep_link_on_a_fresh_server_goes_through_the_router(browser, tmp_path):
    """Before any session has run app.py, streamlit serves /umap from the pages/ folder and its
    navigation lists raw file names; the app sends such a run through the router instead."""
    proc, url = start_server(tmp_path)
    try:
        page = browser.new_page()
        page.goto(url + "/umap")
        page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "UMAP" in nav and "Spectrum" in nav and "umap" not in nav.split()
        page.close()
    finally:
        stop_server(proc)
