"""SPEC-align: change one embedding so that it captures the groups another captures.

`align` trains an adapter on a frozen embedding (train.py); `finetune` the paper's variant, an
open_clip image tower fine-tuned on SPEC-diff plus its contrastive loss (finetune.py).

    >>> from spec_core.align import align
    >>> result = align(emb_a, emb_b)  # B adapted towards A
"""

from spec_core.align.train import Aligner, AlignResult, align, load_adapter

__all__ = ["AlignResult", "Aligner", "align", "load_adapter"]
