"""The files a fine-tuning run writes into its output folder, atomically and readable by the
user's group like the CLI's JSON: checkpoints (model, optimiser, scheduler, scaler, step, RNG
states and the run's history, read back only as plain tensors and Python values) and the
fine-tuned weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from spec_core.align.finetune.config import FORMAT


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """`write(handle)` atomically (a reader or a crash never sees half a checkpoint), 0644."""
    from spec_core.data.cache import atomic_write as write_atomically

    write_atomically(path, write, mode=0o644)


def rng_state() -> dict[str, Any]:
    """torch's random states (the CPU's, and every CUDA device's when there is one)."""
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
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


def first_difference(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first key (in sorted order) whose value differs between two run identities, said
    as 'KEY was OLD, now NEW'; None when they are the same."""
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            return f"{key} was {saved.get(key)!r}, now {current.get(key)!r}"
    return None


def save_weights(model, path: Path) -> None:
    """The whole model's weights as safetensors, written atomically (open_clip loads them:
    open_clip:ARCH@path)."""
    from safetensors.torch import save

    state = {k: t.detach().cpu().contiguous() for k, t in model.state_dict().items()}
    data = save(state, metadata={"format": FORMAT})
    atomic_write(path, lambda stream: stream.write(data))
