"""SPEC-align's adapters: the map g that aligns B, how it is made, applied, saved and loaded.

An adapter starts as the identity (g(B) = B at step 0, so "before" is exactly B) and works on
B standardised by its train rows (`Aligner`), so its output is back in B's units and the
aligned embedding is a drop-in replacement for B. `Aligner.save` writes it as a safetensors
file that `load_adapter` reads back (e.g. `python -m spec_core align` writes one beside its
output).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from spec_core.data import arrays
from spec_core.limits import CAPS

if TYPE_CHECKING:
    import torch

ADAPTERS = ("linear", "mlp")
#: The MLP adapter's hidden width: min(this, 2 x d).
MLP_HIDDEN = 512
ADAPTER_FORMAT = "spec-explorer-adapter/1"


def make_adapter(kind: str, dim: int, *, hidden: int | None = None, seed: int = 0):
    """An adapter that starts as the identity: "linear" (x W + c, W = I) or "mlp" (a residual
    block x + W2 gelu(W1 x), W2 = 0). It maps standardised rows (see Aligner)."""
    import torch

    torch.manual_seed(seed)
    if kind == "linear":
        layer = torch.nn.Linear(dim, dim)
        with torch.no_grad():
            layer.weight.copy_(torch.eye(dim))
            layer.bias.zero_()
        return layer
    if kind == "mlp":
        return residual_mlp(dim, hidden or min(MLP_HIDDEN, 2 * dim))
    raise ValueError(f"adapter={kind!r} is not supported; choose one of {', '.join(ADAPTERS)}")


def residual_mlp(dim: int, hidden: int):
    """x + W2 gelu(W1 x), W2 = 0 at the start (the identity); the class is made here so that
    torch loads only when an adapter is made."""
    import torch

    nn = torch.nn

    class _residual_mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(dim, hidden)
            self.outer = nn.Linear(hidden, dim)
            with torch.no_grad():
                self.outer.weight.zero_()
                self.outer.bias.zero_()

        def forward(self, x):
            return x + self.outer(nn.functional.gelu(self.inner(x)))

    return _residual_mlp()


class Aligner:
    """g(B) = centre + scale x adapter((B - centre) / scale): the adapter works on B
    standardised by its train rows' column means and one overall scale (in float64, so values
    near the float limits stay finite), and its output is back in B's units, so the aligned
    embedding is a drop-in replacement for B."""

    def __init__(self, kind: str, dim: int, centre: np.ndarray, scale: float, *, seed: int = 0):
        self.kind, self.dim = kind, dim
        self.centre = np.asarray(centre, dtype=np.float64)
        self.scale = float(scale)
        self.module = make_adapter(kind, dim, seed=seed)

    @property
    def device(self):
        return next(self.module.parameters()).device

    def to(self, device) -> Aligner:
        self.module.to(device)
        return self

    def standardise(self, emb: np.ndarray) -> np.ndarray:
        """(emb - centre) / scale as float32 (computed in float64)."""
        return ((np.asarray(emb, dtype=np.float64) - self.centre) / self.scale).astype(np.float32)

    def forward_std(self, x_std: torch.Tensor) -> torch.Tensor:
        return self.module(x_std)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the adapter's weights now (restore() goes back to them)."""
        return {k: t.detach().clone() for k, t in self.module.state_dict().items()}

    def restore(self, weights: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(weights)

    def apply(self, emb: np.ndarray, *, block_rows: int = 8192, dtype=np.float32) -> np.ndarray:
        """g(emb) for every row, in blocks (float32, or `dtype`); emb is only read. Refuses an
        output that is not finite (an adapter that does not fit these rows)."""
        import torch

        emb = arrays.check_embedding(emb, "B")
        if emb.shape[1] != self.dim:
            raise ValueError(f"the adapter maps {self.dim} columns, B has {emb.shape[1]}")
        out = np.empty(emb.shape, dtype=dtype)
        with torch.no_grad():
            for start in range(0, emb.shape[0], block_rows):
                x = torch.from_numpy(self.standardise(emb[start : start + block_rows]))
                y = self.module(x.to(self.device)).double().cpu().numpy()
                out[start : start + len(y)] = y * self.scale + self.centre
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            raise ValueError(
                f"the adapter's output is not finite for {int(bad.sum())} row(s) (the first is "
                f"row {int(np.argmax(bad))}); these rows are beyond what it was trained on"
            )
        return out

    def state(self) -> dict[str, torch.Tensor]:
        import torch

        tensors = {f"adapter.{k}": t.detach().cpu() for k, t in self.module.state_dict().items()}
        tensors["centre"] = torch.from_numpy(self.centre.copy())
        tensors["scale"] = torch.tensor([self.scale], dtype=torch.float64)
        return {k: t.contiguous() for k, t in tensors.items()}

    def to_bytes(self, metadata: dict[str, str] | None = None) -> bytes:
        """The adapter as a safetensors file: its weights, B's centre and scale; metadata says
        which adapter it is (load_adapter reads it back)."""
        from safetensors.torch import save

        meta = {"format": ADAPTER_FORMAT, "adapter": self.kind, "dim": str(self.dim)}
        return save(self.state(), metadata={**meta, **(metadata or {})})

    def save(self, path, metadata: dict[str, str] | None = None) -> None:
        """to_bytes(), written atomically to `path` (readable by the user's group)."""
        from spec_core.data.cache import atomic_write

        atomic_write(path, self.to_bytes(metadata), mode=0o644)


def load_adapter(path) -> Aligner:
    """An adapter saved by Aligner.save (e.g. by `python -m spec_core align`), on the CPU.
    Anything else (another file, wrong shapes, non-finite weights) is a ValueError naming
    the file."""
    try:
        kind, dim, hidden, tensors = _read_adapter_file(path)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    except Exception as err:  # safetensors' own errors, OSError: one message naming the file
        raise ValueError(f"{path}: not a readable adapter file ({type(err).__name__})") from None
    for key, tensor in tensors.items():
        if not bool(tensor.isfinite().all()):
            raise ValueError(f"{path}: the adapter's {key} holds NaN or infinite values")
    scale = float(tensors["scale"][0])
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{path}: the adapter's scale must be a positive number, got {scale}")
    aligner = Aligner(kind, dim, tensors["centre"].double().numpy(), scale)
    if kind == "mlp":
        aligner.module = residual_mlp(dim, hidden)
    prefix = "adapter."
    state = {k[len(prefix) :]: t.float() for k, t in tensors.items() if k.startswith(prefix)}
    aligner.module.load_state_dict(state)
    return aligner


def _read_adapter_file(path) -> tuple[str, int, int, dict[str, torch.Tensor]]:
    """(kind, dim, hidden units, tensors) of an adapter file, its metadata and the shapes of
    its tensors checked before any tensor is read; a ValueError (without the path) when they
    are not an adapter's."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("format") != ADAPTER_FORMAT:
            raise ValueError("not an adapter saved by SPEC Explorer")
        kind, dim = meta.get("adapter"), meta.get("dim", "")
        if kind not in ADAPTERS or not dim.isdigit() or not 0 < int(dim) <= CAPS.max_dim:
            raise ValueError(f"unknown adapter {kind!r} of dimension {dim!r}")
        dim = int(dim)
        shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
        hidden = shapes.get("adapter.inner.weight", (0,))[0]
        expected = _adapter_shapes(kind, dim, hidden)
        if shapes != expected:
            raise ValueError(f"its tensors {shapes} are not a {kind} adapter's {expected}")
        return kind, dim, hidden, {key: handle.get_tensor(key) for key in expected}


def _adapter_shapes(kind: str, dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """The tensors a `kind` adapter of `dim` columns (and `hidden` units) is saved as."""
    expected = {"centre": (dim,), "scale": (1,)}
    if kind == "linear":
        return expected | {"adapter.weight": (dim, dim), "adapter.bias": (dim,)}
    if not 0 < hidden <= 4 * MLP_HIDDEN:
        raise ValueError(f"an MLP adapter with {hidden} hidden units")
    return expected | {
        "adapter.inner.weight": (hidden, dim),
        "adapter.inner.bias": (hidden,),
        "adapter.outer.weight": (dim, hidden),
        "adapter.outer.bias": (dim,),
    }
