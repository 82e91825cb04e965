"""SPEC-align: change one embedding so that it captures the groups another captures.

`align` trains an adapter on a frozen embedding: the batch loss (loss.py), the adapters
(adapter.py), the data made ready (prepare.py), training with early stopping (train.py) and the
before/after measurements (measure.py); its parameters, defaults and checks are in settings.py.
`finetune` is the paper's variant, an open_clip image tower fine-tuned on SPEC-diff plus its
contrastive loss (the finetune package).

    >>> from spec_core.align import align
    >>> result = align(emb_a, emb_b)  # B adapted towards A
"""

from spec_core.align.adapter import ADAPTERS, Aligner, load_adapter
from spec_core.align.settings import (
    DEFAULT_BATCH,
    DEFAULT_KEEP_WEIGHT,
    DEFAULT_LR,
    DEFAULT_START,
    DEFAULT_STEPS,
    DEFAULT_VAL_FRACTION,
    KERNELS,
    SOLVERS,
    STARTS,
    TARGETS,
)
from spec_core.align.train import AlignResult, align

__all__ = [
    "ADAPTERS",
    "DEFAULT_BATCH",
    "DEFAULT_KEEP_WEIGHT",
    "DEFAULT_LR",
    "DEFAULT_START",
    "DEFAULT_STEPS",
    "DEFAULT_VAL_FRACTION",
    "KERNELS",
    "SOLVERS",
    "STARTS",
    "TARGETS",
    "AlignResult",
    "Aligner",
    "align",
    "load_adapter",
]
