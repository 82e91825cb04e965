"""Dataset loading: row order, ids, fingerprints, and every kind of hostile input."""

from __future__ import annotations

import io
import itertools
import stat
import tracemalloc
import zipfile

import pytest
from conftest import png_bytes
from PIL import Image

from spec_core.data.datasets import DatasetError, Limits, Skipped
from spec_core.data.image_sets import (
    load_image_files,
    load_image_folder,
    load_image_zip,
    safe_member_name,
)
from spec_core.data.text_sets import load_texts


def make_zip(members: dict, *, symlinks: tuple = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buf.getvalue()


def test_folder_order_ids_and_skips(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.png").write_bytes(png_bytes(2))
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "b" / "10.jpg").write_bytes(png_bytes(3))  # PNG bytes named .jpg still decode
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden.png").write_bytes(png_bytes(4))
    (tmp_path / "broken.png").write_bytes(png_bytes(5)[:40])
    (tmp_path / "empty.gif").write_bytes(b"")
    data = load_image_folder(tmp_path)
    assert data.ids == ("a.png", "b/10.jpg", "b/2.png")  # by relative path, code-point order
    assert data.kind == "image" and data.modalities == ("image",)
    reasons = {s.item: s.reason for s in data.skipped}
    assert set(reasons) == {"notes.txt", "broken.png", "empty.gif"}
    assert "not an image type" in reasons["notes.txt"]
    assert "corrupt or unreadable" in reasons["broken.png"]
    assert reasons["empty.gif"] == "empty file"


def test_pixel_cap_guards_decompression_bombs(tmp_path):
    buf = io.BytesIO()
    Image.new("1", (3000, 3000)).save(buf, format="PNG")  # 9 Mpx in a few kB
    (tmp_path / "bomb.png").write_bytes(buf.getvalue())
    (tmp_path / "ok.png").write_bytes(png_bytes())
    data = load_image_folder(tmp_path, limits=Limits(max_pixels=1_000_000))
    assert data.ids == ("ok.png",)
    assert "decompression bomb guard" in data.skipped[0].reason


def test_gif_first_frame_and_caps(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    (tmp_path / "anim.gif").write_bytes(buf.getvalue())
    for i in range(3):
        (tmp_path / f"img{i}.png").write_bytes(png_bytes(i))
    data = load_image_folder(tmp_path, limits=Limits(max_files=2))
    assert data.ids == ("anim.gif", "img0.png")
    assert [s.reason for s in data.skipped] == ["over the limit of 2 files"] * 2


def test_zip_guards_never_write_outside(tmp_path):
    store = tmp_path / "store"
    bomb = b"\0" * (4 * 2**20)  # compresses ~1000:1
    archive = make_zip(
        {
            "ok/one.png": png_bytes(1),
            "../escape.png": png_bytes(2),
            "/abs.png": png_bytes(3),
            "dir\\win.png": png_bytes(4),
            "link.png": b"/etc/passwd",
            "bomb.png": bomb,
            "c:/drive.png": png_bytes(5),
        },
        symlinks=("link.png",),
    )
    data = load_image_zip(archive, store=store, name="up.zip")
    assert data.ids == ("ok/one.png",)
    reasons = {s.item: s.reason for s in data.skipped}
    for name in ("../escape.png", "/abs.png", "dir\\win.png", "c:/drive.png"):
        assert reasons[name] == "unsafe path inside the archive"
    assert reasons["link.png"] == "symbolic link inside the archive"
    assert "zip bomb guard" in reasons["bomb.png"]
    # everything written lies in the store, named by content hash
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(p.parent == store for p in written)
    assert not (tmp_path / "escape.png").exists()


def test_zip_declaring_huge_total_is_refused(tmp_path):
    archive = make_zip({f"{i}.png": b"\0" * 2**20 for i in range(5)})
    with pytest.raises(DatasetError, match="zip bomb guard"):
        load_image_zip(archive, store=tmp_path, limits=Limits(max_total_bytes=2**20 // 2))


def test_not_a_zip(tmp_path):
    with pytest.raises(DatasetError, match="up.zip: not a readable .zip archive"):
        load_image_zip(b"not a zip", store=tmp_path, name="up.zip")


def test_zip_with_inner_captions(tmp_path):
    table = "file,caption,label\nb.png,a blue square,symbol\na.png,a red face,smiley\n"
    archive = make_zip({"a.png": png_bytes(1), "b.png": png_bytes(2), "captions.csv": table})
    data = load_image_zip(archive, store=tmp_path)
    assert data.ids == ("a.png", "b.png")
    assert data.texts == ("a red face", "a blue square")
    assert data.labels == ("smiley", "symbol")
    assert data.modalities == ("image", "text")


def test_uploaded_files_with_jsonl_captions(tmp_path):
    captions = (
        b'{"file_name": "x.png", "caption": "first"}\n{"file_name": "gone.png", "caption": "?"}\n'
    )
    data = load_image_files(
        [("x.png", png_bytes(1)), ("y.png", png_bytes(2)), ("sub/y.png", png_bytes(3))],
        store=tmp_path,
        captions=("caps.jsonl", captions),
    )
    assert data.ids == ("x.png", "y.png")
    assert data.skipped[0].reason == "duplicate file name"
    assert data.texts == ("first", "")
    assert any("1 image(s) have no row in caps.jsonl" in n for n in data.notes)
    assert any("name no image in the set (e.g. gone.png)" in n for n in data.notes)


def test_nothing_usable_is_an_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"no usable images \(1 skipped: bad.png: corrupt"):
        load_image_folder(tmp_path)


def test_captions_table_without_known_columns(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    bad = tmp_path / "caps.csv"
    bad.write_text("name,words\na.png,hi\n")
    with pytest.raises(DatasetError, match="expected a file column"):
        load_image_folder(tmp_path, captions=bad)


def test_image_fingerprint_depends_on_content_and_order_only(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
        (folder / "a.png").write_bytes(png_bytes(1))
        (folder / "b.png").write_bytes(png_bytes(2))
    assert load_image_folder(one).fingerprint("image") == load_image_folder(two).fingerprint(
        "image"
    )
    (two / "b.png").write_bytes(png_bytes(3))
    assert load_image_folder(one).fingerprint("image") != load_image_folder(two).fingerprint(
        "image"
    )
    zipped = load_image_zip(
        make_zip({"a.png": png_bytes(1), "b.png": png_bytes(2)}), store=tmp_path / "s"
    )
    assert zipped.fingerprint("image") == load_image_folder(one).fingerprint("image")


def test_txt_empty_lines_and_latin1(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("caf\xe9 au lait\n\nthe dog\n   \nr\xe9sum\xe9\n".encode("latin-1"))
    data = load_texts(path)
    assert data.texts == ("café au lait", "the dog", "résumé")
    assert data.ids == ("line-1", "line-3", "line-5")
    assert any(
        "not valid UTF-8 (first bad byte on line 1); decoded as Latin-1" in n for n in data.notes
    )
    assert any("2 empty row(s) skipped" in n for n in data.notes)


def test_csv_columns_labels_and_duplicate_ids(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,body,label\nx,first,a\ny,second,b\nx,third,a\n")
    data = load_texts(path, column="body")
    assert data.ids == ("x", "y", "x#2") and data.labels == ("a", "b", "a")
    assert any("duplicate id(s)" in n for n in data.notes)
    with pytest.raises(DatasetError, match="which column holds the text"):
        load_texts(path)
    with pytest.raises(DatasetError, match="no text column 'nope'"):
        load_texts(path, column="nope")


def test_jsonl_bad_lines_are_skipped_with_their_number(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "good"}\n{broken\n[1, 2]\n{"text": "also good", "label": "x"}\n')
    data = load_texts(path)
    assert data.texts == ("good", "also good")
    assert [(s.item, s.reason[:18]) for s in data.skipped] == [
        ("line-2", "is not valid JSON "),
        ("line-3", "is not a JSON obje"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.txt", b"", "the file is empty"),
        ("w.txt", b"\n \n", "the file is empty"),
        ("x.pdf", b"%PDF", "unsupported text file type"),
    ],
)
def test_text_errors(tmp_path, name, content, message):
    with pytest.raises(DatasetError, match=message):
        load_texts((name, content))


def test_text_row_cap(tmp_path):
    data = load_texts(("t.txt", b"a\nb\nc\n"), limits=Limits(max_text_rows=2))
    assert data.texts == ("a", "b")
    assert data.skipped == (Skipped("line-3", "1 line over the limit of 2 rows: not loaded"),)


def test_text_fingerprint(tmp_path):
    one = load_texts(("t.txt", b"a\nb\n")).fingerprint("text")
    assert one == load_texts(("other.txt", b"a\nb\n")).fingerprint("text")
    assert one != load_texts(("t.txt", b"b\na\n")).fingerprint("text")


def test_modality_not_available():
    data = load_texts(("t.txt", b"a\nb\n"))
    with pytest.raises(ValueError, match="has no images"):
        data.items("image")


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("a/b.png", "a/b.png"),
        ("../x", None),
        ("/x", None),
        ("a/../../x", None),
        ("a\\b", None),
        ("c:/x", None),
        ("", None),
        ("a//b", "a/b"),
    ],
)
def test_safe_member_name(name, safe):
    assert safe_member_name(name) == safe


def test_json_is_not_unpickled(tmp_path):
    # a pickle named .jsonl is just undecodable text: it is never unpickled
    import pickle

    path = tmp_path / "t.jsonl"
    path.write_bytes(pickle.dumps({"text": "x"}))
    with pytest.raises(DatasetError, match="no rows"):
        load_texts(path)


def test_per_file_cap_names_the_file(tmp_path):
    (tmp_path / "big.png").write_bytes(png_bytes(1, size=64))
    (tmp_path / "small.png").write_bytes(png_bytes(2, size=4))
    data = load_image_folder(tmp_path, limits=Limits(max_file_bytes=1000))
    assert data.ids == ("small.png",)
    assert "over the per-file limit" in data.skipped[0].reason and data.skipped[0].item == "big.png"


def test_total_cap_keeps_the_first_files(tmp_path):
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(i, size=16))
    size = max(p.stat().st_size for p in tmp_path.iterdir())
    data = load_image_folder(tmp_path, limits=Limits(max_total_bytes=2 * size + 10))
    assert data.ids == ("0.png", "1.png")
    assert all("over the total limit" in s.reason for s in data.skipped)


@pytest.mark.parametrize(
    ("name", "content", "columns"),
    [
        ("t.csv", b"id,text,label\n1,a,x\n", ["id", "text", "label"]),
        ("t.tsv", b"body\tcat\nhello\tx\n", ["body", "cat"]),
        ("t.jsonl", b'{"sentence": "a", "tag": "x"}\n{"sentence": "b"}\n', ["sentence", "tag"]),
        ("t.txt", b"just lines\n", []),
        ("t.jsonl", b"not json\n", []),
    ],
)
def test_text_columns_for_the_picker(name, content, columns):
    from spec_core.data.text_sets import text_columns

    assert text_columns(name, content) == columns


# --------------------------------------------------------------------------------------------
# Large and hostile text files: rows past the cap are counted, never read; lists stay bounded


def test_txt_rows_over_the_cap_are_counted_in_one_entry():
    lines = [
        "" if i % 7 == 0 else ("x" * 30 if i % 11 == 0 else f"row {i}") for i in range(1, 5001)
    ]
    content = "\r\n".join(lines).encode()  # CRLF, no final line ending
    limits = Limits(max_text_rows=1000, max_text_chars=20, max_listed=10)
    data = load_texts(("t.txt", content), limits=limits)
    kept = [number for number, line in enumerate(lines, 1) if line][:1000]
    last = kept[-1]
    assert data.ids == tuple(f"line-{number}" for number in kept)
    assert data.texts == tuple(lines[number - 1][:20] for number in kept)
    assert data.skipped == (
        Skipped(
            f"line-{last + 1} to line-5000",
            f"{5000 - last:,} lines over the limit of 1,000 rows: not loaded",
            5000 - last,
        ),
    )
    assert data.skipped_count == 5000 - last
    cut = [number for number in kept if len(lines[number - 1]) > 20]
    assert [n for n in data.notes if "cut to" in n] == [
        f"line {number}: cut to 20 characters" for number in cut[:10]
    ] + [f"and {len(cut) - 10:,} more line(s) cut to 20 characters"]
    assert f"{sum(1 for line in lines[:last] if not line)} empty row(s) skipped" in data.notes


def test_blank_lines_after_the_cap_are_empty_rows_not_rows_over_it():
    data = load_texts(("t.txt", b"a\nb\n\n \r\n"), limits=Limits(max_text_rows=2))
    assert data.texts == ("a", "b") and data.skipped == ()
    assert "2 empty row(s) skipped" in data.notes


def test_csv_rows_over_the_cap_are_counted_across_chunks():
    body = "".join(f"r{i},text {i},{'ab'[i % 2]}\n" for i in range(25_000))
    content = ("id,text,label\n" + body).encode()
    data = load_texts(("t.csv", content), limits=Limits(max_text_rows=15_000))
    assert data.ids == tuple(f"r{i}" for i in range(15_000))
    assert data.texts[-1] == "text 14999" and data.labels[:3] == ("a", "b", "a")
    # row i is on line i + 2 (the header is line 1)
    assert data.skipped == (
        Skipped(
            "line-15002 to line-25001",
            "10,000 rows over the limit of 15,000 rows: not loaded",
            10_000,
        ),
    )


def test_jsonl_bad_lines_are_listed_up_to_a_bound():
    lines = [f'{{"text": "t{i}"}}' if i % 2 else "{oops" for i in range(1, 3001)]
    content = ("\n".join(lines) + "\n").encode()
    data = load_texts(("t.jsonl", content), limits=Limits(max_text_rows=1000, max_listed=10))
    # the 1,000th good line is line 1999; the 999 even lines before it are bad
    assert data.ids == tuple(f"line-{i}" for i in range(1, 2000, 2))
    assert len(data.skipped) == 12
    assert [s.item for s in data.skipped[:10]] == [f"line-{i}" for i in range(2, 22, 2)]
    assert all(s.reason.startswith("is not valid JSON (") for s in data.skipped[:10])
    assert data.skipped[10] == Skipped(
        "989 more items", "also skipped; only the first 10 skipped items are listed", 989
    )
    assert data.skipped[11] == Skipped(
        "line-2000 to line-3000", "1,001 lines over the limit of 1,000 rows: not loaded", 1001
    )
    # every bad line and every line over the cap counted once, however few entries list them
    assert data.skipped_count == 999 + 1001


def test_default_limits_list_a_thousand_bad_lines():
    content = b"{oops\n" * 1500 + b'{"text": "fine"}\n'
    data = load_texts(("t.jsonl", content))
    assert data.texts == ("fine",) and len(data.skipped) == 1001
    assert data.skipped[999].item == "line-1000"
    assert data.skipped[-1].item == "500 more items"


def test_jsonl_lines_that_break_the_json_parser_are_skipped():
    content = b"\n".join(
        [
            b"[" * 100_000,  # nested past Python's recursion limit
            b'{"text": ' + b"1" * 5000 + b"}",  # past the 4300-digit int conversion limit
            b'{"id": "a", "text": "x"}',
            b'{"text": "a row without an id"}',
            b'{"id": "b", "text": "y"}',
        ]
    )
    data = load_texts(("t.jsonl", content))
    assert data.ids == ("a", "b") and data.texts == ("x", "y")
    reasons = {s.item: s.reason for s in data.skipped}
    assert reasons["line-1"] == "is JSON nested too deeply to be read"
    assert reasons["line-2"].startswith("cannot be read as JSON (Exceeds the limit (4300 digits)")
    assert reasons["line-4"] == "has no 'id'"


def test_a_zip_of_many_bad_members_lists_a_thousand(tmp_path):
    members = {f"notes/{i:05d}.txt": b"x" for i in range(1200)}
    data = load_image_zip(make_zip({**members, "ok.png": png_bytes(1)}), store=tmp_path)
    assert data.ids == ("ok.png",) and len(data.skipped) == 1001
    assert [s.item for s in data.skipped[:1000]] == [f"notes/{i:05d}.txt" for i in range(1000)]
    assert data.skipped[-1] == Skipped(
        "200 more items", "also skipped; only the first 1,000 skipped items are listed", 200
    )
    assert data.skipped_count == 1200
    with pytest.raises(DatasetError, match=r"no usable images \(1200 skipped: notes/00000.txt"):
        load_image_zip(make_zip(members), store=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "header", "line"),
    [
        ("big.txt", b"", b"t%d\n"),
        ("big.jsonl", b"", b'{"text": "t%d"}\n'),
        ("big.csv", b"text\n", b"t%d\n"),
    ],
)
def test_text_memory_follows_the_file_size_not_its_line_count(name, header, line):
    """2,000,000 lines (16 to 39 MB): the parser holds the decoded text (the file's size, for
    ASCII) and the rows it keeps (20,000 short rows, under 16 MiB), never an object per line
    of the file (before: over 1 GB here)."""
    data = header + b"".join(line % i for i in range(2_000_000))
    tracemalloc.start()
    try:
        dataset = load_texts((name, data), limits=Limits(max_text_rows=20_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(data) + 16 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert len(dataset) == 20_000 and len(dataset.skipped) == 1
    assert dataset.skipped[0].reason.startswith("1,980,000 ")


@pytest.mark.parametrize(
    ("name", "first", "first_text", "line"),
    [
        ("emoji.txt", "🙂 first\n".encode(), "🙂 first", b"line number %d\n"),
        ("emoji.jsonl", '{"text": "🙂"}\n'.encode(), "🙂", b'{"text": "line number %d"}\n'),
        ("emoji.csv", "text\n🙂 first\n".encode(), "🙂 first", b"line number %d\n"),
        ("latin1.txt", b"caf\xe9\n", "caf\xe9", b"line number %d\n"),
        ("all-emoji.txt", "🙂\n".encode(), "🙂", "🙂 line %d\n".encode()),
    ],
)
def test_text_memory_follows_the_kept_rows_whatever_the_characters(name, first, first_text, line):
    """A wide character on line 1, then 500,000 lines past a cap of 100 rows (a 9 to 13 MiB
    file): the parser's peak is the 100 kept rows (under 20 KiB) plus a constant, under 8 MiB
    in all (a 256 KiB window decoded at a time, at most 1 MiB of text: about 1.3 MiB; pandas'
    chunk of 10,000 rows for .csv: about 6.4 MiB, the same for a 36 MiB file), less than the
    file itself. Before, the whole file was decoded at once, at 4 bytes a character after one
    emoji: 18 to 73 MiB here."""
    import pandas  # noqa: F401  (imported before measuring, as in the app)

    data = first + b"".join(line % i for i in range(500_000))
    assert len(data) > 8 * 2**20
    tracemalloc.start()
    try:
        dataset = load_texts((name, data), limits=Limits(max_text_rows=100))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(len(text.encode()) for text in dataset.texts) < 20 * 2**10
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert dataset.texts[0] == first_text
    assert len(dataset) == 100 and dataset.skipped[-1].count == 500_000 - 99


def test_jsonl_of_only_bad_lines_says_every_line_was_skipped():
    data = b"".join(b"not json %d\n\n" % i for i in range(5))  # blank lines are ignored
    with pytest.raises(DatasetError) as caught:
        load_texts(("bad.jsonl", data))
    message = str(caught.value)
    assert message.startswith("bad.jsonl: no rows: all 5 lines with content were skipped as")
    assert "line-1 is not valid JSON (Expecting value); line-3 is not valid JSON" in message
    assert "line-5 is not valid JSON (Expecting value); ..." in message
    assert "line-7" not in message  # the first three are named


@pytest.mark.parametrize(
    "data",
    [
        "\ufeffa\r\nb\rc\x85d\u2028e\n\n\xa0\n".encode(),
        "\ufeff\n \u3000\n\xa0\t\n".encode(),  # a blank rest of wide spaces
        b"\xef\xbb\xbfcaf\xe9\r\n\x85\xa0\n",  # Latin-1: the BOM is text, \x85 and \xa0 spaces
        b"x\n" + "\u2003".encode() * 300_000 + b"y",  # text after a window of spaces
        b"a\nb",
    ],
)
def test_lines_of_the_bytes_are_the_lines_of_the_decoded_text(data):
    """The lines read from the bytes (decoded one at a time) and the count and blankness of the
    rest equal those of the whole text decoded at once, at every point of the reading."""
    from spec_core.data.text_sets import FileLines, Lines, text_encoding

    encoding, _ = text_encoding(io.BytesIO(data))
    text = data.decode("utf-8-sig" if encoding == "utf-8" else "latin-1")
    for taken in range(5):
        of_bytes, of_text = FileLines(io.BytesIO(data), encoding), Lines(text)
        lines = [list(itertools.islice(lines, taken)) for lines in (of_bytes, of_text)]
        assert lines[0] == lines[1]
        assert of_bytes.rest() == of_text.rest()
    assert list(FileLines(io.BytesIO(data), encoding)) == list(Lines(text))


@pytest.mark.parametrize("name", ["emoji.txt", "emoji.jsonl", "emoji.csv"])
def test_a_text_file_read_from_disk_is_never_held_whole(tmp_path, name):
    """The command line's way in (a path): the file is read line by line, never as one bytes
    object (before: the file's size, 9 MiB here, then 4 bytes a character decoded), so the
    peak is the kept rows plus the same constant, under 8 MiB."""
    import pandas  # noqa: F401  (imported before measuring)

    line = (
        b'{"text": "line %d \xf0\x9f\x99\x82"}\n'
        if name.endswith(".jsonl")
        else b"l%d \xf0\x9f\x99\x82\n"
    )
    header = b"text\n" if name.endswith(".csv") else b""
    path = tmp_path / name
    path.write_bytes(header + b"".join(line % i for i in range(700_000)))
    assert path.stat().st_size > 8 * 2**20
    tracemalloc.start()
    try:
        dataset = load_texts(path, limits=Limits(max_text_rows=100))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert dataset.texts[0].endswith(" \U0001f642") and len(dataset) == 100
    assert dataset.skipped[-1].count == 700_000 - 100
