"""Stores shared by many sessions: race-free writes, uploads kept for links and deleted on time,
faithful image modes, text lines."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import png_bytes, text_set
from PIL import Image

from spec_core.cli.entry import main
from spec_core.data import uploads
from spec_core.data.cache import EmbeddingCache, atomic_write, clear_all, image_store
from spec_core.data.dataset_types import Limits
from spec_core.data.image_sets import load_image_files
from spec_core.data.images import load_rgb
from spec_core.data.text_sets import load_texts, split_lines


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


def test_dataset_round_trip_and_reference(tmp_path):
    data = text_set(["alpha", "beta", "gamma"])
    ref = uploads.save_dataset(data, root=tmp_path)
    assert uploads.REF.fullmatch(ref)  # 40 hex digits: 160 bits
    back = uploads.load_dataset(ref, root=tmp_path)
    assert back == data


def test_skipped_counts_survive_the_round_trip(tmp_path):
    """An entry that stands for many skipped rows keeps its count (the Data page's "N item(s)
    skipped" is the count of items, not of entries); a manifest written before counts reads
    each entry as one item; a count that is not a positive integer is damage."""
    data = load_texts(("t.txt", b"a\nb\nc\nd\ne\n"), limits=Limits(max_text_rows=2))
    assert data.skipped_count == 3 and len(data.skipped) == 1
    ref = uploads.save_dataset(data, root=tmp_path)
    back = uploads.load_dataset(ref, root=tmp_path)
    assert back == data and back.skipped_count == 3
    path = tmp_path / "uploads" / f"{ref}.json"
    manifest = json.loads(path.read_text())
    manifest["skipped"] = [["line-3", "old entry"], ["line-4", "old entry"]]
    path.write_text(json.dumps(manifest))
    assert uploads.load_dataset(ref, root=tmp_path).skipped_count == 2
    for bad in (0, -1, "3", 2.0, True):
        ref = uploads.save_dataset(data, root=tmp_path)
        path = tmp_path / "uploads" / f"{ref}.json"
        manifest = json.loads(path.read_text())
        manifest["skipped"] = [["line-3", "reason", bad]]
        path.write_text(json.dumps(manifest))
        with pytest.raises(uploads.UploadGone, match="damaged"):
            uploads.load_dataset(ref, root=tmp_path)


def test_each_upload_gets_its_own_reference(tmp_path):
    """Two sessions uploading the same file used to get the same reference, so one's "Delete
    my data" removed the other's (the issue's repro)."""
    data = text_set(["alpha", "beta", "gamma"])
    rx = uploads.save_dataset(data, root=tmp_path)
    ry = uploads.save_dataset(data, root=tmp_path)
    assert rx != ry
    assert uploads.delete(rx, root=tmp_path) > 0
    assert uploads.load_dataset(ry, root=tmp_path) == data
    with pytest.raises(uploads.UploadGone):
        uploads.load_dataset(rx, root=tmp_path)


def test_concurrent_uploads_get_distinct_references(tmp_path):
    data = text_set(["alpha", "beta", "gamma"])
    refs = []
    errors = run_threads(lambda i: refs.append(uploads.save_dataset(data, root=tmp_path)), 8)
    assert errors == [] and len(set(refs)) == 8
    assert all(uploads.load_dataset(ref, root=tmp_path) == data for ref in refs)


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


def captioned_images(tmp_path, captions: list[str]):
    """An image upload whose images are shared with any other call (same bytes)."""
    table = "file,caption\n" + "".join(f"{i}.png,{c}\n" for i, c in enumerate(captions))
    files = [(f"{i}.png", png_bytes(i)) for i in range(len(captions))]
    return load_image_files(files, store=image_store(tmp_path), captions=("t.csv", table.encode()))


def test_shared_images_stay_for_the_other_upload(tmp_path):
    """The same images under different captions: deleting one upload used to delete the
    images of the other ("some images of this upload are no longer on this server")."""
    first = captioned_images(tmp_path, ["a cat", "a dog", "a bird"])
    second = captioned_images(tmp_path, ["chat", "chien", "oiseau"])
    assert first.image_paths == second.image_paths and first.texts != second.texts
    rx = uploads.save_dataset(first, root=tmp_path)
    ry = uploads.save_dataset(second, root=tmp_path)
    uploads.delete(rx, root=tmp_path)
    assert uploads.load_dataset(ry, root=tmp_path) == second
    assert all(os.path.exists(p) for p in second.image_paths)
    uploads.delete(ry, root=tmp_path)  # the last holder: the images go
    assert list(image_store(tmp_path).iterdir()) == []


def test_same_matrix_under_two_names_and_a_shared_embedding(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("b" * 64, np.ones((3, 2), np.float32), {})
    cache.put("e" * 64, np.ones((3, 2), np.float32), {})
    one = uploads.save_matrix("b" * 64, "a.npy", "f" * 64, root=tmp_path)
    two = uploads.save_matrix("b" * 64, "renamed.npy", "f" * 64, root=tmp_path)
    data = text_set(["alpha", "beta", "gamma"])
    rx, ry = (uploads.save_dataset(data, root=tmp_path) for _ in range(2))
    for ref in (rx, ry):  # both sessions computed the same embedding of the same texts
        uploads.record_derived(ref, "e" * 64, root=tmp_path)
    uploads.delete(one, root=tmp_path)
    uploads.delete(rx, root=tmp_path)
    assert uploads.load_matrix(two, root=tmp_path).name == "renamed.npy"
    assert cache.get("b" * 64) is not None and cache.get("e" * 64) is not None
    uploads.delete(two, root=tmp_path)
    uploads.delete(ry, root=tmp_path)
    assert cache.get("b" * 64) is None and cache.get("e" * 64) is None


def test_expiry_keeps_what_a_live_upload_holds(tmp_path):
    old = captioned_images(tmp_path, ["a", "b"])
    live = captioned_images(tmp_path, ["c", "d"])
    old_ref = uploads.save_dataset(old, root=tmp_path)
    live_ref = uploads.save_dataset(live, root=tmp_path)
    cache = EmbeddingCache(tmp_path)
    cache.put("d" * 64, np.ones((2, 2), np.float32), {})
    for ref in (old_ref, live_ref):
        uploads.record_derived(ref, "d" * 64, root=tmp_path)
    for path in [*image_store(tmp_path).iterdir(), *(tmp_path / "uploads").glob("*")]:
        age(path, 200)  # the live upload's images too: it holds them, that is what counts
    uploads.mark_used(live_ref, root=tmp_path)
    uploads.cleanup(max_age_hours=168, root=tmp_path)
    assert not uploads.exists(old_ref, root=tmp_path)
    assert uploads.load_dataset(live_ref, root=tmp_path) == live
    assert cache.get("d" * 64) is not None


def test_a_deletion_killed_halfway_is_finished_by_the_cleanup(tmp_path):
    """kill -9 after the manifest went: the lists remain, the next clean-up (any retention)
    removes what they held that nobody else holds."""
    gone = captioned_images(tmp_path, ["a", "b", "c"])
    kept = load_image_files([("0.png", png_bytes(0))], store=image_store(tmp_path))
    ref = uploads.save_dataset(gone, root=tmp_path)
    kept_ref = uploads.save_dataset(kept, root=tmp_path)
    EmbeddingCache(tmp_path).put("c" * 64, np.ones((3, 2), np.float32), {})
    uploads.record_derived(ref, "c" * 64, root=tmp_path)
    (tmp_path / "uploads" / f"{ref}.json").unlink()  # where the deletion was killed
    uploads.cleanup(max_age_hours=168, root=tmp_path)
    assert EmbeddingCache(tmp_path).get("c" * 64) is None
    assert sorted(p.name for p in image_store(tmp_path).iterdir()) == [
        os.path.basename(kept.image_paths[0])
    ]
    assert uploads.load_dataset(kept_ref, root=tmp_path) == kept
    assert sorted(p.suffix for p in (tmp_path / "uploads").glob(f"{ref}.*")) == []


def test_a_killed_process_leaves_no_lock(tmp_path):
    """The lock is an flock: the kernel drops it with the process (kill -9 mid-deletion)."""
    import signal
    import subprocess
    import sys

    ref = uploads.save_dataset(text_set(["alpha", "beta", "gamma"]), root=tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from spec_core.data import uploads\n"
            "with uploads._lock(sys.argv[1], exclusive=True):\n"
            "    print('held', flush=True); time.sleep(600)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        done = []
        thread = threading.Thread(target=lambda: done.append(uploads.delete(ref, root=tmp_path)))
        thread.start()
        thread.join(timeout=30)
        assert done and done[0] > 0
    finally:
        holder.kill()


def test_deletions_racing_uploads_of_the_same_content(tmp_path):
    """Sessions upload the same images while others delete their own copies: every upload
    that was not deleted loads, with all its images."""
    files = [(f"{i}.png", png_bytes(i)) for i in range(6)]
    kept: list[str] = []

    def session(i):
        for _ in range(4):
            with uploads.ingesting(tmp_path):
                data = load_image_files(files, store=image_store(tmp_path))
                ref = uploads.save_dataset(data, root=tmp_path)
            if i % 2:
                uploads.delete(ref, root=tmp_path)
            else:
                kept.append(ref)

    assert run_threads(session, 8) == []
    for ref in kept:
        assert len(uploads.load_dataset(ref, root=tmp_path)) == 6


def test_every_use_counts_towards_retention(tmp_path, monkeypatch):
    """A use was recorded at most once an hour: with a retention of 0.1 h an upload opened
    every minute was deleted. Now a use is on record within a tenth of the retention."""
    monkeypatch.setenv(uploads.TTL_ENV, "0.1")  # 360 s, the shortest allowed
    assert uploads.touch_interval() == pytest.approx(36.0)
    ref = uploads.save_dataset(text_set(["alpha", "beta", "gamma"]), root=tmp_path)
    manifest = tmp_path / "uploads" / f"{ref}.json"
    for _ in range(5):  # opened every 64 s for 5 minutes
        age(manifest, 64 / 3600)
        uploads.mark_used(ref, root=tmp_path)
        assert time.time() - manifest.stat().st_mtime < 5
        uploads.cleanup(root=tmp_path)
        assert uploads.exists(ref, root=tmp_path)
    monkeypatch.setenv(uploads.TTL_ENV, "168")
    assert uploads.touch_interval() == uploads.MAX_TOUCH_INTERVAL == 300


@pytest.mark.parametrize(
    "manifest",
    [
        [],
        None,
        {"type": "dataset"},  # keys missing
        {
            "type": "dataset",
            "name": "x",
            "kind": "text",
            "ids": "abc",
            "texts": None,
            "labels": None,
            "images": None,
            "skipped": [],
            "notes": [],
            "fingerprints": {},
        },
        {
            "type": "dataset",
            "name": "x",
            "kind": "image",
            "ids": ["a"],
            "texts": None,
            "labels": None,
            "images": ["../../../../etc/passwd"],
            "skipped": [],
            "notes": [],
            "fingerprints": {},
        },
        {
            "type": "dataset",
            "name": "x",
            "kind": "text",
            "ids": ["a", "b"],
            "texts": ["a"],
            "labels": None,
            "images": None,
            "skipped": [],
            "notes": [],
            "fingerprints": {},
        },
        {"type": "matrix", "key": "../x", "name": "a.npy", "fingerprint": "f"},
    ],
)
def test_a_damaged_manifest_is_reported_as_gone(tmp_path, manifest):
    """Wrong JSON types or a path outside the store: UploadGone, never a TypeError or an open
    of the named path."""
    ref = uploads.save_dataset(text_set(["alpha", "beta", "gamma"]), root=tmp_path)
    (tmp_path / "uploads" / f"{ref}.json").write_text(__import__("json").dumps(manifest))
    for load in (uploads.load_dataset, uploads.load_matrix):
        with pytest.raises(uploads.UploadGone):
            load(ref, root=tmp_path)
    uploads.delete(ref, root=tmp_path)  # and it can still be deleted


def test_uploads_stored_before_the_holdings_lists_are_deleted_right(tmp_path):
    """An upload written by the previous version (no .images list) still holds its images."""
    first = captioned_images(tmp_path, ["a", "b"])
    second = captioned_images(tmp_path, ["c", "d"])
    rx, ry = uploads.save_dataset(first, root=tmp_path), uploads.save_dataset(second, root=tmp_path)
    for ref in (rx, ry):
        (tmp_path / "uploads" / f"{ref}.images").unlink()
    uploads.delete(rx, root=tmp_path)
    assert uploads.load_dataset(ry, root=tmp_path) == second
    uploads.delete(ry, root=tmp_path)
    assert list(image_store(tmp_path).iterdir()) == []


def ttl_warnings(caplog, monkeypatch, value: str) -> tuple[float, list[str]]:
    """upload_ttl_hours() with the variable set to `value` (read twice), and the warnings."""
    from spec_core import checks

    checks._hours.cache_clear()  # each value is warned about once per process
    monkeypatch.setenv(uploads.TTL_ENV, value)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        hours = uploads.upload_ttl_hours()
        assert uploads.upload_ttl_hours() == hours
    return hours, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_ttl_from_the_environment(caplog, monkeypatch):
    for value, hours in (("2.5", 2.5), (" 48 ", 48.0), ("", 168.0), ("0.1", 0.1)):
        assert ttl_warnings(caplog, monkeypatch, value) == (hours, [])
    monkeypatch.delenv(uploads.TTL_ENV)
    assert uploads.upload_ttl_hours() == uploads.DEFAULT_TTL_HOURS == 168.0


@pytest.mark.parametrize("bad", ["0", "-1", "-inf", "nan", "abc", "0x10", "7 days"])
def test_a_ttl_that_is_not_a_positive_number_is_refused_with_a_warning(caplog, monkeypatch, bad):
    hours, warnings = ttl_warnings(caplog, monkeypatch, bad)
    assert hours == uploads.DEFAULT_TTL_HOURS
    assert warnings == [
        f"SPEC_EXPLORER_UPLOAD_TTL_HOURS={bad!r} is not a positive number of hours (or inf, to "
        "keep forever); using 168 hours"
    ]  # once, though read twice


@pytest.mark.parametrize("tiny", ["1e-12", "0.05", "0.0999"])
def test_a_ttl_under_six_minutes_is_raised_to_it_with_a_warning(
    tmp_path, caplog, monkeypatch, tiny
):
    """1e-12 h was taken as is: the next clean-up deleted every upload, even one open in a
    browser. Now 0.1 h (6 minutes), a use recorded every 36 s."""
    hours, warnings = ttl_warnings(caplog, monkeypatch, tiny)
    assert hours == 0.1 == uploads.MIN_TTL_HOURS
    assert warnings == [
        f"SPEC_EXPLORER_UPLOAD_TTL_HOURS={tiny!r} is under the minimum of 0.1 hours; using 0.1 "
        "hours"
    ]
    assert uploads.touch_interval() == pytest.approx(36.0)
    ref = uploads.save_dataset(text_set(["alpha", "beta"]), root=tmp_path)
    age(tmp_path / "uploads" / f"{ref}.json", 5 / 60)  # last used 5 minutes ago
    uploads.cleanup(root=tmp_path)
    assert uploads.exists(ref, root=tmp_path)
    age(tmp_path / "uploads" / f"{ref}.json", 7 / 60)
    uploads.cleanup(root=tmp_path)
    assert not uploads.exists(ref, root=tmp_path)


@pytest.mark.parametrize("forever", ["inf", "Infinity", "1e309"])
def test_an_infinite_ttl_keeps_uploads_until_deleted(tmp_path, caplog, monkeypatch, forever):
    """inf was refused silently (168 h, and the Data page said so); now it keeps an upload
    until it is deleted, its use still recorded every 5 minutes."""
    assert ttl_warnings(caplog, monkeypatch, forever) == (float("inf"), [])
    assert uploads.touch_interval() == uploads.MAX_TOUCH_INTERVAL == 300
    ref = uploads.save_dataset(text_set(["alpha", "beta"]), root=tmp_path)
    age(tmp_path / "uploads" / f"{ref}.json", 10 * 365 * 24)  # ten years unused
    assert uploads.cleanup(root=tmp_path) == 0
    assert uploads.load_dataset(ref, root=tmp_path).texts == ("alpha", "beta")
    uploads.delete(ref, root=tmp_path)  # Delete my data still works
    assert not uploads.exists(ref, root=tmp_path)


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


def test_exif_orientation_turns_the_photo_upright(tmp_path):
    """A phone stores a portrait photo as landscape pixels with an orientation tag (6: turn
    90 degrees clockwise); it was embedded and shown sideways."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red as stored: the top after turning clockwise
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6
    path = save(img, tmp_path / "phone.jpg", exif=exif, quality=95)
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (40, 20, 3)
    assert rgb[2, 10, 0] > 200 and rgb[2, 10, 2] < 60  # red on top
    assert rgb[-3, 10, 0] < 60  # black at the bottom
    broken = save(Image.fromarray(pixels), tmp_path / "plain.png")
    assert np.asarray(load_rgb(broken)).shape == (20, 40, 3)  # no tag: as stored


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

    from spec_app import services

    def npy(matrix) -> bytes:
        buf = io.BytesIO()
        np.save(buf, matrix)
        return buf.getvalue()

    rng = np.random.default_rng(0)
    with_ids = "id,x,y\n" + "".join(f"r{i},{i},{i * i}\n" for i in range(6))
    plain = npy(rng.normal(size=(6, 3)))
    rows = services.data.rows_of_matrices("a.csv", with_ids.encode(), "b.npy", plain)
    assert rows.ids == tuple(f"r{i}" for i in range(6)) and rows.texts == rows.ids
    numbered = services.data.rows_of_matrices("a.npy", plain, "b.npy", plain)
    assert numbered.ids == tuple(str(i) for i in range(6))
    with pytest.raises(ValueError, match="a.npy has 6 rows and b.npy has 4"):
        services.data.rows_of_matrices("a.npy", plain, "b.npy", npy(rng.normal(size=(4, 3))))
