"""Extraction and the embedding cache, with an injected fake encoder (no model weights)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import png_bytes, text_set
from PIL import Image

from spec_core.data.cache import EmbeddingCache, cache_key
from spec_core.data.image_sets import load_image_folder
from spec_core.data.images import load_rgb
from spec_core.models.embed import embed
from spec_core.models.encoders import Encoder


class FakeEncoder(Encoder):
    """Embeds an item as 4 numbers derived from its content; counts the items it saw."""

    def __init__(self, modality="text", identity="fake-v1", name="fake"):
        self.modality = modality
        self.identity = identity
        self.name = name
        self.batch_size = 3
        self.seen = 0

    def prepare(self, item):
        return item.tobytes() if isinstance(item, Image.Image) else item.encode()

    def forward(self, prepared):
        self.seen += len(prepared)
        rows = [np.frombuffer(hashlib.sha256(p).digest()[:16], dtype=np.uint32) for p in prepared]
        return np.stack(rows).astype(np.float32) / 2**32


@pytest.fixture
def texts():
    return text_set([f"sentence {i}" for i in range(10)], "t.txt")


def test_rows_follow_dataset_order(texts):
    encoder = FakeEncoder()
    result = embed(texts, encoder)
    expected = encoder.forward([t.encode() for t in texts.texts])
    np.testing.assert_array_equal(result.matrix, expected)
    assert result.ids == texts.ids and not result.cached


def test_images_are_decoded_in_order(tmp_path):
    for i in range(7):
        (tmp_path / f"{i:02d}.png").write_bytes(png_bytes(i, size=6))
    data = load_image_folder(tmp_path)
    encoder = FakeEncoder(modality="image")
    result = embed(data, encoder, batch_size=2)
    direct = [load_rgb(p).tobytes() for p in data.image_paths]
    np.testing.assert_array_equal(result.matrix, encoder.forward(direct))


def test_progress_reaches_total(texts):
    seen = []
    embed(texts, FakeEncoder(), progress=lambda stage, done, total: seen.append((done, total)))
    assert seen[0] == (0, 10) and seen[-1] == (10, 10)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_cache_hit_miss_and_invalidation(tmp_path, texts):
    cache = EmbeddingCache(tmp_path)
    encoder = FakeEncoder()
    first = embed(texts, encoder, cache=cache)
    assert encoder.seen == 10 and not first.cached
    again = embed(texts, encoder, cache=cache)
    assert again.cached and encoder.seen == 10  # nothing embedded twice
    np.testing.assert_array_equal(again.matrix, first.matrix)
    # new weights identity: a miss
    embed(texts, FakeEncoder(identity="fake-v2"), cache=cache)
    # one changed row: a miss
    changed = text_set(["changed", *list(texts.texts[1:])], "t.txt")
    other = FakeEncoder()
    embed(changed, other, cache=cache)
    assert other.seen == 10
    assert len(cache.entries()) == 3
    assert not list(cache.folder.glob("*.tmp"))  # atomic writes leave no temporaries


def test_damaged_entry_is_a_miss(tmp_path, texts):
    cache = EmbeddingCache(tmp_path)
    embed(texts, FakeEncoder(), cache=cache)
    entry = cache.entries()[0]
    entry.path.write_bytes(b"garbage")
    encoder = FakeEncoder()
    result = embed(texts, encoder, cache=cache)
    assert not result.cached and encoder.seen == 10


def test_cache_clear_and_root(tmp_path, monkeypatch, texts):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path / "root"))
    cache = EmbeddingCache()
    assert cache.root == tmp_path / "root"
    embed(texts, FakeEncoder(), cache=cache)
    assert cache.clear() > 0 and cache.entries() == []


def test_cache_key_is_canonical():
    assert cache_key(a=1, b="x") == cache_key(b="x", a=1)
    assert cache_key(a=1) != cache_key(a=2)


def test_encoder_shape_error(texts):
    class Broken(FakeEncoder):
        def forward(self, prepared):
            return np.zeros((1, 4))

    with pytest.raises(RuntimeError, match="returned shape"):
        embed(texts, Broken())


@pytest.mark.models
def test_key_without_loading_the_model_matches_the_loaded_one(texts):
    from spec_core.models.embed import embedding_key, embedding_key_for
    from spec_core.models.registry import load_encoder

    for name in ("char-ngrams", "e5-small"):
        loaded = load_encoder(name, "text", device="cpu")
        assert embedding_key_for(texts, name, "text") == embedding_key(texts, loaded, "text")


def test_meta_checks_rows_without_reading_the_matrix(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("k", np.ones((2, 3), dtype=np.float32), {"ids": ["a", "b"]})
    assert cache.meta("k", ids=["a", "b"])["shape"] == [2, 3]
    assert cache.meta("k", ids=["b", "a"]) is None  # other rows: a miss, not a wrong hit
    assert cache.get("k", ids=["a"]) is None
    (tmp_path / "embeddings" / "k.npy").write_bytes(b"\x93NUMPY garbage")
    assert cache.meta("k") is None
