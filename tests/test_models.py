"""The model registry and the real loading code: random-init open_clip, a local weights file,
and the packaged offline models end to end on a few real images and texts."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from spec_core.cli.entry import main
from spec_core.data.demo import load_demo
from spec_core.models.embed import embed
from spec_core.models.encoders import OpenClipEncoder
from spec_core.models.registry import ModelLoadError, get_model, list_models, load_encoder


def test_registry_lists_offline_first_with_modalities():
    entries = list_models()
    offline = [m.offline for m in entries]
    assert offline == sorted(offline, reverse=True)
    names = {m.name for m in entries}
    assert {"efficientnet-lite0", "opennsfw-resnet50", "minilm-l6", "e5-small"} <= names
    assert all(m.modalities for m in entries)
    assert {m.name for m in list_models(modality="text")} >= {"minilm-l6", "e5-small"}


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'nope'; use one of efficientnet-lite0"):
        get_model("nope")


def test_open_clip_pairs_are_checked():
    assert get_model("open_clip:RN50/openai").family == "open_clip"
    with pytest.raises(ValueError, match=r"known tags for ViT-B-32: .*openai"):
        get_model("open_clip:ViT-B-32/not-a-tag")
    with pytest.raises(ValueError, match=r"no architecture Nope"):
        get_model("open_clip:Nope/openai")
    with pytest.raises(ValueError, match=r"expected open_clip:ARCH/TAG"):
        get_model("open_clip:ViT-B-32")


def test_wrong_modality():
    with pytest.raises(ValueError, match=r"embeds text, not image"):
        load_encoder("minilm-l6", "image")


@pytest.fixture(scope="module")
def random_clip():
    info = get_model("open_clip:ViT-B-32/openai")
    image = OpenClipEncoder(info, "image", "cpu", pretrained="")
    text = OpenClipEncoder(info, "text", "cpu", pretrained="")
    text.model = image.model  # one random model, both towers
    return image, text


@pytest.mark.slow
def test_open_clip_random_init_both_towers(random_clip):
    image_enc, text_enc = random_clip
    emoji = load_demo("emoji")
    from PIL import Image

    images = [Image.open(p) for p in emoji.image_paths[:3]]
    img = image_enc.forward([image_enc.prepare(i) for i in images])
    txt = text_enc.forward(list(emoji.texts[:3]))
    assert img.shape == (3, 512) and txt.shape == (3, 512)
    assert np.isfinite(img).all() and np.isfinite(txt).all()


@pytest.mark.slow
def test_open_clip_local_weights_file(tmp_path, random_clip):
    image_enc, _ = random_clip
    weights = tmp_path / "clip.pt"
    torch.save(image_enc.model.state_dict(), weights)
    encoder = load_encoder(f"open_clip:ViT-B-32@{weights}", "image", device="cpu")
    assert "@file:clip.pt:" in encoder.identity
    batch = torch.stack([image_enc.prepare(_gray()), image_enc.prepare(_gray(90))])
    expected = image_enc.forward(list(batch))
    np.testing.assert_allclose(encoder.forward(list(batch)), expected, rtol=1e-4, atol=1e-5)


def _gray(level=30):
    from PIL import Image

    return Image.new("RGB", (40, 40), (level, level, level))


def test_download_failure_is_a_clear_message(monkeypatch):
    import open_clip

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", offline)
    with pytest.raises(ModelLoadError, match=r"could not load model .*no network.*offline model"):
        load_encoder("open_clip:ViT-B-32/openai", "image", device="cpu")


@pytest.mark.models
@pytest.mark.parametrize(
    ("name", "modality", "dim"),
    [
        ("efficientnet-lite0", "image", 1280),
        ("opennsfw-resnet50", "image", 1024),
        ("minilm-l6", "text", 384),
        ("e5-small", "text", 384),
    ],
)
def test_packaged_models_end_to_end(name, modality, dim):
    data = load_demo("emoji")
    small = replace(
        data,
        ids=data.ids[:6],
        image_paths=data.image_paths[:6],
        texts=data.texts[:6],
        labels=data.labels[:6],
        fingerprints={"image": "t-img", "text": "t-txt"},
    )
    encoder = load_encoder(name, modality, device="cpu")
    first = embed(small, encoder, modality, batch_size=4)
    assert first.matrix.shape == (6, dim) and np.isfinite(first.matrix).all()
    again = embed(small, encoder, modality, batch_size=6)  # batching does not change rows
    np.testing.assert_allclose(again.matrix, first.matrix, rtol=1e-3, atol=1e-4)
    # different inputs give different rows
    assert np.linalg.norm(first.matrix[0] - first.matrix[1]) > 1e-3


@pytest.mark.models
def test_cli_embed_and_models(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "t.txt"
    texts.write_text("a red apple\n\na blue car\na green tree\n")
    out = tmp_path / "emb.npy"
    assert main(["embed", "--model", "e5-small", "--data", str(texts), "--out", str(out)]) == 0
    matrix = np.load(out)
    ids = json.loads(out.with_suffix(".ids.json").read_text())
    assert matrix.shape == (3, 384) and ids["ids"] == ["line-1", "line-3", "line-4"]
    assert main(["embed", "--model", "e5-small", "--data", str(texts), "--out", str(out)]) == 0
    assert "(cache)" in capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"name", "modalities", "dim", "offline"} <= listed[0].keys()
    assert main(["cache"]) == 0 and "1 entries" in capsys.readouterr().out
    code = main(["embed", "--model", "efficientnet-lite0", "--data", str(texts), "--out", str(out)])
    assert (
        code == 2 and "t.txt has text; efficientnet-lite0 embeds image" in capsys.readouterr().err
    )
