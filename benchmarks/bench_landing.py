"""The app's cold landing on the built-in demo, and a warm re-run (issue 18, item 4).

What a new visitor of a freshly started server waits for, on the demo (540 emoji images and
their captions, the default models and settings), each landing in a fresh process:

1. Time to the first chart: from the process's start to the Spectrum page's spectrum chart
   (streamlit's AppTest, in-process: the moment the page hands the chart to streamlit), and
   the script run's end (cards and thumbnails included); where the time goes: the heavy imports
   (python -X importtime: torch, open_clip, sentence-transformers, umap, plotly, pandas, ...),
   the demo dataset, the embeddings (found or computed, read with their checksums verified),
   the SPEC solve (with its engine stages), the reference SPEC-diff, the cards' descriptions,
   the spectrum figure, the thumbnails, the memory release, and the rest (streamlit's
   elements, the sidebar).
2. Warm re-runs in the same session, as a user makes them in the sidebar: nothing changed; an
   edit not applied yet (a display-only rerun); the number of modes, then the bandwidth scale,
   applied with Compare (target < 1 s), each with its count of SPEC solves and reference solves
   and its time as a multiple of the solve's own; then a new session's landing on the same
   server (its result already in the store).
3. With --browser: the same landing through the real server (`streamlit run`) in headless
   Chromium: from the server's start to the chart's bars drawn, to the page done (images
   loaded), and from the Compare click (number of modes changed) to the run's end in the page.

The embedding cache is a private folder (--cache, default /tmp/spec-landing-$USER/cache); when
it lacks the demo's embeddings the first landing computes them: that is a truly cold start
(minutes on 2 cores) and is printed as such (--cold empties the folder first to measure it;
--seed DIR copies another cache's embeddings in instead). The machine's load is printed with
the figures: on a shared machine only the proportions hold.

    python benchmarks/bench_landing.py [--repeats 3] [--browser] [--cold] [--seed DIR]
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
#: Imports reported by name (the outermost import of each; one inside another is not counted
#: twice).
HEAVY = (
    "streamlit",
    "torch",
    "torchvision",
    "open_clip",
    "sentence_transformers",
    "transformers",
    "umap",
    "numba",
    "sklearn",
    "scipy",
    "plotly",
    "pandas",
    "pyarrow",
    "PIL",
)
RESULT = "RESULT "  # the prefix of the child's result line on stdout


# ---------------------------------------------------------------------------------------------
# In the child: one landing in a fresh process


class Clock:
    """Seconds spent in wrapped functions (outermost calls only), calls, and marks."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.marks: dict[str, float] = {}
        self.stages: dict[str, float] = {}  # the engine's own timings of the main solves
        self._inside: set[str] = set()

    def wrap(self, owner, name: str, label: str, on_result=None) -> None:
        """Replace `owner.name` by a timed call of it."""
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            if label in self._inside:  # a nested call of the same piece: counted once
                return inner(*args, **kwargs)
            self._inside.add(label)
            start = time.perf_counter()
            try:
                out = inner(*args, **kwargs)
            finally:
                self._inside.discard(label)
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - start
                self.calls[label] = self.calls.get(label, 0) + 1
            if on_result is not None:
                on_result(out)
            return out

        setattr(owner, name, timed)

    def reset(self) -> None:
        self.spent.clear()
        self.calls.clear()
        self.marks.clear()
        self.stages.clear()


def instrument(clock: Clock) -> None:
    """Time the pieces of a landing where the app calls them (module attributes, so the
    pages and services call the timed versions)."""
    import streamlit as st

    import spec_core
    import spec_core.data.demo as demo
    import spec_core.engine.reference as reference
    from spec_app import charts
    from spec_app.services import comparison, projections

    def engine_stages(result) -> None:
        for stage, seconds in result.timings.items():
            clock.stages[stage] = clock.stages.get(stage, 0.0) + seconds

    clock.wrap(demo, "load_demo", "demo dataset")
    clock.wrap(comparison, "embedding_key", "embeddings found or computed")
    clock.wrap(comparison, "load_embedding", "embeddings read (checksums)")
    clock.wrap(spec_core, "compare", "SPEC solve", on_result=engine_stages)
    clock.wrap(reference, "shuffled_spec_diff", "reference SPEC-diff")
    if hasattr(comparison, "context_metrics"):  # measured beside the solve, kept apart
        clock.wrap(comparison, "context_metrics", "context metrics (kept apart)")
    clock.wrap(comparison, "release_freed_memory", "memory release (gc)")
    clock.wrap(comparison, "describe_mode", "mode descriptions")
    clock.wrap(charts, "spectrum_figure", "spectrum figure")
    clock.wrap(projections, "thumbnail", "thumbnails")
    chart = st.plotly_chart

    def plotly_chart(*args, **kwargs):
        if kwargs.get("key") == "spectrum_chart":
            clock.marks.setdefault("chart", time.perf_counter())
        return chart(*args, **kwargs)

    st.plotly_chart = plotly_chart


def timed_run(at, clock: Clock) -> dict:
    """One script run: its seconds, the chart's moment in it, and what it called."""
    clock.reset()
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    if at.exception or at.error:
        raise SystemExit(f"the run failed: {[e.value for e in [*at.exception, *at.error]]}")
    chart = clock.marks.get("chart")
    return {
        "seconds": seconds,
        "chart": None if chart is None else chart - start,
        "spent": dict(clock.spent),
        "calls": dict(clock.calls),
        "stages": dict(clock.stages),
    }


def edit(at, name: str, value) -> None:
    """Change setting `name` in the sidebar's form, as a user types it (not applied yet)."""
    at.number_input(key=f"form{at.session_state['form_gen']}_{name}").set_value(value)


def child_apptest() -> None:
    """A landing in this fresh process, then the warm re-runs of the same session."""
    started = float(os.environ["BENCH_STARTED"])  # the parent's clock when it started us
    clock = Clock()
    modules = time.perf_counter()
    from streamlit.testing.v1 import AppTest

    import spec_app.router  # noqa: F401  (the app's own modules, as the first run imports them)

    instrument(clock)
    modules = time.perf_counter() - modules
    at = AppTest.from_file(str(APP), default_timeout=3600)
    landing = timed_run(at, clock)
    landing["since_start"] = time.time() - started
    landing["before_run"] = landing["since_start"] - landing["seconds"]
    landing["app_modules"] = modules
    reruns = {}
    reruns["nothing changed"] = timed_run(at, clock)
    modes = at.session_state["n_modes"]
    edit(at, "n_modes", modes - 1)
    reruns["edit not applied (display only)"] = timed_run(at, clock)
    at.button(key="compare_button").click()
    reruns[f"modes per side {modes} -> {modes - 1}, Compare"] = timed_run(at, clock)
    scale = at.session_state["sigma_scale"]
    edit(at, "sigma_scale", 1.5 * scale)
    timed_run(at, clock)
    at.button(key="compare_button").click()
    reruns[f"bandwidth scale {scale:g} -> {1.5 * scale:g}, Compare"] = timed_run(at, clock)
    edit(at, "n_modes", modes)
    timed_run(at, clock)
    at.button(key="compare_button").click()
    reruns[f"modes per side back to {modes}, Compare"] = timed_run(at, clock)
    visitor = AppTest.from_file(str(APP), default_timeout=3600)
    reruns["a new session on this server (defaults)"] = timed_run(visitor, clock)
    print(RESULT + json.dumps({"landing": landing, "reruns": reruns}), flush=True)


def child_browser(port: int) -> None:
    """The real server in headless Chromium: its start to the chart, then a warm re-run."""
    import urllib.request

    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.05)
                if time.perf_counter() - start > 120:
                    raise SystemExit("the server did not start in 120 s")
            out["server up"] = time.perf_counter() - start
            page.goto(url)
            page.locator(".js-plotly-plot .bars path").first.wait_for(timeout=3_600_000)
            out["first chart"] = time.perf_counter() - start
            wait_idle(page)
            out["page done"] = time.perf_counter() - start
            out["re-run"] = browser_rerun(page)
        finally:
            server.terminate()
            server.wait(timeout=30)
        browser.close()
    print(RESULT + json.dumps({"browser": out}), flush=True)


def wait_idle(page, timeout: int = 3_600_000) -> None:
    """Until the script run has ended and every image on the page has loaded."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector("[data-testid='stApp']");
            return app !== null && app.dataset.testScriptState === "notRunning"
                && Array.from(document.images).every((img) => img.complete);
        }""",
        timeout=timeout,
    )


def browser_rerun(page) -> float:
    """Modes per side one fewer, applied with Compare: seconds from the click to the run's end
    (streamlit's own flag on its root element, watched in the page)."""
    field = page.get_by_role("spinbutton", name="Modes per side")
    field.fill(str(int(field.input_value()) - 1))
    field.press("Enter")
    page.get_by_text("press Compare to apply them").first.wait_for(timeout=60_000)
    wait_idle(page)
    page.evaluate(
        """() => {
            const app = document.querySelector("[data-testid='stApp']");
            window.benchStates = [];
            new MutationObserver(() => window.benchStates.push(
                [app.dataset.testScriptState, performance.now()])
            ).observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
        }"""
    )
    clicked = page.evaluate("() => performance.now()")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_function(
        """() => {
            const states = window.benchStates;
            const ran = states.findIndex((s) => s[0] === "running");
            return ran >= 0 && states.slice(ran).some((s) => s[0] === "notRunning");
        }""",
        timeout=600_000,
    )
    states = page.evaluate("() => window.benchStates")
    ran = next(i for i, s in enumerate(states) if s[0] == "running")
    ended = next(s[1] for s in states[ran:] if s[0] == "notRunning")
    return (ended - clicked) / 1000


# ---------------------------------------------------------------------------------------------
# In the parent: fresh processes, their figures


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def run_child(kind: str, cache: Path, *extra: str) -> tuple[dict, dict[str, float]]:
    """The child's result, and the heavy imports it made (seconds, outermost only)."""
    env = {
        **os.environ,
        "SPEC_EXPLORER_CACHE": str(cache),
        "BENCH_STARTED": repr(time.time()),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", __file__, "--child", kind, *extra],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode or not lines:
        sys.exit(f"the {kind} child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(RESULT)), heavy_imports(proc.stderr)


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def heavy_imports(importtime: str) -> dict[str, float]:
    """Seconds of each HEAVY package's import, counted where it is outermost (one imported
    while another heavy one imports is part of that one's time, and left out)."""
    rows = []  # (depth, name, cumulative seconds), in importtime's order: children first
    for match in IMPORT_LINE.finditer(importtime):
        rows.append((len(match.group(3)) // 2, match.group(4), int(match.group(2)) / 1e6))
    found = {}
    for i, (depth, name, seconds) in enumerate(rows):
        if name not in HEAVY:
            continue
        ancestors, level = [], depth
        for later_depth, later_name, _ in rows[i + 1 :]:
            if later_depth < level:
                ancestors.append(later_name.split(".")[0])
                level = later_depth
            if level == 0:
                break
        if not any(a in HEAVY and a != name for a in ancestors):
            found[name] = found.get(name, 0.0) + seconds
    return found


def demo_embeddings_cached(cache: Path) -> bool:
    """Whether `cache` holds the demo's embeddings for the default models."""
    folder = cache / "embeddings"
    for meta in folder.glob("*.json") if folder.is_dir() else []:
        try:
            if json.loads(meta.read_text()).get("dataset") == "demo:emoji":
                return True
        except (OSError, ValueError):
            continue
    return False


def show_landing(title: str, landing: dict, imports: dict[str, float]) -> None:
    print(f"\n{title}")
    chart = landing["chart"]
    print(
        f"  first chart {landing['before_run'] + chart:.2f} s after the process started "
        f"(the script run: chart at {chart:.2f} s, run done at {landing['seconds']:.2f} s; "
        f"python, streamlit and the app's modules before it: {landing['before_run']:.2f} s)"
    )
    print("  imports (python -X importtime, each package's outermost import):")
    for name, seconds in sorted(imports.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.01:
            print(f"    {name:<22} {seconds:6.2f} s")
    show_pieces(landing)


def show_pieces(run: dict, indent: str = "  ") -> None:
    spent = run["spent"]
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        calls = run["calls"][label]
        print(f"{indent}{label:<30} {seconds:6.2f} s  ({calls} call{'s' * (calls != 1)})")
        if label == "SPEC solve" and run["stages"]:
            stages = ", ".join(f"{k} {v:.2f}" for k, v in run["stages"].items() if v >= 0.005)
            print(f"{indent}  engine stages (s): {stages}")
    measured = sum(spent.values())  # the pieces are disjoint: none calls another
    print(f"{indent}{'the rest (streamlit, sidebar, ...)':<30} {run['seconds'] - measured:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    default_cache = Path(tempfile.gettempdir()) / f"spec-landing-{getpass.getuser()}" / "cache"
    parser.add_argument("--cache", type=Path, default=default_cache, help="private cache folder")
    parser.add_argument("--seed", type=Path, help="copy this cache folder's embeddings in first")
    parser.add_argument("--cold", action="store_true", help="empty the cache folder first")
    parser.add_argument("--repeats", type=int, default=3, help="warm-cache landings (median)")
    parser.add_argument("--browser", action="store_true", help="also the real server, Chromium")
    args = parser.parse_args()
    if args.child == "apptest":
        return child_apptest()
    if args.child == "browser":
        return child_browser(args.port)
    cache = args.cache
    if args.cold and cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    if args.seed:
        shutil.copytree(args.seed / "embeddings", cache / "embeddings", dirs_exist_ok=True)
    print(f"SPEC Explorer landing on the demo; cache {cache}; {load_average()}")
    if not demo_embeddings_cached(cache):
        result, imports = run_child("apptest", cache)
        show_landing(
            "COLD: no embeddings in the cache (both models load and embed the demo first)",
            result["landing"],
            imports,
        )
    landings = []
    for _ in range(args.repeats):
        landings.append(run_child("apptest", cache))
    order = sorted(range(len(landings)), key=lambda i: landings[i][0]["landing"]["seconds"])
    result, imports = landings[order[len(order) // 2]]
    firsts = [lnd["landing"]["before_run"] + lnd["landing"]["chart"] for lnd, _ in landings]
    show_landing(
        f"WARM embedding cache, fresh process (the median of {args.repeats} by run time; "
        f"first chart in each: {', '.join(f'{t:.2f}' for t in firsts)} s)",
        result["landing"],
        imports,
    )
    print("\nwarm re-runs in that session (AppTest script runs; target < 1 s):")
    for label, run in result["reruns"].items():
        calls = run["calls"]
        solve = run["spent"].get("SPEC solve")
        print(
            f"  {label:<40} {run['seconds']:5.2f} s (chart at {run['chart']:.2f} s); SPEC "
            f"solves {calls.get('SPEC solve', 0)}, reference solves "
            f"{calls.get('reference SPEC-diff', 0)}"
            + (f"; {run['seconds'] / solve:.2f} x the solve's own time" if solve else "")
        )
        if run["seconds"] >= 0.3:
            show_pieces(run, indent="      ")
    if args.browser:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        found, _ = run_child("browser", cache, "--port", str(port))
        shown = found["browser"]
        print(
            f"\nreal server + headless Chromium (warm embedding cache): server up "
            f"{shown['server up']:.2f} s, first chart drawn {shown['first chart']:.2f} s, page "
            f"done (images loaded) {shown['page done']:.2f} s after `streamlit run` started; "
            f"re-run (modes per side, Compare click to the run's end) {shown['re-run']:.2f} s"
        )
    print(f"\n{load_average()} (at the end)")
    if len(landings) > 1:
        spread = statistics.pstdev(lnd["landing"]["seconds"] for lnd, _ in landings)
        print(f"spread of the landings' run times: {spread:.2f} s (population sd)")


if __name__ == "__main__":
    main()
