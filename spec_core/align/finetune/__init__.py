"""SPEC-align, the paper's full fine-tuning variant: train an open_clip model's image tower so
that its features capture the groups a reference embedding captures.

The loss on a mini-batch of rows (the SAME samples in the reference and in the images: the
sampler picks row indices, and both the images and the reference rows are taken at those
indices) is

    spec_weight x SPEC-diff(reference rows, image features)
      + contrastive_weight x CLIP contrastive loss(image features, caption features)

SPEC-diff is spec_core.align.loss.batch_spec_diff with the cosine kernel (on L2-normalised rows)
and the engine's centring: the largest |eigenvalue| of H (K_ref - K_img) H / m, differentiated
through torch.linalg.eigvalsh (stable when eigenvalues cluster; m is small). The contrastive term
is CLIP's symmetric cross-entropy with the model's own (frozen) logit scale, against the frozen
text tower's caption features (computed once: the text tower never changes). Only the image
tower is trained; a zero weight removes its term from the gradient (it is still logged).

Optimiser: the paper's (open_clip's) AdamW, lr 5e-5, betas (0.9, 0.98), eps 1e-6, weight decay
0.2 on matrices only (not on gains, biases, embeddings' 1-d params), linear warm-up then cosine
decay to 0 (open_clip's `cosine_lr`). CUDA runs the forward pass under autocast (float16) with a
GradScaler; the CPU runs in float32. The losses are always computed in float32.

Rows are split into train and held-out rows (seeded, spec_core.align.splits.split_rows). Before
and after training the held-out rows are embedded and measured: SPEC-diff(reference, image
features) on all of them (up to METRIC_ROWS), and, with captions, image->text and text->image
recall@1/5 among the held-out rows.

Checkpoints (model, optimiser, scheduler, scaler, step, RNG states, config, history) are written
to `out` every `checkpoint_every` steps and at the end, atomically; `resume=True` continues from
the last one and ends where an uninterrupted run ends (the sampler is a function of the seed
and the step, so it needs no state). Inputs are only read.

The modules: config.py (FinetuneConfig, FinetuneResult, the defaults and file names), plan.py
(the split, the batches, the schedule, the run's identity), data.py (the reference, the images
by row), trainer.py (the model and one training step), evaluate.py (the held-out metrics),
checkpoint.py (the files written), run.py (`finetune` itself).
"""

from spec_core.align.finetune.checkpoint import read_checkpoint
from spec_core.align.finetune.config import (
    CHECKPOINT,
    DEFAULT_BATCH,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_CONTRASTIVE_WEIGHT,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_SPEC_WEIGHT,
    DEFAULT_VAL_FRACTION,
    DEFAULT_WARMUP,
    DEFAULT_WEIGHT_DECAY,
    FORMAT,
    MODEL_FILE,
    OUTPUT_FILES,
    REPORT,
    FinetuneConfig,
    FinetuneResult,
)
from spec_core.align.finetune.data import load_reference
from spec_core.align.finetune.run import finetune

__all__ = [
    "CHECKPOINT",
    "DEFAULT_BATCH",
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_CONTRASTIVE_WEIGHT",
    "DEFAULT_EPOCHS",
    "DEFAULT_LR",
    "DEFAULT_SPEC_WEIGHT",
    "DEFAULT_VAL_FRACTION",
    "DEFAULT_WARMUP",
    "DEFAULT_WEIGHT_DECAY",
    "FORMAT",
    "MODEL_FILE",
    "OUTPUT_FILES",
    "REPORT",
    "FinetuneConfig",
    "FinetuneResult",
    "finetune",
    "load_reference",
    "read_checkpoint",
]
