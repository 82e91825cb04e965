"""Every page under streamlit's AppTest, with the fast baseline models (pixels-16 for images,
char-ngrams for texts: real encoders that need no weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from spec_app.state import settings_from_query
from spec_core.cache import EmbeddingCache, cache_key
from spec_core.datasets import load_texts

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "app-cache"))


def fresh(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model_a"] = "pixels-16"
    at.session_state["model_b"] = "char-ngrams"
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def texts_of(elements) -> list[str]:
    return [e.value for e in elements]


def test_landing_shows_the_demo_comparison():
    at = fresh()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["SPEC-diff"]) > 0 and metrics["Rows"] == "540"
    assert len(at.get("plotly_chart")) == 1
    headings = [m for m in texts_of(at.markdown) if "eigenvalue" in m]
    assert any("A-not-B #1" in h for h in headings) and any("B-not-A #1" in h for h in headings)
    assert len(at.get("image")) >= 16  # thumbnails of the strongest clusters


def test_clusters_page_follows_the_selected_mode():
    at = fresh()
    at.switch_page("pages/clusters.py").run()
    assert not at.exception
    picker = at.selectbox(key="clusters_mode")
    labels = picker.options
    assert any(label.startswith("B-not-A #2") for label in labels)
    picker.set_value("B-not-A #2").run()
    assert at.session_state.selected_mode == "B-not-A #2"
    assert any("**B-not-A #2**" in m for m in texts_of(at.markdown))
    assert len(at.get("image")) == 24
    assert len(at.get("plotly_chart")) == 1  # the label make-up


def test_umap_page_draws_both_embeddings():
    at = fresh(selected_mode="A-not-B #1")
    at.switch_page("pages/umap.py").run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 2


def test_export_page_offers_three_downloads():
    at = fresh()
    at.switch_page("pages/export.py").run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Modes (CSV)", "Modes (JSON)", "HTML report"]
    assert "model_a=pixels-16" in at.get("code")[0].value


def test_data_page_switches_to_the_text_demo():
    at = fresh()
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("demo:wordnet").run()
    at.button[0].click().run()  # "Use this demo"
    assert at.session_state.data == "demo:wordnet"
    assert at.session_state.model_a == "minilm-l6" and at.session_state.modality_a == "text"
    gen = at.session_state.form_gen
    assert at.selectbox(key=f"form{gen}_model_a").value == "minilm-l6"  # the form shows it
    assert at.selectbox(key=f"form{gen}_modality_b").value == "text"
    assert any("400" in m for m in texts_of(at.markdown))


def test_uploaded_texts_compare_with_baselines():
    data = load_texts(
        (
            "notes.txt",
            "\n".join(
                [f"apple pie recipe number {i}" for i in range(20)]
                + [f"zebra crossing {i} on the road" for i in range(20)]
            ).encode(),
        )
    )
    at = fresh(
        data="upload",
        upload=data,
        model_a="char-ngrams",
        modality_a="text",
        model_b="char-ngrams",
        modality_b="text",
        kernel="cosine",
    )
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "40" and float(metrics["SPEC-diff"]) == pytest.approx(0, abs=1e-5)


def test_settings_form_applies_on_submit_only():
    at = fresh()
    before = at.metric[0].value
    at.radio(key="form0_kernel").set_value("cosine")
    at.number_input(key="form0_n_modes").set_value(2)
    at.run()  # a changed form widget without the submit button: nothing is applied
    assert at.session_state.kernel == "gaussian" and at.metric[0].value == before
    at.radio(key="form0_kernel").set_value("cosine")
    at.number_input(key="form0_n_modes").set_value(2)
    at.button(key="FormSubmitter:settings-Compare").click().run()
    assert at.session_state.kernel == "cosine"
    assert at.query_params["kernel"] in ("cosine", ["cosine"])
    assert "cosine kernel" in " ".join(texts_of(at.caption))
    assert at.metric[0].value != before
    headings = [m for m in texts_of(at.markdown) if "eigenvalue" in m]
    assert len(headings) == 4  # two modes per side shown


def test_model_that_cannot_embed_the_modality_is_a_message():
    at = fresh(model_a="minilm-l6", modality_a="image")
    assert not at.exception
    assert "minilm-l6) embeds text, not images" in at.error[0].value


def test_unknown_model_is_a_message():
    at = fresh(model_b="open_clip:NoSuchArch/none")
    assert not at.exception
    assert "no architecture NoSuchArch" in at.error[0].value


def test_text_model_on_images_without_captions_is_a_message():
    at = fresh(data="demo:wordnet", model_a="pixels-16", modality_a="image", modality_b="text")
    assert not at.exception
    assert "has no images" in at.error[0].value


def test_precomputed_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    cache = EmbeddingCache()
    keys = []
    for dim in (5, 7):
        key = cache_key(kind="precomputed", test=dim)
        cache.put(key, rng.normal(size=(540, dim)).astype(np.float32), {})
        keys.append(key)
    at = fresh(
        precomputed={"a": keys[0], "b": keys[1], "name_a": "a.npy", "name_b": "b.npy"},
        model_a="precomputed:A",
        model_b="precomputed:B",
    )
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Rows"] == "540"
    at.number_input(key="form0_eta").set_value(0.5)
    at.button(key="FormSubmitter:settings-Compare").click().run()  # a rerun keeps them
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state.eta == 0.5


def test_precomputed_model_without_upload_is_a_message():
    at = fresh(model_a="precomputed:A")
    assert "no precomputed embeddings; upload two on the Data page" in at.error[0].value


def test_settings_from_url_are_validated():
    good = settings_from_query({"kernel": "cosine", "n_modes": "3", "eta": "0.5"})
    assert good == {"kernel": "cosine", "n_modes": 3, "eta": 0.5}
    assert settings_from_query({"kernel": "rbf", "n_modes": "x", "eta": "-1", "evil": "1"}) == {}


def test_typed_model_name_replaces_the_choice():
    at = fresh()
    at.text_input(key="form0_custom_b").input("open_clip:NoSuch/none")
    at.button(key="FormSubmitter:settings-Compare").click().run()
    assert at.session_state.model_b == "open_clip:NoSuch/none"
    assert "no architecture NoSuch" in at.error[0].value


@pytest.mark.parametrize("source", ["images", "texts", "precomputed"])
def test_data_page_upload_forms_render(source):
    at = fresh()
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value(source).run()
    assert not at.exception and not at.error
    assert at.session_state.data == "demo:emoji"  # nothing changes until data is used
