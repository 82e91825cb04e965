"""SPEC-align, the paper's full fine-tuning variant: train an open_clip model's image tower so
that its features capture the groups a reference embedding captures.

The loss on a mini-batch of rows (the SAME samples in the reference and in the images: the
sampler picks row indices, and both the images and the reference rows are taken at those
indices) is

    spec_weight x SPEC-diff(reference rows, image features)
      + contrastive_weight x CLIP contrastive loss(image features, caption features)

SPEC-diff is align.loss.batch_spec_diff with the cosine kernel (on L2-normalised rows) and
the engine's centring: the largest |eigenvalue| of H (K_ref - K_img) H / m, differentiated
through torch.linalg.eigvalsh (stable when eigenvalues cluster; m is small). The contrastive term
is CLIP's symmetric cross-entropy with the model's own (frozen) logit scale, against the frozen
text tower's caption features (computed once: the text tower never changes). Only the image
tower is trained; a zero weight removes its term from the gradient (it is still logged).

Optimiser: the paper's (open_clip's) AdamW, lr 5e-5, betas (0.9, 0.98), eps 1e-6, weight decay
0.2 on matrices only (not on gains, biases, embeddings' 1-d params), linear warm-up then cosine
decay to 0 (open_clip's `cosine_lr`). CUDA runs the forward pass under autocast (float16) with a
GradScaler; the CPU runs in float32. The losses are always computed in float32.

Rows are split into train and held-out rows (seeded, spec_core.align.splits.split_rows). Before and
after training the held-out rows are embedded and measured: SPEC-diff(reference, image
features) on all of them (up to METRIC_ROWS), and, with captions, image->text and text->image
recall@1/5 among the held-out rows.

Checkpoints (model, optimiser, scheduler, scaler, step, RNG states, config, history) are written
to `out` every `checkpoint_every` steps and at the end, atomically; `resume=True` continues from
the last one and ends where an uninterrupted run ends (the sampler is a function of the seed
and the step, so it needs no state). Inputs are only read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core import checks as v
from spec_core.data import arrays

if TYPE_CHECKING:
    import torch

    from spec_core.data.datasets import Dataset

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]

FORMAT = "spec-explorer-align-model/1"
CHECKPOINT = "checkpoint.pt"
REPORT = "report.json"
MODEL_FILE = "model.safetensors"
#: Files this command writes into --out (a fresh run refuses a folder that holds any of them).
OUTPUT_FILES = (CHECKPOINT, REPORT, MODEL_FILE)

DEFAULT_EPOCHS = 3
DEFAULT_BATCH = 64
DEFAULT_LR = 5e-5
DEFAULT_WEIGHT_DECAY = 0.2
DEFAULT_WARMUP = 1000
DEFAULT_SPEC_WEIGHT = 0.5
DEFAULT_CONTRASTIVE_WEIGHT = 0.5
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_CHECKPOINT_EVERY = 500
#: AdamW betas and eps as in open_clip's training for ViTs.
BETAS = (0.9, 0.98)
EPS = 1e-6
MAX_STEPS = 10_000_000
MAX_BATCH = 65_536
#: Held-out metrics use at most this many rows (a seeded sample beyond).
METRIC_ROWS = 4000
#: Preprocessed images are kept in memory while they fit in this many bytes (else re-read).
IMAGE_CACHE_BYTES = 2 * 2**30
RECALL_KS = (1, 5)


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that decides the result of a run (besides the data and the reference).

    `steps` or `epochs` (not both; neither: DEFAULT_EPOCHS epochs of the train rows, each epoch
    len(train) // batch_size steps). Weights: >= 0, not both 0; a zero weight drops its term.
    `warmup`: steps of linear warm-up before the cosine decay (open_clip counts them inside the
    run, so a run shorter than the warm-up never reaches `lr`)."""

    model: str
    spec_weight: float = DEFAULT_SPEC_WEIGHT
    contrastive_weight: float = DEFAULT_CONTRASTIVE_WEIGHT
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = DEFAULT_BATCH
    lr: float = DEFAULT_LR
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    warmup: int = DEFAULT_WARMUP
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    centre: bool = True

    def check(self) -> FinetuneConfig:
        """Raise a ValueError naming the first bad field; return self."""
        for name in ("spec_weight", "contrastive_weight"):
            value = v.real_number(name, getattr(self, name))
            if not (math.isfinite(value) and 0 <= value <= 1e6):
                raise ValueError(f"{name} must be a number from 0 to 1e6, got {value!r}")
        if self.spec_weight == 0 and self.contrastive_weight == 0:
            raise ValueError("spec_weight and contrastive_weight are both 0: nothing to train")
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        if self.steps is not None:
            v.check_positive_int("steps", self.steps, maximum=MAX_STEPS)
        if self.epochs is not None:
            v.check_positive_int("epochs", self.epochs, maximum=MAX_STEPS)
        v.check_positive_int("batch_size", self.batch_size, maximum=MAX_BATCH)
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (a kernel needs two rows)")
        lr = v.real_number("lr", self.lr)
        if not 0 < lr <= 1:
            raise ValueError(f"lr must be in (0, 1], got {self.lr!r}")
        decay = v.real_number("weight_decay", self.weight_decay)
        if not 0 <= decay <= 10:
            raise ValueError(f"weight_decay must be from 0 to 10, got {self.weight_decay!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be a whole number of steps >= 0, got {self.warmup!r}")
        fraction = v.real_number("val_fraction", self.val_fraction)
        if not 0 < fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction!r}")
        v.check_seed(self.seed)
        v.check_choice("device", self.device, v.DEVICES)
        v.check_positive_int("checkpoint_every", self.checkpoint_every, maximum=MAX_STEPS)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FinetuneResult:
    """What `finetune` returns: the report also written to out/report.json, and the paths."""

    report: dict[str, Any]
    out: Path
    checkpoint: Path
    model_file: Path | None
    finished: bool
    history: list[dict[str, Any]] = field(repr=False, default_factory=list)

    @property
    def spec_diff(self) -> dict[str, float | None]:
        """Held-out SPEC-diff before and after (after: None when the run stopped early)."""
        held = self.report["held_out"]
        after = held.get("after")
        return {"before": held["before"]["spec_diff"], "after": after and after["spec_diff"]}

    def summary(self) -> str:
        held = self.report["held_out"]
        before, after = held["before"], held.get("after")
        if after is None:
            return f"stopped at step {self.report['step']} of {self.report['total_steps']}"
        lines = [
            f"held-out SPEC-diff ({before['n_rows']} rows): {before['spec_diff']:.4g} -> "
            f"{after['spec_diff']:.4g} after {self.report['step']} steps"
        ]
        if "retrieval" in before:
            for key, label in (("image_to_text", "image->text"), ("text_to_image", "text->image")):
                was, now = before["retrieval"][key], after["retrieval"][key]
                lines.append(
                    f"held-out {label} "
                    + ", ".join(
                        f"R@{k} {was[f'R@{k}']:.3f} -> {now[f'R@{k}']:.3f}" for k in RECALL_KS
                    )
                )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Pure pieces: the schedule, the sampler, retrieval recall


def lr_factor(step: int, warmup: int, total: int) -> float:
    """open_clip's cosine_lr, as a factor of the peak lr for 0-based `step`: (step + 1) / warmup
    during the warm-up, then 0.5 (1 + cos(pi e / E)) with e the steps since the warm-up and E
    the steps after it."""
    if step < warmup:
        return (step + 1) / warmup
    span = total - warmup
    if span <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span))


def steps_per_epoch(n_train: int, batch: int) -> int:
    """Full batches per pass over the train rows (the last partial batch is dropped)."""
    return max(1, n_train // batch)


def batch_rows(train_rows: np.ndarray, batch: int, seed: int, step: int) -> np.ndarray:
    """The rows of 0-based `step`: a seeded permutation of the train rows per epoch, cut into
    full batches. A function of (seed, step) alone, so a resumed run draws the same batches."""
    per_epoch = steps_per_epoch(len(train_rows), batch)
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(len(train_rows))
    return train_rows[order[position * batch : (position + 1) * batch]]


def retrieval_recall(
    image_features: np.ndarray, text_features: np.ndarray, captions: Sequence[str], ks=RECALL_KS
) -> dict[str, dict[str, float]]:
    """Recall@k among these rows (row i: an image and its caption). Image->text: image i hits
    when its caption text is among the k best distinct captions; text->image: caption i hits
    when an image with that caption text is among the k best images. Ties count against the
    query (a feature that cannot tell captions apart scores 0, not 1). Cosine similarity."""

    def unit(x):
        x = np.asarray(x, dtype=np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)

    img, txt = unit(image_features), unit(text_features)
    captions = [str(c) for c in captions]
    distinct = sorted(set(captions))
    index = {c: i for i, c in enumerate(distinct)}
    own = np.array([index[c] for c in captions])
    first = {}
    for row, c in enumerate(captions):
        first.setdefault(c, row)
    caption_features = txt[[first[c] for c in distinct]]
    out = {}
    scores = img @ caption_features.T  # images x distinct captions
    target = scores[np.arange(len(own)), own]
    ranks = (scores >= target[:, None]).sum(axis=1) - 1  # others at least as good
    out["image_to_text"] = {f"R@{k}": float((ranks < k).mean()) for k in ks}
    scores = txt @ img.T  # captions (one per row) x images
    same = own[None, :] == own[:, None]
    best_true = np.where(same, scores, -np.inf).max(axis=1)
    ranks = (np.where(same, -np.inf, scores) >= best_true[:, None]).sum(axis=1)
    out["text_to_image"] = {f"R@{k}": float((ranks < k).mean()) for k in ks}
    return out


# ---------------------------------------------------------------------------------------------
# Inputs


def load_reference(
    source: str,
    dataset: Dataset,
    *,
    device: str = "auto",
    cache: Any = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The reference embedding, row i = dataset row i, as float32: a matrix file (.npy, .npz,
    .csv, .tsv, .parquet; rows matched by ids when the file has them, or a FILE.ids.json beside
    a .npy as `embed` writes, else by order and the counts must agree), or a model name embedded
    with the project's embed code. Returns (matrix, notes)."""
    from spec_core.data.io import MATRIX_SUFFIXES, align_to_ids, load_matrix_with_ids, split_key

    path, _ = split_key(source)
    if path.suffix.lower() in MATRIX_SUFFIXES:
        matrix, ids = load_matrix_with_ids(source)
        sidecar = path.with_suffix(".ids.json")
        if ids is None and path.suffix.lower() == ".npy" and sidecar.is_file():
            ids = _sidecar_ids(sidecar)
        matrix, notes = align_to_ids(matrix, ids, dataset.ids, name=source)
        if ids is not None:
            notes = [f"{source}: rows matched to the images by id", *notes]
    else:
        from spec_core.models.embed import embed
        from spec_core.models.registry import get_model, load_encoder

        info = get_model(source)
        if "image" not in info.modalities:
            raise ValueError(f"reference model {source!r} embeds {info.modalities[0]}s, not images")
        encoder = load_encoder(source, "image", device=device)
        matrix = embed(dataset, encoder, "image", cache=cache, progress=progress).matrix
        notes = []
    matrix = np.array(matrix, dtype=np.float32)  # our own copy: the caller's is never touched
    arrays.check_no_zero_rows(matrix, f"the reference {source}")
    arrays.check_not_constant(matrix, f"the reference {source}")
    return matrix, notes


def _sidecar_ids(path: Path) -> list[str]:
    try:
        ids = json.loads(path.read_text())["ids"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not an ids file written by `embed` ({err})") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{path}: 'ids' must be a list of strings")
    return ids


def fingerprint_array(x: np.ndarray) -> str:
    x = np.ascontiguousarray(x)
    digest = hashlib.sha256(f"{x.dtype.str}|{x.shape}|".encode())
    digest.update(x.tobytes())
    return digest.hexdigest()


def _load_open_clip(name: str, device: str):
    """(model, preprocessing, tokenizer, architecture) through the project's model loader."""
    from spec_core.models.registry import get_model, load_encoder

    info = get_model(name)
    if info.family != "open_clip":
        raise ValueError(
            f"align-model fine-tunes open_clip models (open_clip:ARCH/TAG or "
            f"open_clip:ARCH@/path/weights); {name!r} is a {info.family} model"
        )
    encoder = load_encoder(name, "image", device=device)
    arch = info.source.split("@", 1)[0].split("/", 1)[0]
    return encoder.model, encoder.transform, encoder.tokenizer, arch


class _ImageRows:
    """Preprocessed images by row index: decoded in worker threads, kept in memory while they
    fit in IMAGE_CACHE_BYTES (else read again each time)."""

    def __init__(self, paths: Sequence[str], transform, *, workers: int | None = None):
        self.paths, self.transform = paths, transform
        self.pool = ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1))
        self.ahead = ThreadPoolExecutor(max_workers=1)
        self.kept: dict[int, Any] = {}
        self.kept_bytes = 0

    def _one(self, row: int):
        tensor = self.kept.get(row)
        if tensor is None:
            from spec_core.data.images import load_rgb

            tensor = self.transform(load_rgb(self.paths[row]))
            size = tensor.numel() * tensor.element_size()
            if self.kept_bytes + size <= IMAGE_CACHE_BYTES:
                self.kept[row] = tensor
                self.kept_bytes += size
        return tensor

    def batch(self, rows: Sequence[int]):
        import torch

        return torch.stack(list(self.pool.map(self._one, [int(r) for r in rows])))

    def later(self, rows: Sequence[int]):
        """A future of batch(rows): the next batch decodes while the model runs."""
        return self.ahead.submit(self.batch, rows)

    def close(self) -> None:
        self.ahead.shutdown(wait=True)
        self.pool.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------
# Files in --out: written atomically, readable by the user's group like the CLI's JSON


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """`write(handle)` atomically (a reader or a crash never sees half a checkpoint), 0644."""
    from spec_core.data.cache import atomic_write

    atomic_write(path, write, mode=0o644)


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def read_checkpoint(path: str | Path, device=None) -> dict[str, Any]:
    """A checkpoint written by `finetune` (plain tensors and Python values: loaded with
    weights_only=True, so a foreign file cannot run code)."""
    import torch

    try:
        state = torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged or foreign file
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a checkpoint written by align-model")
    return state


def _first_difference(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            return f"{key} was {saved.get(key)!r}, now {current.get(key)!r}"
    return None


# ---------------------------------------------------------------------------------------------
# The trainer


@dataclass(frozen=True)
class _Plan:
    """What the inputs and the config decide before any model loads."""

    train_rows: np.ndarray
    val_rows: np.ndarray
    batch: int
    per_epoch: int
    total: int
    device: str
    identity: dict[str, Any]  # a checkpoint resumes only a run with the same identity

    @property
    def amp(self) -> bool:
        return self.device == "cuda"


def _plan(dataset: Dataset, reference: np.ndarray, config: FinetuneConfig, say: Log) -> _Plan:
    from spec_core.align.splits import split_rows
    from spec_core.models.registry import resolve_torch_device

    config.check()
    if dataset.kind != "image":
        raise ValueError(f"{dataset.name} is a text set; align-model fine-tunes an image tower")
    n = len(dataset)
    if reference.shape[0] != n:
        raise ValueError(
            f"the reference has {reference.shape[0]} rows but {dataset.name} has {n} images: "
            "row i of the reference must be image i"
        )
    captions = dataset.texts
    if config.contrastive_weight > 0:
        if captions is None:
            raise ValueError(
                f"a contrastive weight of {config.contrastive_weight:g} needs captions and "
                f"{dataset.name} has none: give a captions table, or set the contrastive weight "
                "to 0"
            )
        missing = [dataset.ids[i] for i, c in enumerate(captions) if not c.strip()]
        if missing:
            raise ValueError(
                f"{len(missing)} image(s) of {dataset.name} have no caption (e.g. "
                f"{', '.join(missing[:3])}); the contrastive loss needs one per image (or set "
                "the contrastive weight to 0)"
            )
    train_rows, val_rows = split_rows(n, float(config.val_fraction), config.seed)
    batch = min(config.batch_size, len(train_rows))
    if batch < config.batch_size:
        say(f"note: {len(train_rows)} train rows: batches of {batch}, not {config.batch_size}")
    per_epoch = steps_per_epoch(len(train_rows), batch)
    total = config.steps or (config.epochs or DEFAULT_EPOCHS) * per_epoch
    if config.warmup > total:
        say(
            f"note: the warm-up ({config.warmup} steps) is longer than the run ({total} steps): "
            "the learning rate never reaches its peak"
        )
    device = resolve_torch_device(config.device)
    identity = {  # checkpoint_every may change between a run and its resumption
        **{k: val for k, val in config.to_dict().items() if k != "checkpoint_every"},
        "device": device,
        "reference_sha256": fingerprint_array(np.asarray(reference, dtype=np.float32)),
        "images_sha256": dataset.fingerprint("image"),
        "captions_sha256": dataset.fingerprints.get("text"),
    }
    return _Plan(train_rows, val_rows, batch, per_epoch, total, device, identity)


class _Trainer:
    """The model, its optimiser, scheduler and scaler, and one training step. Only the image
    tower has requires_grad; the text tower's caption features are computed once."""

    def __init__(self, dataset: Dataset, reference: np.ndarray, config: FinetuneConfig, plan):
        import torch

        self.config, self.plan = config, plan
        self.device = torch.device(plan.device)
        torch.manual_seed(config.seed)
        model, transform, tokenizer, self.arch = _load_open_clip(config.model, plan.device)
        self.model = model.to(self.device)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for parameter in model.visual.parameters():
            parameter.requires_grad_(True)
        self.images = _ImageRows(dataset.image_paths, transform)
        self.reference = torch.from_numpy(np.array(reference, dtype=np.float32)).to(self.device)
        self.captions = dataset.texts
        self.text_features = None
        if self.captions is not None:
            self.text_features = _text_features(
                model, tokenizer, self.captions, self.device, plan.amp, config.batch_size
            )
        decay, no_decay = [], []  # open_clip: no weight decay on gains, biases, 1-d params
        for name, parameter in model.visual.named_parameters():
            exempt = parameter.ndim < 2 or "bn" in name or "ln" in name or "bias" in name
            (no_decay if exempt else decay).append(parameter)
        self.optimiser = torch.optim.AdamW(
            [
                {"params": no_decay, "weight_decay": 0.0},
                {"params": decay, "weight_decay": float(config.weight_decay)},
            ],
            lr=float(config.lr),
            betas=BETAS,
            eps=EPS,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda step: lr_factor(step, config.warmup, plan.total)
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=plan.amp)
        self.metric_rows = _sample(plan.val_rows, config.seed)
        self.train_sample = _sample(plan.train_rows, config.seed + 1, len(self.metric_rows))

    def rows(self, step: int) -> np.ndarray:
        return batch_rows(self.plan.train_rows, self.plan.batch, self.config.seed, step)

    def step(self, step: int, pixels) -> dict[str, Any]:
        """One optimiser step on the batch of 0-based `step` (its images: `pixels`); returns
        the history entry of step + 1."""
        import torch

        self.model.visual.train()
        index = torch.from_numpy(self.rows(step)).to(self.device)
        lr_now = self.optimiser.param_groups[0]["lr"]
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.plan.amp):
            features = self.model.encode_image(pixels.to(self.device, non_blocking=True))
        terms = _loss_terms(
            features.float(),
            self.reference.index_select(0, index),
            self.text_features,
            index,
            self.model,
            self.config,
        )
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise ValueError(
                f"training diverged at step {step + 1} (loss {float(loss)}); lower the lr"
            )
        self.optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimiser)
        self.scaler.update()
        self.scheduler.step()
        contrastive = terms["contrastive"]
        return {
            "step": step + 1,
            "loss": float(loss.detach()),
            "spec_diff": float(terms["spec_diff"]),
            "contrastive": None if contrastive is None else float(contrastive),
            "lr": lr_now,
        }

    def measure(self, report: Callable[[int, int], None]) -> dict[str, Any]:
        return _held_out_metrics(self, report)

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])


def finetune(
    dataset: Dataset,
    reference: np.ndarray,
    config: FinetuneConfig,
    *,
    out: str | Path,
    resume: bool = False,
    stop_after: int | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
    inputs: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune `config.model`'s image tower on `dataset`'s images against `reference` (row i =
    dataset row i) and write checkpoints and out/report.json (see the module docstring).

    `resume`: continue from out/checkpoint.pt (its config, device, data and reference must be
    these). `stop_after`: stop after this many steps of this call, with a checkpoint (as a job
    with a time limit would; `resume` goes on). `inputs`: descriptions of the inputs for the
    report. `reference` is only read."""
    report = progress or (lambda stage, done, total: None)
    say = log or (lambda text: None)
    out = Path(out)
    if not out.is_dir():
        raise ValueError(f"{out}: the output folder does not exist")
    reference = arrays.check_embedding(reference, "the reference")
    plan = _plan(dataset, reference, config, say)
    checkpoint_path = out / CHECKPOINT
    saved = None
    if resume:
        if not checkpoint_path.is_file():
            raise ValueError(f"{out} holds no {CHECKPOINT} to resume from")
        saved = read_checkpoint(checkpoint_path, plan.device)
        problem = _first_difference(saved["identity"], plan.identity)
        if problem:
            raise ValueError(f"{checkpoint_path} belongs to another run ({problem})")

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    report("loading the model", 0, 1)
    trainer = _Trainer(dataset, reference, config, plan)
    report("loading the model", 1, 1)
    timings["load"] = time.perf_counter() - clock

    def measure(stage: str) -> dict[str, Any]:
        return trainer.measure(lambda done, count: report(f"measuring ({stage})", done, count))

    try:
        if saved is not None:
            trainer.load(saved)
            step, history, val_history = saved["step"], saved["history"], saved["val_history"]
            before = saved["before"]
            timings.update({k: t for k, t in saved["timings"].items() if k != "load"})
            say(f"resumed from {checkpoint_path} at step {step} of {plan.total}")
        else:
            clock = time.perf_counter()
            step, history, before = 0, [], measure("before")
            val_history = [{"step": 0, "spec_diff": before["spec_diff"]}]
            timings["before"] = time.perf_counter() - clock

        def save_checkpoint() -> None:
            import torch

            state = {
                "format": FORMAT,
                "identity": plan.identity,
                "step": step,
                **trainer.state(),
                "history": history,
                "val_history": val_history,
                "before": before,
                "timings": timings,
            }
            _atomic_write(checkpoint_path, lambda stream: torch.save(state, stream))

        limit = plan.total if stop_after is None else min(plan.total, step + int(stop_after))
        first = step
        clock = time.perf_counter()
        upcoming = trainer.images.later(trainer.rows(step)) if step < limit else None
        try:
            while step < limit:
                pixels = upcoming.result()
                if step + 1 < limit:  # the next batch decodes while this one trains
                    upcoming = trainer.images.later(trainer.rows(step + 1))
                history.append(trainer.step(step, pixels))
                step += 1
                report("fine-tuning", step, plan.total)
                if step % config.checkpoint_every == 0 and step < plan.total:
                    spec_now = measure(f"step {step}")["spec_diff"]
                    val_history.append({"step": step, "spec_diff": spec_now})
                    save_checkpoint()
                    say(
                        f"step {step}/{plan.total}: loss {history[-1]['loss']:.4g}, held-out "
                        f"SPEC-diff {spec_now:.4g}; checkpoint written"
                    )
        except KeyboardInterrupt:
            if step > first:
                save_checkpoint()
                say(f"interrupted: checkpoint at step {step} written; --resume continues")
            raise
        timings["train"] = timings.get("train", 0.0) + time.perf_counter() - clock
        if step:
            timings["seconds_per_step"] = timings["train"] / step
        finished = step >= plan.total
        after = model_file = None
        if finished:
            clock = time.perf_counter()
            after = measure("after")
            timings["after"] = time.perf_counter() - clock
            if val_history[-1]["step"] != step:
                val_history.append({"step": step, "spec_diff": after["spec_diff"]})
            model_file = out / MODEL_FILE
            _save_weights(trainer.model, model_file)
        save_checkpoint()
    finally:
        trainer.images.close()
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "inputs": {
            **(inputs or {}),
            "n_rows": len(dataset),
            "n_train": len(plan.train_rows),
            "n_held_out": len(plan.val_rows),
            "reference_dim": int(reference.shape[1]),
            "captions": dataset.texts is not None,
        },
        "device": plan.device,
        "amp": plan.amp,
        "batch_size": plan.batch,
        "steps_per_epoch": plan.per_epoch,
        "total_steps": plan.total,
        "step": step,
        "finished": finished,
        "held_out": {"before": before, "after": after},
        "spec_diff": {"before": before["spec_diff"], "after": after and after["spec_diff"]},
        "val_history": val_history,
        "history": history,
        "timings": timings,
        "held_out_rows": plan.val_rows.tolist(),
        "model_file": str(model_file) if model_file else None,
        "use_with": f"open_clip:{trainer.arch}@{model_file.resolve()}" if model_file else None,
    }
    text = json.dumps(payload, indent=1, allow_nan=False).encode()
    _atomic_write(out / REPORT, lambda stream: stream.write(text))
    return FinetuneResult(payload, out, checkpoint_path, model_file, finished, history)


def _sample(rows: np.ndarray, seed: int, count: int = METRIC_ROWS) -> np.ndarray:
    if len(rows) <= count:
        return rows
    return np.sort(np.random.default_rng(seed + 17).choice(rows, count, replace=False))


def _loss_terms(features, ref_rows, text_features, index, model, config) -> dict[str, Any]:
    """The weighted loss and its terms; a zero-weight term is computed without gradient (only
    for the log) and left out of the loss."""
    import torch

    from spec_core.align.loss import batch_spec_diff

    def spec():
        return batch_spec_diff(ref_rows, features, kernel="cosine", centre=config.centre)

    def contrastive():
        unit = features / features.norm(dim=1, keepdim=True)
        logits = model.logit_scale.detach().exp().float() * unit @ text_features[index].T
        target = torch.arange(len(index), device=features.device)
        cross = torch.nn.functional.cross_entropy
        return 0.5 * (cross(logits, target) + cross(logits.T, target))

    loss = features.new_zeros(())
    terms: dict[str, Any] = {"contrastive": None}
    for name, weight, fn in (
        ("spec_diff", config.spec_weight, spec),
        ("contrastive", config.contrastive_weight, contrastive),
    ):
        if name == "contrastive" and text_features is None:
            continue
        if weight > 0:
            value = fn()
            loss = loss + weight * value
        else:
            with torch.no_grad():
                value = fn()
        terms[name] = value.detach()
    terms["loss"] = loss
    return terms


def _text_features(model, tokenizer, captions, device, amp, batch) -> torch.Tensor:
    """The frozen text tower's unit-length caption features, one row per image."""
    import torch

    model.eval()
    size = max(batch, 256)
    blocks = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        for start in range(0, len(captions), size):
            tokens = tokenizer(list(captions[start : start + size])).to(device)
            blocks.append(model.encode_text(tokens).float())
    features = torch.cat(blocks)
    return features / features.norm(dim=1, keepdim=True).clamp(min=1e-30)


def _image_features(trainer: _Trainer, rows: np.ndarray, report) -> torch.Tensor:
    import torch

    model, batch = trainer.model, trainer.config.batch_size
    model.visual.eval()
    blocks = []
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            pixels = trainer.images.batch(rows[start : start + batch]).to(trainer.device)
            with torch.autocast(trainer.device.type, dtype=torch.float16, enabled=trainer.plan.amp):
                blocks.append(model.encode_image(pixels).float())
            report(min(start + batch, len(rows)), len(rows))
    return torch.cat(blocks)


def _held_out_metrics(trainer: _Trainer, report) -> dict[str, Any]:
    """SPEC-diff(reference, image features) on the held-out rows (float64, the training loss's
    function on all of them at once), on an equally large sample of train rows, and with
    captions the held-out retrieval recall. Runs in eval mode without gradients."""
    import torch

    from spec_core.align.loss import batch_spec_diff

    rows, centre = trainer.metric_rows, trainer.config.centre
    both = np.concatenate([rows, trainer.train_sample])
    features = _image_features(trainer, both, report).double()
    ref = trainer.reference.index_select(0, torch.from_numpy(both).to(trainer.device)).double()
    k = len(rows)
    with torch.no_grad():
        held = batch_spec_diff(ref[:k], features[:k], kernel="cosine", centre=centre)
        seen = batch_spec_diff(ref[k:], features[k:], kernel="cosine", centre=centre)
    out: dict[str, Any] = {
        "spec_diff": float(held),
        "n_rows": k,
        "spec_diff_train_sample": float(seen),
        "n_train_sample": len(both) - k,
    }
    captions = trainer.captions
    if captions is not None:
        labelled = [i for i, row in enumerate(rows) if captions[row].strip()]
        if len(labelled) >= 2:
            chosen = torch.from_numpy(rows[labelled]).to(trainer.device)
            out["retrieval"] = {
                **retrieval_recall(
                    features[:k][labelled].cpu().numpy(),
                    trainer.text_features.index_select(0, chosen).cpu().numpy(),
                    [captions[row] for row in rows[labelled]],
                ),
                "n_rows": len(labelled),
            }
    return out


def _save_weights(model, path: Path) -> None:
    """The whole model's weights as safetensors, written atomically (open_clip loads them:
    open_clip:ARCH@path)."""
    from safetensors.torch import save

    state = {k: t.detach().cpu().contiguous() for k, t in model.state_dict().items()}
    data = save(state, metadata={"format": FORMAT})
    _atomic_write(path, lambda stream: stream.write(data))
