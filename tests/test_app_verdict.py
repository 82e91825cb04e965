"""The mode card's headline agrees with its evidence line, and a broad group's note: the card
drawn by spec_app.views.mode_heading under streamlit's AppTest, for modes built by hand."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.app


def _card(contrast: dict, baseline: dict, notes: tuple = (), weak: tuple = ()) -> None:
    """Draws one A-not-B card for A = efficientnet-lite0, B = pixels-16 (run by AppTest)."""
    from types import SimpleNamespace

    import numpy as np

    from spec_app import views
    from spec_core.engine.result import Mode

    mode = Mode(
        direction="A",
        rank=0,
        eigenvalue=0.34,
        members=np.arange(6),
        scores=np.full(6, 0.4, dtype=np.float32),
        sample_scores=np.r_[np.full(6, 0.4), np.zeros(14)].astype(np.float32),
        above_noise_floor=True,
        size=6.0,
        contrast=contrast,
        baseline=baseline,
        stability=1.0,
        stability_hits=10,
        weak_reasons=weak,
        **({"notes": notes} if notes else {}),
    )
    comp = SimpleNamespace(
        dataset=type(  # the fields the card reads, and its description's store key
            "FakeDataset",
            (),
            {
                "labels": None,
                "texts": None,
                "kind": "images",
                "fingerprints": {},
                "__len__": lambda self: 100,
            },
        )(),
        names=("efficientnet-lite0", "pixels-16"),
        result=SimpleNamespace(params=SimpleNamespace(n_resamples=10), noise_floor=1e-6),
    )
    views.mode_heading(comp, mode)


def _shown(**kwargs) -> tuple[str, str]:
    at = AppTest.from_function(_card, kwargs=kwargs, default_timeout=60).run()
    assert not at.exception
    from spec_app import safe

    headline = safe.unescape(at.markdown[0].value)
    captions = " | ".join(safe.unescape(c.value) for c in at.caption)
    return headline, captions


def test_headline_says_grouped_only_when_the_evidence_says_tighter():
    """The issue's card: 'grouped by efficientnet-lite0, not by pixels-16' above 'no tighter in
    efficientnet-lite0 (0.34) than in pixels-16 (0.94)'. Now the headline says what the mode
    is instead; a mode tighter in A keeps 'grouped by'."""
    headline, captions = _shown(contrast={"a": 0.34, "b": 0.94}, baseline={"a": 0.2, "b": 0.5})
    assert "no tighter in efficientnet-lite0 (0.34" in captions
    assert "grouped by" not in headline
    assert "not a tighter group** in efficientnet-lite0" in headline
    assert "set apart from the rest more by **efficientnet-lite0** than by pixels-16" in headline

    headline, captions = _shown(contrast={"a": 0.9, "b": 0.3}, baseline={"a": 0.2, "b": 0.5})
    assert "tighter in efficientnet-lite0 (0.90" in captions and "no tighter" not in captions
    assert "grouped by **efficientnet-lite0**, not by pixels-16" in headline

    # tighter in A, but weak (a broad mixture): the headline does not call it a group
    headline, captions = _shown(
        contrast={"a": 0.9, "b": 0.3},
        baseline={"a": 0.2, "b": 0.5},
        weak=("broad: spread over ~66 of 540 rows, mixed",),
    )
    assert "grouped by" not in headline
    assert "tighter in **efficientnet-lite0** than in pixels-16, but weak" in headline


def test_a_broad_group_gets_a_note_not_a_warning():
    at = AppTest.from_function(
        _card,
        kwargs=dict(
            contrast={"a": 0.9, "b": 0.3},
            baseline={"a": 0.2, "b": 0.5},
            notes=("broad: about 200 rows, 25% of the data",),
        ),
        default_timeout=60,
    ).run()
    assert not at.exception and not at.warning
    from spec_app import safe

    assert any(
        safe.unescape(c.value) == "Note: broad: about 200 rows, 25% of the data."
        for c in at.caption
    )
