"""What the inputs and the config decide before any model loads: the split, the batch of each
step, the learning-rate schedule, the length of the run, the device, and the identity a
checkpoint must match to be resumed. All pure functions of their arguments, so a resumed run
draws the same batches and follows the same schedule as an uninterrupted one."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core.align.finetune.config import DEFAULT_EPOCHS, FinetuneConfig
from spec_core.align.splits import split_rows

if TYPE_CHECKING:
    from spec_core.data.datasets import Dataset

Log = Callable[[str], None]


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


def fingerprint_array(x: np.ndarray) -> str:
    """sha256 over the array's dtype, shape and bytes."""
    x = np.ascontiguousarray(x)
    digest = hashlib.sha256(f"{x.dtype.str}|{x.shape}|".encode())
    digest.update(x.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Plan:
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


def make_plan(dataset: Dataset, reference: np.ndarray, config: FinetuneConfig, say: Log) -> Plan:
    """Check the config and the inputs against each other and plan the run; `say` gets the
    notes (a batch smaller than asked, a warm-up longer than the run)."""
    from spec_core.models.registry import resolve_torch_device

    config.check()
    _check_inputs(dataset, reference, config)
    n = len(dataset)
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
    return Plan(train_rows, val_rows, batch, per_epoch, total, device, identity)


def _check_inputs(dataset: Dataset, reference: np.ndarray, config: FinetuneConfig) -> None:
    """An image set, a reference row per image, and a caption per image when the contrastive
    term is on."""
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
