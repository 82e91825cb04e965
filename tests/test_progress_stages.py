"""A long comparison is never silent: every heavy stage is reported before it starts (issue 22:
`compare` on 20,000 rows printed nothing for its first 38 s)."""

from __future__ import annotations

import numpy as np
import pytest

import spec_core.engine.compare as engine
import spec_core.engine.solve as solve
from spec_core.cli.entry import main


def _pair(n=240, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(4), n // 4)
    a = rng.normal(scale=4, size=(4, 6))[groups] + rng.normal(size=(n, 6))
    return a, rng.normal(size=(n, 5))


def _watch(monkeypatch, events, module, name, marker):
    """Record `marker` in `events` each time module.name (a heavy stage) starts."""
    original = getattr(module, name)

    def watched(*args, **kwargs):
        events.append(marker)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, watched)


@pytest.mark.parametrize("method", ["exact", "nystrom"])
def test_every_heavy_stage_is_reported_before_it_starts(monkeypatch, method):
    events: list = []
    _watch(monkeypatch, events, engine, "sample_distances", "<bandwidth>")
    _watch(monkeypatch, events, engine.KernelRows, "prepare", "<prepare rows>")
    _watch(monkeypatch, events, solve, "_fit_map", "<feature map>")
    _watch(monkeypatch, events, engine, "evidence_for_modes", "<evidence>")
    _watch(monkeypatch, events, engine, "context_metrics", "<context>")
    a, b = _pair()
    engine.compare(a, b, method=method, n_features=64, progress=lambda *stage: events.append(stage))
    assert isinstance(events[0], tuple) and events[0][0] == "checking inputs", events[:3]
    markers = [i for i, event in enumerate(events) if isinstance(event, str)]
    seen = {events[i] for i in markers}
    expected = {"<bandwidth>", "<prepare rows>", "<evidence>", "<context>"}
    assert expected | ({"<feature map>"} if method == "nystrom" else set()) == seen
    for i in markers:  # the stage that runs was announced, and not as finished
        last = next(e for e in reversed(events[:i]) if isinstance(e, tuple))
        assert last[1] < last[2], (events[i], last)
    first_bandwidth = events.index("<bandwidth>")
    assert ("bandwidths", 0, 2) in events[:first_bandwidth]


def test_compare_on_the_command_line_reports_from_the_start(tmp_path, capsys):
    a, b = _pair()
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    status = main(
        [
            "compare",
            str(tmp_path / "a.npy"),
            str(tmp_path / "b.npy"),
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert status == 0
    lines = capsys.readouterr().err.splitlines()
    stages = list(dict.fromkeys(line.split("  ")[0].strip() for line in lines))
    assert stages[:3] == ["checking inputs", "bandwidths", "preparing rows"]
    assert "mode evidence" in stages and "context metrics" in stages
