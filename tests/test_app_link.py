"""The whole state in the link (issue 20): the selected mode, the Align page's controls and the
pages' own controls survive a link into a new session; hostile links are parsed strictly, each
bad value ignored or clamped with a note, never a traceback.

The unit tests of spec_app.view_state run in the fast tier; the round trips run the app under
AppTest (the `app` tier), with the baseline models that need no weights."""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest

from spec_app import safe, view_state
from spec_app.view_state import VIEW, view_from_query, view_link

APP = "app.py"
BASELINE = {"model_a": "pixels-16", "model_b": "char-ngrams"}


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "app-cache"))


def fresh(query: dict | None = None, **session) -> AppTest:
    """A new session opened from a link (`query`), the baseline models unless it names models."""
    from pathlib import Path

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / APP), default_timeout=300)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if not any(key.startswith("model_") for key in query or {}):
        for key, value in BASELINE.items():
            at.session_state[key] = value
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()


def link_of(at: AppTest) -> dict[str, str]:
    """The session's link, as the browser's address bar holds it (one value per key)."""
    return {k: v[-1] if isinstance(v, list) else v for k, v in dict(at.query_params).items()}


def shown(elements) -> str:
    return " ".join(safe.unescape(e.value) for e in elements)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# ---------------------------------------------------------------------------------------------
# Parsing (fast tier)


def test_defaults_are_left_out_of_the_link():
    session = {key.session: key.default for key in VIEW if not key.control}
    assert view_link({**session, "align_controls": None}) == {}


def test_every_view_key_round_trips_through_its_text():
    session = {
        "selected_mode": "B-not-A #12",
        "align_controls": {"direction": "a_to_b", "adapter": "mlp", "steps": 7,
                           "val_fraction": 0.35},
        "umap_colour": "label",
        "umap_find": "héllo wörld 🐱",
        "picked_row": 17,
        "clusters_members": 5,
        "clusters_rank_page": 3,
    }  # fmt: skip
    link = view_link(session)
    assert set(link) == set(view_state.LINK_KEYS)  # every key differs from its default here
    parsed, notes = view_from_query(link)
    assert notes == [] and parsed == session


@pytest.mark.parametrize(
    ("key", "raw", "value", "said"),
    [
        ("mode", "<script>alert(1)</script>", None, "ignored: write A-not-B #k"),
        ("mode", "A-not-B #0", None, "ignored"),
        ("mode", "A-not-B #12345", None, "ignored"),
        ("mode", "A-not-B #1\n", "A-not-B #1", None),  # surrounding white space is not a value
        ("mode", "A-not-B #１", None, "ignored"),  # a fullwidth digit is not a digit here
        ("align_steps", "1e308", 5000, "outside 1 to 5,000; using 5,000"),
        ("align_steps", "-3", 1, "outside 1 to 5,000; using 1"),
        ("align_steps", "nan", None, "not a finite number"),
        ("align_steps", "inf", None, "not a finite number"),
        ("align_steps", "12.7", 12, "not a whole number; using 12"),
        ("align_steps", "0x10", None, "not a number"),
        ("align_steps", "9" * 10_000, None, "not a number"),
        ("align_val", "0.33", 0.35, "not a multiple of 0.05; using 0.35"),
        ("align_val", "2", 0.5, "outside 0.05 to 0.5; using 0.5"),
        ("align_direction", "b_to_a'; DROP TABLE", None, "choose one of b_to_a, a_to_b"),
        ("align_adapter", "MLP", None, "choose one of linear, mlp"),
        ("umap_colour", "label\u202e", None, "choose one of"),
        ("umap_find", "x" * 10_000, None, "longer than 200 characters"),
        ("umap_find", "cat\x00dog", None, "control characters"),
        ("umap_row", "-1", 0, "outside 0 to 10,000,000; using 0"),
        ("umap_row", "1e100", view_state.MAX_ROW, "outside"),
        ("members", "0", 1, "outside 1 to 5,000"),
        ("rank_page", "2.5", 2, "not a whole number"),
    ],
)
def test_a_bad_value_is_ignored_or_clamped_with_a_note(key, raw, value, said):
    parsed, notes = view_from_query({key: raw})
    view_key = next(k for k in VIEW if k.link == key)
    got = (parsed.get("align_controls") or {}).get(view_key.control) if view_key.control else None
    got = got if view_key.control else parsed.get(view_key.session)
    assert got == value
    if said is None:
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith(f"{key}=") and said in notes[0]
        assert len(notes[0]) < 200  # a 10,000-character value is quoted, not repeated


def test_repeated_keys_use_the_last_value():
    parsed, notes = view_from_query({"align_steps": ["5", "6"], "mode": ["B-not-A #1", "x"]})
    assert parsed == {"align_controls": {**view_state.ALIGN, "steps": 6}}
    assert len(notes) == 1 and notes[0].startswith("mode=")


def test_a_number_never_leaves_its_bounds():
    for raw in ("-1e309", "1e309", "-0", "4999.999", "0.049", "1e-320", "+7", " 8 "):
        parsed, _ = view_from_query({"align_steps": raw, "align_val": raw})
        controls = parsed.get("align_controls", view_state.ALIGN)
        assert 1 <= controls["steps"] <= 5000 and isinstance(controls["steps"], int)
        assert 0.05 <= controls["val_fraction"] <= 0.5
        assert math.isfinite(controls["val_fraction"])


# ---------------------------------------------------------------------------------------------
# Round trips through the app (AppTest)


@pytest.mark.app
def test_the_selected_mode_and_the_clusters_controls_round_trip():
    at = fresh()
    at.switch_page("spec_app/pages/clusters.py").run()
    at.selectbox(key="clusters_mode").set_value("B-not-A #2").run()
    members = at.slider(key="clusters_members_shown")
    assert members.max >= 3 and members.value != 2
    members.set_value(2).run()
    at.number_input(key="clusters_page").set_value(2).run()
    assert_clean(at)
    link = link_of(at)
    assert link["mode"] == "B-not-A #2" and link["members"] == "2" and link["rank_page"] == "2"

    other = fresh(link)  # the teammate opens the link: the Spectrum page first
    assert_clean(other)
    assert other.session_state.selected_mode == "B-not-A #2"
    assert "Selected cluster" in [h.value for h in other.subheader]
    assert "B-not-A #2: the bar you clicked" in shown(other.caption)
    other.switch_page("spec_app/pages/clusters.py").run()
    assert_clean(other)
    assert other.selectbox(key="clusters_mode").value == "B-not-A #2"
    assert other.slider(key="clusters_members_shown").value == 2
    assert other.number_input(key="clusters_page").value == 2
    assert len(other.get("image")) == 2
    assert link_of(other) == link  # and its own link is the same


@pytest.mark.app
def test_the_align_controls_round_trip():
    at = fresh()
    at.switch_page("spec_app/pages/align.py").run()
    at.radio(key="align_direction").set_value("a_to_b")
    at.radio(key="align_adapter").set_value("mlp")
    at.number_input(key="align_steps").set_value(7)
    at.slider(key="align_val_fraction").set_value(0.3)
    at.button(key="align_train").click().run()
    assert_clean(at)
    link = link_of(at)
    expected = {"align_direction": "a_to_b", "align_adapter": "mlp", "align_steps": "7"}
    assert expected.items() <= link.items() and float(link["align_val"]) == 0.3

    other = fresh(link)
    other.switch_page("spec_app/pages/align.py").run()
    assert_clean(other)
    assert other.radio(key="align_direction").value == "a_to_b"
    assert other.radio(key="align_adapter").value == "mlp"
    assert other.number_input(key="align_steps").value == 7
    assert other.slider(key="align_val_fraction").value == pytest.approx(0.3)
    # the same server kept the adapter trained with these controls: the result shows at once
    assert "**A (pixels-16)** was aligned to **B (char-ngrams)**" in shown(other.markdown)


@pytest.mark.app
def test_the_umap_controls_and_the_picked_row_round_trip():
    at = fresh(selected_mode="A-not-B #1")
    at.switch_page("spec_app/pages/umap.py").run()
    at.selectbox(key="umap_color").set_value("label").run()
    at.text_input(key="umap_search").input("cat").run()
    assert_clean(at)
    link = {**link_of(at), "umap_row": "5"}  # a click on a point: the browser test clicks
    assert link["umap_colour"] == "label" and link["umap_find"] == "cat"

    other = fresh(link)
    other.switch_page("spec_app/pages/umap.py").run()
    assert_clean(other)
    assert other.selectbox(key="umap_color").value == "label"
    assert other.text_input(key="umap_search").value == "cat"
    assert "Row 5 and its nearest neighbours" in [h.value for h in other.subheader]
    assert link_of(other) == link


@pytest.mark.app
def test_a_hostile_view_link_renders_with_notes():
    query = {
        **BASELINE,
        "mode": "<img src=x onerror=alert(1)>",
        "align_steps": "1e308",
        "align_val": "nan",
        "align_direction": "[evil](https://evil.example)",
        "umap_colour": "\u202e\U0001f4a9",
        "umap_find": "x" * 10_000,
        "umap_row": "99999",  # within the link's bounds, not a row of the demo (540 rows)
        "members": "-5",
        "rank_page": "1" * 5000,
    }
    at = fresh(query)
    assert_clean(at)
    warnings = shown(at.warning)
    for key in query.keys() - BASELINE.keys() - {"umap_row"}:
        assert f"{key}=" in warnings, key
    assert at.session_state.align_controls["steps"] == 5000
    assert "evil.example" not in " ".join(m.value for m in at.markdown if "](" in m.value)
    at.switch_page("spec_app/pages/umap.py").run()
    assert_clean(at)
    assert "Row 99999 is not a row of this data" in shown(at.warning)
    assert "umap_row" not in link_of(at)  # dropped, not carried on
    at.switch_page("spec_app/pages/align.py").run()
    assert_clean(at)
    assert at.number_input(key="align_steps").value == 5000


@pytest.mark.app
def test_a_mode_that_names_no_bar_says_so():
    at = fresh({**BASELINE, "mode": "A-not-B #999"})
    assert_clean(at)
    assert "A-not-B #999 is not a bar of this spectrum" in shown(at.warning)
    at.switch_page("spec_app/pages/clusters.py").run()
    assert_clean(at)
    assert "showing A-not-B #1" in shown(at.warning) or "showing B-not-A #1" in shown(at.warning)
