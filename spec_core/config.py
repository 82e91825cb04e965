"""SpecConfig: every SPEC parameter and its default, in one place.

The engine (`compare`'s keyword defaults), the command line (its flags' defaults) and the app
(its settings' defaults) all read `DEFAULTS`; a SpecConfig is frozen and hashable, so it can key
a cache, and `validated()` checks every field against its allowed values and the caps of
spec_core.limits with the engine's own messages.

    >>> from spec_core.config import SpecConfig
    >>> config = SpecConfig(kernel="cosine", n_modes=3)
    >>> compare(emb_a, emb_b, **config.validated().kwargs())
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SpecConfig:
    """The parameters of one comparison (see spec_core.spec.compare for what each means)."""

    kernel: str = "gaussian"
    sigma_a: float | None = None  # None: data-driven (sigma_rule x sigma_scale)
    sigma_b: float | None = None
    sigma_rule: str = "median"  # chosen with benchmarks/bench_legibility.py
    sigma_scale: float = 1.0
    centre: bool = True  # the centred kernels H K H (False: the paper's definition)
    eta: float = 1.0
    method: str = "auto"
    n_features: int = 2000
    n_modes: int = 5
    top_k: int = 20
    n_eigenvalues: int = 20
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    context: bool = True
    stability: bool = True
    members: str = "cut"  # chosen with benchmarks/bench_legibility.py
    knn_k: int = 10

    def kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments for compare()."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> SpecConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown SPEC parameter(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def validated(self) -> SpecConfig:
        """Self, after checking every field (a ValueError names the first bad one)."""
        from spec_core import _validation as v
        from spec_core.spec import _check_parameters

        v.check_choice("device", self.device, v.DEVICES)
        _check_parameters(
            kernel=self.kernel,
            method=self.method,
            dtype=self.dtype,
            sigma_a=self.sigma_a,
            sigma_b=self.sigma_b,
            sigma_rule=self.sigma_rule,
            sigma_scale=self.sigma_scale,
            members=self.members,
            eta=self.eta,
            n_features=self.n_features,
            n_modes=self.n_modes,
            top_k=self.top_k,
            n_eigenvalues=self.n_eigenvalues,
            knn_k=self.knn_k,
            seed=self.seed,
            block_rows=None,
        )
        return self


#: The defaults, read by the engine, the CLI and the app.
DEFAULTS = SpecConfig()
