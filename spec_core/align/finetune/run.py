"""`finetune`: one fine-tuning run from its inputs to out/report.json, as load -> measure
before -> train (with checkpoints; resumable) -> measure after -> write the weights and the
report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core.align.finetune.checkpoint import (
    atomic_write,
    first_difference,
    read_checkpoint,
    save_weights,
)
from spec_core.align.finetune.config import (
    CHECKPOINT,
    FORMAT,
    MODEL_FILE,
    REPORT,
    FinetuneConfig,
    FinetuneResult,
)
from spec_core.align.finetune.plan import Plan, make_plan
from spec_core.align.finetune.trainer import Trainer
from spec_core.data import arrays

if TYPE_CHECKING:
    import torch

    from spec_core.data.datasets import Dataset

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


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
    dataset row i) and write checkpoints and out/report.json (see the package docstring).

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
    plan = make_plan(dataset, reference, config, say)
    saved = _saved_state(out, plan) if resume else None

    clock = time.perf_counter()
    report("loading the model", 0, 1)
    trainer = Trainer(dataset, reference, config, plan)
    report("loading the model", 1, 1)
    run = _Run(trainer, plan, out / CHECKPOINT, report, say)
    run.timings["load"] = time.perf_counter() - clock
    try:
        run.start(saved)
        limit = plan.total if stop_after is None else min(plan.total, run.step + int(stop_after))
        run.train(limit)
        run.finish(out)
    finally:
        trainer.images.close()
    payload = run.report_payload(dataset, reference, inputs)
    text = json.dumps(payload, indent=1, allow_nan=False).encode()
    atomic_write(out / REPORT, lambda stream: stream.write(text))
    return FinetuneResult(
        payload, out, run.checkpoint_path, run.model_file, run.finished, run.history
    )


def _saved_state(out: Path, plan: Plan) -> dict[str, Any]:
    """The checkpoint in `out` to resume from, refused unless it belongs to this run (the same
    config, device, data and reference)."""
    checkpoint_path = out / CHECKPOINT
    if not checkpoint_path.is_file():
        raise ValueError(f"{out} holds no {CHECKPOINT} to resume from")
    saved = read_checkpoint(checkpoint_path, plan.device)
    problem = first_difference(saved["identity"], plan.identity)
    if problem:
        raise ValueError(f"{checkpoint_path} belongs to another run ({problem})")
    return saved


class _Run:
    """One call of finetune: the trainer and where the run stands (the step, the training and
    held-out histories, the held-out metrics before and after, the timings): what a checkpoint
    holds besides the trainer's own state."""

    def __init__(self, trainer: Trainer, plan: Plan, checkpoint_path: Path, report, say):
        self.trainer, self.plan, self.checkpoint_path = trainer, plan, checkpoint_path
        self.report, self.say = report, say
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.val_history: list[dict[str, Any]] = []
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] | None = None
        self.model_file: Path | None = None
        self.timings: dict[str, float] = {}
        #: The image features of the measured rows before training (the verdict's B before).
        self.before_features: torch.Tensor | None = None
        self.verdict: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.step >= self.plan.total

    def measure(self, stage: str) -> dict[str, Any]:
        return self.trainer.measure(
            lambda done, count: self.report(f"measuring ({stage})", done, count)
        )

    def start(self, saved: dict[str, Any] | None) -> None:
        """From the checkpoint `saved`, or from step 0 with the held-out metrics before."""
        if saved is not None:
            self.trainer.load(saved)
            self.step, self.history = saved["step"], saved["history"]
            self.val_history, self.before = saved["val_history"], saved["before"]
            self.before_features = saved.get("before_features")
            self.timings.update({k: t for k, t in saved["timings"].items() if k != "load"})
            self.say(
                f"resumed from {self.checkpoint_path} at step {self.step} of {self.plan.total}"
            )
        else:
            clock = time.perf_counter()
            self.before = self.measure("before")
            self.before_features = self.trainer.measured[1].float()
            self.val_history = [{"step": 0, "spec_diff": self.before["spec_diff"]}]
            self.timings["before"] = time.perf_counter() - clock

    def save_checkpoint(self) -> None:
        import torch

        state = {
            "format": FORMAT,
            "identity": self.plan.identity,
            "step": self.step,
            **self.trainer.state(),
            "history": self.history,
            "val_history": self.val_history,
            "before": self.before,
            "before_features": self.before_features,
            "timings": self.timings,
        }
        atomic_write(self.checkpoint_path, lambda stream: torch.save(state, stream))

    def train(self, limit: int) -> None:
        """Steps up to `limit` (the next batch decoding while one trains), with the held-out
        SPEC-diff and a checkpoint every checkpoint_every steps; on Ctrl-C a checkpoint of the
        steps done, then the interrupt goes on."""
        trainer, total = self.trainer, self.plan.total
        first, clock = self.step, time.perf_counter()
        upcoming = trainer.images.later(trainer.rows(self.step)) if self.step < limit else None
        try:
            while self.step < limit:
                pixels = upcoming.result()
                if self.step + 1 < limit:  # the next batch decodes while this one trains
                    upcoming = trainer.images.later(trainer.rows(self.step + 1))
                self.history.append(trainer.step(self.step, pixels))
                self.step += 1
                self.report("fine-tuning", self.step, total)
                if self.step % trainer.config.checkpoint_every == 0 and self.step < total:
                    self._checkpoint_with_metrics()
        except KeyboardInterrupt:
            if self.step > first:
                self.save_checkpoint()
                self.say(f"interrupted: checkpoint at step {self.step} written; --resume continues")
            raise
        self.timings["train"] = self.timings.get("train", 0.0) + time.perf_counter() - clock
        if self.step:
            self.timings["seconds_per_step"] = self.timings["train"] / self.step

    def _checkpoint_with_metrics(self) -> None:
        spec_now = self.measure(f"step {self.step}")["spec_diff"]
        self.val_history.append({"step": self.step, "spec_diff": spec_now})
        self.save_checkpoint()
        self.say(
            f"step {self.step}/{self.plan.total}: loss {self.history[-1]['loss']:.4g}, held-out "
            f"SPEC-diff {spec_now:.4g}; checkpoint written"
        )

    def finish(self, out: Path) -> None:
        """When every step is done: the held-out metrics after and the weights in `out`; then
        (done or not) a checkpoint."""
        if self.finished:
            clock = time.perf_counter()
            self.after = self.measure("after")
            self.verdict = self._verdict()
            self.timings["after"] = time.perf_counter() - clock
            if self.val_history[-1]["step"] != self.step:
                self.val_history.append({"step": self.step, "spec_diff": self.after["spec_diff"]})
            self.model_file = out / MODEL_FILE
            save_weights(self.trainer.model, self.model_file)
        self.save_checkpoint()

    def _verdict(self) -> dict[str, Any] | None:
        """The verdict in words (measure.held_out_verdict, the one align gives) of the
        held-out rows: A the reference, B the image features before and after; the best linear
        map fitted on the measured train rows. None when the features before are not known."""
        from spec_core.align.measure import held_out_verdict

        if self.before_features is None:
            return None
        reference, after = self.trainer.measured
        verdict = held_out_verdict(
            reference.numpy(), self.before_features.double().numpy(), after.numpy(),
            len(self.trainer.metric_rows), centre=self.trainer.config.centre,
            seed=self.trainer.config.seed,
        )  # fmt: skip
        return verdict.to_dict()

    def report_payload(
        self, dataset: Dataset, reference: np.ndarray, inputs: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The report (out/report.json): the config, the inputs, the run and its results."""
        plan, before, after, model_file = self.plan, self.before, self.after, self.model_file
        return {
            "format": FORMAT,
            "config": self.trainer.config.to_dict(),
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
            "step": self.step,
            "finished": self.finished,
            "held_out": {"before": before, "after": after},
            "spec_diff": {"before": before["spec_diff"], "after": after and after["spec_diff"]},
            "verdict": self.verdict,
            "val_history": self.val_history,
            "history": self.history,
            "timings": self.timings,
            "held_out_rows": plan.val_rows.tolist(),
            "model_file": str(model_file) if model_file else None,
            "use_with": f"open_clip:{self.trainer.arch}@{model_file.resolve()}"
            if model_file
            else None,
        }
