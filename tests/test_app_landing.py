"""The landing's speed, guarded without timing (issue 18, item 4; benchmarks/bench_landing.py
measures it): what a rerun computes again, in what order the Spectrum page draws, what goes to
the browser, and what importing the app loads. Each test counts calls or inspects what was
sent; none reads a clock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import spec_core
import spec_core.engine.describe as describe
import spec_core.engine.reference as reference
from spec_app.services import comparison

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "app-cache"))


@pytest.fixture
def calls(monkeypatch):
    """The calls of the costly pieces, in order: "solve" (spec_core.compare, as the services
    call it), "reference" (the shuffled solve), "describe" (a mode's description), "chart" (the
    Spectrum page hands its chart to streamlit), "release" (gc + malloc_trim). The services'
    stores start empty, so that no other test's result is found."""
    import streamlit as st

    comparison._results.clear()
    comparison._descriptions.clear()
    seen: list[str] = []

    def counted(owner, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def call(*args, **kwargs):
            seen.append(label)
            return inner(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    counted(spec_core, "compare", "solve")
    counted(reference, "shuffled_spec_diff", "reference")
    counted(describe, "describe_members", "describe")
    counted(comparison, "release_freed_memory", "release")
    chart = st.plotly_chart

    def plotly_chart(*args, **kwargs):
        if kwargs.get("key") == "spectrum_chart":
            seen.append("chart")
        return chart(*args, **kwargs)

    monkeypatch.setattr(st, "plotly_chart", plotly_chart)
    return seen


def landing(**settings) -> AppTest:
    """The demo's landing with the two fast offline models (and `settings` applied)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["model_a"] = "pixels-16"
    at.session_state["model_b"] = "char-ngrams"
    for key, value in settings.items():
        at.session_state[key] = value
    return ran(at)


def ran(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def edit(at: AppTest, name: str, value) -> AppTest:
    """Type a new value of setting `name` into the sidebar (pending until Compare)."""
    at.number_input(key=f"form{at.session_state['form_gen']}_{name}").set_value(value)
    return ran(at)


@pytest.mark.app
def test_display_only_reruns_solve_nothing_again(calls):
    """Nothing changed, and an edit not applied yet: the result, its reference and the cards'
    descriptions all come from the stores. (The solve and the reference already came from the
    store on main; the descriptions did not: each card read every text again on every run.)"""
    at = landing()
    assert calls.count("solve") == 1 and calls.count("reference") == 1
    described = calls.count("describe")
    assert described >= 4  # at least the two strongest modes of each side have a card
    calls.clear()
    ran(at)
    edit(at, "n_modes", at.session_state["n_modes"] - 1)
    assert calls.count("chart") == 2
    assert [c for c in calls if c != "chart"] == []


@pytest.mark.app
def test_a_change_of_modes_solves_spec_again_but_not_its_reference(calls):
    """The reference SPEC-diff (one mode, no resamples) does not depend on the number of modes:
    applying a new number solves SPEC once and finds the reference in the store; a new
    bandwidth scale solves both."""
    at = landing()
    calls.clear()
    edit(at, "n_modes", at.session_state["n_modes"] - 1)
    at.button(key="compare_button").click()
    ran(at)
    assert calls.count("solve") == 1
    assert calls.count("reference") == 0
    calls.clear()
    edit(at, "sigma_scale", 1.5)
    at.button(key="compare_button").click()
    ran(at)
    assert calls.count("solve") == 1 and calls.count("reference") == 1


@pytest.mark.app
def test_the_chart_does_not_wait_for_the_reference(calls):
    """The Spectrum page hands its chart to streamlit before it solves the reference SPEC-diff
    (which then fills its tile above the chart)."""
    at = landing()
    assert calls.index("chart") < calls.index("reference")
    shown = {m.label: m.value for m in at.metric}
    assert float(shown["SPEC-diff, B shuffled"]) > 0


@pytest.mark.app
def test_a_small_comparison_skips_the_memory_release(calls, monkeypatch):
    """The full gc pass after a comparison is for large ones (RELEASE_FROM_BYTES); the demo's
    540 rows skip it, and with the threshold at 0 the same comparison releases."""
    landing()
    assert calls.count("solve") == 1 and "release" not in calls
    monkeypatch.setattr(comparison, "RELEASE_FROM_BYTES", 0)
    calls.clear()
    landing(n_modes=4)
    assert calls.count("solve") == 1 and calls.count("release") == 1


@pytest.mark.app
def test_thumbnails_go_to_the_browser_as_the_pngs_they_are(calls):
    """Every card's image is served as PNG, as the thumbnail service made it: left to
    streamlit's "auto", each was re-encoded as a JPEG on every run."""
    at = landing()
    urls = [img.url for image in at.get("image") for img in image.proto.imgs]
    assert len(urls) >= 4 * 8  # four cards of eight members at least
    assert all(url.endswith(".png") for url in urls), urls[:3]


def test_mode_descriptions_are_kept_per_dataset_and_members(monkeypatch):
    """The kept description is the one of this dataset and these members: other members, or
    the same members of a dataset with other labels, are described afresh."""
    from dataclasses import replace

    import numpy as np

    from spec_core.data.text_sets import load_texts

    comparison._descriptions.clear()
    seen = []
    inner = describe.describe_members

    def counted(*args, **kwargs):
        seen.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(describe, "describe_members", counted)
    texts = [f"apple pie {i}" if i < 10 else f"river stone {i}" for i in range(30)]
    data = load_texts(("notes.txt", "\n".join(texts).encode()))
    labels = replace(data, labels=tuple("fruit" if i < 10 else "rock" for i in range(30)))

    class Mode:
        def __init__(self, members):
            self.members = np.asarray(members)

    first = comparison.describe_mode(Mode(range(10)), data)
    assert "apple" in first.top_terms and len(seen) == 1
    assert comparison.describe_mode(Mode(range(10)), data) is first and len(seen) == 1
    other = comparison.describe_mode(Mode(range(10, 20)), data)
    assert "river" in other.top_terms and len(seen) == 2
    labelled = comparison.describe_mode(Mode(range(10)), labels)
    assert labelled.majority_label == "fruit" and first.majority_label is None and len(seen) == 3


def test_importing_the_app_loads_no_heavy_library():
    """The router, the pages' shared modules and the services import none of the heavy
    libraries: torch, open_clip, sentence-transformers, umap (and what they pull in) are
    imported where they are used (STYLE). A guard: main already passed it."""
    heavy = ["torch", "open_clip", "sentence_transformers", "transformers", "umap", "sklearn"]
    code = (
        "import json, sys\n"
        "import spec_app.router, spec_app.sidebar, spec_app.views, spec_app.charts\n"
        "import spec_app.services\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_context_metrics_are_kept_across_parameters_and_equal_the_engines(monkeypatch):
    """The context metrics depend on the embeddings, the kernel, knn_k, the seed and the
    device only: a new bandwidth scale or number of modes finds them kept (measured once), and
    they are the engine's own (spec_core.compare with context on, the same inputs) to 1e-6; a
    new knn_k measures them again."""
    import numpy as np

    import spec_core.engine.metrics as metrics
    from spec_core.config import SpecConfig
    from spec_core.data.cache import EmbeddingCache, cache_key

    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(4), 30)
    emb_a = (rng.normal(scale=4.0, size=(4, 6))[groups] + rng.normal(size=(120, 6))).astype(
        np.float32
    )
    emb_b = rng.normal(size=(120, 5)).astype(np.float32)
    cache = EmbeddingCache()
    key_a, key_b = (cache_key(kind="test-landing-context", side=side) for side in "ab")
    cache.put(key_a, emb_a, {})
    cache.put(key_b, emb_b, {})
    comparison._results.clear()
    comparison._contexts.clear()
    measured = []
    inner = metrics.context_metrics

    def counted(*args, **kwargs):
        measured.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(metrics, "context_metrics", counted)
    params = SpecConfig(method="exact", stability=False, n_modes=3)
    first = comparison.spec_result(key_a, key_b, params, None)
    changed = params.replace(sigma_scale=1.5, n_modes=2)
    second = comparison.spec_result(key_a, key_b, changed, None)
    assert second.context is first.context and len(measured) == 1
    assert second.spec_diff != first.spec_diff  # a new solve, with the context kept
    expected = spec_core.compare(emb_a, emb_b, **changed.kwargs()).context
    assert second.context.linear_cka == pytest.approx(expected.linear_cka, abs=1e-6)
    assert second.context.knn_overlap_mean == pytest.approx(expected.knn_overlap_mean, abs=1e-6)
    np.testing.assert_allclose(second.context.knn_overlap, expected.knn_overlap, atol=1e-6)
    np.testing.assert_array_equal(second.context.rows, expected.rows)
    third = comparison.spec_result(key_a, key_b, params.replace(knn_k=5), None)
    assert len(measured) == 2 and third.context.knn_k == 5
