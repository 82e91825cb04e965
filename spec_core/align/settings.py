"""SPEC-align's parameters: their allowed values, their defaults (chosen with
benchmarks/bench_align.py, see the README) and the checks that refuse a bad one, naming it and
what is allowed. `align`'s signature holds the defaults; `AlignSettings` carries the values one
run uses through its steps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from spec_core import checks as v
from spec_core.align.adapter import ADAPTERS
from spec_core.limits import CAPS

KERNELS = ("gaussian", "cosine")
SOLVERS = ("eigh", "power")
TARGETS = ("both", "a-not-b")
#: Where the linear adapter starts: the least-squares map of B onto A (kept only when it beats
#: the identity on the validation rows), or the identity. The MLP adapter starts at the identity.
STARTS = ("least-squares", "identity")
#: Defaults, chosen with benchmarks/bench_align.py (see the README).
DEFAULT_STEPS = 300
DEFAULT_BATCH = 512
DEFAULT_LR = 1e-2
DEFAULT_KEEP_WEIGHT = 0.1
DEFAULT_EVAL_EVERY = 10
DEFAULT_PATIENCE = 8
DEFAULT_VAL_FRACTION = 0.2
#: Chosen with benchmarks/bench_align_planted.py (the tuning set; see the README).
DEFAULT_START = "least-squares"
#: A batch needs at least this many rows (its spectrum is the loss).
MIN_BATCH = 16
MAX_STEPS = 100_000


@dataclass(frozen=True)
class AlignSettings:
    """The parameters of one `align` run (see align for what each does)."""

    kernel: str
    adapter: str
    val_fraction: float
    seed: int
    steps: int
    batch_size: int
    lr: float
    keep_weight: float
    n_top: int
    target: str
    solver: str
    sigma_scale: float
    centre: bool
    eval_every: int
    patience: int
    knn_k: int
    device: str
    start: str = DEFAULT_START

    def check(self) -> AlignSettings:
        """Raise a ValueError naming the first bad parameter; return the settings with the seed
        as a Python int."""
        _check_training_parameters(self)
        v.check_positive_int("eval_every", self.eval_every, maximum=MAX_STEPS)
        v.check_positive_int("patience", self.patience, maximum=MAX_STEPS)
        v.check_positive_int("n_top", self.n_top, maximum=CAPS.max_n_eigenvalues)
        v.check_choice("target", self.target, TARGETS)
        v.check_choice("start", self.start, STARTS)
        if self.target != "both" and self.solver == "power":
            raise ValueError(
                "target='a-not-b' needs solver='eigh' (power finds the largest |value|)"
            )
        v.check_positive("sigma_scale", self.sigma_scale, allow_none=False)
        v.check_positive_int("knn_k", self.knn_k, maximum=CAPS.max_knn_k)
        return dataclasses.replace(self, seed=v.check_seed(self.seed))


def _check_training_parameters(settings: AlignSettings) -> None:
    """The kernel, adapter and solver, the split and the optimiser's parameters."""
    v.check_choice("kernel", settings.kernel, KERNELS)
    v.check_choice("adapter", settings.adapter, ADAPTERS)
    v.check_choice("solver", settings.solver, SOLVERS)
    if settings.solver == "power" and settings.kernel != "cosine":
        raise ValueError("solver='power' works in feature space: it needs kernel='cosine'")
    fraction = v.real_number("val_fraction", settings.val_fraction)
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {settings.val_fraction!r}")
    v.check_positive_int("steps", settings.steps, maximum=MAX_STEPS)
    v.check_positive_int("batch_size", settings.batch_size, maximum=CAPS.max_top_k * 2)
    if settings.batch_size < MIN_BATCH:
        raise ValueError(
            f"batch_size must be at least {MIN_BATCH}: a batch's spectrum needs that many rows"
        )
    if not 0 < v.real_number("lr", settings.lr) <= 1:
        raise ValueError(f"lr must be in (0, 1], got {settings.lr!r}")
    if not 0 <= v.real_number("keep_weight", settings.keep_weight) <= 1e6:
        raise ValueError(f"keep_weight must be between 0 and 1e6, got {settings.keep_weight!r}")
