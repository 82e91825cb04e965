"""AlignResult.val_metric_rows: the validation rows its before/after results are measured on
(the Align page draws them and maps modes back to dataset rows through it)."""

from __future__ import annotations

import numpy as np

from spec_core.align import measure
from spec_core.align import train as align_module


def pair(n: int = 80):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(n, 6))
    b = a[:, :4] + 0.3 * rng.normal(size=(n, 4))
    return a, b


def test_val_metric_rows_are_the_rows_of_the_validation_results():
    a, b = pair()
    result = align_module.align(a, b, steps=2, val_fraction=0.25, seed=1, device="cpu")
    rows = result.val_metric_rows
    assert np.array_equal(rows, result.val_rows)  # few rows: all of them
    assert result.before_val.params.n_rows == len(rows) == result.after_val.params.n_rows
    for entry, mode in zip(result.closed, result.before_val.modes, strict=True):
        assert entry["members"] == rows[mode.members].tolist()


def test_val_metric_rows_sample_beyond_the_metric_cap(monkeypatch):
    monkeypatch.setattr(measure, "METRIC_ROWS", 15)
    a, b = pair()
    result = align_module.align(a, b, steps=2, val_fraction=0.25, seed=1, device="cpu")
    rows = result.val_metric_rows
    assert len(rows) == 15 == result.before_val.params.n_rows
    assert np.all(np.diff(rows) > 0) and set(rows) <= set(result.val_rows)
    for entry, mode in zip(result.closed, result.before_val.modes, strict=True):
        assert entry["members"] == rows[mode.members].tolist()
