"""`align-model --model open_clip:ARCH/TAG --reference REF --data IMAGES --out FOLDER`:
SPEC-align by full fine-tuning of an open_clip image tower, so that it captures what a reference
embedding does. Checkpoints, the fine-tuned weights and a report (held-out SPEC-diff and
retrieval before and after) go to the --out folder; --resume continues a run from there.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spec_core import checks as v
from spec_core.cli.common import (
    ProgressLine,
    check_checkpoint_folder,
    one_line,
    print_notes,
    printable,
)

if TYPE_CHECKING:
    from spec_core.align.finetune import FinetuneConfig
    from spec_core.data.datasets import Dataset


def add(subparsers) -> None:
    from spec_core.align import finetune as ft

    p = subparsers.add_parser(
        "align-model",
        help="fine-tune an open_clip image tower so it captures what a reference embedding does",
        description="SPEC-align by full fine-tuning: train the image tower of an open_clip model "
        "on spec_weight x SPEC-diff(reference, image features) + contrastive_weight x the CLIP "
        "loss (with captions), over mini-batches of the same rows in both; checkpoints and a "
        "report (held-out SPEC-diff and retrieval before and after) go to --out.",
    )
    p.add_argument("--model", required=True, help="open_clip:ARCH/TAG or open_clip:ARCH@/weights")
    p.add_argument(
        "--reference",
        required=True,
        help="REF.npy (row i = image i in the dataset's order; ids in a table/.npz or a "
        "REF.ids.json beside it match rows by id) or a model name to embed the images with",
    )
    p.add_argument("--data", required=True, help="a folder or .zip of images")
    p.add_argument("--captions", default=None, help="captions table for the contrastive term")
    p.add_argument("--out", required=True, help="checkpoint folder (created if missing)")
    p.add_argument(
        "--spec-weight",
        type=float,
        default=ft.DEFAULT_SPEC_WEIGHT,
        help="weight of the SPEC-diff term (cosine kernel, same rows; 0: off)",
    )
    p.add_argument(
        "--contrastive-weight",
        type=float,
        default=None,
        help=f"weight of the CLIP contrastive term: default {ft.DEFAULT_CONTRASTIVE_WEIGHT:g} "
        "with captions, 0 without (a non-zero weight needs captions)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="optimiser steps")
    length.add_argument(
        "--epochs", type=int, default=None, help=f"default {ft.DEFAULT_EPOCHS} (without --steps)"
    )
    p.add_argument("--batch-size", type=int, default=ft.DEFAULT_BATCH, help="rows per step")
    p.add_argument("--lr", type=float, default=ft.DEFAULT_LR, help="peak AdamW learning rate")
    p.add_argument(
        "--weight-decay", type=float, default=ft.DEFAULT_WEIGHT_DECAY, help="AdamW, on matrices"
    )
    p.add_argument(
        "--warmup", type=int, default=ft.DEFAULT_WARMUP, help="linear warm-up steps, then cosine"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=ft.DEFAULT_VAL_FRACTION,
        help="share of rows held out (never trained on) for the before/after metrics",
    )
    p.add_argument("--seed", type=int, default=0, help="the split, the batches and dropout")
    p.add_argument(
        "--device", default="auto", choices=v.DEVICES, help="auto: a CUDA GPU when there is one"
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=ft.DEFAULT_CHECKPOINT_EVERY, help="steps"
    )
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from spec_core.align import finetune as ft
    from spec_core.data.cache import EmbeddingCache

    out = Path(args.out)
    _check_out_and_model(args, out)
    config = _config(args)
    dataset = _load_images(args)
    config = _with_captions(config, dataset, args)
    for item in dataset.skipped:
        print(f"skipped {item.item}: {one_line(item.reason)}", file=sys.stderr)
    print_notes(dataset.notes)
    progress = None if args.quiet else ProgressLine()
    reference, notes = ft.load_reference(
        args.reference, dataset, device=args.device, cache=EmbeddingCache(), progress=progress
    )
    print_notes(notes)
    out.mkdir(exist_ok=True)
    result = ft.finetune(
        dataset,
        reference,
        config,
        out=out,
        resume=args.resume,
        progress=progress,
        log=lambda text: print(one_line(text), file=sys.stderr),
        inputs={
            "model": args.model,
            "reference": args.reference,
            "data": args.data,
            "captions_file": args.captions,
        },
    )
    print(printable(result.summary()))
    print(f"wrote {out / ft.REPORT}, {result.model_file} (use it as {result.report['use_with']})")
    return 0


def _check_out_and_model(args: argparse.Namespace, out: Path) -> None:
    """Before any work: the checkpoint folder (outside the inputs; fresh, or --resume with its
    checkpoint) and the model (an open_clip one)."""
    from spec_core.align import finetune as ft
    from spec_core.data.io import split_key
    from spec_core.models.registry import get_model

    inputs = [Path(args.data), split_key(args.reference)[0]]
    if args.captions:
        inputs.append(Path(args.captions))
    check_checkpoint_folder(
        out, inputs, resume=args.resume, checkpoint=ft.CHECKPOINT, outputs=ft.OUTPUT_FILES
    )
    if get_model(args.model).family != "open_clip":
        raise ValueError(
            f"--model {args.model}: align-model fine-tunes open_clip models "
            "(open_clip:ARCH/TAG or open_clip:ARCH@/path/weights)"
        )


def _config(args: argparse.Namespace) -> FinetuneConfig:
    """The training settings from the flags; the contrastive weight 0 until the captions are
    known (see `_with_captions`)."""
    from spec_core.align import finetune as ft

    return ft.FinetuneConfig(
        model=args.model,
        spec_weight=args.spec_weight,
        contrastive_weight=0.0 if args.contrastive_weight is None else args.contrastive_weight,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
    )


def _load_images(args: argparse.Namespace) -> Dataset:
    """The image set of --data, with the captions of --captions when given."""
    from spec_core.data.datasets import load_dataset

    dataset = load_dataset(args.data, **({"captions": args.captions} if args.captions else {}))
    if dataset.kind != "image":
        raise ValueError(f"--data {args.data}: a text set; align-model needs images")
    return dataset


def _with_captions(
    config: FinetuneConfig, dataset: Dataset, args: argparse.Namespace
) -> FinetuneConfig:
    """The settings, checked, with the contrastive term on by default when the images have
    captions; a non-zero contrastive weight without captions is refused."""
    from spec_core.align import finetune as ft

    if args.contrastive_weight is None and dataset.texts is not None:
        config = dataclasses.replace(config, contrastive_weight=ft.DEFAULT_CONTRASTIVE_WEIGHT)
    if config.contrastive_weight > 0 and dataset.texts is None:
        raise ValueError(
            f"--contrastive-weight {config.contrastive_weight:g} needs captions and {args.data} "
            "has none: give --captions FILE, or --contrastive-weight 0"
        )
    config.check()
    return config
