"""The held-out measurements of a fine-tuning run, before and after training: SPEC-diff
(reference, image features) on the held-out rows and on an equally large sample of train rows,
and with captions the held-out retrieval recall (image->text and text->image)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core.align.finetune.config import RECALL_KS
from spec_core.align.loss import batch_spec_diff

if TYPE_CHECKING:
    import torch


def held_out_metrics(
    reference: torch.Tensor,
    features: torch.Tensor,
    rows: np.ndarray,
    *,
    centre: bool,
    text_features: torch.Tensor | None,
    captions: Sequence[str] | None,
) -> dict[str, Any]:
    """`reference` and image `features` (float64) on the held-out `rows` followed by a sample
    of train rows: SPEC-diff on each part (the training loss's function, on all of its rows at
    once), and with captions the retrieval recall among the held-out rows that have one."""
    import torch

    k = len(rows)
    with torch.no_grad():
        held = batch_spec_diff(reference[:k], features[:k], kernel="cosine", centre=centre)
        seen = batch_spec_diff(reference[k:], features[k:], kernel="cosine", centre=centre)
    out: dict[str, Any] = {
        "spec_diff": float(held),
        "n_rows": k,
        "spec_diff_train_sample": float(seen),
        "n_train_sample": len(features) - k,
    }
    if captions is not None:
        labelled = [i for i, row in enumerate(rows) if captions[row].strip()]
        if len(labelled) >= 2:
            chosen = torch.from_numpy(rows[labelled]).to(text_features.device)
            out["retrieval"] = {
                **retrieval_recall(
                    features[:k][labelled].cpu().numpy(),
                    text_features.index_select(0, chosen).cpu().numpy(),
                    [captions[row] for row in rows[labelled]],
                ),
                "n_rows": len(labelled),
            }
    return out


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
