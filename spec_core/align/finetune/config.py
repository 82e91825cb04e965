"""What decides a fine-tuning run (`FinetuneConfig`, its defaults and checks), what it returns
(`FinetuneResult`), and the names of the files it writes into its output folder."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spec_core import checks as v

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
#: Held-out retrieval is measured as recall at these k.
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
        verdict = self.report.get("verdict")
        lines = [] if verdict is None else [f"{verdict['text']} (A: the reference, B: the model)"]
        lines += [
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
