"""The model being fine-tuned and one step of its training: the open_clip model (only its image
tower trains; the text tower's caption features are computed once), AdamW with open_clip's
weight-decay groups and cosine schedule, autocast and a GradScaler on CUDA, the weighted loss,
and the features the held-out measurements need."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core.align.finetune.checkpoint import rng_state, set_rng_state
from spec_core.align.finetune.config import BETAS, EPS, METRIC_ROWS, FinetuneConfig
from spec_core.align.finetune.data import ImageRows
from spec_core.align.finetune.evaluate import held_out_metrics
from spec_core.align.finetune.plan import Plan, batch_rows, lr_factor
from spec_core.align.loss import batch_spec_diff
from spec_core.align.splits import sample_rows

if TYPE_CHECKING:
    import torch

    from spec_core.data.datasets import Dataset


class Trainer:
    """The model, its optimiser, scheduler and scaler, and one training step. Only the image
    tower has requires_grad; the text tower's caption features are computed once."""

    def __init__(self, dataset: Dataset, reference: np.ndarray, config: FinetuneConfig, plan: Plan):
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
        self.images = ImageRows(dataset.image_paths, transform)
        self.reference = torch.from_numpy(np.array(reference, dtype=np.float32)).to(self.device)
        self.captions = dataset.texts
        self.text_features = None
        if self.captions is not None:
            self.text_features = _text_features(
                model, tokenizer, self.captions, self.device, plan.amp, config.batch_size
            )
        self.optimiser = _adamw(model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda step: lr_factor(step, config.warmup, plan.total)
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=plan.amp)
        self.metric_rows = sample_rows(plan.val_rows, config.seed, METRIC_ROWS)
        self.train_sample = sample_rows(plan.train_rows, config.seed + 1, len(self.metric_rows))

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
        """The held-out metrics now (evaluate.held_out_metrics) on the held-out metric rows and
        an equally large sample of train rows, in eval mode without gradients (float64)."""
        import torch

        both = np.concatenate([self.metric_rows, self.train_sample])
        features = self.image_features(both, report).double()
        ref = self.reference.index_select(0, torch.from_numpy(both).to(self.device)).double()
        self.measured = (ref.cpu(), features.cpu())  # for the verdict (run.py)
        return held_out_metrics(
            ref,
            features,
            self.metric_rows,
            centre=self.config.centre,
            text_features=self.text_features,
            captions=self.captions,
        )

    def image_features(self, rows: np.ndarray, report: Callable[[int, int], None]) -> torch.Tensor:
        """The image tower's features of `rows` (float32), in eval mode, by batches."""
        import torch

        model, batch = self.model, self.config.batch_size
        model.visual.eval()
        blocks = []
        with torch.no_grad():
            for start in range(0, len(rows), batch):
                pixels = self.images.batch(rows[start : start + batch]).to(self.device)
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.plan.amp):
                    blocks.append(model.encode_image(pixels).float())
                report(min(start + batch, len(rows)), len(rows))
        return torch.cat(blocks)

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])


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


def _adamw(model, config: FinetuneConfig):
    """open_clip's AdamW on the image tower: weight decay on matrices only (not on gains,
    biases, 1-d params)."""
    import torch

    decay, no_decay = [], []
    for name, parameter in model.visual.named_parameters():
        exempt = parameter.ndim < 2 or "bn" in name or "ln" in name or "bias" in name
        (no_decay if exempt else decay).append(parameter)
    return torch.optim.AdamW(
        [
            {"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": float(config.weight_decay)},
        ],
        lr=float(config.lr),
        betas=BETAS,
        eps=EPS,
    )


def _loss_terms(features, ref_rows, text_features, index, model, config) -> dict[str, Any]:
    """The weighted loss and its terms; a zero-weight term is computed without gradient (only
    for the log) and left out of the loss."""
    import torch

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
