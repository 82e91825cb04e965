"""SPEC-align: train an adapter g on top of a frozen embedding B so that g(B) captures the groups
that A captures, i.e. minimise SPEC-diff(A, g(B)) over mini-batches of rows.

`align` runs in three steps: prepare (prepare.py: the seeded split, A and B standardised, the
rows trained on), train (here: Adam on the batch loss, early stopping on validation rows) and
measure (measure.py: before/after with the engine's measures). The batch loss is the largest
|eigenvalue| of the batch's difference matrix (loss.py: `batch_spec_diff`, or `PowerSpecDiff`
for solver="power"); the adapters are in adapter.py.

What B already had is kept by a distillation term: keep_weight x the mean squared change
||g(x) - x||^2 in units of B's own spread (x standardised to unit mean square per coordinate),
so keep_weight = 0.1 means a change as large as B's whole spread costs 0.1. The change is
measured from B itself, also when the linear adapter starts from its closed-form start
(KEEP_FROM, measured against keeping the start instead: see the README): keep_weight bounds
how far the training steps move B from B, not the start, which is a closed-form jump judged on
the validation rows alone and kept only when it closes at least START_GAIN of B's own
validation SPEC-diff. The adapter is made as the identity (g(B) = B), so "before" is exactly B.

Rows are split into train and validation rows (seeded); the adapter is trained on train rows
only, and the validation SPEC-diff, measured every `eval_every` steps on validation rows it
never trained on, chooses the step kept (early stopping after `patience` evaluations without
improvement). Inputs are only read, never written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from spec_core.align.adapter import Aligner
from spec_core.align.loss import PowerSpecDiff, batch_bandwidth, batch_spec_diff
from spec_core.align.measure import METRIC_ROWS, BeforeAfter, measure_before_after, metric_rows
from spec_core.align.prepare import PreparedData, prepare
from spec_core.align.settings import (
    DEFAULT_BATCH,
    DEFAULT_EVAL_EVERY,
    DEFAULT_KEEP_WEIGHT,
    DEFAULT_LR,
    DEFAULT_PATIENCE,
    DEFAULT_START,
    DEFAULT_STEPS,
    DEFAULT_VAL_FRACTION,
    AlignSettings,
)
from spec_core.align.verdict import Verdict
from spec_core.data import arrays
from spec_core.limits import CAPS

if TYPE_CHECKING:
    import torch

Progress = Callable[[str, int, int], None]
#: The start is kept only when it closes at least this share of B's own validation SPEC-diff:
#: a smaller gain is within what fitting the train rows' noise gives (tuning set).
START_GAIN = 0.05
#: What the keep term measures the change from once the start is kept: "b" (B itself) or
#: "start" (the start's map). Measured with benchmarks/bench_align_planted.py (README).
KEEP_FROM = "b"


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
    #: What B was changed by: "identity" (B itself, unchanged), "start" (the least-squares start;
    #: no step beat it) or "step" (the training step best_step).
    kept: str = "step"
    #: Which case this is, in words (verdict.Verdict): the share of the difference closed on
    #: validation rows, or the groups of A that B does not hold the information for.
    verdict: Verdict | None = None

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
        return metric_rows(self.val_rows, self.params["seed"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (every number finite)."""
        return {
            "format": "spec-explorer-align/1",
            "spec_diff": self.spec_diff,
            "val_rows": self.val_rows.tolist(),
            "metrics": self.metrics,
            "closed_modes": self.closed,
            "kept": self.kept,
            "verdict": None if self.verdict is None else self.verdict.to_dict(),
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
        lines = [] if self.verdict is None else [self.verdict.text]
        lines += [
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
    start: str = DEFAULT_START,
) -> AlignResult:
    """Train an adapter g on B (frozen) so that SPEC-diff(A, g(B)) is small on rows it never saw.

    Row i of A and of B must be the same sample. kernel / sigma_scale / centre are the engine's
    (the Gaussian bandwidths follow its median rule: A's fixed from A's train rows, g(B)'s from
    each batch, as compare() would choose them for g(B)). adapter "linear" or "mlp" (residual).
    n_top: the loss is the sum of the n_top largest |eigenvalues| of each batch (1: SPEC-diff).
    target "both" (default): minimise SPEC-diff, closing differences in both directions (g(B)
    also loses groups only B had); "a-not-b": only the positive eigenvalues, the groups A
    captures and B misses (B keeps its own groups; early stopping then watches the largest
    positive eigenvalue on validation rows). start "least-squares" (default): the linear
    adapter starts at the least-squares map of B onto A (spec_core.align.start), kept when it
    beats the identity on the validation rows; "identity": it starts at the identity.
    The inputs are only read. Returns an AlignResult (see there).
    """
    settings = AlignSettings(
        kernel=kernel, adapter=adapter, val_fraction=val_fraction, seed=seed, steps=steps,
        batch_size=batch_size, lr=lr, keep_weight=keep_weight, n_top=n_top, target=target,
        solver=solver, sigma_scale=sigma_scale, centre=centre, eval_every=eval_every,
        patience=patience, knn_k=knn_k, device=device, start=start,
    ).check()  # fmt: skip
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable progress(stage, done, total)")
    emb_a, emb_b, labels = _checked_inputs(emb_a, emb_b, kernel, labels)
    report = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}

    clock = time.perf_counter()
    data = prepare(emb_a, emb_b, settings)
    aligner = Aligner(adapter, emb_b.shape[1], data.centre_b, data.spread_b, seed=settings.seed)
    aligner.to(data.device)
    timings["prepare"] = time.perf_counter() - clock

    clock = time.perf_counter()
    training = _train(aligner, _BatchObjective(data, settings), settings, report, emb_a)
    timings["train"] = time.perf_counter() - clock

    kept = _keep_and_measure(emb_a, emb_b, labels, aligner, training, data, settings, report,
                             timings)  # fmt: skip
    params = _run_params(settings, data, emb_a, emb_b, training.steps_run)
    params["start_penalty"] = training.start.penalty
    return AlignResult(
        aligned=kept.aligned,
        aligner=aligner,
        train_rows=data.train_rows,
        val_rows=data.val_rows,
        metrics=kept.measured.metrics,
        closed=kept.measured.closed,
        history=training.history,
        best_step=kept.best_step,
        stopped_early=training.stopped_early,
        params=params,
        timings=timings,
        before_val=kept.measured.before_val,
        after_val=kept.measured.after_val,
        notes=kept.notes,
        verdict=kept.measured.verdict,
        kept=kept.kept,
    )


def _checked_inputs(
    emb_a, emb_b, kernel: str, labels: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A and B checked as the engine checks them (and, for the cosine kernel, without zero
    rows), and the labels as strings, one per row."""
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
    return emb_a, emb_b, labels


class _BatchObjective:
    """SPEC-diff(A, g(B)) on rows of the prepared data: a training batch's loss (with the
    solver, n_top and target asked for) and the validation SPEC-diff that early stopping
    watches (always exact)."""

    def __init__(self, data: PreparedData, settings: AlignSettings):
        import torch

        self.data, self.settings = data, settings
        self.power = PowerSpecDiff(centre=settings.centre) if settings.solver == "power" else None
        self.val_index = torch.from_numpy(data.val_loss_rows).to(data.device)

    def _lambda_args(self) -> dict[str, Any]:
        s = self.settings
        return {"kernel": s.kernel, "sigma_a": self.data.sigma_a, "centre": s.centre}

    def _on_rows(self, index: torch.Tensor, outputs: torch.Tensor, spec_diff) -> torch.Tensor:
        # g(B) = outputs x scale + centre; both kernels here ignore that overall scale (the
        # Gaussian bandwidth is measured on the same rows), and the Gaussian the shift too.
        a_rows = self.data.a.index_select(0, index)
        if self.settings.kernel == "gaussian":
            sigma_b = self.settings.sigma_scale * batch_bandwidth(outputs)
            return spec_diff(a_rows, outputs, sigma_b=sigma_b)
        return spec_diff(a_rows, outputs + self.data.offset)

    def batch_loss(self, index: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """The loss of the batch of rows `index`, g(B) there being `outputs` (standardised)."""
        if self.power is not None:
            return self._on_rows(index, outputs, lambda a, b, **extra: self.power(a, b))
        n_top, side = self.settings.n_top, self.settings.target

        def spec_diff(a, b, **extra):
            return batch_spec_diff(a, b, n_top=n_top, side=side, **self._lambda_args(), **extra)

        return self._on_rows(index, outputs, spec_diff)

    def validation_spec_diff(self, aligner: Aligner) -> float:
        """SPEC-diff(A, g(B)) on the validation loss rows, exact (eigvalsh) whatever the solver:
        the power iteration, warm-started from the training batches' vector, can miss the
        validation rows' largest |eigenvalue| and keep a step that is worse than none (and the
        training's warm start stays its own)."""
        import torch

        def exact(a, b, **extra):
            return batch_spec_diff(a, b, side=self.settings.target, **self._lambda_args(), **extra)

        with torch.no_grad():
            out = aligner.forward_std(self.data.b_std.index_select(0, self.val_index))
            return float(self._on_rows(self.val_index, out, exact))

    def validation_spec_diff_of(self, weights: dict[str, np.ndarray]) -> float:
        """validation_spec_diff of the linear map out = x W^T + b with these weights (a linear
        adapter's weight and bias, float64), whatever the adapter trained."""
        import torch

        def exact(a, b, **extra):
            return batch_spec_diff(a, b, side=self.settings.target, **self._lambda_args(), **extra)

        x = self.data.b_std.index_select(0, self.val_index)
        weight = torch.from_numpy(weights["weight"]).to(x)
        bias = torch.from_numpy(weights["bias"]).to(x)
        with torch.no_grad():
            return float(self._on_rows(self.val_index, x @ weight.T + bias, exact))


@dataclass(frozen=True)
class _Training:
    """What the training loop leaves besides the adapter (at its best step's weights)."""

    history: list[dict[str, float]]  # step, train_loss, val_spec_diff at each evaluation
    best_step: int  # 0: no step beat the identity
    stopped_early: bool
    steps_run: int
    identity: dict[str, Any]  # the adapter's weights before any start or step
    changed: bool  # the weights kept are not the identity's (a step's, or the start's)
    start: _Start  # the ridge least-squares map (used or not): the verdict's penalty


def _train(
    aligner: Aligner,
    objective: _BatchObjective,
    settings: AlignSettings,
    report: Progress,
    emb_a: np.ndarray,
) -> _Training:
    """Adam on batches of the fit rows (the batch loss + keep_weight x the mean squared change);
    every eval_every steps (and at the last) the validation SPEC-diff, and a stop after
    `patience` evaluations that did not beat the best by 1e-4 (relative). The linear adapter
    starts at the least-squares map of B onto A when that beats the identity on the validation
    rows (start="least-squares", _least_squares_start). The adapter is left at the best
    evaluation's weights (the start's, the identity when nothing beat it)."""
    import torch

    data, steps = objective.data, settings.steps
    identity = aligner.snapshot()
    best_value, best_step, best_weights = objective.validation_spec_diff(aligner), 0, identity
    history: list[dict[str, Any]] = [{"step": 0, "train_loss": None, "val_spec_diff": best_value}]
    start, keep_from = _choose_start(objective, settings, emb_a, best_value), None
    if settings.start == "least-squares" and settings.adapter == "linear":
        history.append(
            {"step": 0, "train_loss": None, "val_spec_diff": start.value, "start": True,
             "penalty": start.penalty}
        )  # fmt: skip
        if start.value < best_value * (1 - START_GAIN):
            keep_from = start.weights if KEEP_FROM == "start" else None
            _set_linear(aligner, start.weights)
            best_value, best_weights = start.value, aligner.snapshot()
    optimiser = torch.optim.Adam(aligner.module.parameters(), lr=float(settings.lr))
    since_best, stopped_early, step = 0, False, 0
    fit_index = torch.from_numpy(data.fit_rows).to(data.device)
    for step in range(1, int(steps) + 1):
        pick = data.rng.choice(len(data.fit_rows), data.batch, replace=False)
        index = fit_index.index_select(0, torch.from_numpy(pick).to(data.device))
        spec_loss = _adam_step(
            aligner, optimiser, objective, index, settings.keep_weight, step, keep_from
        )
        if step % settings.eval_every == 0 or step == steps:
            current = objective.validation_spec_diff(aligner)
            history.append({"step": step, "train_loss": spec_loss.item(), "val_spec_diff": current})
            if current < best_value * (1 - 1e-4):
                best_value, best_step, best_weights = current, step, aligner.snapshot()
                since_best = 0
            else:
                since_best += 1
                if since_best >= settings.patience:
                    stopped_early = True
                    report("train", steps, steps)
                    break
        report("train", step, steps)
    aligner.restore(best_weights)
    changed = best_weights is not identity
    return _Training(history, best_step, stopped_early, step, identity, changed, start)


def _set_linear(aligner: Aligner, weights: dict[str, np.ndarray]) -> None:
    """The linear adapter's weight and bias set to `weights` (float64 arrays)."""
    import torch

    with torch.no_grad():
        aligner.module.weight.copy_(torch.from_numpy(weights["weight"]))
        aligner.module.bias.copy_(torch.from_numpy(weights["bias"]))


@dataclass(frozen=True)
class _Start:
    """The ridge least-squares map of B onto A with the penalty chosen on the validation rows
    (start.start_candidates): its adapter weights, validation SPEC-diff, relative penalty and
    degrees of freedom (the verdict's best linear map uses the same penalty)."""

    weights: dict[str, np.ndarray]
    value: float
    penalty: float
    dof: float
    values: dict[float, float]  # every penalty's validation SPEC-diff


def _choose_start(objective: _BatchObjective, settings: AlignSettings, emb_a, base: float):
    """Every penalty of start.PENALTIES: the map's validation SPEC-diff (on the validation
    loss rows, exact); start.pick_penalty chooses (from them and `base`, B's own)."""
    from spec_core.align.start import pick_penalty, start_candidates

    data, candidates = objective.data, {}
    for penalty, weights, dof in start_candidates(data, emb_a, settings.kernel, settings.seed):
        candidates[penalty] = (weights, dof, objective.validation_spec_diff_of(weights))
    values = {penalty: value for penalty, (_, _, value) in candidates.items()}
    penalty = pick_penalty(values, base)
    weights, dof, value = candidates[penalty]
    return _Start(weights, value, penalty, dof, values)


def _adam_step(
    aligner, optimiser, objective, index, keep_weight, step: int, keep_from=None
) -> torch.Tensor:
    """One optimiser step on the batch of rows `index`; returns the batch's SPEC loss. A loss
    that is not finite is refused before the step (the weights stay as they were). The keep
    term is measured from B (`keep_from` None) or from the linear map `keep_from` (weights)."""
    import torch

    x = objective.data.b_std.index_select(0, index)
    out = aligner.forward_std(x)
    spec_loss = objective.batch_loss(index, out)
    anchor = x
    if keep_from is not None:
        anchor = x @ torch.from_numpy(keep_from["weight"]).to(x).T + torch.from_numpy(
            keep_from["bias"]
        ).to(x)
    keep = (out - anchor).square().mean()  # x has unit mean square per coordinate
    loss = spec_loss + keep_weight * keep
    if not torch.isfinite(loss):
        raise ValueError(
            f"training diverged at step {step} (loss {float(loss.detach())}); lower lr or "
            "raise batch_size"
        )
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return spec_loss


@dataclass(frozen=True)
class _Kept:
    """The adapter kept after measuring: B aligned, the step kept, its measurements."""

    aligned: np.ndarray
    best_step: int
    measured: BeforeAfter
    notes: list[str]
    kept: str  # "identity", "start" or "step" (AlignResult.kept)


def _keep_and_measure(
    emb_a, emb_b, labels, aligner, training, data, settings, report, timings
) -> _Kept:
    """Apply the best step's adapter to every row of B and measure before and after with the
    engine. Never worse than none: when the engine's validation SPEC-diff of the kept step is
    above B's own, the identity is kept (and a note says so). Records the apply and metrics
    times in `timings`."""
    s = settings

    def measure(aligned) -> BeforeAfter:
        return measure_before_after(
            emb_a, emb_b, aligned, data.train_rows, data.val_rows, kernel=s.kernel,
            sigma_scale=s.sigma_scale, centre=s.centre, labels=labels, knn_k=s.knn_k,
            seed=s.seed, device=s.device, report=report, fit_rows=data.fit_rows,
            penalty=training.start.penalty,
        )  # fmt: skip

    clock = time.perf_counter()
    report("aligned embedding", 0, 1)
    # the identity (step 0 kept) maps B to itself exactly, without float32's rounding
    best_step, changed = training.best_step, training.changed
    aligned = aligner.apply(emb_b, dtype=emb_b.dtype) if changed else np.array(emb_b)
    timings["apply"] = time.perf_counter() - clock
    clock = time.perf_counter()
    measured = measure(aligned)
    notes = []
    before, after = (measured.metrics["val"][stage]["spec_diff"] for stage in ("before", "after"))
    if changed and after > before:
        # never worse than none: the engine's validation SPEC-diff is the judge
        what = f"step {best_step}" if best_step else "the least-squares start"
        notes.append(
            f"{what} left a validation SPEC-diff of {after:.4g}, above B's own "
            f"{before:.4g}: the adapter kept is the identity"
        )
        aligner.restore(training.identity)
        best_step, changed, aligned = 0, False, np.array(emb_b)
        measured = measure(aligned)
    elif not changed:
        notes.append("no step beat the identity on the validation rows: B is kept unchanged")
    elif not best_step:
        notes.append(
            "the least-squares start (the linear map of B closest to A) was the best on the "
            "validation rows: no training step beat it"
        )
    timings["metrics"] = time.perf_counter() - clock
    kept = "step" if best_step else ("start" if changed else "identity")
    return _Kept(aligned, best_step, measured, notes, kept)


def _run_params(
    settings: AlignSettings, data: PreparedData, emb_a, emb_b, steps_run: int
) -> dict[str, Any]:
    """The parameters of the run, as the report states them (JSON-ready)."""
    s = settings
    return {
        "kernel": s.kernel,
        "adapter": s.adapter,
        "solver": s.solver,
        "val_fraction": float(s.val_fraction),
        "n_rows": emb_a.shape[0],
        "n_train": len(data.train_rows),
        "n_val": len(data.val_rows),
        "dim_a": emb_a.shape[1],
        "dim_b": emb_b.shape[1],
        "steps": int(s.steps),
        "steps_run": steps_run,
        "batch_size": data.batch,
        "lr": float(s.lr),
        "keep_weight": float(s.keep_weight),
        "n_top": int(s.n_top),
        "target": s.target,
        "sigma_scale": float(s.sigma_scale),
        "centre": bool(s.centre),
        "eval_every": int(s.eval_every),
        "patience": int(s.patience),
        "start": s.start,
        "val_loss_rows": len(data.val_loss_rows),
        "far_rows": data.far_rows,
        "metric_rows": METRIC_ROWS,
        "knn_k": int(s.knn_k),
        "seed": s.seed,
        "device": str(data.device),
    }
