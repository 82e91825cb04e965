"""SPEC-align's before/after measurements: how B (before) and g(B) (after) compare with A on the
train and on the validation rows, by the engine's own measures.

Per split and stage: the engine's SPEC-diff and spectrum (spec_core.compare on those rows), kNN
overlap and linear CKA with A and with B, and with labels the label kNN accuracy on the
validation rows (voted by the train rows). `closed_modes` follows the strongest modes before
alignment into the aligned matrix: how much of each difference is left. Each split is measured
on at most METRIC_ROWS rows (a seeded sample beyond), so the cost stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spec_core.align.loss import batch_lambda
from spec_core.align.splits import sample_rows
from spec_core.align.verdict import Verdict, linear_reach_fit, make_verdict

#: Before/after metrics use at most this many rows per split (a seeded sample beyond).
METRIC_ROWS = 4000


def metric_rows(rows: np.ndarray, seed: int) -> np.ndarray:
    """The rows of a split that its metrics are measured on: all up to METRIC_ROWS, a seeded
    sample beyond."""
    return sample_rows(rows, seed, METRIC_ROWS)


def scaled_copy(emb: np.ndarray, kernel: str, rows: np.ndarray | None = None) -> np.ndarray:
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


@dataclass(frozen=True)
class BeforeAfter:
    """What measure_before_after finds. `metrics[split][stage]` (split "train" / "val", stage
    "before" / "after"): see AlignResult. `before_val` and `after_val`: the engine's SpecResult
    on the validation metric rows; `closed`: closed_modes of those; `verdict`: what they mean
    (verdict.make_verdict, with the best linear map of B measured on the same rows)."""

    metrics: dict[str, dict[str, dict[str, Any]]]
    before_val: Any
    after_val: Any
    closed: list[dict[str, Any]]
    verdict: Verdict


def measure_before_after(
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
    fit_rows=None,
    penalty: float | None = None,
) -> BeforeAfter:
    """B (before) and `aligned` (after) against A on the train and the validation rows (each
    up to METRIC_ROWS); labels (or None) are voted on the validation rows by the train rows.
    The best linear map of B that the verdict measures is fitted on `fit_rows` (the train rows
    near the rest; None: all train rows), with the ridge `penalty` (relative; None: the lightest,
    start.RIDGE). The inputs are only read."""
    metric = "cosine" if kernel == "cosine" else "euclidean"
    out: dict[str, dict[str, dict[str, Any]]] = {}
    results = {}
    ref = metric_rows(train_rows, seed)  # the reference rows of the label kNN vote

    def safe(emb, rows):  # neighbours and CKA ignore translation and scale: a safe range
        return scaled_copy(emb, kernel, rows).astype(np.float64)

    for split, rows in (("train", train_rows), ("val", val_rows)):
        rows = metric_rows(rows, seed)
        a, b0 = safe(emb_a, rows), safe(emb_b, rows)
        k = min(knn_k, len(rows) - 1)
        out[split] = {}
        for stage, emb in (("before", emb_b), ("after", aligned)):
            report(f"metrics ({split}, {stage})", 0, 1)
            b = b0 if stage == "before" else safe(emb, rows)
            result = _engine_result(
                emb_a[rows], emb[rows], kernel=kernel, sigma_scale=sigma_scale, centre=centre,
                seed=seed, device=device,
            )  # fmt: skip
            results[(split, stage)] = result
            entry = {
                "spec_diff": result.spec_diff,
                "spectrum": result.eigenvalues.tolist(),
                "noise_floor": result.noise_floor,
                "sigma_a": result.params.sigma_a,
                "sigma_b": result.params.sigma_b,
                **_neighbour_metrics(a, b0, b, k=k, metric=metric),
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
    rows = metric_rows(val_rows, seed)
    closed = closed_modes(before, after, emb_a[rows], aligned[rows], rows, kernel)
    report("metrics (the best linear map)", 0, 1)
    fitted = metric_rows(train_rows if fit_rows is None else fit_rows, seed)
    ridge = {} if penalty is None else {"penalty": penalty}
    linear, dof = linear_reach_fit(emb_a, emb_b, fitted, rows, kernel=kernel, **ridge)
    linear_result = _engine_result(
        emb_a[rows], linear, kernel=kernel, sigma_scale=sigma_scale, centre=centre, seed=seed,
        device=device,
    )  # fmt: skip
    linear_closed = closed_modes(before, linear_result, emb_a[rows], linear, rows, kernel)
    verdict = make_verdict(
        before.spec_diff, after.spec_diff, linear_result.spec_diff, closed, linear_closed,
        fit_rows=len(fitted), dof=dof,
    )  # fmt: skip
    return BeforeAfter(out, before, after, closed, verdict)


def _engine_result(a_rows, b_rows, *, kernel, sigma_scale, centre, seed, device):
    """The engine's SpecResult on these rows (exact up to 6000 rows), with the strongest
    three modes and without the stability and context measures."""
    from spec_core.engine.compare import compare

    n = len(a_rows)
    return compare(
        a_rows,
        b_rows,
        kernel=kernel,
        sigma_scale=sigma_scale,
        centre=centre,
        method="exact" if n <= 6000 else "auto",
        n_modes=min(3, n // 2),
        top_k=min(20, n),
        stability=False,
        context=False,
        seed=seed,
        device=device,
    )


def _neighbour_metrics(a, b0, b, *, k: int, metric: str) -> dict[str, float]:
    """kNN overlap and linear CKA of b with A (`a`) and with B itself (`b0`), on the same rows
    in a safe range."""
    from spec_core.engine.metrics import knn_overlap, linear_cka

    return {
        "knn_overlap_a": float(knn_overlap(a, b, k=k, metric=metric).mean()),
        "knn_overlap_b": float(knn_overlap(b0, b, k=k, metric=metric).mean()),
        "cka_a": linear_cka(a, b),
        "cka_b": linear_cka(b0, b),
    }


def closed_modes(before, after, a_rows, b_rows, rows, kernel) -> list[dict[str, Any]]:
    """The modes of `before` (on `rows`), each with its eigenvalue before and the Rayleigh
    quotient u^T Lambda_after u of the same unit score vector u after: how much of that
    difference is left (0: closed). Lambda_after is of A's rows `a_rows` and the changed B's
    `b_rows` (the same rows, in order), with `after`'s bandwidths."""
    import torch

    from spec_core.engine.rows import KernelRows

    p = after.params
    cpu, f64 = torch.device("cpu"), torch.float64
    # the rows in their kernel's units (scale-safe): the Gaussian kernel is exp(-d^2 / 2) there
    a = KernelRows.prepare(np.asarray(a_rows), kernel, p.sigma_a, cpu, f64).all()
    b = KernelRows.prepare(np.asarray(b_rows), kernel, p.sigma_b, cpu, f64).all()
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
                # a difference only at the level of noise (evidence.MIN_LIFT_GAP)
                "barely_before": any("barely tighter" in r for r in mode.weak_reasons),
                "above_noise_floor": bool(mode.above_noise_floor),
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


def held_out_verdict(
    a_rows: np.ndarray,
    before_rows: np.ndarray,
    after_rows: np.ndarray,
    n_held_out: int,
    *,
    centre: bool = True,
    seed: int = 0,
    device: str = "cpu",
) -> Verdict:
    """The verdict (verdict.make_verdict) of a change of B made elsewhere, e.g. `align-model`'s
    fine-tune, with the cosine kernel: rows [0, n_held_out) of A (`a_rows`), of B before and of
    B after are held-out rows (the verdict's), the rest train rows (where the best linear map
    of B onto A is fitted, its ridge penalty chosen as align chooses its start's:
    start.pick_penalty on the held-out SPEC-diff). The inputs are only read."""
    import torch

    from spec_core.align.loss import batch_spec_diff
    from spec_core.align.start import PENALTIES, pick_penalty

    kernel = "cosine"
    held = np.arange(n_held_out)
    fit = np.arange(n_held_out, len(a_rows))
    a_held = np.asarray(a_rows[held], dtype=np.float64)

    def engine(b_held):
        return _engine_result(
            a_held, b_held, kernel=kernel, sigma_scale=1.0, centre=centre, seed=seed,
            device=device,
        )  # fmt: skip

    def spec_diff(b_held) -> float:
        with torch.no_grad():
            a_t, b_t = (torch.from_numpy(np.asarray(x, dtype=np.float64)) for x in (a_held, b_held))
            return float(batch_spec_diff(a_t, b_t, kernel=kernel, centre=centre))

    maps = {
        penalty: linear_reach_fit(a_rows, before_rows, fit, held, kernel=kernel, penalty=penalty)
        for penalty in PENALTIES
    }
    values = {penalty: spec_diff(linear) for penalty, (linear, _) in maps.items()}
    linear, dof = maps[pick_penalty(values, spec_diff(before_rows[held]))]
    before, after = engine(before_rows[held]), engine(after_rows[held])
    linear_result = engine(linear)
    closed = closed_modes(before, after, a_held, after_rows[held], held, kernel)
    linear_closed = closed_modes(before, linear_result, a_held, linear, held, kernel)
    return make_verdict(
        before.spec_diff, after.spec_diff, linear_result.spec_diff, closed, linear_closed,
        fit_rows=len(fit), dof=dof,
    )  # fmt: skip
