"""The built-in demo datasets (assets/demo, see its README for sources and licences)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from spec_core.data.datasets import Dataset
from spec_core.data.image_sets import load_image_folder
from spec_core.data.text_sets import load_texts

DEMO_ROOT = Path(__file__).resolve().parents[2] / "assets" / "demo"

DEMOS: dict[str, str] = {
    "emoji": "540 emoji images with their names (9 categories): images and captions",
    "wordnet": "400 WordNet noun definitions (8 categories): texts",
}


def list_demos() -> dict[str, str]:
    return dict(DEMOS)


def load_demo(name: str, *, root: Path = DEMO_ROOT) -> Dataset:
    if name == "emoji":
        folder = root / "emoji"
        data = load_image_folder(folder / "images", captions=folder / "captions.csv")
    elif name == "wordnet":
        data = load_texts(root / "wordnet" / "glosses.csv")
    else:
        raise ValueError(f"unknown demo {name!r}; choose one of {', '.join(DEMOS)}")
    return replace(data, name=f"demo:{name}")
