"""An embedding's rows as its kernel sees them, in tensors the engine owns.

The engine never writes to its callers' arrays. Every tensor it computes on is made here, by
out-of-place operations on a read of the caller's rows, so the caller's memory (a read-only
memory map, a slice of a bigger array, a Fortran-ordered matrix) stays byte-identical and every
later in-place operation touches engine memory only.

Rows are put in the kernel's own units, which makes both kernels scale-free:
- gaussian: (x - mean) / sigma, so the kernel is exp(-||u - v||^2 / 2) on these rows and the
  distances are O(1) whatever the data's units (values of 1e30 or 1e-30 included);
- cosine: x / ||x||, normalised scale-safely (see kernels.normalize_rows_t).
The centring and the division are done in float64, then the rows are cast to the compute dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spec_core.engine.kernels import get_kernel

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class KernelRows:
    """The rows of one embedding, prepared for its kernel on demand (a block, or chosen rows).

    data: the caller's (n, d) array, only ever read. shift: the float64 centre that a Gaussian
    kernel subtracts (column_centre; None for cosine). sigma: the Gaussian bandwidth (None for
    cosine).
    """

    data: np.ndarray
    kernel: str
    shift: np.ndarray | None
    sigma: float | None
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def prepare(cls, data, kernel, sigma, device, dtype) -> KernelRows:
        return cls(data, kernel, get_kernel(kernel).shift(data), sigma, device, dtype)

    @property
    def n_rows(self) -> int:
        return int(self.data.shape[0])

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    def block(self, start: int, stop: int) -> torch.Tensor:
        """Rows start:stop, in the kernel's units, as a new tensor on the device."""
        return self._prepare(self.data[start:stop])

    def take(self, rows) -> torch.Tensor:
        """The given rows (indices), in the kernel's units, as a new tensor on the device."""
        return self._prepare(self.data[np.asarray(rows, dtype=np.int64)])

    def all(self) -> torch.Tensor:
        return self.block(0, self.n_rows)

    def _prepare(self, raw: np.ndarray) -> torch.Tensor:
        import torch

        # np.array copies (and makes C order): from here on the memory is the engine's own
        rows = torch.from_numpy(np.array(raw, dtype=np.float64))
        rows = get_kernel(self.kernel).prepare(rows, self.shift, self.sigma)
        return rows.to(device=self.device, dtype=self.dtype)

    def matrix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The kernel between rows of this embedding already prepared (block / take)."""
        return get_kernel(self.kernel).matrix(x, y)
