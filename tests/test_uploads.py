"""Stores shared by many sessions: race-free writes, uploads kept for links and deleted on time,
faithful image modes, text lines."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spec_core import uploads
from spec_core.cache import EmbeddingCache, atomic_write, clear_all, image_store
from spec_core.cli import main
from spec_core.datasets import load_image_files, load_texts, split_lines
from spec_core.embed import load_rgb


def png_bytes(seed: int, size: int = 8) -> bytes:
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def run_threads(target, count: int) -> list:
    """Run `target(i)` in `count` threads released at once; returns the exceptions raised."""
    errors: list = []
    barrier = threading.Barrier(count)

    def worker(i):
        barrier.wait()
        try:
            target(i)
        except Exception as err:  # collected, asserted by the caller
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


# ---------------------------------------------------------------------------------------------
# Races


def test_concurrent_uploads_of_the_same_images_all_succeed(tmp_path):
    """The issue saw 9 of 12 concurrent loads fail on a fixed '<sha>.png.tmp' name."""
    files = [(f"img{i}.png", png_bytes(i, size=64)) for i in range(20)]
    store = tmp_path / "images"
    results = []

    def load(_):
        results.append(load_image_files(files, store=store))

    for _ in range(3):  # the race needs the files to be absent: fresh store each round
        for leftover in store.glob("*") if store.exists() else ():
            leftover.unlink()
        results.clear()
        errors = run_threads(load, 12)
        assert errors == []
        assert len(results) == 12 and all(len(r) == 20 and not r.skipped for r in results)
        assert sorted(p.name for p in store.iterdir()) == sorted(
            os.path.basename(p) for p in results[0].image_paths
        )  # no temporary file left behind
        for path, (_, data) in zip(results[0].image_paths, sorted(files), strict=True):
            assert Path(path).read_bytes() == data


def test_atomic_write_never_shows_a_partial_file(tmp_path):
    target = tmp_path / "entry.bin"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    seen = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            if target.exists():
                seen.add(target.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    errors = run_threads(lambda i: atomic_write(target, payloads[i]), 8)
    stop.set()
    thread.join()
    assert errors == []
    assert seen <= set(payloads) and target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["entry.bin"]


def test_concurrent_cache_puts_of_one_key(tmp_path):
    cache = EmbeddingCache(tmp_path)
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    errors = run_threads(lambda i: cache.put("k" * 64, matrix, {"ids": ["a", "b", "c"]}), 12)
    assert errors == []
    got, _ = cache.get("k" * 64, ids=["a", "b", "c"])
    np.testing.assert_array_equal(got, matrix)
    assert sorted(p.name for p in cache.folder.iterdir()) == ["k" * 64 + ".json", "k" * 64 + ".npy"]


# ---------------------------------------------------------------------------------------------
# Uploads: references, round trips, deletion, retention


def text_set(lines: list[str], name: str = "notes.txt"):
    return load_texts((name, "\n".join(lines).encode()))


def test_dataset_round_trip_and_reference(tmp_path):
    data = text_set(["alpha", "beta", "gamma"])
    ref = uploads.save_dataset(data, root=tmp_path)
    assert uploads.REF.fullmatch(ref)  # 40 hex digits: 160 bits
    assert uploads.save_dataset(data, root=tmp_path) == ref  # content-addressed
    back = uploads.load_dataset(ref, root=tmp_path)
    assert back == data
    other = text_set(["alpha", "beta", "delta"])
    assert uploads.save_dataset(other, root=tmp_path) != ref


def test_reference_needs_the_server_secret(tmp_path):
    """The same content on two servers (two secrets) gets unrelated references: nobody can
    derive a reference from data they guess."""
    data = text_set(["alpha", "beta", "gamma"])
    one = uploads.save_dataset(data, root=tmp_path / "one")
    two = uploads.save_dataset(data, root=tmp_path / "two")
    assert one != two
    secret = tmp_path / "one" / "uploads" / ".secret"
    assert len(secret.read_bytes()) == 32
    assert secret.stat().st_mode & 0o077 == 0  # readable by the server's user only


def test_concurrent_first_uploads_share_one_secret(tmp_path):
    data = text_set(["alpha", "beta", "gamma"])
    refs = []
    errors = run_threads(lambda i: refs.append(uploads.save_dataset(data, root=tmp_path)), 8)
    assert errors == [] and len(set(refs)) == 1


def test_image_upload_round_trip_and_gone(tmp_path):
    store = image_store(tmp_path)
    data = load_image_files([(f"{i}.png", png_bytes(i)) for i in range(4)], store=store)
    ref = uploads.save_dataset(data, root=tmp_path)
    assert uploads.load_dataset(ref, root=tmp_path) == data
    os.unlink(data.image_paths[2])
    with pytest.raises(uploads.UploadGone, match="no longer on this server"):
        uploads.load_dataset(ref, root=tmp_path)


@pytest.mark.parametrize("ref", ["", "../../etc/passwd", "a" * 39, "A" * 40, "g" * 40, "0" * 41])
def test_malformed_references_are_gone(tmp_path, ref):
    assert not uploads.exists(ref, root=tmp_path)
    with pytest.raises(uploads.UploadGone):
        uploads.load_dataset(ref, root=tmp_path)


def test_delete_removes_the_upload_its_images_and_what_was_computed(tmp_path):
    store = image_store(tmp_path)
    data = load_image_files([(f"{i}.png", png_bytes(i)) for i in range(3)], store=store)
    ref = uploads.save_dataset(data, root=tmp_path)
    cache = EmbeddingCache(tmp_path)
    cache.put("e" * 64, np.ones((3, 2), np.float32), {})
    uploads.record_derived(ref, "e" * 64, root=tmp_path)
    uploads.record_derived(ref, "e" * 64, root=tmp_path)  # recorded once
    assert uploads.derived(ref, root=tmp_path) == ["e" * 64]
    assert uploads.delete(ref, root=tmp_path) > 0
    assert not uploads.exists(ref, root=tmp_path)
    assert cache.meta("e" * 64) is None
    assert list(store.iterdir()) == []
    assert uploads.delete(ref, root=tmp_path) == 0  # deleting again is fine


def test_matrix_upload(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("b" * 64, np.ones((3, 2), np.float32), {})
    ref = uploads.save_matrix("b" * 64, "a.npy", "f" * 64, root=tmp_path)
    got = uploads.load_matrix(ref, root=tmp_path)
    assert (got.key, got.name, got.fingerprint) == ("b" * 64, "a.npy", "f" * 64)
    uploads.delete(ref, root=tmp_path)
    assert cache.meta("b" * 64) is None
    with pytest.raises(uploads.UploadGone):
        uploads.load_matrix(ref, root=tmp_path)


def age(path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def test_cleanup_deletes_what_was_not_used_for_the_retention_time(tmp_path):
    store = image_store(tmp_path)
    old = load_image_files([("old.png", png_bytes(1))], store=store)
    live = load_image_files([("live.png", png_bytes(2)), ("shared.png", png_bytes(1))], store=store)
    old_ref = uploads.save_dataset(old, root=tmp_path)
    live_ref = uploads.save_dataset(live, root=tmp_path)
    cache = EmbeddingCache(tmp_path)
    cache.put("d" * 64, np.ones((1, 2), np.float32), {})
    uploads.record_derived(old_ref, "d" * 64, root=tmp_path)
    folder = tmp_path / "uploads"
    for path in [*store.iterdir(), *folder.glob("*.json")]:
        age(path, 200)
    uploads.mark_used(live_ref, root=tmp_path)  # the live upload was opened just now
    uploads.cleanup(max_age_hours=168, root=tmp_path)
    assert not uploads.exists(old_ref, root=tmp_path)
    assert cache.meta("d" * 64) is None
    assert uploads.load_dataset(live_ref, root=tmp_path) == live  # its images were kept
    assert sorted(p.name for p in store.iterdir()) == sorted(
        os.path.basename(p) for p in live.image_paths
    )


def test_ttl_from_the_environment(monkeypatch):
    monkeypatch.setenv(uploads.TTL_ENV, "2.5")
    assert uploads.upload_ttl_hours() == 2.5
    for bad in ("0", "-3", "inf", "nan", "soon"):
        monkeypatch.setenv(uploads.TTL_ENV, bad)
        assert uploads.upload_ttl_hours() == uploads.DEFAULT_TTL_HOURS


def test_cache_clear_removes_uploads_and_images(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path))
    data = load_image_files([("a.png", png_bytes(1))], store=image_store())
    ref = uploads.save_dataset(data)
    EmbeddingCache().put("c" * 64, np.ones((1, 2), np.float32), {})
    assert main(["cache", "--clear"]) == 0
    out = capsys.readouterr().out
    assert "images" in out and "uploads" in out and "embeddings" in out
    assert not uploads.exists(ref)
    for name in ("images", "uploads", "embeddings"):
        assert not (tmp_path / name).exists()
    assert clear_all(tmp_path) == {}


# ---------------------------------------------------------------------------------------------
# Image modes and text lines


def save(img: Image.Image, path, **kwargs) -> str:
    img.save(path, **kwargs)
    return str(path)


def test_16_bit_png_keeps_its_brightness(tmp_path):
    """Clipping at 255 made most of a 16-bit image white; scaled, a ramp stays a ramp."""
    ramp = np.linspace(0, 65535, 256 * 4).reshape(4, 256).astype(np.uint16)
    path = save(Image.fromarray(ramp), tmp_path / "ramp16.png")
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (4, 256, 3) and rgb.dtype == np.uint8
    expected = np.rint(ramp / 65535 * 255)
    np.testing.assert_allclose(rgb[..., 0], expected, atol=1)
    assert 120 < rgb.mean() < 135  # a binarised image has a mean near 255


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: Image.new("I", (4, 4), 65535 // 2), (128, 128, 128)),
        (lambda: Image.new("F", (4, 4), 0.25), (64, 64, 64)),
        (lambda: Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)),  # transparent: white
        (lambda: Image.new("LA", (4, 4), (0, 255)), (0, 0, 0)),
        (lambda: Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),
        (lambda: Image.new("1", (4, 4), 1), (255, 255, 255)),
        (lambda: Image.new("RGBA", (4, 4), (10, 200, 30, 255)), (10, 200, 30)),
    ],
)
def test_image_modes_become_rgb(tmp_path, make, expected):
    img = make()
    suffix = {"CMYK": ".jpg", "F": ".tiff", "I": ".tiff"}.get(img.mode, ".png")
    kwargs = {"quality": 100} if suffix == ".jpg" else {}
    path = save(img, tmp_path / f"x{suffix}", **kwargs)
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (4, 4, 3)
    np.testing.assert_allclose(rgb[0, 0], expected, atol=3)


def test_palette_transparency_on_white(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 1
    path = save(img, tmp_path / "p.png", transparency=1)
    np.testing.assert_array_equal(np.asarray(load_rgb(path))[0, 0], (255, 255, 255))


def test_lines_split_only_on_newlines():
    text = "a\x85b\u2028c\x0bd\x0ce\x1cf\rg\r\nh\n\ni\n"
    assert split_lines(text) == ["a\x85b\u2028c\x0bd\x0ce\x1cf\rg", "h", "", "i"]
    assert split_lines("") == [] and split_lines("x") == ["x"]


def test_text_file_with_unusual_breaks_has_one_row_per_line():
    data = load_texts(("t.txt", "one\x85still one\ntwo\u2028still two\r\nthree\x0b!\n".encode()))
    assert data.texts == ("one\x85still one", "two\u2028still two", "three\x0b!")
    assert data.ids == ("line-1", "line-2", "line-3")


def test_jsonl_lines_split_only_on_newlines():
    content = '{"text": "a\u2028b"}\n{"text": "c"}\n'.encode()
    assert load_texts(("t.jsonl", content)).texts == ("a\u2028b", "c")


def test_rows_of_two_matrices():
    """The rows two uploaded matrices make on their own: A's ids, else B's, else numbers."""
    import io

    from spec_app import services

    def npy(matrix) -> bytes:
        buf = io.BytesIO()
        np.save(buf, matrix)
        return buf.getvalue()

    rng = np.random.default_rng(0)
    with_ids = "id,x,y\n" + "".join(f"r{i},{i},{i * i}\n" for i in range(6))
    plain = npy(rng.normal(size=(6, 3)))
    rows = services.rows_of_matrices("a.csv", with_ids.encode(), "b.npy", plain)
    assert rows.ids == tuple(f"r{i}" for i in range(6)) and rows.texts == rows.ids
    numbered = services.rows_of_matrices("a.npy", plain, "b.npy", plain)
    assert numbered.ids == tuple(str(i) for i in range(6))
    with pytest.raises(ValueError, match="a.npy has 6 rows and b.npy has 4"):
        services.rows_of_matrices("a.npy", plain, "b.npy", npy(rng.normal(size=(4, 3))))
