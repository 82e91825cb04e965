"""Build the demo datasets committed under assets/demo/ (run once; the output is committed).

    python scripts/build_demo_assets.py EMOJI_PACKAGE_DIR [WORDNET_DICT_DIR]

EMOJI_PACKAGE_DIR: the unpacked `npm pack emoji-datasource-google@16.0.0` (its package/ folder).
WORDNET_DICT_DIR: Debian's wordnet-base data (default /usr/share/wordnet).
Both selections are seeded, so the output is reproducible.
"""

from __future__ import annotations

import csv
import random
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "assets" / "demo"
EMOJI_PER_CATEGORY = 60
WORDNET_CATEGORIES = {  # lexicographer file number -> label
    5: "animal", 6: "artifact", 13: "food", 18: "person", 20: "plant", 8: "body",
    15: "location", 27: "substance",
}  # fmt: skip
GLOSSES_PER_CATEGORY = 50


def build_emoji(package: Path) -> None:
    import json

    records = json.loads((package / "emoji.json").read_text())
    by_category: dict[str, list[dict]] = {}
    for rec in records:
        if rec.get("has_img_google") and rec["category"] != "Component" and rec.get("name"):
            by_category.setdefault(rec["category"], []).append(rec)
    rng = random.Random(0)
    out = ROOT / "emoji"
    images = out / "images"
    if out.exists():
        shutil.rmtree(out)
    images.mkdir(parents=True)
    rows = []
    for category in sorted(by_category):
        chosen = sorted(rng.sample(by_category[category], EMOJI_PER_CATEGORY),
                        key=lambda r: r["image"])  # fmt: skip
        for rec in chosen:
            shutil.copy(package / "img" / "google" / "64" / rec["image"], images / rec["image"])
            rows.append({"file": rec["image"], "caption": rec["name"].lower(), "label": category})
    with (out / "captions.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "caption", "label"])
        writer.writeheader()
        writer.writerows(rows)
    shutil.copy(package / "LICENSE", out / "LICENSE-emoji-datasource.txt")
    print(f"emoji: {len(rows)} images in {len(by_category)} categories -> {out}")


def build_wordnet(folder: Path) -> None:
    by_label: dict[str, list[tuple[str, str]]] = {}
    for line in (folder / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue  # the licence header
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        label = WORDNET_CATEGORIES.get(int(fields[1]))
        if label is None:
            continue
        word = fields[4].replace("_", " ")
        definition = gloss.split(";")[0].strip()
        if len(definition) < 12 or re.search(r"[^\x20-\x7e]", definition):
            continue
        by_label.setdefault(label, []).append((f"wn-{fields[0]}", f"{word}: {definition}"))
    rng = random.Random(0)
    out = ROOT / "wordnet"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label in sorted(by_label):
        for row_id, text in sorted(rng.sample(by_label[label], GLOSSES_PER_CATEGORY)):
            rows.append({"id": row_id, "text": text, "label": label})
    with (out / "glosses.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    licence = Path("/usr/share/doc/wordnet-base/copyright")
    if licence.exists():
        shutil.copy(licence, out / "LICENSE-wordnet.txt")
    print(f"wordnet: {len(rows)} glosses in {len(by_label)} categories -> {out}")


if __name__ == "__main__":
    build_emoji(Path(sys.argv[1]))
    build_wordnet(Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/usr/share/wordnet"))
