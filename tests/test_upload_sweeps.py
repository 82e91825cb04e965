"""What no upload holds goes, and what others hold stays: the findings of an attack on the
upload store (an embedding finished after its upload was deleted, the demo's embeddings taken
by an upload of the same content, images of a refused upload, half of a refused pair of
matrices, odd holdings lists, world-readable folders, files staged by a server that died)."""

from __future__ import annotations

import os
import stat
import threading
import time

import numpy as np
import pytest
from conftest import png_bytes, text_set

from spec_core.data import upload_files, uploads
from spec_core.data.cache import PINNED, EmbeddingCache, image_store
from spec_core.data.image_sets import load_image_files

K = "e" * 64


def _age(root, key: str, seconds: float) -> None:
    """Make an embedding-cache entry look `seconds` old."""
    folder = EmbeddingCache(root).folder
    then = time.time() - seconds
    for suffix in (".npy", ".json"):
        os.utime(folder / f"{key}{suffix}", (then, then))


def test_an_embedding_finished_after_its_upload_was_deleted_is_dropped(tmp_path):
    """The attack's repro: the key is recorded, the upload deleted, the embedding then written:
    drop_unheld (what the app calls when the embedding ends) and the clean-up both remove it."""
    cache = EmbeddingCache(tmp_path)
    data = text_set([f"secret {i}" for i in range(20)])
    for finish in ("drop_unheld", "cleanup"):
        ref = uploads.save_dataset(data, root=tmp_path)
        uploads.record_derived(ref, K, root=tmp_path)
        uploads.delete(ref, root=tmp_path)  # another tab: Delete my data
        cache.put(K, np.ones((20, 3), np.float32), {"ids": list(data.ids)})
        if finish == "drop_unheld":
            assert uploads.drop_unheld([K], root=tmp_path) > 0
        else:
            uploads.cleanup(root=tmp_path)
            assert cache.meta(K) is not None  # too new: a writer may still be at work
            _age(tmp_path, K, uploads.SWEEP_GRACE_SECONDS + 60)
            uploads.cleanup(root=tmp_path)
        assert cache.meta(K) is None and not list(cache.folder.glob(f"{K}.*"))


def test_drop_unheld_keeps_what_another_upload_holds_and_pinned_entries(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put(K, np.ones((3, 2), np.float32), {})
    cache.put("d" * 64, np.ones((3, 2), np.float32), {PINNED: True})
    other = uploads.save_dataset(text_set(["a", "b", "c"]), root=tmp_path)
    uploads.record_derived(other, K, root=tmp_path)
    assert uploads.drop_unheld([K, "d" * 64], root=tmp_path) == 0
    assert cache.meta(K) is not None and cache.meta("d" * 64) is not None


def test_the_demo_keeps_its_embeddings_when_an_upload_of_the_same_content_is_deleted(tmp_path):
    """An upload of the demo's images gets the demo's cache keys; deleting it used to delete
    the demo's embeddings (and anything the command line embedded): pinned entries stay."""
    from spec_core.models.embed import embed
    from spec_core.models.registry import load_encoder

    cache = EmbeddingCache(tmp_path)
    data = text_set(["alpha", "beta", "gamma", "delta"])
    made = embed(data, load_encoder("char-ngrams"), "text", cache=cache)  # the demo's path
    key = next(iter(cache.keys()))
    assert cache.meta(key)[PINNED] is True
    ref = uploads.save_dataset(data, root=tmp_path)
    uploads.record_derived(ref, key, root=tmp_path)  # the upload uses the same entry
    uploads.delete(ref, root=tmp_path)
    _age(tmp_path, key, uploads.SWEEP_GRACE_SECONDS + 60)
    uploads.cleanup(max_age_hours=1e-6, root=tmp_path)
    hit = cache.get(key)
    assert hit is not None and np.array_equal(hit[0], made.matrix)
    # an upload's own embedding (pin=False) goes with it
    other = text_set(["one", "two", "three"])
    ref = uploads.save_dataset(other, root=tmp_path)
    embed(other, load_encoder("char-ngrams"), "text", cache=cache, pin=False)
    own = next(k for k in list(cache.keys()) if k != key)
    assert PINNED not in cache.meta(own)
    uploads.record_derived(ref, own, root=tmp_path)
    uploads.delete(ref, root=tmp_path)
    assert cache.meta(own) is None and cache.get(key) is not None


def test_images_of_a_refused_upload_are_discarded_unless_held(tmp_path):
    store = image_store(tmp_path)
    kept = load_image_files([(f"{i}.png", png_bytes(i)) for i in range(3)], store=store)
    ref = uploads.save_dataset(kept, root=tmp_path)
    # a refused upload: one image shared with the kept upload, one of its own
    refused = load_image_files([("a.png", png_bytes(0)), ("b.png", png_bytes(7))], store=store)
    names = [os.path.basename(p) for p in refused.image_paths]
    assert all((store / n).exists() for n in names)
    uploads.discard_images([*names, "../../etc/passwd"], root=tmp_path)
    assert (store / names[0]).exists() and not (store / names[1]).exists()
    assert uploads.load_dataset(ref, root=tmp_path) == kept


def test_a_refused_pair_of_matrices_keeps_neither(tmp_path, monkeypatch):
    """B refused after A was stored: A used to stay as an upload nobody could delete."""
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path))
    from spec_app.services import data as service

    dataset = text_set([f"row {i}" for i in range(6)])
    good = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    bad = np.ones((5, 4), np.float32)  # one row short
    buffers = []
    for matrix in (good, bad):
        path = tmp_path / f"m{len(buffers)}.npy"
        np.save(path, matrix)
        buffers.append(path.read_bytes())
    with pytest.raises(ValueError, match="rows"):
        service.store_precomputed_pair(("A.npy", buffers[0]), ("B.npy", buffers[1]), dataset)
    assert sorted(p.name for p in (tmp_path / "uploads").glob("*.json")) == []
    ref_a, ref_b, _ = service.store_precomputed_pair(
        ("A.npy", buffers[0]), ("B.npy", buffers[0]), dataset
    )
    assert uploads.exists(ref_a, root=tmp_path) and uploads.exists(ref_b, root=tmp_path)


def test_a_fifo_or_a_huge_holdings_list_neither_hangs_nor_swells_a_deletion(tmp_path):
    data = text_set(["alpha", "beta", "gamma"])
    odd, huge, mine = (uploads.save_dataset(data, root=tmp_path) for _ in range(3))
    folder = tmp_path / "uploads"
    os.unlink(folder / f"{odd}.images")
    os.mkfifo(folder / f"{odd}.images")
    with open(folder / f"{huge}.derived", "wb") as handle:
        handle.truncate(upload_files.MAX_LIST_BYTES + 1)
    done = threading.Event()

    def delete():
        uploads.delete(mine, root=tmp_path)
        done.set()

    threading.Thread(target=delete, daemon=True).start()
    assert done.wait(30), "the deletion hung on a FIFO holdings list"
    assert not uploads.exists(mine, root=tmp_path)
    assert uploads.load_dataset(huge, root=tmp_path) == data


def test_new_cache_folders_and_lists_are_private(tmp_path):
    root = tmp_path / "fresh"
    ref = uploads.save_dataset(text_set(["a", "b", "c"]), root=root)
    uploads.record_derived(ref, K, root=root)
    EmbeddingCache(root).put(K, np.ones((3, 2), np.float32), {})
    load_image_files([("x.png", png_bytes(1))], store=image_store(root))
    for folder in (root, root / "uploads", root / "embeddings", root / "images"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder.name
    for name in (f"{ref}.json", f"{ref}.images", f"{ref}.derived"):
        assert stat.S_IMODE((root / "uploads" / name).stat().st_mode) == 0o600, name
    # a damaged entry set aside: its folders and REASON private too
    (EmbeddingCache(root).folder / f"{K}.npy").write_bytes(b"garbage")
    assert EmbeddingCache(root).get(K) is None
    moved = next((root / "damaged" / "embeddings").iterdir())
    for folder in (root / "damaged", root / "damaged" / "embeddings", moved):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder.name
    assert stat.S_IMODE((moved / "REASON").stat().st_mode) == 0o600


def test_staged_uploads_live_in_the_cache_and_are_swept_after_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path))
    from spec_app.services import data as service

    with service._staged("../../x.csv", b"a,b\n1,2\n") as path:
        assert path.parent.parent == tmp_path / "staging" and path.name == "upload.csv"
    assert list((tmp_path / "staging").iterdir()) == []
    # a server killed while reading leaves its folder: swept once older than the grace
    dead = tmp_path / "staging" / "upload-dead"
    dead.mkdir()
    (dead / "upload.csv").write_bytes(b"secret")
    fresh = tmp_path / "staging" / "upload-live"
    fresh.mkdir()
    (fresh / "upload.csv").write_bytes(b"being read")
    then = time.time() - uploads.SWEEP_GRACE_SECONDS - 60
    os.utime(dead, (then, then))
    uploads.save_dataset(text_set(["a", "b", "c"]), root=tmp_path)  # the clean-up needs a store
    uploads.cleanup(root=tmp_path)
    assert not dead.exists() and (fresh / "upload.csv").read_bytes() == b"being read"


def test_an_upload_is_named_by_its_file_in_messages(tmp_path, monkeypatch):
    """ "Delete my data" says which uploads it deleted (it said only a size)."""
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path))
    from spec_app.services import data as service

    ref = uploads.save_dataset(text_set(["a", "b", "c"], "my notes.txt"))
    EmbeddingCache().put(K, np.ones((3, 2), np.float32), {})
    matrix = uploads.save_matrix(K, "A.npy", "f" * 64)
    assert service.upload_name(ref) == "my notes.txt"
    assert service.upload_name(matrix) == "A.npy"
    uploads.delete(ref)
    assert service.upload_name(ref) == "an upload"
