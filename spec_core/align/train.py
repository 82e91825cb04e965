"""SPEC-align: train an adapter g on top of a frozen embedding B so that g(B) captures the groups
that A captures, i.e. minimise SPEC-diff(A, g(B)) over mini-batches of rows.

The loss on a mini-batch of m rows (the same samples in A and in B, row for row) is the largest
|eigenvalue| of the m x m difference matrix

    Lambda = H (K_A - eta K_g(B)) H / m          (H the centring matrix when centre=True)

with the engine's kernels and bandwidth rule (spec_core.compare on the same rows gives the
same number). Two ways to differentiate it (`solver`):

- "eigh" (default): torch.linalg.eigvalsh of the m x m matrix. The gradient of an eigenvalue is
  u u^T (u its unit eigenvector): no 1 / (lambda_i - lambda_j) terms, so it is stable even when
  eigenvalues cluster. Any kernel.
- "power": the paper's route, for the cosine kernel: power iteration on the feature-space matrix
  S C (C = Psi^T Psi / m, Psi = [phi_A, phi_g(B)], S = diag(I, -I)), warm-started from the last
  step's eigenvector under no_grad, then the eigenvalue lambda = (v^T C S C v) / (v^T C v)
  (left eigenvector C v, right v) with the gradient through C. benchmarks/bench_align.py
  measures both.

What B already had is kept by a distillation term: keep_weight x the mean squared change
||g(x) - x||^2 in units of B's own spread (x standardised to unit mean square per coordinate),
so keep_weight = 0.1 means a change as large as B's whole spread costs 0.1. Rows far from the
rest (more than FAR_SPREADS spreads) count in neither the centre and spread nor the training:
the adapter maps them, the before/after metrics include them. The adapter starts as the
identity (g(B) = B at step 0), so "before" is exactly B.

Rows are split into train and validation rows (seeded); the adapter is trained on train rows
only, and the validation SPEC-diff, measured every `eval_every` steps on validation rows it
never trained on, chooses the step kept (early stopping after `patience` evaluations without
improvement). Inputs are only read, never written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core import checks as v
from spec_core.data import arrays
from spec_core.limits import CAPS

if TYPE_CHECKING:
    import torch

Progress = Callable[[str, int, int], None]

KERNELS = ("gaussian", "cosine")
ADAPTERS = ("linear", "mlp")
SOLVERS = ("eigh", "power")
TARGETS = ("both", "a-not-b")
#: Defaults, chosen with benchmarks/bench_align.py (see the README).
DEFAULT_STEPS = 300
DEFAULT_BATCH = 512
DEFAULT_LR = 1e-2
DEFAULT_KEEP_WEIGHT = 0.1
DEFAULT_EVAL_EVERY = 10
DEFAULT_PATIENCE = 8
DEFAULT_VAL_FRACTION = 0.2
#: The validation loss during training is measured on at most this many validation rows.
VAL_LOSS_ROWS = 1024
#: Before/after metrics use at most this many rows per split (a seeded sample beyond).
METRIC_ROWS = 4000
#: Both splits need at least this many rows; a batch at least MIN_BATCH.
MIN_SPLIT_ROWS = 10
MIN_BATCH = 16
#: Power iterations: the first step, and each warm-started step after it (the paper: 1000, 20).
POWER_FIRST_STEPS = 200
POWER_STEPS = 20
#: Rows of B further than this many spreads from the rest (see _centre_and_spread) are left
#: out of B's centre and spread, of training and of early stopping: in a batch they would own
#: the keep term and lose their kernel values to float32 rounding. The adapter still maps them,
#: and the before/after metrics (the engine's) include them.
FAR_SPREADS = 1e3
#: Standardised B stays within this (float32 holds it, with room for the adapter's weights).
MAX_STANDARDISED = 1e30
#: The MLP adapter's hidden width: min(this, 2 x d).
MLP_HIDDEN = 512
MAX_STEPS = 100_000


# ---------------------------------------------------------------------------------------------
# The differentiable SPEC-diff of a mini-batch


def _sq_distances(x: torch.Tensor) -> torch.Tensor:
    sq = (x * x).sum(dim=1, keepdim=True)
    return (sq + sq.T - 2.0 * (x @ x.T)).clamp(min=0.0)


def batch_bandwidth(x: torch.Tensor, sigma_scale: float = 1.0) -> torch.Tensor:
    """The engine's median rule on the rows of x: sigma_scale x 0.3 x the median distance
    between distinct rows (no gradient flows through it)."""
    from spec_core.engine.kernels import SIGMA_MEDIAN_FACTOR

    with _no_grad():
        dist = _sq_distances(x.detach())
        m = dist.shape[0]
        upper = dist[np.triu_indices(m, 1)]
        upper = upper[upper > 0]
        if upper.numel() == 0:
            return dist.new_tensor(1.0)
        return sigma_scale * SIGMA_MEDIAN_FACTOR * upper.median().sqrt()


def batch_kernel(x: torch.Tensor, kernel: str, sigma: float | torch.Tensor | None = None):
    """The kernel matrix of the rows of x, differentiable in x. Gaussian: sigma None uses the
    median rule on x (batch_bandwidth). Cosine: on the L2-normalised rows."""
    if kernel == "cosine":
        unit = x / x.norm(dim=1, keepdim=True)
        return unit @ unit.T
    if sigma is None:
        sigma = batch_bandwidth(x)
    return (-0.5 * _sq_distances(x) / sigma**2).exp()


def _centred(matrix: torch.Tensor) -> torch.Tensor:
    rows = matrix.mean(dim=1, keepdim=True)
    return matrix - rows - rows.T + rows.mean()


def batch_lambda(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    kernel: str = "gaussian",
    sigma_a=None,
    sigma_b=None,
    centre: bool = True,
    eta: float = 1.0,
) -> torch.Tensor:
    """Lambda = (K_A - eta K_B) / m on the m rows of a and b (H Lambda H when centre)."""
    lam = (batch_kernel(a, kernel, sigma_a) - eta * batch_kernel(b, kernel, sigma_b)) / a.shape[0]
    return _centred(lam) if centre else lam


def batch_spec_diff(
    a: torch.Tensor, b: torch.Tensor, *, n_top: int = 1, side: str = "both", **kw
) -> torch.Tensor:
    """SPEC-diff(A, B) = max |eigenvalue of Lambda| on these rows, differentiable in a and b
    (n_top > 1: the sum of the n_top largest |eigenvalues|). side "a-not-b": the largest
    positive eigenvalues only (what A captures and B misses). Keyword arguments: batch_lambda's.
    """
    import torch

    lam = batch_lambda(a, b, **kw)
    values = torch.linalg.eigvalsh((lam + lam.T) / 2)
    size = values.clamp(min=0) if side == "a-not-b" else values.abs()
    return size.topk(min(n_top, values.numel())).values.sum()


class PowerSpecDiff:
    """The paper's route (cosine kernel): the eigenvalue of S C of largest |value| by power
    iteration in feature space, warm-started across calls; differentiable through C."""

    def __init__(self, *, centre: bool = True, eta: float = 1.0):
        self.centre, self.eta, self.v = centre, eta, None

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        import torch

        phi_a = a / a.norm(dim=1, keepdim=True)
        phi_b = math.sqrt(self.eta) * b / b.norm(dim=1, keepdim=True)
        psi = torch.cat([phi_a, phi_b], dim=1)
        if self.centre:
            psi = psi - psi.mean(dim=0)
        gram = psi.T @ psi / psi.shape[0]
        sign = torch.ones(psi.shape[1], dtype=psi.dtype, device=psi.device)
        sign[phi_a.shape[1] :] = -1.0
        with torch.no_grad():
            c = gram.detach()
            steps = POWER_STEPS
            if self.v is None or self.v.shape[0] != psi.shape[1]:
                gen = torch.Generator(device="cpu").manual_seed(0)
                self.v = torch.randn(psi.shape[1], generator=gen, dtype=psi.dtype).to(psi.device)
                steps = POWER_FIRST_STEPS
            vec = self.v.to(dtype=psi.dtype, device=psi.device)
            for _ in range(steps):
                vec = sign * (c @ vec)
                vec = vec / vec.norm().clamp(min=1e-30)
            self.v = vec
        cv = gram @ vec
        return ((cv * sign) @ cv / (vec @ cv)).abs()


# ---------------------------------------------------------------------------------------------
# Adapters


def _torch():
    import torch

    return torch


def _no_grad():
    return _torch().no_grad()


def make_adapter(kind: str, dim: int, *, hidden: int | None = None, seed: int = 0):
    """An adapter that starts as the identity: "linear" (x W + c, W = I) or "mlp" (a residual
    block x + W2 gelu(W1 x), W2 = 0). It maps standardised rows (see Aligner)."""
    torch = _torch()
    nn = torch.nn

    torch.manual_seed(seed)
    if kind == "linear":
        layer = nn.Linear(dim, dim)
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
    torch = _torch()
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

    def apply(self, emb: np.ndarray, *, block_rows: int = 8192, dtype=np.float32) -> np.ndarray:
        """g(emb) for every row, in blocks (float32, or `dtype`); emb is only read. Refuses an
        output that is not finite (an adapter that does not fit these rows)."""
        torch = _torch()
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
        torch = _torch()
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


ADAPTER_FORMAT = "spec-explorer-adapter/1"


def load_adapter(path) -> Aligner:
    """An adapter saved by Aligner.save (e.g. by `python -m spec_core align`), on the CPU.
    Anything else (another file, wrong shapes, non-finite weights) is a ValueError naming
    the file."""
    import math

    try:
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
            expected = {"centre": (dim,), "scale": (1,)}
            if kind == "linear":
                expected |= {"adapter.weight": (dim, dim), "adapter.bias": (dim,)}
            else:
                if not 0 < hidden <= 4 * MLP_HIDDEN:
                    raise ValueError(f"an MLP adapter with {hidden} hidden units")
                expected |= {
                    "adapter.inner.weight": (hidden, dim),
                    "adapter.inner.bias": (hidden,),
                    "adapter.outer.weight": (dim, hidden),
                    "adapter.outer.bias": (dim,),
                }
            if shapes != expected:
                raise ValueError(f"its tensors {shapes} are not a {kind} adapter's {expected}")
            tensors = {key: handle.get_tensor(key) for key in expected}
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


# ---------------------------------------------------------------------------------------------
# The trainer


@dataclass
class AlignResult:
    """What `align` returns. `metrics[split][stage]` (split "train" / "val", stage "before" /
    "after") holds spec_diff, the spectrum, kNN overlap of B (or g(B)) with A and with B,
    linear CKA with A and with B, and label kNN accuracy when labels were given. `closed` lists
    the strongest modes on the validation rows before alignment with their eigenvalue after
    (the Rayleigh quotient of the same score vector in the aligned Lambda)."""

    aligned: np.ndarray = field(repr=False)
    aligner: Aligner = field(repr=False)
    train_rows: np.ndarray = field(repr=False)
    val_rows: np.ndarray = field(repr=False)
    metrics: dict[str, dict[str, dict[str, Any]]]
    closed: list[dict[str, Any]]
    history: list[dict[str, float]]
    best_step: int
    stopped_early: bool
    params: dict[str, Any]
    timings: dict[str, float]
    before_val: Any = field(default=None, repr=False)  # the engine's SpecResult, val rows
    after_val: Any = field(default=None, repr=False)
    #: What the user should know, e.g. that no step beat the identity (B kept unchanged).
    notes: list[str] = field(default_factory=list)

    @property
    def spec_diff(self) -> dict[str, dict[str, float]]:
        return {
            stage: {split: self.metrics[split][stage]["spec_diff"] for split in ("train", "val")}
            for stage in ("before", "after")
        }

    @property
    def val_metric_rows(self) -> np.ndarray:
        """The validation rows that `before_val`, `after_val`, the validation metrics and
        `closed` were measured on, in their order (all validation rows up to METRIC_ROWS, a
        seeded sample beyond): row i of those results is dataset row val_metric_rows[i]."""
        return _metric_rows(self.val_rows, self.params["seed"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (every number finite)."""
        return {
            "format": "spec-explorer-align/1",
            "spec_diff": self.spec_diff,
            "val_rows": self.val_rows.tolist(),
            "metrics": self.metrics,
            "closed_modes": self.closed,
            "history": self.history,
            "best_step": self.best_step,
            "stopped_early": self.stopped_early,
            "notes": self.notes,
            "params": self.params,
            "timings": self.timings,
        }

    def summary(self) -> str:
        sd = self.spec_diff
        m = self.metrics["val"]
        lines = [
            f"SPEC-diff on validation rows: {sd['before']['val']:.4g} -> {sd['after']['val']:.4g}"
            f" (train rows: {sd['before']['train']:.4g} -> {sd['after']['train']:.4g}); "
            f"best step {self.best_step}" + (" (stopped early)" if self.stopped_early else ""),
            f"kNN overlap with A: {m['before']['knn_overlap_a']:.3f} -> "
            f"{m['after']['knn_overlap_a']:.3f}; with B: {m['after']['knn_overlap_b']:.3f} "
            f"(B itself 1.0)",
        ]
        if "label_knn_accuracy" in m["before"]:
            lines.append(
                f"label kNN accuracy: B {m['before']['label_knn_accuracy']:.3f} -> "
                f"{m['after']['label_knn_accuracy']:.3f} "
                f"(A {m['before']['label_knn_accuracy_a']:.3f})"
            )
        for mode in self.closed:
            lines.append(
                f"  {mode['label']}: eigenvalue {mode['before']:+.4g} -> {mode['after']:+.4g}"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def split_rows(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / validation split of n rows, both sorted."""
    n_val = round(val_fraction * n)
    if n_val < MIN_SPLIT_ROWS or n - n_val < MIN_SPLIT_ROWS:
        raise ValueError(
            f"{n} rows with val_fraction={val_fraction:g} leave {n - n_val} train and {n_val} "
            f"validation rows; each needs at least {MIN_SPLIT_ROWS}"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _check_align_parameters(kernel, adapter, solver, val_fraction, steps, batch_size, lr, keep):
    v.check_choice("kernel", kernel, KERNELS)
    v.check_choice("adapter", adapter, ADAPTERS)
    v.check_choice("solver", solver, SOLVERS)
    if solver == "power" and kernel != "cosine":
        raise ValueError("solver='power' works in feature space: it needs kernel='cosine'")
    fraction = v.real_number("val_fraction", val_fraction)
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction!r}")
    v.check_positive_int("steps", steps, maximum=MAX_STEPS)
    v.check_positive_int("batch_size", batch_size, maximum=CAPS.max_top_k * 2)
    if batch_size < MIN_BATCH:
        raise ValueError(
            f"batch_size must be at least {MIN_BATCH}: a batch's spectrum needs that many rows"
        )
    if not 0 < v.real_number("lr", lr) <= 1:
        raise ValueError(f"lr must be in (0, 1], got {lr!r}")
    if not 0 <= v.real_number("keep_weight", keep) <= 1e6:
        raise ValueError(f"keep_weight must be between 0 and 1e6, got {keep!r}")


def align(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    *,
    kernel: str = "gaussian",
    adapter: str = "linear",
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH,
    lr: float = DEFAULT_LR,
    keep_weight: float = DEFAULT_KEEP_WEIGHT,
    n_top: int = 1,
    target: str = "both",
    solver: str = "eigh",
    sigma_scale: float = 1.0,
    centre: bool = True,
    eval_every: int = DEFAULT_EVAL_EVERY,
    patience: int = DEFAULT_PATIENCE,
    labels: Sequence[str] | None = None,
    knn_k: int = 10,
    device: str = "auto",
    progress: Progress | None = None,
) -> AlignResult:
    """Train an adapter g on B (frozen) so that SPEC-diff(A, g(B)) is small on rows it never saw.

    Row i of A and of B must be the same sample. kernel / sigma_scale / centre are the engine's
    (the Gaussian bandwidths follow its median rule: A's fixed from A's train rows, g(B)'s from
    each batch, as compare() would choose them for g(B)). adapter "linear" or "mlp" (residual).
    n_top: the loss is the sum of the n_top largest |eigenvalues| of each batch (1: SPEC-diff).
    target "both" (default): minimise SPEC-diff, closing differences in both directions (g(B)
    also loses groups only B had); "a-not-b": only the positive eigenvalues, the groups A
    captures and B misses (B keeps its own groups; early stopping then watches the largest
    positive eigenvalue on validation rows).
    The inputs are only read. Returns an AlignResult (see there).
    """
    import torch

    from spec_core.engine.compare import resolve_device
    from spec_core.engine.kernels import bandwidth, check_bandwidth, sample_distances

    _check_align_parameters(
        kernel, adapter, solver, val_fraction, steps, batch_size, lr, keep_weight
    )
    v.check_positive_int("eval_every", eval_every, maximum=MAX_STEPS)
    v.check_positive_int("patience", patience, maximum=MAX_STEPS)
    v.check_positive_int("n_top", n_top, maximum=CAPS.max_n_eigenvalues)
    v.check_choice("target", target, TARGETS)
    if target != "both" and solver == "power":
        raise ValueError("target='a-not-b' needs solver='eigh' (power finds the largest |value|)")
    v.check_positive("sigma_scale", sigma_scale, allow_none=False)
    v.check_positive_int("knn_k", knn_k, maximum=CAPS.max_knn_k)
    seed = v.check_seed(seed)
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable progress(stage, done, total)")
    emb_a = arrays.check_embedding(emb_a, "A", max_dim=CAPS.max_dim, max_rows=CAPS.max_rows)
    emb_b = arrays.check_embedding(emb_b, "B", max_dim=CAPS.max_dim, max_rows=CAPS.max_rows)
    arrays.check_pair(emb_a, emb_b)
    arrays.check_not_constant(emb_a, "A")
    arrays.check_not_constant(emb_b, "B")
    if kernel == "cosine":
        arrays.check_no_zero_rows(emb_a, "A")
        arrays.check_no_zero_rows(emb_b, "B")
    n = emb_a.shape[0]
    if labels is not None:
        labels = np.asarray([str(label) for label in labels])
        if len(labels) != n:
            raise ValueError(f"labels: {len(labels)} labels for {n} rows")
    report = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    train_rows, val_rows = split_rows(n, float(val_fraction), seed)
    for split, rows in (("train", train_rows), ("validation", val_rows)):
        for name, emb in (("A", emb_a), ("B", emb_b)):
            if not (emb[rows] != emb[rows[0]]).any():
                raise ValueError(
                    f"the {len(rows)} {split} rows of {name} are all identical: nothing to "
                    "measure there; use another seed or val_fraction, or more distinct rows"
                )
    _check_align_memory(n, emb_a.shape[1], emb_b.shape[1], adapter, batch_size)
    torch_device = resolve_device(device)

    # B standardised by its train rows (float64, scaled first: values near the float limits
    # stay finite); A brought to a safe range (kernels are scale-free here: the Gaussian
    # bandwidths are measured on the same scaled rows; cosine ignores scale). For the Gaussian
    # kernel A is standardised as B is, so one far row of A does not shrink the rest either.
    centre_b, spread = _centre_and_spread(emb_b, train_rows, "B")
    if kernel == "gaussian":
        a_all = _standardised(emb_a, *_centre_and_spread(emb_a, train_rows, "A"))
    else:
        a_all = _scaled_copy(emb_a, kernel)
    aligner = Aligner(adapter, emb_b.shape[1], centre_b, spread, seed=seed).to(torch_device)
    a_t = torch.from_numpy(a_all).to(torch_device)
    b_std = torch.from_numpy(_standardised(emb_b, centre_b, spread)).to(torch_device)
    # the cosine kernel sees g(B) / scale = outputs + centre / scale
    offset = torch.from_numpy((centre_b / spread).astype(np.float32)).to(torch_device)
    if kernel == "cosine":
        arrays.check_no_zero_rows(
            (b_std + offset).cpu().numpy(), "B (in float32, after dividing by its spread)"
        )
    rng = np.random.default_rng(seed)
    # rows far from the rest of A or of B are mapped, and measured by the engine, but not
    # trained on (A's cosine rows are each scaled to at most 1: none is far)
    fit_rows, val_loss_rows = (
        np.intersect1d(_near_rows(b_std, rows), _near_rows(a_t, rows))
        for rows in (train_rows, val_rows)
    )
    far_rows = n - len(fit_rows) - len(val_loss_rows)
    for split, near, rows in (("train", fit_rows, train_rows), ("val", val_loss_rows, val_rows)):
        if len(near) < MIN_SPLIT_ROWS:
            raise ValueError(
                f"only {len(near)} of the {len(rows)} {split} rows are within {FAR_SPREADS:g} "
                "spreads of the rest in both A and B; use another seed or val_fraction"
            )
    sigma_a = None
    if kernel == "gaussian":
        distances, scale = sample_distances(a_all[fit_rows], seed=seed)
        sigma_a = sigma_scale * bandwidth(a_all[fit_rows], "median", seed=seed)
        check_bandwidth("sigma_a", sigma_a, distances, scale, "float32")
    if len(val_loss_rows) > VAL_LOSS_ROWS:
        val_loss_rows = np.sort(rng.choice(val_loss_rows, VAL_LOSS_ROWS, replace=False))
    val_index = torch.from_numpy(val_loss_rows).to(torch_device)
    m = min(int(batch_size), len(fit_rows))
    timings["prepare"] = time.perf_counter() - clock

    def kw():
        return {"kernel": kernel, "sigma_a": sigma_a, "centre": centre}

    def loss_on(index: torch.Tensor, outputs: torch.Tensor, fn) -> torch.Tensor:
        # g(B) = outputs x scale + centre; both kernels here ignore that overall scale (the
        # Gaussian bandwidth is measured on the same rows), and the Gaussian the shift too.
        a_rows = a_t.index_select(0, index)
        if kernel == "gaussian":
            sigma_b = sigma_scale * batch_bandwidth(outputs)
            return fn(a_rows, outputs, sigma_b=sigma_b)
        return fn(a_rows, outputs + offset)

    power = PowerSpecDiff(centre=centre) if solver == "power" else None

    def spec_fn(top: int):
        if power is not None:
            return lambda a, b, **extra: power(a, b)
        return lambda a, b, **extra: batch_spec_diff(a, b, n_top=top, side=target, **kw(), **extra)

    def val_spec_diff() -> float:
        # exact (eigvalsh) whatever the solver: the power iteration, warm-started from the
        # training batches' vector, can miss the validation rows' largest |eigenvalue| and keep
        # a step that is worse than none (and the training's warm start stays its own)
        def exact(a, b, **extra):
            return batch_spec_diff(a, b, side=target, **kw(), **extra)

        with torch.no_grad():
            out = aligner.forward_std(b_std.index_select(0, val_index))
            return float(loss_on(val_index, out, exact))

    optimiser = torch.optim.Adam(aligner.module.parameters(), lr=float(lr))
    clock = time.perf_counter()
    history: list[dict[str, float]] = []
    history_start = _snapshot(aligner)
    best = (val_spec_diff(), 0, history_start)
    history.append({"step": 0, "train_loss": None, "val_spec_diff": best[0]})
    since_best, stopped_early, step = 0, False, 0
    train_t = torch.from_numpy(fit_rows).to(torch_device)
    for step in range(1, int(steps) + 1):
        pick = torch.from_numpy(rng.choice(len(fit_rows), m, replace=False)).to(torch_device)
        index = train_t.index_select(0, pick)
        x = b_std.index_select(0, index)
        out = aligner.forward_std(x)
        spec_loss = loss_on(index, out, spec_fn(n_top))
        keep = (out - x).square().mean()  # x has unit mean square per coordinate
        loss = spec_loss + keep_weight * keep
        if not torch.isfinite(loss):  # before the step: the weights stay as they were
            raise ValueError(
                f"training diverged at step {step} (loss {float(loss.detach())}); lower lr or "
                "raise batch_size"
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % eval_every == 0 or step == steps:
            current = val_spec_diff()
            history.append({"step": step, "train_loss": spec_loss.item(), "val_spec_diff": current})
            if current < best[0] * (1 - 1e-4):
                best, since_best = (current, step, _snapshot(aligner)), 0
            else:
                since_best += 1
                if since_best >= patience:
                    stopped_early = True
                    report("train", steps, steps)
                    break
        report("train", step, steps)
    aligner.module.load_state_dict(best[2])
    timings["train"] = time.perf_counter() - clock

    def measure(aligned):
        return _metrics(
            emb_a, emb_b, aligned, train_rows, val_rows, kernel=kernel, sigma_scale=sigma_scale,
            centre=centre, labels=labels, knn_k=knn_k, seed=seed, device=device, report=report,
        )  # fmt: skip

    clock = time.perf_counter()
    report("aligned embedding", 0, 1)
    # the identity (step 0 kept) maps B to itself exactly, without float32's rounding
    best_step = best[1]
    aligned = aligner.apply(emb_b, dtype=emb_b.dtype) if best_step else np.array(emb_b)
    timings["apply"] = time.perf_counter() - clock
    clock = time.perf_counter()
    metrics, before_val, after_val, closed = measure(aligned)
    notes = []
    if best_step and metrics["val"]["after"]["spec_diff"] > metrics["val"]["before"]["spec_diff"]:
        # never worse than none: the engine's validation SPEC-diff is the judge
        notes.append(
            f"step {best_step} left a validation SPEC-diff of "
            f"{metrics['val']['after']['spec_diff']:.4g}, above B's own "
            f"{metrics['val']['before']['spec_diff']:.4g}: the adapter kept is the identity"
        )
        aligner.module.load_state_dict(history_start)
        best_step, aligned = 0, np.array(emb_b)
        metrics, before_val, after_val, closed = measure(aligned)
    elif not best_step:
        notes.append("no step beat the identity on the validation rows: B is kept unchanged")
    timings["metrics"] = time.perf_counter() - clock
    params = {
        "kernel": kernel,
        "adapter": adapter,
        "solver": solver,
        "val_fraction": float(val_fraction),
        "n_rows": n,
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "dim_a": emb_a.shape[1],
        "dim_b": emb_b.shape[1],
        "steps": int(steps),
        "steps_run": step,
        "batch_size": m,
        "lr": float(lr),
        "keep_weight": float(keep_weight),
        "n_top": int(n_top),
        "target": target,
        "sigma_scale": float(sigma_scale),
        "centre": bool(centre),
        "eval_every": int(eval_every),
        "patience": int(patience),
        "val_loss_rows": len(val_loss_rows),
        "far_rows": far_rows,
        "metric_rows": METRIC_ROWS,
        "knn_k": int(knn_k),
        "seed": seed,
        "device": str(torch_device),
    }
    return AlignResult(
        aligned=aligned,
        aligner=aligner,
        train_rows=train_rows,
        val_rows=val_rows,
        metrics=metrics,
        closed=closed,
        history=history,
        best_step=best_step,
        stopped_early=stopped_early,
        params=params,
        timings=timings,
        before_val=before_val,
        after_val=after_val,
        notes=notes,
    )


def _centre_and_spread(
    emb: np.ndarray, rows: np.ndarray, name: str = "B"
) -> tuple[np.ndarray, float]:
    """Column means and the root-mean-square deviation per coordinate of `rows`, leaving
    out rows further than FAR_SPREADS typical deviations from the column medians (typical: the
    median row's RMS deviation; the overall RMS when more than half the rows sit on the
    medians). With every row counted, one row at 1e30 dragged the centre to ~1e30 / n and the
    spread to ~1e30 / sqrt(n), and every other row became the same float32 after standardising;
    data without such rows get the plain mean and RMS as before. The spread is at least
    2 x B's largest |value| (all rows) / MAX_STANDARDISED, so every standardised value of every
    row fits float32. Scale-safe: the rows are divided by their largest |value| first
    (float64)."""
    from spec_core.engine.kernels import column_centre

    x = np.asarray(emb[rows], dtype=np.float64)
    peak = float(np.abs(x).max())
    if not peak > 0:
        raise ValueError(f"{name} is zero on every train row: nothing to align")
    x = x / peak
    deviation = np.sqrt(((x - column_centre(x)) ** 2).mean(axis=1))
    typical = float(np.median(deviation)) or float(np.sqrt((deviation**2).mean()))
    x = x[deviation <= FAR_SPREADS * typical]
    centre = x.mean(axis=0)
    spread = float(np.sqrt(((x - centre) ** 2).mean()))
    if not spread > 0:
        raise ValueError(f"{name} does not vary across the train rows: nothing to align")
    step = max(1, 2**24 // emb.shape[1])  # in blocks: no n x d temporary
    peak_all = max(float(np.abs(emb[i : i + step]).max()) for i in range(0, emb.shape[0], step))
    return centre * peak, max(spread * peak, peak_all / (MAX_STANDARDISED / 2))


def _near_rows(standardised: torch.Tensor, rows: np.ndarray) -> np.ndarray:
    """The `rows` of a standardised embedding within FAR_SPREADS spreads of its centre
    (root-mean-square deviation per coordinate)."""
    import torch

    near = []
    for start in range(0, len(rows), 65536):  # in blocks: no float64 copy of every row
        block = torch.from_numpy(rows[start : start + 65536]).to(standardised.device)
        deviation = standardised.index_select(0, block).double().square().mean(dim=1).sqrt()
        near.append((deviation <= FAR_SPREADS).cpu().numpy())
    return rows[np.concatenate(near)]


def _standardised(
    emb: np.ndarray, centre: np.ndarray, scale: float, block_rows: int = 65536
) -> np.ndarray:
    """(emb - centre) / scale as float32, computed in float64 by blocks (Aligner.standardise)."""
    out = np.empty(emb.shape, dtype=np.float32)
    for start in range(0, emb.shape[0], block_rows):
        block = np.asarray(emb[start : start + block_rows], dtype=np.float64)
        out[start : start + block_rows] = ((block - centre) / scale).astype(np.float32)
    return out


def _check_align_memory(n: int, dim_a: int, dim_b: int, adapter: str, batch: int) -> None:
    """Refuse up front what this machine cannot hold: the float32 copies of A and B (scaled,
    standardised, aligned), the adapter with its gradient, two Adam moments and a snapshot, and
    the batch's m x m matrices."""
    from spec_core.limits import check_budget

    params = dim_b * dim_b + dim_b
    if adapter == "mlp":
        hidden = min(MLP_HIDDEN, 2 * dim_b)
        params = 2 * dim_b * hidden + hidden + dim_b
    m = min(batch, n)
    need = 4 * n * (dim_a + 3 * dim_b) + 4 * 5 * params + 8 * 12 * m * m
    need += 8 * METRIC_ROWS * (dim_a + 3 * dim_b) + 8 * 4 * METRIC_ROWS**2  # the metrics
    check_budget(
        need,
        f"aligning {n:,} rows of {dim_a:,} and {dim_b:,} columns with a {adapter} adapter",
        "use fewer rows or columns (e.g. PCA), or the linear adapter",
    )


def _scaled_copy(emb: np.ndarray, kernel: str, rows: np.ndarray | None = None) -> np.ndarray:
    """A float copy of emb (or of its `rows`) in a safe range, for kernels and neighbours that
    ignore scale. Gaussian (and Euclidean neighbours): divided by the largest |value|, centred
    by column medians of a sample, divided again (translation and scale leave distances' order
    and the median-rule kernel unchanged). Cosine: each row divided by its largest |value|
    (directions unchanged). float32."""
    x = np.array(emb if rows is None else emb[rows], dtype=np.float64)
    if kernel == "cosine":
        peak = np.abs(x).max(axis=1, keepdims=True)
        return (x / np.where(peak > 0, peak, 1.0)).astype(np.float32)
    from spec_core.engine.kernels import column_centre

    for _ in range(2):
        peak = np.abs(x).max()
        x /= peak if peak > 0 else 1.0
        x -= column_centre(x)
    peak = np.abs(x).max()
    return (x / (peak if peak > 0 else 1.0)).astype(np.float32)


def _snapshot(aligner: Aligner) -> dict:
    return {k: t.detach().clone() for k, t in aligner.module.state_dict().items()}


def _metric_rows(rows: np.ndarray, seed: int) -> np.ndarray:
    if len(rows) <= METRIC_ROWS:
        return rows
    rng = np.random.default_rng(seed + 17)
    return np.sort(rng.choice(rows, METRIC_ROWS, replace=False))


def _metrics(
    emb_a,
    emb_b,
    aligned,
    train_rows,
    val_rows,
    *,
    kernel,
    sigma_scale,
    centre,
    labels,
    knn_k,
    seed,
    device,
    report,
):
    from spec_core.engine.compare import compare
    from spec_core.engine.metrics import knn_overlap, linear_cka

    metric = "cosine" if kernel == "cosine" else "euclidean"
    out: dict[str, dict[str, dict[str, Any]]] = {}
    results = {}
    ref = _metric_rows(train_rows, seed)  # the reference rows of the label kNN vote

    def safe(emb, rows):  # neighbours and CKA ignore translation and scale: a safe range
        return _scaled_copy(emb, kernel, rows).astype(np.float64)

    for split, rows in (("train", train_rows), ("val", val_rows)):
        rows = _metric_rows(rows, seed)
        a, b0 = safe(emb_a, rows), safe(emb_b, rows)
        k = min(knn_k, len(rows) - 1)
        out[split] = {}
        for stage, emb in (("before", emb_b), ("after", aligned)):
            report(f"metrics ({split}, {stage})", 0, 1)
            b = b0 if stage == "before" else safe(emb, rows)
            result = compare(
                emb_a[rows],
                emb[rows],
                kernel=kernel,
                sigma_scale=sigma_scale,
                centre=centre,
                method="exact" if len(rows) <= 6000 else "auto",
                n_modes=min(3, len(rows) // 2),
                top_k=min(20, len(rows)),
                stability=False,
                context=False,
                seed=seed,
                device=device,
            )
            results[(split, stage)] = result
            entry = {
                "spec_diff": result.spec_diff,
                "spectrum": result.eigenvalues.tolist(),
                "noise_floor": result.noise_floor,
                "sigma_a": result.params.sigma_a,
                "sigma_b": result.params.sigma_b,
                "knn_overlap_a": float(knn_overlap(a, b, k=k, metric=metric).mean()),
                "knn_overlap_b": float(knn_overlap(b0, b, k=k, metric=metric).mean()),
                "cka_a": linear_cka(a, b),
                "cka_b": linear_cka(b0, b),
                "n_rows": len(rows),
            }
            if labels is not None and split == "val":
                for key, source in (("label_knn_accuracy", emb), ("label_knn_accuracy_a", emb_a)):
                    both = safe(source, np.concatenate([ref, rows]))  # one frame for both sets
                    entry[key] = label_knn_accuracy(
                        both[: len(ref)], labels[ref], both[len(ref) :], labels[rows],
                        k=knn_k, metric=metric,
                    )  # fmt: skip
            out[split][stage] = entry
    before, after = results[("val", "before")], results[("val", "after")]
    closed = closed_modes(before, after, emb_a, aligned, _metric_rows(val_rows, seed), kernel)
    return out, before, after, closed


def closed_modes(before, after, emb_a, aligned, rows, kernel) -> list[dict[str, Any]]:
    """The modes of `before` (on `rows`), each with its eigenvalue before and the Rayleigh
    quotient u^T Lambda_after u of the same unit score vector u after: how much of that
    difference is left (0: closed). Lambda_after uses `after`'s bandwidths."""
    import torch

    from spec_core.engine.rows import KernelRows

    p = after.params
    cpu, f64 = torch.device("cpu"), torch.float64
    # the rows in their kernel's units (scale-safe): the Gaussian kernel is exp(-d^2 / 2) there
    a = KernelRows.prepare(np.asarray(emb_a[rows]), kernel, p.sigma_a, cpu, f64).all()
    b = KernelRows.prepare(np.asarray(aligned[rows]), kernel, p.sigma_b, cpu, f64).all()
    unit = None if kernel == "cosine" else 1.0
    with torch.no_grad():
        lam = batch_lambda(a, b, kernel=kernel, sigma_a=unit, sigma_b=unit, centre=p.centre)
    out = []
    for mode in before.modes:
        u = torch.from_numpy(np.asarray(mode.sample_scores, dtype=np.float64))
        u = u / u.norm()
        out.append(
            {
                "label": mode.label,
                "direction": mode.direction,
                "before": float(mode.eigenvalue),
                "after": float(u @ lam @ u),
                "weak_before": mode.weak,
                "members": [int(rows[i]) for i in mode.members.tolist()],
            }
        )
    return out


def label_knn_accuracy(ref, ref_labels, query, query_labels, *, k: int = 10, metric="euclidean"):
    """Accuracy of a k-nearest-neighbour vote (ties: the nearest of the tied labels' rows) of the
    reference rows' labels, on the query rows."""
    import torch

    from spec_core.engine.kernels import normalize_rows_t

    r = torch.from_numpy(np.asarray(ref, dtype=np.float64))
    q = torch.from_numpy(np.asarray(query, dtype=np.float64))
    if metric == "cosine":
        r, q = normalize_rows_t(r), normalize_rows_t(q)
        dist = -(q @ r.T)
    else:
        dist = torch.cdist(q, r)
    k = min(k, r.shape[0])
    nearest = dist.topk(k, dim=1, largest=False).indices.numpy()
    ref_labels = np.asarray(ref_labels)
    correct = 0
    for i, row in enumerate(nearest):
        votes: dict[str, int] = {}
        for j in row:  # nearest first: max() keeps the first label with the top count
            votes[ref_labels[j]] = votes.get(ref_labels[j], 0) + 1
        guess = max(votes, key=votes.get)
        correct += guess == query_labels[i]
    return correct / len(nearest)
