"""The disk cache under damage: every kind of damage the cache issue lists (and a few more) is
detected, moved aside with its reason, logged once and recomputed (embeddings) or reported
gone (uploads); nothing outside the cache root is opened; `cache --verify` lists the damage and
`cache --repair` moves it aside. Expected checksums are computed here with hashlib over the
file's bytes, not with the code under test."""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import png_bytes, text_set

from spec_core.cli.entry import main
from spec_core.data import cache as cache_module
from spec_core.data import uploads
from spec_core.data.cache import EmbeddingCache, image_store
from spec_core.data.image_sets import load_image_files
from spec_core.models.embed import embed
from spec_core.models.encoders import Encoder

LOGGER = "spec_explorer.cache"


class RowEncoder(Encoder):
    """Embeds a text as 6 numbers from its sha256; counts the items it saw."""

    name = "rows"
    identity = "rows-v1"
    modality = "text"
    batch_size = 8

    def __init__(self):
        self.seen = 0

    def prepare(self, item):
        return item.encode()

    def forward(self, prepared):
        self.seen += len(prepared)
        rows = [np.frombuffer(hashlib.sha256(p).digest()[:24], dtype=np.uint32) for p in prepared]
        return np.stack(rows).astype(np.float32) / 2**32


TEXTS = text_set([f"sentence number {i}" for i in range(12)])


def stored(root: Path) -> tuple[EmbeddingCache, Path, Path, np.ndarray]:
    """A cache at `root` holding the embedding of TEXTS: (cache, its .npy, its .json, matrix)."""
    cache = EmbeddingCache(root)
    matrix = embed(TEXTS, RowEncoder(), cache=cache).matrix
    (key,) = [p.stem for p in cache.folder.glob("*.npy")]
    return cache, cache.folder / f"{key}.npy", cache.folder / f"{key}.json", matrix


def set_aside(root: Path, kind: str) -> list[Path]:
    folder = root / "damaged" / kind
    return sorted(folder.iterdir()) if folder.is_dir() else []


def reason_of(moved: Path) -> str:
    return (moved / "REASON").read_text()


# ---------------------------------------------------------------------------------------------
# Embeddings: the kinds of damage


def random_bytes(npy: Path, _json: Path) -> None:
    npy.write_bytes(np.random.default_rng(1).bytes(npy.stat().st_size))


def zip_magic(npy: Path, _json: Path) -> None:
    npy.write_bytes(b"PK\x03\x04" + bytes(200))


def broken_header(npy: Path, _json: Path) -> None:
    npy.write_bytes(
        b"\x93NUMPY\x01\x00" + (40).to_bytes(2, "little") + b"{'descr': ((((" + bytes(30)
    )


def garbage_rows(npy: Path, _json: Path) -> None:
    data = npy.read_bytes()
    npy.write_bytes(data[:128] + np.random.default_rng(2).bytes(len(data) - 128))


def json_list(_npy: Path, meta: Path) -> None:
    meta.write_text("[]")


def json_null(_npy: Path, meta: Path) -> None:
    meta.write_text("null")


def json_wrong_types(_npy: Path, meta: Path) -> None:
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "shape": "12x6"}))


def permuted_rows(npy: Path, _json: Path) -> None:
    matrix = np.load(npy)
    np.save(npy, matrix[np.random.default_rng(3).permutation(len(matrix))])


def nan_row(npy: Path, _json: Path) -> None:
    matrix = np.load(npy)
    matrix[4] = np.nan
    np.save(npy, matrix)


def wrong_dtype(npy: Path, _json: Path) -> None:
    np.save(npy, np.load(npy).astype(np.float64))


def wrong_shape(npy: Path, _json: Path) -> None:
    np.save(npy, np.load(npy)[:, :4])


def truncated(npy: Path, _json: Path) -> None:
    npy.write_bytes(npy.read_bytes()[:200])


def matrix_folder(npy: Path, _json: Path) -> None:
    npy.unlink()
    npy.mkdir()


def meta_folder(_npy: Path, meta: Path) -> None:
    meta.unlink()
    meta.mkdir()


#: damage -> what its REASON says
EMBEDDING_DAMAGE = {
    random_bytes: "no valid header",
    zip_magic: "no valid header",
    broken_header: "no valid header",
    garbage_rows: "checksum does not match",
    json_list: "is a list, not an object",
    json_null: "is null, not an object",
    json_wrong_types: "shape is not two counts",
    permuted_rows: "checksum does not match",
    nan_row: "checksum does not match",
    wrong_dtype: "holds <f8",
    wrong_shape: "shape [12, 4] is not the description's [12, 6]",
    truncated: "bytes where its header says",
    matrix_folder: "matrix (.npy) is not a regular file",
    meta_folder: "description (.json) is not a regular file",
}


@pytest.mark.parametrize("damage", list(EMBEDDING_DAMAGE), ids=lambda d: d.__name__)
def test_a_damaged_embedding_is_moved_aside_logged_once_and_computed_again(
    tmp_path, caplog, damage
):
    cache, npy, meta, clean = stored(tmp_path)
    damage(npy, meta)
    encoder = RowEncoder()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        again = embed(TEXTS, encoder, cache=cache)
        assert cache.get(npy.stem) is not None  # the recomputed entry is served
    assert not again.cached and encoder.seen == len(TEXTS)
    np.testing.assert_array_equal(again.matrix, clean)
    (moved,) = set_aside(tmp_path, "embeddings")
    assert EMBEDDING_DAMAGE[damage] in reason_of(moved)
    assert {p.name for p in moved.iterdir()} >= {"REASON", npy.name}
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1 and EMBEDDING_DAMAGE[damage] in records[0].getMessage()


def test_the_checksum_is_the_sha256_of_the_file_as_written(tmp_path):
    _, npy, meta, _ = stored(tmp_path)
    description = json.loads(meta.read_text())
    assert description["checksum"] == "sha256:" + hashlib.sha256(npy.read_bytes()).hexdigest()
    assert description["dtype"] == "<f4" and description["shape"] == [12, 6]


def test_a_permuted_matrix_is_never_served(tmp_path):
    """The issue's case: the rows of a cached embedding permuted on disk (a valid .npy of the
    right shape and dtype) changed SPEC-diff silently."""
    cache, npy, meta, _ = stored(tmp_path)
    permuted_rows(npy, meta)
    assert cache.get(npy.stem) is None and cache.verify(npy.stem) is None
    assert not npy.exists() and not meta.exists()


def test_the_checksum_is_verified_once_per_file_version(tmp_path, monkeypatch):
    cache, npy, _, clean = stored(tmp_path)
    cache_module._verified.clear()  # a new process
    hashed = []
    real_new = hashlib.new

    def counting(name, *args, **kwargs):
        hashed.append(name)
        return real_new(name, *args, **kwargs)

    monkeypatch.setattr(cache_module.hashlib, "new", counting)
    for _ in range(3):
        np.testing.assert_array_equal(cache.get(npy.stem)[0], clean)
    assert hashed == ["sha256"]  # the first read verified it; the others only read
    os.utime(npy, ns=(1, 1))  # another file version (here: only its time)
    assert cache.verify(npy.stem) is not None and hashed == ["sha256", "sha256"]


def test_verifying_an_entry_verified_before_reads_no_rows(tmp_path, monkeypatch):
    """The app verifies its embeddings at every run of a page: once verified, an unchanged
    file is not read again (a 400 MB matrix would cost a read per click)."""
    cache, npy, _, _ = stored(tmp_path)
    assert cache.verify(npy.stem) is not None
    calls = []
    monkeypatch.setattr(cache_module, "_body", lambda *args, **kwargs: calls.append(args))
    assert cache.verify(npy.stem) is not None and calls == []


def test_an_entry_that_links_outside_the_cache_is_never_opened(tmp_path, opened_paths):
    root, outside = tmp_path / "cache", tmp_path / "outside"
    cache, npy, _, clean = stored(root)
    outside.mkdir()
    decoy = outside / "decoy.npy"
    np.save(decoy, clean[::-1].copy())  # a valid matrix of the right shape: served on main
    npy.unlink()
    npy.symlink_to(decoy)
    opened_paths.clear()  # from here on
    assert cache.get(npy.stem) is None
    assert decoy.resolve() not in opened_paths
    (moved,) = set_aside(root, "embeddings")
    assert "outside the cache" in reason_of(moved)
    assert (moved / npy.name).is_symlink() and decoy.exists()  # the link moved, not its target


def test_an_entry_of_the_previous_version_is_a_miss_for_embeddings(tmp_path):
    """Written before checksums: nothing tells whether its rows changed since, and an
    embedding can always be computed again, so it is (once); it is not damage."""
    cache, npy, meta, _ = stored(tmp_path)
    old = json.loads(meta.read_text())
    del old["checksum"], old["dtype"]
    meta.write_text(json.dumps(old))
    assert cache.get(npy.stem) is None and cache.meta(npy.stem) is None
    assert set_aside(tmp_path, "embeddings") == []
    encoder = RowEncoder()
    embed(TEXTS, encoder, cache=cache)
    assert encoder.seen == len(TEXTS) and "checksum" in json.loads(meta.read_text())


def test_an_uploaded_matrix_of_the_previous_version_is_checked_and_upgraded(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.folder.mkdir(parents=True)
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    for key, values in (("good", matrix), ("nan", np.where(matrix == 5, np.nan, matrix))):
        np.save(cache.folder / f"{key}.npy", values)  # as the previous version wrote them
        (cache.folder / f"{key}.json").write_text(json.dumps({"shape": [4, 3], "ids": None}))
    meta = cache.verify("good", upgrade=True)
    expected = hashlib.sha256((cache.folder / "good.npy").read_bytes()).hexdigest()
    assert meta["checksum"] == f"sha256:{expected}" and meta["dtype"] == "<f4"
    np.testing.assert_array_equal(cache.get("good")[0], matrix)
    assert cache.verify("nan", upgrade=True) is None
    (moved,) = set_aside(tmp_path, "embeddings")
    assert "NaN or infinite" in reason_of(moved)


def test_a_description_without_its_matrix_is_damage_a_write_or_removal_under_way_a_miss(
    tmp_path, monkeypatch
):
    cache, npy, meta, _ = stored(tmp_path)
    meta.rename(tmp_path / "kept.json")
    assert cache.get(npy.stem) is None and npy.exists()  # put writes the .npy first
    assert set_aside(tmp_path, "embeddings") == []
    (tmp_path / "kept.json").rename(meta)
    real_open = builtins.open

    def vanished(file, *args, **kwargs):  # removed between the checks and the read
        if Path(os.fsdecode(file)) == npy:
            raise FileNotFoundError(2, "No such file or directory", str(file))
        return real_open(file, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(builtins, "open", vanished)
        assert cache.get(npy.stem) is None
    assert set_aside(tmp_path, "embeddings") == [] and cache.get(npy.stem) is not None
    npy.unlink()
    assert cache.get(npy.stem) is None
    (moved,) = set_aside(tmp_path, "embeddings")
    assert "without its matrix" in reason_of(moved)


def test_put_refuses_what_the_cache_does_not_keep(tmp_path):
    with pytest.raises(ValueError, match="2-D floating-point matrices, not int64"):
        EmbeddingCache(tmp_path).put("k", np.ones((2, 2), dtype=np.int64), {})


# ---------------------------------------------------------------------------------------------
# Uploads


def manifest_path(root: Path, ref: str) -> Path:
    return root / "uploads" / f"{ref}.json"


def rewrite(field: str, value):
    def damage(path: Path) -> None:
        manifest = json.loads(path.read_text())
        if value is KeyError:
            del manifest[field]
        else:
            manifest[field] = value
        path.write_text(json.dumps(manifest))

    damage.__name__ = f"{field}={'missing' if value is KeyError else json.dumps(value)}"
    return damage


def manifest_list(path: Path) -> None:
    path.write_text("[]")


def manifest_null(path: Path) -> None:
    path.write_text("null")


def manifest_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


#: damage of a dataset manifest -> what its REASON says
MANIFEST_DAMAGE = {
    manifest_list: "is a list, not an object",
    manifest_null: "is null, not an object",
    manifest_folder: "not a regular file",
    rewrite("ids", 5): "ids are not a list of strings",
    rewrite("name", {"a": 1}): "its name no string",
    rewrite("texts", None): "holds no texts",
    rewrite("ids", KeyError): "has no ids",
    rewrite("type", KeyError): "type is neither dataset nor matrix",
    rewrite("ids", ["a"] * 3): "ids repeat",
    rewrite("images", ["../../../../etc/passwd"] * 3): "names an image that is not a file name",
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE), ids=lambda d: d.__name__)
def test_a_damaged_dataset_manifest_is_set_aside_and_reported_damaged(tmp_path, caplog, damage):
    ref = uploads.save_dataset(text_set(["alpha", "beta", "gamma"]), root=tmp_path)
    damage(manifest_path(tmp_path, ref))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(2):  # and later reads say so too
            with pytest.raises(uploads.UploadGone, match="^this upload is damaged on the server$"):
                uploads.load_dataset(ref, root=tmp_path)
    (moved,) = set_aside(tmp_path, "uploads")
    assert MANIFEST_DAMAGE[damage] in reason_of(moved)
    assert {p.name for p in moved.iterdir()} == {"REASON", f"{ref}.json", f"{ref}.images"}
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1
    uploads.cleanup(max_age_hours=0, root=tmp_path)  # the clean-up copes, and keeps it
    assert (moved / f"{ref}.json").exists()


MATRIX_DAMAGE = {
    manifest_list: "is a list, not an object",
    rewrite("key", 5): "are not all strings",
    rewrite("key", KeyError): "are not all strings",
    rewrite("key", "../../../../etc/passwd"): "key is not an embedding-cache key",
    rewrite("fingerprint", 3): "are not all strings",
}


@pytest.mark.parametrize("damage", list(MATRIX_DAMAGE), ids=lambda d: d.__name__)
def test_a_damaged_matrix_manifest_is_set_aside_and_reported_damaged(tmp_path, damage):
    EmbeddingCache(tmp_path).put("c" * 64, np.ones((3, 2), np.float32), {})
    ref = uploads.save_matrix("c" * 64, "m.npy", "fp", root=tmp_path)
    damage(manifest_path(tmp_path, ref))
    with pytest.raises(uploads.UploadGone, match="^this upload is damaged on the server$"):
        uploads.load_matrix(ref, root=tmp_path)
    (moved,) = set_aside(tmp_path, "uploads")
    assert MATRIX_DAMAGE[damage] in reason_of(moved)


def test_a_manifest_that_links_outside_is_never_opened(tmp_path, opened_paths):
    root, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    ref = uploads.save_dataset(text_set(["alpha", "beta", "gamma"]), root=root)
    decoy = outside / "manifest.json"
    decoy.write_bytes(manifest_path(root, ref).read_bytes())  # a valid manifest: read on main
    manifest_path(root, ref).unlink()
    manifest_path(root, ref).symlink_to(decoy)
    opened_paths.clear()  # from here on
    with pytest.raises(uploads.UploadGone, match="damaged"):
        uploads.load_dataset(ref, root=root)
    assert decoy.resolve() not in opened_paths
    (moved,) = set_aside(root, "uploads")
    assert "outside the cache" in reason_of(moved)


def test_an_image_that_links_outside_the_store_is_never_opened(tmp_path, opened_paths):
    root, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    data = load_image_files(
        [("a.png", png_bytes(1)), ("b.png", png_bytes(2))], store=image_store(root)
    )
    ref = uploads.save_dataset(data, root=root)
    decoy = outside / "secret.png"
    decoy.write_bytes(png_bytes(3))
    image = Path(data.image_paths[0])
    image.unlink()
    image.symlink_to(decoy)
    opened_paths.clear()  # from here on
    with pytest.raises(uploads.UploadGone, match="some images of this upload are damaged"):
        uploads.load_dataset(ref, root=root)
    assert decoy.resolve() not in opened_paths
    (moved,) = set_aside(root, "images")
    assert "outside the cache" in reason_of(moved) and decoy.exists()


def test_holdings_lists_that_link_outside_are_never_read(tmp_path, opened_paths):
    root, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    decoy = outside / "list.txt"
    decoy.write_text("c" * 64 + "\n")  # names an entry: a deletion would remove it on main
    EmbeddingCache(root).put("c" * 64, np.ones((3, 2), np.float32), {})
    ref = uploads.save_dataset(text_set(["alpha", "beta", "gamma"]), root=root)
    held = root / "uploads" / f"{ref}.derived"
    held.symlink_to(decoy)
    opened_paths.clear()
    uploads.delete(ref, root=root)
    assert decoy.resolve() not in opened_paths
    assert EmbeddingCache(root).get("c" * 64) is not None


def test_storing_an_image_replaces_a_link_in_its_place(tmp_path):
    store, outside = image_store(tmp_path / "cache"), tmp_path / "outside"
    outside.mkdir()
    store.mkdir(parents=True)
    decoy = outside / "secret.png"
    decoy.write_bytes(png_bytes(3))
    data = png_bytes(1)
    name = hashlib.sha256(data).hexdigest() + ".png"
    (store / name).symlink_to(decoy)
    stored_set = load_image_files([("a.png", data)], store=store)
    kept = Path(stored_set.image_paths[0])
    assert not kept.is_symlink() and kept.read_bytes() == data
    assert decoy.read_bytes() == png_bytes(3)


# ---------------------------------------------------------------------------------------------
# The command line


def damaged_cache(root: Path) -> dict[tuple[str, str], str]:
    """A cache with one entry per kind of damage; (kind, name) -> what --verify says of it."""
    expected = {}
    rng = np.random.default_rng(0)
    cache = EmbeddingCache(root)
    for damage, reason in EMBEDDING_DAMAGE.items():
        key = hashlib.sha256(damage.__name__.encode()).hexdigest()
        cache.put(key, rng.normal(size=(12, 6)).astype(np.float32), {})
        damage(cache.folder / f"{key}.npy", cache.folder / f"{key}.json")
        expected["embeddings", key] = reason
    cache.put("f" * 64, rng.normal(size=(12, 6)).astype(np.float32), {})  # a good one
    for damage, reason in MANIFEST_DAMAGE.items():
        ref = uploads.save_dataset(text_set(["alpha", "beta", "gamma"]), root=root)
        damage(manifest_path(root, ref))
        expected["uploads", ref] = reason
    uploads.save_dataset(text_set(["a good", "upload"]), root=root)
    data = load_image_files(
        [("a.png", png_bytes(1)), ("b.png", png_bytes(2))], store=image_store(root)
    )
    uploads.save_dataset(data, root=root)
    changed = Path(data.image_paths[0])
    changed.write_bytes(png_bytes(5))
    expected["images", changed.name] = "does not match the sha256 in its name"
    return expected


def listing(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    "damage", [permuted_rows, json_list, matrix_folder], ids=lambda d: d.__name__
)
def test_the_embed_command_computes_a_damaged_embedding_again(
    tmp_path, monkeypatch, caplog, damage
):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "t.txt").write_text("\n".join(f"text number {i}" for i in range(20)) + "\n")
    command = ["embed", "--model", "char-ngrams", "--data", str(tmp_path / "t.txt"), "--quiet"]
    assert main([*command, "--out", str(tmp_path / "first.npy")]) == 0
    (npy,) = (tmp_path / "cache" / "embeddings").glob("*.npy")
    damage(npy, npy.with_suffix(".json"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert main([*command, "--out", str(tmp_path / "again.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), np.load(tmp_path / "first.npy"))
    assert len(set_aside(tmp_path / "cache", "embeddings")) == 1
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1


def test_cache_verify_lists_every_damaged_entry_and_changes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path))
    expected = damaged_cache(tmp_path)
    before = listing(tmp_path)
    assert main(["cache", "--verify"]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("  damaged")}
    assert len(lines) == len(expected)
    for (_, name), reason in expected.items():
        assert reason in lines[name[:16]], (name, lines[name[:16]])
    assert "embeddings: 15 checked (14 damaged, 1 ok)" in out
    assert f"uploads: {len(MANIFEST_DAMAGE) + 2} checked ({len(MANIFEST_DAMAGE)} damaged" in out
    assert "images: 2 checked (1 damaged, 1 ok)" in out
    assert listing(tmp_path) == before  # nothing moved, nothing written


def test_cache_repair_moves_every_damaged_entry_aside(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path))
    expected = damaged_cache(tmp_path)
    assert main(["cache", "--repair"]) == 0
    for kind in ("embeddings", "uploads", "images"):
        moved = set_aside(tmp_path, kind)
        names = {(kind, folder.name.split(".")[0]) for folder in moved}
        if kind == "images":
            names = {(kind, folder.name.rsplit(".", 2)[0]) for folder in moved}
        assert names == {k for k in expected if k[0] == kind}
        for folder in moved:
            assert reason_of(folder).strip()
    capsys.readouterr()
    assert main(["cache", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "  damaged" not in out and f"{len(expected)} entries set aside before" in out
    assert EmbeddingCache(tmp_path).get("f" * 64) is not None  # the good entry stays


def test_the_cache_listing_copes_with_damaged_descriptions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path))
    cache = EmbeddingCache(tmp_path)
    cache.put("a" * 64, np.ones((2, 2), np.float32), {"model": ["not", "a", "name"]})
    (cache.folder / ("b" * 64 + ".json")).write_text("null")
    assert main(["cache"]) == 0
    assert "2 entries" in capsys.readouterr().out
