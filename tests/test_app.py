"""Every page under streamlit's AppTest, with the fast baseline models (pixels-16 for images,
char-ngrams for texts: real encoders that need no weights)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import png_bytes, text_set
from PIL import Image
from streamlit.testing.v1 import AppTest

from spec_app import safe, state
from spec_core.data import uploads
from spec_core.data.cache import EmbeddingCache, cache_key, image_store
from spec_core.data.image_sets import load_image_files

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
COMPARE = "compare_button"

pytestmark = pytest.mark.app  # every page run under AppTest: minutes in all, not in test-fast


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "app-cache"))


def fresh(query: dict | None = None, *, timeout: float = 120, **session) -> AppTest:
    """A new session (the baseline models unless `session` or `query` say otherwise)."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if not query or not any(k.startswith("model_") for k in query):
        at.session_state["model_a"] = "pixels-16"
        at.session_state["model_b"] = "char-ngrams"
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()


def w(at: AppTest, name: str) -> str:
    """The key of sidebar widget `name` in the session's current generation."""
    return f"form{at.session_state.form_gen}_{name}"


def members_shown(at: AppTest) -> int:
    """The Clusters page's member count: 24, or all of a mode's members when it has fewer."""
    slider = at.slider[0] if len(at.slider) else None
    assert slider is None or slider.value == min(24, slider.max)
    return slider.value if slider is not None else 1


def texts_of(elements) -> list[str]:
    return [e.value for e in elements]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def shown(elements) -> str:
    """What a reader sees in these markdown elements (escapes removed)."""
    return " ".join(safe.unescape(e.value) for e in elements)


def text_upload(lines: list[str], name: str = "notes.txt", **kwargs) -> str:
    """A text set stored as an upload; its `data` setting."""
    return f"upload:{uploads.save_dataset(text_set(lines, name, **kwargs))}"


def two_topics(n: int = 20) -> list[str]:
    return [f"apple pie recipe number {i}" for i in range(n)] + [
        f"zebra crossing {i} on the road" for i in range(n)
    ]


TEXT_MODELS = {
    "model_a": "char-ngrams",
    "modality_a": "text",
    "model_b": "char-ngrams",
    "modality_b": "text",
}


# ---------------------------------------------------------------------------------------------
# Pages


def card_headings(at) -> list[str]:
    """The cards' first lines: "**A-not-B #1** · strength **+0.0054** · ..." (span groups, the
    default) or "· eigenvalue **...**" (one eigenvector per mode)."""
    return [m for m in texts_of(at.markdown) if " · strength **" in m or " · eigenvalue **" in m]


def test_landing_shows_the_demo_comparison():
    at = fresh()
    assert not at.exception and not at.error
    values = metrics(at)
    assert float(values["SPEC-diff"]) > 0 and values["Rows"] == "540"
    assert all(m.help for m in at.metric)  # every number says what it is
    assert len(at.get("plotly_chart")) == 1
    headings = card_headings(at)
    assert any("A-not-B #1" in h for h in headings) and any("B-not-A #1" in h for h in headings)
    assert len(at.get("image")) >= 16  # thumbnails of the strongest clusters


def test_clusters_page_follows_the_selected_mode():
    at = fresh()
    at.switch_page("spec_app/pages/clusters.py").run()
    assert not at.exception
    picker = at.selectbox(key="clusters_mode")
    assert any(label.startswith("B-not-A #2") for label in picker.options)
    picker.set_value("B-not-A #2").run()
    assert at.session_state.selected_mode == "B-not-A #2"
    assert any("**B-not-A #2**" in m for m in texts_of(at.markdown))
    assert len(at.get("image")) == members_shown(at)
    assert len(at.get("plotly_chart")) == 1  # the label make-up


def test_umap_page_draws_both_embeddings():
    at = fresh(selected_mode="A-not-B #1")
    at.switch_page("spec_app/pages/umap.py").run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 2


def test_export_page_offers_three_downloads_and_the_link():
    at = fresh()
    at.switch_page("spec_app/pages/export.py").run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Modes (CSV)", "Modes (JSON)", "HTML report"]
    link = at.get("code")[0].value
    assert "model_a=pixels-16" in link and "data=demo%3Aemoji" in link and "sigma_a=auto" in link


def test_data_page_switches_to_the_text_demo():
    at = fresh()
    at.switch_page("spec_app/pages/data.py").run()
    at.radio(key="data_source").set_value("demo:wordnet").run()
    at.button[0].click().run()  # "Use this demo"
    assert at.session_state.data == "demo:wordnet"
    assert at.session_state.model_a == "minilm-l6" and at.session_state.modality_a == "text"
    assert at.selectbox(key=w(at, "model_a")).value == "minilm-l6"  # the sidebar shows it
    assert at.selectbox(key=w(at, "modality_b")).value == "text"
    assert any("400" in m for m in texts_of(at.markdown))


def test_uploaded_texts_compare_with_baselines():
    at = fresh(data=text_upload(two_topics()), kernel="cosine", **TEXT_MODELS)
    assert not at.exception and not at.error
    values = metrics(at)
    assert values["Rows"] == "40" and float(values["SPEC-diff"]) == pytest.approx(0, abs=1e-5)


@pytest.mark.parametrize("source", ["images", "texts", "precomputed"])
def test_data_page_upload_forms_render(source):
    at = fresh()
    at.switch_page("spec_app/pages/data.py").run()
    at.radio(key="data_source").set_value(source).run()
    assert not at.exception and not at.error
    assert at.session_state.data == "demo:emoji"  # nothing changes until data is used


def test_data_page_counts_every_skipped_item():
    """1,200 bad lines are listed as 1,000 entries and one that counts the other 200: the page
    says 1,200 items were skipped, not 1,001."""
    from spec_core.data.text_sets import load_texts

    content = b"{oops\n" * 1200 + b'{"text": "fine"}\n{"text": "also fine"}\n'
    data = load_texts(("notes.jsonl", content))
    at = fresh({"data": f"upload:{uploads.save_dataset(data)}", **TEXT_MODELS})
    at.switch_page("spec_app/pages/data.py").run()
    assert not at.exception
    assert [w.value for w in at.warning if "skipped" in w.value] == ["1,200 item(s) skipped"]


def test_precomputed_embeddings():
    rng = np.random.default_rng(0)
    cache = EmbeddingCache()
    from spec_core.data.demo import load_demo

    demo_fp = load_demo("emoji").fingerprint("image")
    refs = []
    for dim in (5, 7):
        key = cache_key(kind="precomputed", test=dim)
        cache.put(key, rng.normal(size=(540, dim)).astype(np.float32), {})
        refs.append(uploads.save_matrix(key, f"m{dim}.npy", demo_fp))
    at = fresh(
        model_a=f"precomputed:{refs[0]}",
        model_b=f"precomputed:{refs[1]}",
        my_matrices=refs,
    )
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metrics(at)["Rows"] == "540"
    caption = " ".join(texts_of(at.caption)).replace(safe.ZWSP, "")
    assert "A = m5\\.npy \\(uploaded\\) (embeddings)" in caption
    at.number_input(key=w(at, "eta")).set_value(0.5).run()
    at.button(key=COMPARE).click().run()  # a rerun keeps them
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state.eta == 0.5
    # the link names the matrices, so a teammate's session opens the same comparison
    query = dict(at.query_params)
    other = fresh({k: v[-1] if isinstance(v, list) else v for k, v in query.items()})
    assert metrics(other)["SPEC-diff"] == metrics(at)["SPEC-diff"]


def test_precomputed_matrix_that_is_gone_is_a_message():
    at = fresh(model_a="precomputed:" + "0" * 40)
    assert not at.exception
    assert "not on this server" in shown(at.error)
    assert not at.metric


# ---------------------------------------------------------------------------------------------
# State that holds: pending edits, Compare, refusals


def test_edits_are_pending_until_compare():
    at = fresh()
    before = at.metric[0].value
    at.radio(key=w(at, "kernel")).set_value("cosine").run()
    at.number_input(key=w(at, "n_modes")).set_value(2).run()
    assert at.session_state.kernel == "gaussian" and at.metric[0].value == before
    assert "Settings changed" in shown(at.sidebar.get("alert")) or "Settings changed" in shown(
        at.warning
    )
    at.button(key=COMPARE).click().run()
    assert at.session_state.kernel == "cosine" and at.session_state.n_modes == 2
    assert at.session_state.pending is None
    assert at.query_params["kernel"] in ("cosine", ["cosine"])
    assert "cosine kernel" in " ".join(texts_of(at.caption))
    assert at.metric[0].value != before
    headings = card_headings(at)
    assert len(headings) == 4  # two modes per side shown
    assert "Settings changed" not in shown(at.warning)


def test_pending_edits_survive_a_page_switch_and_apply_there():
    at = fresh()
    at.number_input(key=w(at, "eta")).set_value(0.5).run()
    at.text_input(key=w(at, "custom_b")).input("char-ngrams").run()
    at.switch_page("spec_app/pages/clusters.py").run()
    at.switch_page("spec_app/pages/data.py").run()
    assert at.session_state.eta == 1.0  # not applied
    assert at.number_input(key=w(at, "eta")).value == 0.5  # but still in the sidebar
    assert at.text_input(key=w(at, "custom_b")).value == "char-ngrams"
    assert "Settings changed" in shown(at.warning)
    at.button(key=COMPARE).click().run()  # on the Data page
    assert not at.exception
    assert at.session_state.eta == 0.5 and at.session_state.model_b == "char-ngrams"


def test_discard_brings_back_the_applied_settings():
    at = fresh()
    at.number_input(key=w(at, "eta")).set_value(0.25).run()
    at.button(key="discard_button").click().run()
    assert at.session_state.pending is None
    assert at.number_input(key=w(at, "eta")).value == 1.0


def test_picking_a_model_picks_what_it_can_embed():
    at = fresh()
    at.selectbox(key=w(at, "model_a")).set_value("char-ngrams").run()
    assert at.session_state.pending["modality_a"] == "text"
    assert at.selectbox(key=w(at, "modality_a")).value == "text"
    at.selectbox(key=w(at, "model_a")).set_value("pixels-16").run()
    assert at.selectbox(key=w(at, "modality_a")).value == "image"


def test_incompatible_choice_is_refused_before_embedding(monkeypatch):
    import spec_core.models.registry

    def no_loading(*args, **kwargs):
        raise AssertionError("nothing may be loaded or embedded for a refused Compare")

    at = fresh(data="demo:wordnet", **TEXT_MODELS)
    assert not at.error
    monkeypatch.setattr(spec_core.models.registry, "load_encoder", no_loading)
    at.switch_page("spec_app/pages/data.py").run()
    at.text_input(key=w(at, "custom_a")).input("pixels-16").run()
    at.button(key=COMPARE).click().run()
    assert not at.exception
    assert at.session_state.model_a == "char-ngrams"  # nothing applied
    message = shown(at.sidebar.error)
    assert "would embed images, but this dataset has text" in message
    assert "Settings changed" in shown(at.warning)


def test_unknown_model_is_refused_with_a_message():
    at = fresh()
    at.text_input(key=w(at, "custom_b")).input("open_clip:NoSuch/none").run()
    at.button(key=COMPARE).click().run()
    assert not at.exception
    assert at.session_state.model_b == "char-ngrams"
    assert "no architecture NoSuch" in shown(at.sidebar.error)


def test_text_model_on_images_without_captions_is_a_message():
    at = fresh(data="demo:wordnet", model_a="pixels-16", modality_a="image", modality_b="text")
    assert not at.exception
    assert "this dataset has text" in shown(at.error)


def test_model_that_cannot_embed_the_modality_is_a_message():
    at = fresh(model_a="minilm-l6", modality_a="image")
    assert not at.exception
    assert "embeds text, not images" in shown(at.error)


def test_a_one_row_dataset_is_a_plain_message():
    at = fresh(data=text_upload(["just one line"]), **TEXT_MODELS)
    assert not at.exception
    assert "has 1 row(s); a comparison needs at least 3" in shown(at.error)
    assert "n_modes" not in shown(at.error)


def test_few_rows_limit_the_modes_with_a_note():
    at = fresh(data=text_upload(["a b", "c d", "e f", "g h", "i j"]), n_modes=5, **TEXT_MODELS)
    assert not at.exception and not at.error
    assert "5 rows allow 2 mode(s) per side" in shown(at.caption)


def test_controls_that_do_not_apply_are_disabled():
    at = fresh()
    assert at.checkbox(key=w(at, "sigma_a_auto")).value is True
    assert not [n for n in at.number_input if n.key == w(at, "sigma_a")]  # auto: the value in use
    assert "sigma A in use: 2.779 (median rule)" in texts_of(at.sidebar.caption)
    assert not at.number_input(key=w(at, "n_features")).disabled  # method auto
    at.checkbox(key=w(at, "sigma_a_auto")).uncheck().run()
    assert not at.number_input(key=w(at, "sigma_a")).disabled
    assert at.session_state.pending["sigma_a"] == pytest.approx(2.779, rel=1e-3)  # from in use
    at.selectbox(key=w(at, "method")).set_value("exact").run()
    assert at.number_input(key=w(at, "n_features")).disabled
    assert "exact method needs no features" in at.number_input(key=w(at, "n_features")).help
    at.selectbox(key=w(at, "method")).set_value("rff").run()
    at.radio(key=w(at, "kernel")).set_value("cosine").run()
    for name in ("sigma_a", "sigma_b"):
        assert at.checkbox(key=w(at, f"{name}_auto")).disabled
        assert "no bandwidth" in at.checkbox(key=w(at, f"{name}_auto")).help
    assert at.session_state.pending["method"] == "auto"  # rff is for the Gaussian kernel
    assert at.selectbox(key=w(at, "method")).options == ["auto", "exact"]
    assert at.number_input(key=w(at, "n_features")).disabled


def test_a_failed_model_keeps_the_last_good_result(monkeypatch):
    import spec_core.models.registry
    from spec_core.models.registry import ModelLoadError

    at = fresh()
    good = metrics(at)["SPEC-diff"]
    real = spec_core.models.registry.load_encoder

    def failing(name, *args, **kwargs):
        if name == "e5-small":
            raise ModelLoadError("could not load model 'e5-small' (simulated)")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(spec_core.models.registry, "load_encoder", failing)
    at.selectbox(key=w(at, "model_b")).set_value("e5-small").run()
    at.button(key=COMPARE).click().run()
    assert not at.exception
    assert "simulated" in shown(at.error)
    assert metrics(at)["SPEC-diff"] == good  # the last good result is still on screen
    assert at.session_state.model_b == "char-ngrams"  # and it is what is applied
    assert at.session_state.pending["model_b"] == "e5-small"  # the choice stays pending
    assert at.query_params["model_b"] in ("char-ngrams", ["char-ngrams"])


# ---------------------------------------------------------------------------------------------
# Links


def test_settings_from_url_are_validated():
    good, notes = state.settings_from_query({"kernel": "cosine", "n_modes": "3", "eta": "0.5"})
    assert good == {"kernel": "cosine", "n_modes": 3, "eta": 0.5} and notes == []
    bad, notes = state.settings_from_query({"kernel": "rbf", "n_modes": "x", "eta": "-1"})
    assert bad == {"eta": 0.0} and len(notes) == 3


@pytest.mark.parametrize(
    "key, raw, value, note",
    [
        ("n_modes", "1000000", 50, "outside 1 to 50; using 50"),
        ("top_k", "100000", 5000, "outside 1 to 5,000"),
        ("seed", "1e23", 2**31 - 1, "using 2,147,483,647"),
        ("n_features", "1e9", 8192, "using 8,192"),
        ("n_modes", "2.5", 2, "not a whole number"),
        ("sigma_a", "inf", None, "not a finite number"),
        ("sigma_a", "nan", None, "not a finite number"),
        ("sigma_a", "-1", 1e-12, "outside"),
        ("sigma_a", "auto", None, None),
        ("sigma_b", "0.5", 0.5, None),
        ("eta", "1e300", 1e6, "outside"),
        ("data", "demo:../../etc", None, "not a demo or an upload link"),
        ("data", "demo:nosuch", None, "no such demo"),
        ("data", "upload:" + "a" * 40, "upload:" + "a" * 40, None),
        ("data", "upload:../../x", None, "ignored"),
        ("kernel", "<script>alert(1)</script>", None, "choose one of gaussian, cosine"),
        ("method", "\u202eevil\x00", None, "ignored"),
        ("model_a", "st:/etc", None, "local model folders (st:PATH) are disabled"),
        ("model_a", "open_clip:ViT-B-32@/etc/passwd", None, "local weights files"),
        ("model_b", "st:[x](https://evil.example)", None, "not enabled on this server"),
        ("model_b", "a" * 5000, None, "1 to 200 characters"),
        ("model_b", "minilm-l6", "minilm-l6", None),
        ("modality_a", "video", None, "choose one of image, text"),
    ],
)
def test_hostile_url_values(key, raw, value, note):
    settings, notes = state.settings_from_query({key: raw})
    if value is None and not (key.startswith("sigma") and note is None):
        assert key not in settings
    else:
        assert settings[key] == value
    if note is None:
        assert notes == []
    else:
        assert len(notes) == 1 and note in notes[0]
        assert len(notes[0]) < 400  # a long value is not repeated in full


def test_repeated_keys_use_the_last_value():
    settings, _ = state.settings_from_query({"n_modes": ["2", "3"]})
    assert settings == {"n_modes": 3}


def test_a_hostile_link_renders_the_page_with_notes():
    query = {
        "n_modes": "1000000",
        "top_k": "100000",
        "seed": "1e23",
        "sigma_a": "inf",
        "sigma_b": "nan",
        "data": "demo:../../etc",
        "kernel": "<script>alert(1)</script>",
        "model_a": "st:[Session expired](https://evil.example/login)",
        "model_b": "pixels-16",
        "modality_b": "image",
        "device": "\u202e\u0000\ufffd\U0001f4a9",
    }
    at = fresh(query, timeout=900)  # model_a falls back to the default, a real model: embedded
    assert not at.exception and not at.error, [e.value for e in at.error]
    warnings = shown(at.warning)
    for key in ("n_modes", "top_k", "seed", "sigma_a", "sigma_b", "data", "kernel", "model_a"):
        assert f"{key}=" in warnings
    assert metrics(at)["Rows"] == "540"  # the default data, with the clamped settings
    assert at.session_state.n_modes == 50 and at.session_state.top_k == 5000
    assert_no_live_markdown(at, "evil.example")


def test_a_link_to_data_that_is_gone_says_so_and_shows_nothing_else():
    at = fresh({"data": "upload:" + "0" * 40, "model_a": "pixels-16", "model_b": "char-ngrams"})
    assert not at.exception
    assert "not on this server" in shown(at.error)
    assert not at.metric and not at.get("plotly_chart") and not at.get("image")
    for name in ("clusters", "umap", "export"):
        page = f"spec_app/pages/{name}.py"
        at.switch_page(page).run()
        assert not at.exception and "not on this server" in shown(at.error)
        assert not at.get("plotly_chart") and not at.get("download_button")


def test_a_reload_restores_the_uploaded_comparison():
    data = text_upload(two_topics(15))
    at = fresh(data=data, n_modes=2, seed=3, **TEXT_MODELS)
    assert not at.exception and not at.error
    query = {k: (v[-1] if isinstance(v, list) else v) for k, v in dict(at.query_params).items()}
    assert query["data"] == data and query["n_modes"] == "2" and query["seed"] == "3"
    again = fresh(query)  # a reload, or a teammate's browser: a new session with the link
    assert not again.exception and not again.error
    assert again.session_state.data == data
    assert metrics(again) == metrics(at)
    assert shown(again.markdown) == shown(at.markdown)


def test_every_page_keeps_the_settings_in_its_url():
    at = fresh()
    for page in (
        "spec_app/pages/clusters.py",
        "spec_app/pages/umap.py",
        "spec_app/pages/export.py",
        "spec_app/pages/data.py",
        "spec_app/pages/align.py",
    ):
        at.switch_page(page).run()
        assert at.query_params["model_a"] in ("pixels-16", ["pixels-16"]), page


def test_share_gives_the_full_link():
    at = fresh()
    codes = [c.value for c in at.sidebar.get("code")]
    assert codes and "model_b=char-ngrams" in codes[0] and "n_modes=5" in codes[0]


# ---------------------------------------------------------------------------------------------
# Safe by construction


EVIL = "![x](https://evil.example/img.png) [Sign in](https://evil.example/login) www.evil.example"


def strings_of(node) -> list[tuple[str, str]]:
    """(element type, its message as text) for every element under `node`."""
    out = []
    children = getattr(node, "children", None)
    if children:
        for child in children.values():
            out.extend(strings_of(child))
    elif getattr(node, "proto", None) is not None:
        out.append((node.type, str(node.proto)))
    return out


#: Elements whose text is not markdown (plain text, tables of values, code, file contents).
PLAIN = (
    "arrow_data_frame",
    "dataframe",
    "code",
    "text",
    "download_button",
    "plotly_chart",
    "empty",
)


#: Widgets whose options are shown as plain text.
SELECTS = ("selectbox", "multiselect")


def assert_no_live_markdown(at: AppTest, host: str) -> None:
    """No markdown-rendering element holds `host`, a URL scheme or a link unescaped (escaped
    text has its dots and colons backslash-escaped and wrapped in zero-width spaces), and no
    chart holds a tag."""
    for kind, text in strings_of(at._tree):
        if kind in SELECTS:  # their options are plain text (labels and help are markdown)
            text = "\n".join(line for line in text.splitlines() if "options:" not in line)
        # charts, and the hover cards' data (set as text in the browser): no tag
        if kind == "plotly_chart" or (kind == "iframe" and "__specHover" in text):
            assert "<a " not in text and "<img" not in text, text[:300]
        elif kind not in PLAIN:
            assert host not in text and "://" not in text, (kind, text[:300])
            assert not re.search(r"(?<!\\)\]\(", text), (kind, text[:300])


def evil_images() -> str:
    """An image set whose file names, captions and labels are hostile markdown."""
    files = []
    for i in range(12):
        files.append((f"{i}_www.evil.example.png", png_bytes(i, size=16)))
    rows = ["file,caption,label"] + [
        f'{name},"{EVIL} {i}","![l](https://evil.example/l{i % 2}.png)"'
        for i, (name, _) in enumerate(files)
    ]
    data = load_image_files(
        files, store=image_store(), name=EVIL, captions=("c.csv", "\n".join(rows).encode())
    )
    return f"upload:{uploads.save_dataset(data)}"


def test_user_strings_never_render_as_markdown():
    at = fresh(data=evil_images(), selected_mode="A-not-B #1")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert_no_live_markdown(at, "evil.example")
    assert "![x](https://evil.example/img.png)" in shown(at.caption)  # shown, as text
    for page in (
        "spec_app/pages/clusters.py",
        "spec_app/pages/umap.py",
        "spec_app/pages/data.py",
        "spec_app/pages/export.py",
        "spec_app/pages/align.py",
    ):
        at.switch_page(page).run()
        assert not at.exception, page
        assert_no_live_markdown(at, "evil.example")
    at.button(key="align_train").click().run()  # 12 rows: too few to align, a plain message
    assert not at.exception and "Cannot align" in shown(at.error)
    assert_no_live_markdown(at, "evil.example")


def test_escaping_is_exact():
    for text in (EVIL, "a\\b*c_d`e", ":red[x] $y$ :material/home:", "1. item", "# head"):
        escaped = safe.md(text)
        assert safe.unescape(escaped) == text
        assert "](" not in escaped and "evil.example" not in escaped
    assert safe.md("line\nnext\x00\u202e") == "line next\ufffd\ufffd"
    assert safe.plain("a\u061cb") == "a\ufffdb"  # the Arabic letter mark is a bidi mark too
    assert safe.plotly("<a href='x'>y</a> & z") == "&lt;a href='x'&gt;y&lt;/a&gt; &amp; z"
    assert safe.filename("spec_st:../../etc/x vs <b>") == "spec_st-..-..-etc-x-vs--b"


def test_every_session_key_is_declared():
    declared = set(state.settings_defaults()) | set(state.SESSION) | set(state.WIDGET_KEYS)
    sources = [*ROOT.glob("spec_app/pages/*.py"), *ROOT.glob("spec_app/*.py"), ROOT / "app.py"]
    used = set()
    for path in sources:
        text = path.read_text()
        used |= set(re.findall(r"session_state\.([a-z_]+)", text))
        used |= set(re.findall(r"\bss\.([a-z_]+)\b", text))
        used |= set(re.findall(r'key="([a-zA-Z_]+)"', text))
        used |= set(re.findall(r'session_state\["([a-z_]+)"\]', text))
    used -= {"get", "pending_settings"}  # methods, not keys
    assert used <= declared, used - declared


def test_sixteen_bit_images_are_shown():
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    files = []
    for i in range(6):
        buf = io.BytesIO()
        Image.fromarray(np.roll(ramp, i * 5)).save(buf, format="PNG")
        files.append((f"deep{i}.png", buf.getvalue()))
    data = load_image_files(files, store=image_store())
    ref = uploads.save_dataset(data)
    at = fresh(data=f"upload:{ref}", model_b="pixels-16", modality_b="image")
    at.switch_page("spec_app/pages/data.py").run()
    assert not at.exception and not at.error
    assert len(at.get("image")) == 6


def test_delete_my_data():
    data = text_upload(two_topics(5))
    ref = data.removeprefix("upload:")
    at = fresh(data=data, my_uploads=[ref], **TEXT_MODELS)
    assert not at.error
    at.switch_page("spec_app/pages/data.py").run()
    assert at.radio(key="data_source").value == "texts"  # the form this upload came from
    at.button(key="delete_my_data").click().run()
    assert not at.exception
    assert not uploads.exists(ref)
    assert at.session_state.data == "demo:emoji" and at.session_state.my_uploads == []
    again = fresh({"data": data, **TEXT_MODELS})  # the link now says the data is gone
    assert "not on this server" in shown(again.error)


def test_delete_my_data_after_a_reload_leaves_another_sessions_copy():
    """The delete control was gone after a reload (the list of this session's uploads is
    session state); whoever holds the link may delete. Another session's upload of the same
    file keeps working."""
    lines = two_topics(5)
    mine, theirs = text_upload(lines), text_upload(lines)
    assert mine != theirs
    reloaded = fresh({"data": mine, **TEXT_MODELS})  # a new session: my_uploads is empty
    reloaded.switch_page("spec_app/pages/data.py").run()
    reloaded.button(key="delete_my_data").click().run()
    assert not reloaded.exception
    assert not uploads.exists(mine.removeprefix("upload:"))
    other = fresh({"data": theirs, **TEXT_MODELS})
    assert not other.exception and not other.error, [e.value for e in other.error]
    assert "SPEC-diff" in metrics(other)


# ---------------------------------------------------------------------------------------------
# A damaged disk cache (edited between two runs: a crash, a full disk, a bad sync, an operator)

#: The cache root's name: a word that no message may show.
ROOT_NAME = "servercacheroot"


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own (the damage stays here), its root's name in ROOT_NAME."""
    root = tmp_path / ROOT_NAME
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(root))
    return root


def restart() -> None:
    """What a restart of the server forgets: Streamlit's in-process caches and stores (results,
    datasets) and the files whose checksum was verified."""
    import streamlit as st

    from spec_core.data import cache as disk_cache

    st.cache_data.clear()
    st.cache_resource.clear()
    vars(disk_cache).get("_verified", set()).clear()


def everything_shown(at: AppTest) -> str:
    return "\n".join(text for _, text in strings_of(at._tree))


def moved_aside(root: Path, kind: str) -> list[Path]:
    folder = root / "damaged" / kind
    return sorted(folder.iterdir()) if folder.is_dir() else []


def entry_of(root: Path, model: str) -> Path:
    """The .npy of the cached embedding made by `model`."""
    import json

    folder = root / "embeddings"
    (meta,) = [p for p in folder.glob("*.json") if json.loads(p.read_text())["model"] == model]
    return meta.with_suffix(".npy")


def _permute(npy: Path) -> None:
    matrix = np.load(npy)
    np.save(npy, matrix[np.random.default_rng(0).permutation(len(matrix))])


def _nan_row(npy: Path) -> None:
    matrix = np.load(npy)
    matrix[7] = np.nan
    np.save(npy, matrix)


def _folder(npy: Path) -> None:
    npy.unlink()
    npy.mkdir()


#: The issue's damage to a cached embedding.
EMBEDDING_DAMAGE = {
    "random bytes": lambda npy: npy.write_bytes(np.random.default_rng(1).bytes(5000)),
    "zip bytes": lambda npy: npy.write_bytes(b"PK\x03\x04" + bytes(5000)),
    "a JSON list": lambda npy: npy.with_suffix(".json").write_text("[]"),
    "JSON null": lambda npy: npy.with_suffix(".json").write_text("null"),
    "permuted rows": _permute,
    "a NaN row": _nan_row,
    "a folder": _folder,
}


@pytest.mark.parametrize("damage", list(EMBEDDING_DAMAGE))
def test_a_damaged_embedding_is_computed_again_in_the_same_run(own_cache, damage):
    """Each used to end in an error page, a message with the server's path, a refusal (the NaN
    row) or, permuted, a different SPEC-diff shown without a warning."""
    before = metrics(fresh())["SPEC-diff"]
    EMBEDDING_DAMAGE[damage](entry_of(own_cache, "pixels-16"))
    restart()
    at = fresh()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metrics(at)["SPEC-diff"] == before
    (moved,) = moved_aside(own_cache, "embeddings")
    assert (moved / "REASON").read_text().strip()
    assert ROOT_NAME not in everything_shown(at)
    assert entry_of(own_cache, "pixels-16").is_file()  # computed again, and kept


def test_an_embedding_damaged_while_the_app_runs_is_computed_again_on_the_next_page(own_cache):
    at = fresh()
    before = metrics(at)["SPEC-diff"]
    _permute(entry_of(own_cache, "pixels-16"))  # a file version this process has not verified
    at.switch_page("spec_app/pages/umap.py").run()  # each page checks the embeddings it uses
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 2
    assert len(moved_aside(own_cache, "embeddings")) == 1
    at.switch_page("spec_app/pages/spectrum.py").run()
    assert metrics(at)["SPEC-diff"] == before


def _outside_link(path: Path) -> None:
    decoy = path.parent.parent.parent / "outside.json"
    decoy.write_bytes(path.read_bytes())  # a valid manifest: read and used on main
    path.unlink()
    path.symlink_to(decoy)


def _rewrite(**fields):
    def damage(path: Path) -> None:
        import json

        manifest = {**json.loads(path.read_text()), **fields}
        path.write_text(json.dumps({k: v for k, v in manifest.items() if v is not KeyError}))

    return damage


#: The issue's damage to an upload's manifest.
MANIFEST_DAMAGE = {
    "a list": lambda path: path.write_text("[]"),
    "wrong types": _rewrite(ids=5, name={"a": 1}),
    "a missing key": _rewrite(ids=KeyError),
    "a path out of the store": _rewrite(kind="image", images=["../../../../etc/passwd"] * 40),
    "a folder": _folder,
    "a link out of the cache": _outside_link,
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_a_damaged_upload_is_reported_damaged(own_cache, damage, opened_paths):
    data = text_upload(two_topics())
    ref = data.removeprefix("upload:")
    MANIFEST_DAMAGE[damage](own_cache / "uploads" / f"{ref}.json")
    opened_paths.clear()
    at = fresh(data=data, kernel="cosine", **TEXT_MODELS)
    assert not at.exception
    assert "damaged on this server" in shown(at.error) and not at.metric
    (moved,) = moved_aside(own_cache, "uploads")
    assert (moved / "REASON").read_text().strip()
    assert ROOT_NAME not in everything_shown(at)
    outside = own_cache.parent.resolve()
    assert not [p for p in opened_paths if p.parent == outside or p.parts[:2] == ("/", "etc")]
    again = fresh(data=data, kernel="cosine", **TEXT_MODELS)  # a reload: still said, no more
    assert "damaged on this server" in shown(again.error)
    assert len(moved_aside(own_cache, "uploads")) == 1


def _uploaded_matrices() -> list[str]:
    from spec_core.data.demo import load_demo

    rng = np.random.default_rng(0)
    fingerprint = load_demo("emoji").fingerprint("image")
    refs = []
    for dim in (5, 7):
        key = cache_key(kind="precomputed", test=dim)
        EmbeddingCache().put(key, rng.normal(size=(540, dim)).astype(np.float32), {})
        refs.append(uploads.save_matrix(key, f"m{dim}.npy", fingerprint))
    return refs


@pytest.mark.parametrize("damage", ["permuted rows", "a manifest that is a list"])
def test_a_damaged_uploaded_matrix_is_reported_damaged(own_cache, damage):
    """An uploaded matrix cannot be computed again: it is reported, never served."""
    refs = _uploaded_matrices()
    models = {"model_a": f"precomputed:{refs[0]}", "model_b": f"precomputed:{refs[1]}"}
    assert metrics(fresh(**models))["Rows"] == "540"
    if damage == "permuted rows":
        key = uploads.load_matrix(refs[0]).key
        _permute(own_cache / "embeddings" / f"{key}.npy")
    else:
        (own_cache / "uploads" / f"{refs[0]}.json").write_text("[]")
    restart()
    at = fresh(**models)
    assert not at.exception and not at.metric
    assert "damaged" in shown(at.error) and "Upload it again" in shown(at.error)
    assert len(moved_aside(own_cache, "embeddings" if damage == "permuted rows" else "uploads"))
    assert ROOT_NAME not in everything_shown(at)


def test_an_uploaded_matrix_from_before_checksums_keeps_working_and_gets_one(own_cache):
    """It cannot be computed again: it is checked (shape, dtype, finite values) and upgraded."""
    import json

    refs = _uploaded_matrices()
    for ref in refs:
        meta = own_cache / "embeddings" / f"{uploads.load_matrix(ref).key}.json"
        old = {k: v for k, v in json.loads(meta.read_text()).items() if k in ("shape", "ids")}
        meta.write_text(json.dumps(old))  # as the previous version wrote it
    at = fresh(model_a=f"precomputed:{refs[0]}", model_b=f"precomputed:{refs[1]}")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metrics(at)["Rows"] == "540"
    for ref in refs:
        meta = own_cache / "embeddings" / f"{uploads.load_matrix(ref).key}.json"
        assert json.loads(meta.read_text())["checksum"].startswith("sha256:")


def test_a_full_disk_is_a_message_without_server_paths(own_cache, monkeypatch):
    import errno

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(own_cache / "x.npy.tmp"))

    monkeypatch.setattr(EmbeddingCache, "put", full)
    at = fresh(data=text_upload(two_topics()), **TEXT_MODELS)
    assert not at.exception
    assert "No space left on device" in shown(at.error)
    assert ROOT_NAME not in everything_shown(at)


# ---------------------------------------------------------------------------------------------
# Models


def test_the_picker_separates_offline_and_download_models():
    at = fresh()
    options = at.selectbox(key=w(at, "model_a")).options
    offline = [o for o in options if "(offline" in o]
    download = [o for o in options if "(download" in o]
    assert "efficientnet-lite0 (offline, 18 MB)" in offline
    assert any(o.startswith("open_clip:ViT-B-32/openai (download, 338 MB") for o in download)
    assert options.index(offline[-1]) < options.index(download[0])  # offline ones first


def test_a_download_model_fails_fast_without_a_network(monkeypatch):
    import time

    import huggingface_hub.constants as hub_constants

    from spec_app import services

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", hub_constants.HF_HUB_OFFLINE)
    monkeypatch.setattr(services.models, "hub_reachable", lambda timeout=3.0: False)
    at = fresh()
    good = metrics(at)
    at.selectbox(key=w(at, "model_b")).set_value("open_clip:ViT-B-32/openai").run()
    start = time.perf_counter()
    at.button(key=COMPARE).click().run()
    elapsed = time.perf_counter() - start
    assert not at.exception
    assert "cannot reach it. Pick an offline model" in shown(at.error)
    assert "about 338 MB" in shown(at.error)
    assert elapsed < 60  # no waiting on a network that is not there
    assert metrics(at) == good  # the last good result stays


class Bar:
    def __init__(self):
        self.calls = []

    def progress(self, value, text=""):
        self.calls.append((value, safe.unescape(text)))


def test_a_download_shows_its_progress(monkeypatch, tmp_path):
    import time

    from spec_app import services

    monkeypatch.setattr(services.models, "weights_folder", lambda name: tmp_path)

    def download():
        for i in range(4):
            (tmp_path / f"blob{i}.incomplete").write_bytes(b"x" * 250_000)
            time.sleep(0.6)
        return "encoder"

    bar = Bar()
    assert services.models._load_watching(download, "open_clip:X/y", 1, bar) == "encoder"
    assert bar.calls, "no progress while downloading"
    fractions = [value for value, _ in bar.calls]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 0.99
    assert "downloading open_clip:X/y:" in bar.calls[-1][1] and "of about 1 MB" in bar.calls[-1][1]


# ---------------------------------------------------------------------------------------------
# Interactions


def test_bar_labels_follow_the_modes():
    from spec_app.services.comparison import bar_labels

    assert bar_labels([3.0, 2.0, 0.5, 0.0, -1.0, -2.0]) == [
        "A-not-B #1",
        "A-not-B #2",
        "A-not-B #3",
        "",
        "B-not-A #2",
        "B-not-A #1",
    ]


def bar_values(chart) -> np.ndarray:
    """The eigenvalues drawn by a spectrum chart (Plotly may encode arrays as typed bytes)."""
    import base64
    import json

    y = json.loads(chart.proto.spec)["data"][0]["y"]
    if isinstance(y, dict):
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"]))
    return np.asarray(y, dtype=float)


def test_every_bar_is_selectable():
    """Bars beyond the computed modes (ranks 6-20 per side here) get their vectors on demand."""
    at = fresh(selected_mode="A-not-B #12")
    assert not at.exception and not at.error
    assert "Selected cluster" in texts_of(at.subheader)
    heading = next(m for m in texts_of(at.markdown) if "**A-not-B #12**" in m)
    values = bar_values(at.get("plotly_chart")[0])
    assert f"**{values[11]:+.4f}**" in heading  # the bar's own eigenvalue
    assert "A-not-B #12" in at.get("plotly_chart")[0].proto.spec  # the bar carries its label
    at.switch_page("spec_app/pages/clusters.py").run()
    assert not at.exception and not at.error
    picker = at.selectbox(key="clusters_mode")
    assert picker.value == "A-not-B #12" and len(picker.options) == 11
    assert heading in texts_of(at.markdown)
    assert len(at.get("image")) == members_shown(at)
    at.switch_page("spec_app/pages/umap.py").run()
    assert not at.exception and not at.error


def test_clusters_page_lists_every_row_by_score_paged():
    at = fresh(selected_mode="B-not-A #1")
    at.switch_page("spec_app/pages/clusters.py").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert len(table) == 50 and list(table.columns[:3]) == ["row", "id", "score"]
    assert table["score"].is_monotonic_decreasing
    page = at.number_input(key="clusters_page")
    assert page.max == 11  # 540 rows, 50 a page: not capped by 'Members kept' (24)
    page.set_value(11).run()
    last = at.dataframe[0].value
    assert len(last) == 40 and last["score"].max() <= table["score"].min()
    assert "All rows by score (CSV)" in [b.label for b in at.get("download_button")]


def test_umap_colour_by_label_search_and_neighbours():
    at = fresh(selected_mode="A-not-B #1")
    at.switch_page("spec_app/pages/umap.py").run()
    at.selectbox(key="umap_color").set_value("label").run()
    assert not at.exception and not at.error
    assert '"showlegend":true' in at.get("plotly_chart")[-1].proto.spec.replace(" ", "")
    at.text_input(key="umap_search").input("flag").run()
    assert any("row(s) found" in c for c in texts_of(at.caption))
    at.text_input(key="umap_search").input("germany flag").run()  # one row: its neighbours
    assert not at.exception and not at.error
    heading = [h for h in texts_of(at.subheader) if "nearest neighbours" in h]
    assert heading, texts_of(at.subheader)
    nearest = [m for m in texts_of(at.markdown) if m.startswith("**Nearest in")]
    assert len(nearest) == 2 and "pixels\\-16" in nearest[0] and "char\\-ngrams" in nearest[1]
    assert any("nearest neighbours are the same in A and in B" in c for c in texts_of(at.caption))
    assert len(at.get("image")) >= 1 + 2 * 8


def test_modes_show_their_evidence_and_weak_ones_say_so():
    """Each card says how tight, how big and how stable its mode is; weak modes carry a
    warning that names the reason."""
    at = fresh()
    assert not at.exception
    comp_modes = at.session_state.last_good is not None
    assert comp_modes
    captions = texts_of(at.caption)
    evidence = [c for c in captions if "tighter in" in c and "members" in c]
    assert len(evidence) >= 4  # two cards per side
    assert any("comes back in" in c and "of 10 resamples" in c for c in evidence)
    warnings = texts_of(at.warning)
    for text in warnings:
        if text.startswith("Weak"):
            assert "Not a group to rely on" in text


def test_scales_page_opens_a_scale():
    at = fresh()
    at.switch_page("spec_app/pages/scales.py").run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 1
    picker = at.selectbox(key="scales_pick")
    assert picker.options[0] == "x0.25" and "x1" in picker.options
    picker.set_value("x0.5").run()
    at.button(key="scales_open").click().run()
    assert not at.exception
    assert at.session_state.sigma_scale == 0.5
    assert at.session_state.sigma_a is None


def test_scales_page_with_the_cosine_kernel():
    at = fresh(kernel="cosine")
    at.switch_page("spec_app/pages/scales.py").run()
    assert not at.exception
    assert any("cosine kernel has no bandwidth" in t for t in texts_of(at.info))


def test_sigma_scale_from_a_link_is_bounded():
    at = fresh(query={"sigma_scale": "1e9"})
    assert not at.exception
    assert at.session_state.sigma_scale == 20.0


# ---------------------------------------------------------------------------------------------
# Align


def align_numbers(at: AppTest, label: str) -> tuple[float, float]:
    """A before → after metric of the Align page: the value is after, the delta says before."""
    metric = next(m for m in at.metric if m.label == label)
    before = re.search(r"\(was ([-+0-9.e]+)\)", metric.delta).group(1)
    return float(before), float(metric.value)


def modes_table(at: AppTest) -> list[dict]:
    frame = next(d.value for d in at.dataframe if "eigenvalue before" in d.value.columns)
    return frame.to_dict("records")


def test_align_page_trains_shows_before_after_and_compares_aligned(monkeypatch, tmp_path):
    import json
    from types import SimpleNamespace

    import torch

    from spec_app import services
    from spec_core.align import load_adapter
    from spec_core.align import train as core_align

    calls = []
    real = core_align.align
    threads = torch.get_num_threads()

    def counted(*args, **kwargs):
        calls.append({**kwargs, "threads": torch.get_num_threads()})
        return real(*args, **kwargs)

    monkeypatch.setattr(core_align, "align", counted)
    at = fresh()
    at.switch_page("spec_app/pages/align.py").run()
    assert not at.exception and not at.error
    assert "Press **Train**" in at.info[0].value and not calls  # nothing trains unasked
    at.number_input(key="align_steps").set_value(5)
    at.button(key="align_train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(calls) == 1 and calls[0]["steps"] == 5 and calls[0]["labels"] is not None
    assert calls[0]["threads"] == 1 and torch.get_num_threads() == threads  # see services
    before, after = align_numbers(at, "SPEC-diff (validation)")
    assert before > 0 and after >= 0
    assert set(metrics(at)) >= {
        "SPEC-diff (train rows)",
        "Label kNN accuracy of B",
        "kNN overlap with A",
        "kNN overlap with original B",
        "Linear CKA with A",
    }
    assert align_numbers(at, "kNN overlap with original B")[0] == 1.0  # B before is B
    assert all(m.help for m in at.metric)
    assert "was aligned to" in shown(at.markdown)
    # the verdict in words: the share closed on rows never trained on, or what B lacks
    verdict = " ".join(shown(found) for found in (at.success, at.warning, at.info))
    assert re.search(r"closed \d+% of the difference on rows it never trained on", verdict)
    table = modes_table(at)
    assert table and all(
        row["mode"].startswith("A-not-B") == (row["eigenvalue before"] > 0) for row in table
    )
    strengths = [abs(row["eigenvalue before"]) for row in table]
    assert strengths == sorted(strengths, reverse=True)  # strongest first
    assert len(at.get("image")) >= 8  # the strongest mode's members, as thumbnails
    assert len(at.get("plotly_chart")) == 4  # spectra, B before and after, the training curve
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Adapter (.safetensors)", "Aligned B (.npy)", "Report (JSON)"]

    # the downloads hold what they say: the adapter reproduces the aligned embedding
    al = services.alignment._alignments().values()[-1]
    aligned = np.load(io.BytesIO(services.alignment.aligned_file(al.id, al)))
    b = services.models.load_embedding(al.key_adapted)
    assert aligned.shape == b.shape and np.array_equal(aligned, al.result.aligned)
    (tmp_path / "adapter.safetensors").write_bytes(services.alignment.adapter_file(al.id, al))
    adapter = load_adapter(tmp_path / "adapter.safetensors")
    assert np.allclose(adapter.apply(b), aligned, atol=1e-5)
    comp = SimpleNamespace(names=("pixels-16", "char-ngrams"), dataset=SimpleNamespace(name="x"))
    report = json.loads(services.alignment.align_report(al, comp))
    assert report["comparison"]["aligned"] == "B" and report["spec_diff"]["before"]["val"] > 0

    # a page switch and back shows the same result, not trained again
    at.switch_page("spec_app/pages/clusters.py").run()
    at.switch_page("spec_app/pages/align.py").run()
    assert len(calls) == 1 and align_numbers(at, "SPEC-diff (validation)") == (before, after)

    # one click compares A with the aligned B, as a comparison the link carries
    at.button(key="align_compare").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state.model_b.startswith("precomputed:")
    assert at.session_state.model_a == "pixels-16"
    assert at.query_params["model_b"] in (at.session_state.model_b, [at.session_state.model_b])
    assert metrics(at)["Rows"] == "540"  # the Spectrum page, on every row
    assert "aligned to pixels-16" in shown(at.caption)

    # back on the Align page, one click returns to the original pair and its alignment
    at.switch_page("spec_app/pages/align.py").run()
    assert "aligned embedding made on this page" in shown(at.info)
    at.button(key="align_back").click().run()
    assert not at.exception and at.session_state.model_b == "char-ngrams"
    assert len(calls) == 1 and align_numbers(at, "SPEC-diff (validation)") == (before, after)


def test_align_a_to_b_swaps_the_roles():
    at = fresh(align_controls={"direction": "a_to_b", "steps": 3, "val_fraction": 0.3})
    at.switch_page("spec_app/pages/align.py").run()
    assert at.radio(key="align_direction").value == "a_to_b"
    at.button(key="align_train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "**A (pixels-16)** was aligned to **B (char-ngrams)**" in shown(at.markdown)
    assert {"kNN overlap with B", "kNN overlap with original A"} <= set(metrics(at))
    assert align_numbers(at, "kNN overlap with original A")[0] == 1.0
    # the app's frame: A-not-B modes have positive eigenvalues whichever side was aligned
    table = modes_table(at)
    assert all(row["mode"].startswith("A-not-B") == (row["eigenvalue before"] > 0) for row in table)
    assert [b.label for b in at.get("download_button")][1] == "Aligned A (.npy)"
    assert at.button(key="align_compare").label == "Compare aligned A with B"


def test_align_refuses_too_few_rows_with_a_message():
    at = fresh(data=text_upload(two_topics(20)), **TEXT_MODELS)  # 40 rows: 8 for validation
    at.switch_page("spec_app/pages/align.py").run()
    at.button(key="align_train").click().run()
    assert not at.exception
    message = shown(at.error)
    assert "Cannot align" in message and "each needs at least 10" in message
    assert not at.get("download_button") and "SPEC-diff (validation)" not in metrics(at)


# ---------------------------------------------------------------------------------------------
# The parameter table: a new SPEC parameter shows everywhere from one declaration


def test_a_new_parameter_shows_in_the_cli_the_sidebar_and_the_link(monkeypatch, capsys):
    import dataclasses

    from spec_core import config
    from spec_core.cli.common import config_from_args
    from spec_core.cli.entry import build_parser

    @dataclasses.dataclass(frozen=True)
    class WithDummy(config.SpecConfig):
        dummy: int = config.param(
            3, kind=int, high=9, form=(1, 9), label="Dummy knob", help="a knob only this test has"
        )

    monkeypatch.setattr(config, "SpecConfig", WithDummy)
    # the command line: a flag with its help and default, in the config it builds
    args = build_parser().parse_args(
        ["compare", "a.npy", "b.npy", "--out", "r.json", "--dummy", "7"]
    )
    assert config_from_args(args) == WithDummy(dummy=7)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compare", "--help"])
    assert "a knob only this test has (default: 3)" in " ".join(capsys.readouterr().out.split())
    # the validation
    with pytest.raises(ValueError, match="dummy=10 is more than this tool allows"):
        config.check_parameters(dummy=10)
    # the link: clamped to the form's bounds, with a note
    settings, notes = state.settings_from_query({"dummy": "99"})
    assert settings["dummy"] == 9 and "dummy='99' is outside 1 to 9; using 9" in notes[0]
    # the sidebar: a widget with its label and help, its value from the link; the link keeps it
    gone = {"data": "upload:" + "0" * 40, **TEXT_MODELS}  # data gone: nothing is computed
    at = fresh({**gone, "dummy": "5"})
    assert not at.exception
    knob = [w for w in at.sidebar.number_input if w.label == "Dummy knob"]
    assert len(knob) == 1 and knob[0].value == 5 and knob[0].help == "a knob only this test has"
    assert at.query_params["dummy"] == "5"  # the applied settings stay in the link


def test_no_table_offers_streamlit_own_csv_download():
    """st.dataframe's toolbar download writes the raw cells (`=HYPERLINK(...)` as it is): the
    checkout's config turns it off from the first run, the router on every run (an installed
    or otherwise started app), and no page turns it back on; exports go through the app's
    buttons (spec_core/export/tables.py). `spec-explorer app`'s flag: tests/test_cli.py."""
    import tomllib
    from pathlib import Path

    from streamlit import config

    root = Path(__file__).resolve().parent.parent
    with open(root / ".streamlit" / "config.toml", "rb") as handle:
        assert tomllib.load(handle)["client"]["disableDataExport"] is True
    config.set_option("client.disableDataExport", False)
    try:
        at = fresh(selected_mode="B-not-A #1")
        at.switch_page("spec_app/pages/clusters.py").run()
        assert not at.exception and len(at.dataframe) > 0  # a table of ids is shown
        assert config.get_option("client.disableDataExport") is True
    finally:
        config.set_option("client.disableDataExport", False)
    sources = "\n".join(p.read_text() for p in (root / "spec_app").rglob("*.py"))
    assert sources.count('"client.disableDataExport"') == 1  # the router's only


@pytest.mark.parametrize(
    ("ttl", "said"),
    [
        ("inf", "Uploads stay on this server until they are deleted (this server sets no expiry)"),
        ("48", "Uploads stay on this server for 48 hours after their last use"),
    ],
)
def test_data_page_says_how_long_uploads_stay(monkeypatch, ttl, said):
    """With SPEC_EXPLORER_UPLOAD_TTL_HOURS=inf (once refused as 168) uploads are never expired,
    and the page says so instead of a number of hours."""
    monkeypatch.setenv("SPEC_EXPLORER_UPLOAD_TTL_HOURS", ttl)
    at = fresh()
    at.switch_page("spec_app/pages/data.py").run()
    assert not at.exception
    assert any(c.value.startswith(said) for c in at.caption), [c.value for c in at.caption]


# ---------------------------------------------------------------------------------------------
# The Models page: several models at once

MODELS_PAGE = "spec_app/pages/models.py"


def precomputed_for(dataset, dim: int, *, name: str, seed: int = 0) -> str:
    """An uploaded matrix of `dataset`'s rows (seeded noise of `dim` columns); its REF."""
    key = cache_key(kind="precomputed", test=f"{name}-{dim}-{seed}-{dataset.name}")
    rows = np.random.default_rng(seed).normal(size=(len(dataset), dim)).astype(np.float32)
    EmbeddingCache().put(key, rows, {})
    return uploads.save_matrix(key, name, dataset.fingerprint(dataset.kind))


def demo_matrix(dim: int = 6) -> str:
    from spec_core.data.demo import load_demo

    return precomputed_for(load_demo("emoji"), dim, name=f"m{dim}.npy")


def models_query(*entries: str) -> dict:
    return {"models": ",".join(entries), "model_a": "pixels-16", "model_b": "char-ngrams"}


def test_models_page_asks_for_models_then_draws_the_matrix():
    at = fresh()
    at.switch_page(MODELS_PAGE).run()
    assert not at.exception and not at.error
    assert "Pick 3 to 8 models" in shown(at.info)
    assert at.button(key="models_run").disabled  # nothing picked yet
    ref = demo_matrix()
    at.session_state["my_matrices"] = [ref]
    at.run()
    picker = at.multiselect(key="models_pick")
    entries = ["image:pixels-16", "text:char-ngrams", f"image:precomputed:{ref}"]
    # the registry's models with what each embeds, and this session's matrix of this data
    shown_as = {"pixels-16 (image)", "char-ngrams (text)", "m6.npy (uploaded)"}
    assert shown_as <= set(picker.options)
    picker.set_value(entries).run()
    at.button(key="models_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state.models == ",".join(entries)
    assert at.query_params["models"] == ",".join(entries)  # the link carries the choice
    assert len(at.get("plotly_chart")) == 3  # SPEC-diff, linear CKA, the map
    table = at.dataframe[0].value
    assert list(table["A"]) == ["pixels-16 (image)", "pixels-16 (image)", "char-ngrams (text)"]
    assert all(" rows · " in text for text in table["A groups, B does not"])
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["SPEC-diff matrix (CSV)", "Model map (JSON)", "HTML report"]
    assert "Closest:" in shown(at.caption)


def test_a_cell_opens_its_pair_on_the_spectrum_page_instantly():
    ref = demo_matrix()
    entries = ("image:pixels-16", "text:char-ngrams", f"image:precomputed:{ref}")
    at = fresh(models_query(*entries), my_matrices=[ref])
    at.switch_page(MODELS_PAGE).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    picker = at.selectbox(key="models_pair")
    assert picker.options[0].startswith("A = pixels-16 (image) · B = char-ngrams (text)")
    picker.set_value("1,2").run()  # row char-ngrams, column the matrix
    at.button(key="models_open").click().run()
    assert not at.exception and not at.error
    assert at.session_state.model_a == "char-ngrams" and at.session_state.modality_a == "text"
    assert at.session_state.model_b == f"precomputed:{ref}"
    assert at.query_params["model_a"] == "char-ngrams"  # the link carries the pair
    pair = table[(table["A"] == "char-ngrams (text)")].iloc[0]
    assert float(metrics(at)["SPEC-diff"]) == pytest.approx(pair["SPEC-diff"], abs=1e-4)


def test_the_models_link_reopens_the_same_matrix():
    ref = demo_matrix()
    entries = ("image:pixels-16", f"image:precomputed:{ref}", "text:char-ngrams")
    at = fresh(models_query(*entries), my_matrices=[ref])
    at.switch_page(MODELS_PAGE).run()
    link = at.get("code")[0].value
    assert "models=image%3Apixels-16%2Cimage%3Aprecomputed%3A" in link
    from urllib.parse import parse_qsl, urlsplit

    query = dict(parse_qsl(urlsplit(link).query))
    other = fresh(query)  # a teammate: a new session, the link only
    other.switch_page(MODELS_PAGE).run()
    assert not other.exception and not other.error
    assert other.dataframe[0].value.equals(at.dataframe[0].value)


def test_a_model_that_cannot_embed_the_data_is_refused_before_any_work():
    at = fresh(models_query("text:pixels-16", "text:char-ngrams", "image:char-ngrams"))
    at.switch_page(MODELS_PAGE).run()
    assert not at.exception
    errors = shown(at.error)
    assert "pixels-16 embeds image, not texts" in errors
    assert "char-ngrams embeds text, not images" in errors
    assert not at.get("plotly_chart") and not at.get("progress")


def test_one_model_failing_leaves_the_others():
    ref = demo_matrix()
    gone = "0" * 40
    entries = ("image:pixels-16", f"image:precomputed:{gone}", "text:char-ngrams",
               f"image:precomputed:{ref}")  # fmt: skip
    at = fresh(models_query(*entries), my_matrices=[ref])
    at.switch_page(MODELS_PAGE).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    warning = shown(at.warning)
    assert "Left out: an uploaded embedding (gone):" in warning and "not on this server" in warning
    assert len(at.dataframe[0].value) == 3  # the three that worked: three pairs


def test_models_links_are_parsed_and_clamped():
    value, note = state.parse_map_models(None, "image:pixels-16,image:pixels-16,text:char-ngrams")
    assert value == "image:pixels-16,text:char-ngrams" and note is None  # no repeats
    value, note = state.parse_map_models(None, "<script>,video:x,image:st:evil/x,image:../etc")
    assert value == "" and note.count("ignored") == 4
    many = ",".join(f"image:precomputed:{i:040x}" for i in range(10))
    value, note = state.parse_map_models(many, many)
    assert value.count(",") == 7 and "using the first 8" in note
    at = fresh({"models": "<b>x</b>,text:char-ngrams"})
    at.switch_page(MODELS_PAGE).run()
    assert not at.exception
    assert "ignored" in shown(at.warning) and at.session_state.models == "text:char-ngrams"
    assert "Pick 3 to 8 models" in shown(at.error)


def test_the_models_page_shows_user_strings_as_text():
    data = evil_images()
    dataset = uploads.load_dataset(data.removeprefix("upload:"))
    ref = precomputed_for(dataset, 5, name=f"{EVIL}.npy")
    entries = ("image:pixels-16", "text:char-ngrams", f"image:precomputed:{ref}")
    at = fresh({**models_query(*entries), "data": data}, my_matrices=[ref])
    at.switch_page(MODELS_PAGE).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 3
    assert_no_live_markdown(at, "evil.example")
