"""What the Spectrum and UMAP pages say matches what they show (issue 22, the charts' part):
a spectrum chart that stays readable with one dominant bar, the noise floor as a labelled band
(or said in words when too thin to draw), SPEC-diff beside its reference, the bandwidth in use
in the sidebar, the clicked bar's card first and scrolled to, and the UMAP selection list that
follows the latest selection and can be cleared."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import spec_core
from spec_app import charts, views

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "app-cache"))


@pytest.fixture(scope="module")
def result(clusters):
    a, b, _ = clusters
    return spec_core.compare(a, b, method="exact", stability=False, n_modes=3)


@pytest.fixture(scope="module")
def clusters():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), 30)
    a = rng.normal(scale=4.0, size=(4, 6))[labels] + 0.5 * rng.normal(size=(120, 6))
    b = rng.normal(size=(120, 6))
    return a, b, labels


def layout(figure) -> dict:
    return json.loads(figure.to_json())["layout"]


# ---------------------------------------------------------------------------------------------
# The spectrum chart


def test_a_dominant_bar_is_clipped_with_its_value_written(result):
    values = np.array([0.002, 0.0015, 0.001, 0.0, -0.0012, -0.34])
    dominant = dataclasses.replace(result, eigenvalues=values, noise_floor=1e-4)
    figure = charts.spectrum_figure(dominant, ("a", "b"))
    low, high = layout(figure)["yaxis"]["range"]
    assert low > -0.34 / 10  # the other bars fill the chart: -0.34 would make them 1% of it
    assert low < -0.0012 and high > 0.002  # every other bar fits
    assert any("-0.34 (clipped)" in note["text"] for note in layout(figure)["annotations"])
    notes = charts.spectrum_notes(dominant)
    assert any("Bar 6 (-0.34)" in note and "clipped" in note for note in notes)


def test_no_bar_dominates_no_clipping(result):
    values = np.array([0.02, 0.015, 0.01, -0.012, -0.018])
    plain = dataclasses.replace(result, eigenvalues=values, noise_floor=1e-4)
    assert charts.spectrum_range(values, 1e-4) == (None, None)
    assert "range" not in layout(charts.spectrum_figure(plain, ("a", "b")))["yaxis"]
    assert not any("clipped" in n for n in charts.spectrum_notes(plain))


def test_the_noise_floor_is_a_labelled_band_when_wide_enough(result):
    values = np.array([0.02, 0.015, 0.01, -0.012, -0.018])
    wide = dataclasses.replace(result, eigenvalues=values, noise_floor=0.004)
    figure = layout(charts.spectrum_figure(wide, ("a", "b")))
    bands = [s for s in figure["shapes"] if s["type"] == "rect"]
    assert [(b["y0"], b["y1"]) for b in bands] == [(-0.004, 0.004)]
    assert any("noise floor (±0.004)" in a["text"] for a in figure["annotations"])
    assert not any("too thin" in n for n in charts.spectrum_notes(wide))
    thin = dataclasses.replace(result, eigenvalues=values, noise_floor=1e-9)
    assert not layout(charts.spectrum_figure(thin, ("a", "b"))).get("shapes")
    assert any("too thin to draw" in n for n in charts.spectrum_notes(thin))


# ---------------------------------------------------------------------------------------------
# UMAP: the latest selection


def test_the_selection_list_follows_the_latest_selection():
    latest, seen = views.latest_selection(None, None, {"A": [1, 2, 3], "B": []})  # box in A
    assert latest == {"side": "A", "rows": [1, 2, 3]}
    latest, seen = views.latest_selection(latest, seen, {"A": [1, 2, 3], "B": [7, 8]})  # lasso B
    assert latest == {"side": "B", "rows": [7, 8]}
    same, seen = views.latest_selection(latest, seen, {"A": [1, 2, 3], "B": [7, 8]})  # a rerun
    assert same == latest
    back, seen = views.latest_selection(latest, seen, {"A": [4], "B": [7, 8]})  # A again
    assert back == {"side": "A", "rows": [4]}
    gone, seen = views.latest_selection(back, seen, {"A": [], "B": [7, 8]})  # double-click in A
    assert gone is None
    kept, _ = views.latest_selection(
        {"side": "A", "rows": [4]}, {"A": [4], "B": [7]}, {"A": [4], "B": []}
    )  # B cleared: A's selection stays the latest
    assert kept == {"side": "A", "rows": [4]}


# ---------------------------------------------------------------------------------------------
# The pages under AppTest (the demo with the baseline models)


def fresh(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["model_a"] = "pixels-16"
    at.session_state["model_b"] = "char-ngrams"
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()


def captions(elements) -> str:
    return " ".join(e.value for e in elements).replace("\\", "")


@pytest.mark.app
def test_spectrum_page_reference_floor_bandwidths_and_cards():
    at = fresh()
    assert not at.exception and not at.error
    values = {m.label: m.value for m in at.metric}
    diff, shuffled = float(values["SPEC-diff"]), float(values["SPEC-diff, B shuffled"])
    assert diff > 0 and shuffled > 0
    text = captions(at.caption)
    assert re.search(r"SPEC-diff [0-9.]+, against [0-9.]+ for B's rows shuffled", text)
    assert "and 0 for identical embeddings" in text
    # the exact method's floor is round-off: said in words, not drawn at y = 0
    assert "too thin to draw" in text
    assert "noise floor" not in at.get("plotly_chart")[0].proto.spec.lower()
    # the sidebar shows the bandwidths in use, as the page's caption states them
    used = re.search(r"sigma A ([0-9.]+) / B ([0-9.]+)", text).groups()
    side = captions(at.sidebar.caption)
    assert f"sigma A in use: {used[0]} (median rule)" in side
    assert f"sigma B in use: {used[1]} (median rule)" in side
    assert not [n for n in at.sidebar.number_input if n.label.startswith("sigma")]  # no "1"
    assert [c.label for c in at.sidebar.checkbox][:2] == [
        "sigma A: from the data",
        "sigma B: from the data",
    ]
    # more than two cards per side when further modes are findings (the demo has four)
    headings = [m.value for m in at.markdown if " **+" in m.value or " **-" in m.value]
    assert sum("**A-not-B #" in h for h in headings) >= 3
    # unticking "from the data" starts from the bandwidth in use, not from 1
    at.checkbox(key=f"form{at.session_state.form_gen}_sigma_a_auto").uncheck().run()
    assert at.session_state.pending["sigma_a"] == pytest.approx(float(used[0]), rel=1e-3)


def scrolls(at: AppTest) -> list[str]:
    """The scripts of the frames on the page that scroll it."""
    protos = [str(e.proto) for e in at.main if type(e).__name__ == "UnknownElement"]
    return [p for p in protos if "scrollIntoView" in p]


@pytest.mark.app
def test_a_bar_click_brings_its_card_first_and_scrolls_to_it():
    from streamlit.elements.plotly_chart import PlotlySelectionState, PlotlyState

    at = fresh()
    click = PlotlySelectionState(
        points=[{"customdata": "A-not-B #3"}], point_indices=[2], box=[], lasso=[]
    )
    at.session_state["spectrum_chart"] = PlotlyState(selection=click)
    at.run()
    assert not at.exception and not at.error
    assert at.session_state.selected_mode == "A-not-B #3"
    assert [s.value for s in at.subheader] == ["Selected cluster", "Strongest clusters"]
    assert at.subheader[0].proto.anchor == "selected-card"
    headings = [m.value for m in at.markdown if " **+" in m.value or " **-" in m.value]
    assert headings[0].startswith("**A-not-B #3**")  # the clicked card first
    assert sum(h.startswith("**A-not-B #3**") for h in headings) == 1  # and only once
    assert len(scroll_frames(at)) == 1
    at.run()  # the same click kept: no new scroll
    assert not scroll_frames(at)


def scroll_frames(at) -> list:
    """The page's frames that scroll it (the hover cards' frame is there on every run)."""
    return [
        e
        for e in at.main
        if getattr(e, "proto", None) is not None
        and "srcdoc" in str(e.proto)
        and "scrollIntoView" in str(e.proto)
    ]


@pytest.mark.app
def test_umap_selection_list_can_be_cleared_and_the_map_says_what_it_shows():
    at = fresh(selected_mode="A-not-B #1", umap_selection={"side": "B", "rows": [1, 2, 3]})
    at.switch_page("spec_app/pages/umap.py").run()
    assert not at.exception and not at.error
    assert "a tight blob here need not be a group for the kernel" in captions(at.caption)
    assert "Selected in B: 3 point(s) (ringed in green in the other view)" in [
        s.value for s in at.subheader
    ]
    at.button(key="umap_clear").click().run()
    assert not at.exception and not at.error
    assert not [s.value for s in at.subheader if s.value.startswith("Selected in")]
    assert at.session_state.umap_gen == 1 and at.session_state.umap_selection is None


@pytest.mark.app
def test_a_costly_reference_waits_for_its_button(monkeypatch):
    from spec_app.services import comparison

    monkeypatch.setattr(comparison, "REFERENCE_AUTO_ROWS", 100)  # the demo's 540 rows: costly
    # a bandwidth of its own: no reference kept from another test (the number of modes would
    # not do: the reference, one mode without resamples, is kept across it)
    at = fresh(sigma_scale=0.9)
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["SPEC-diff, B shuffled"] == "—"
    assert "for B's rows shuffled" not in captions(at.caption)
    at.button(key="spectrum_reference").click().run()
    assert not at.exception and not at.error
    assert float({m.label: m.value for m in at.metric}["SPEC-diff, B shuffled"]) > 0
    assert "for B's rows shuffled" in captions(at.caption)
    assert not [b for b in at.button if b.key == "spectrum_reference"]


def test_reference_words_weigh_spec_diff_against_the_shuffled_value():
    from spec_app.services.comparison import reference_words

    assert reference_words(0.002, 0.01).startswith("A and B disagree 20% as strongly, far less")
    assert "but not by much" in reference_words(0.0079, 0.0096)
    assert "about as much as unrelated" in reference_words(0.0376, 0.0381)
    assert reference_words(0.01, 0.0) == "no reference to weigh it against."
