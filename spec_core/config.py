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
import math
from dataclasses import dataclass
from typing import Any

from spec_core import checks as v
from spec_core.limits import CAPS

#: The feature maps that approximate a kernel (rff, nystrom), per kernel: the cosine kernel has an
#: exact finite map (its normalised rows), so it needs none (spec_core.engine.kernels reads this).
APPROXIMATIONS = ("rff", "nystrom")
APPROXIMATIONS_OF = {"gaussian": APPROXIMATIONS, "cosine": ()}


@dataclass(frozen=True)
class SpecConfig:
    """The parameters of one comparison (see spec_core.compare for what each means)."""

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

        v.check_choice("device", self.device, v.DEVICES)
        check_parameters(
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


def check_parameters(
    *,
    kernel,
    method,
    dtype,
    sigma_a,
    sigma_b,
    sigma_rule,
    sigma_scale,
    members,
    eta,
    n_features,
    n_modes,
    top_k,
    n_eigenvalues,
    knn_k,
    seed,
    block_rows,
) -> None:
    """Every parameter against its allowed values and caps (spec_core.limits.CAPS)."""
    v.check_choice("kernel", kernel, v.KERNELS)
    v.check_choice("method", method, v.METHODS)
    v.check_choice("dtype", dtype, v.DTYPES)
    v.check_choice("sigma_rule", sigma_rule, v.SIGMA_RULES)
    v.check_choice("members", members, v.MEMBER_RULES)
    v.check_positive("sigma_a", sigma_a)
    v.check_positive("sigma_b", sigma_b)
    sigma_scale = v.check_positive("sigma_scale", sigma_scale, allow_none=False)
    if sigma_scale > 1e6 or sigma_scale < 1e-6:
        raise ValueError(f"sigma_scale must be between 1e-06 and 1e+06, got {sigma_scale!r}")
    eta = v.real_number("eta", eta)
    if not math.isfinite(eta) or eta < 0 or eta > CAPS.max_eta:
        raise ValueError(f"eta must be a finite number from 0 to {CAPS.max_eta:g}, got {eta!r}")
    for name, value, cap in (
        ("n_features", n_features, CAPS.max_n_features),
        ("n_modes", n_modes, CAPS.max_n_modes),
        ("top_k", top_k, CAPS.max_top_k),
        ("n_eigenvalues", n_eigenvalues, CAPS.max_n_eigenvalues),
        ("knn_k", knn_k, CAPS.max_knn_k),
    ):
        v.check_positive_int(name, value, maximum=cap)
    v.check_seed(seed)
    if block_rows is not None:
        v.check_positive_int("block_rows", block_rows)
    if method in APPROXIMATIONS and method not in APPROXIMATIONS_OF[kernel]:
        raise ValueError(
            f"method={method!r} approximates the Gaussian kernel; the {kernel} kernel has an "
            "exact feature map, so use method='exact' or 'auto'"
        )
