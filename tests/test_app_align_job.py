"""SPEC-align's training as a job of the server process (issue 20 item 1, the Align part): it
outlives the page run that started it (leaving the page stops the page's wait, not the
training), a later run finds it again and waits on it, the same request is trained once, and
its error reaches the page that waits. The browser test is tests/test_e2e_align_job.py."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

import spec_core.align.train
from spec_app.services import alignment

SETTINGS = {"kernel": "gaussian", "sigma_scale": 1.0, "seed": 0, "device": "cpu"}
CONTROLS = {"direction": "b_to_a", "adapter": "linear", "steps": 10, "val_fraction": 0.2}


class Left(Exception):
    """What streamlit raises in a page's run when the user leaves the page."""


class Bar:
    """A progress bar whose page is left after `updates` updates."""

    def __init__(self, updates: int | None = None) -> None:
        self.seen: list[float] = []
        self.updates = updates

    def progress(self, share: float, text: str = "") -> None:
        self.seen.append(share)
        if self.updates is not None and len(self.seen) >= self.updates:
            raise Left


@pytest.fixture
def blocked(monkeypatch):
    """spec_core's align replaced by one that reports a step, then waits for `release`;
    `calls` counts the trainings."""
    release = threading.Event()
    calls = []

    def align(target, adapted, *, labels, progress, **kwargs):
        calls.append(kwargs)
        progress("train", 1, 10)
        assert release.wait(30)
        if kwargs["seed"] == 13:
            raise ValueError("too few rows: each needs at least 10")
        return SimpleNamespace(trained_on=(target.shape, adapted.shape))

    monkeypatch.setattr(spec_core.align.train, "align", align)
    monkeypatch.setattr(alignment, "load_embedding", lambda key: np.zeros((20, 3)))
    alignment._jobs().clear()
    comp = SimpleNamespace(key_a="ka", key_b="kb", dataset=SimpleNamespace(labels=None))
    yield SimpleNamespace(release=release, calls=calls, comp=comp)
    release.set()


def test_leaving_the_page_does_not_stop_the_training(blocked):
    comp = blocked.comp
    with pytest.raises(Left):  # the page is left while the adapter trains
        alignment.alignment(comp, SETTINGS, CONTROLS, bar=Bar(updates=3), train=True)
    job = alignment.training(comp, SETTINGS, CONTROLS)
    assert job is not None and not job.finished.is_set()  # still training
    for _ in range(300):  # torch's first import may take seconds
        if job.share:
            break
        job.finished.wait(0.1)
    assert job.share == pytest.approx(0.09) and "step 1 of 10" in job.text
    assert alignment.alignment(comp, SETTINGS, CONTROLS) is None  # no result yet

    # back on the page: the same job, waited on (not a second training)
    done = {}
    waiter = threading.Thread(
        target=lambda: done.setdefault(
            "al", alignment.alignment(comp, SETTINGS, CONTROLS, bar=Bar(), train=True)
        )
    )
    waiter.start()
    blocked.release.set()
    waiter.join(30)
    assert len(blocked.calls) == 1
    al = done["al"]
    assert al.result.trained_on == ((20, 3), (20, 3)) and al.target_side == "A"
    assert alignment.training(comp, SETTINGS, CONTROLS) is None  # the job has ended
    assert alignment.alignment(comp, SETTINGS, CONTROLS) is al  # kept in the store


def test_the_same_request_is_trained_once_and_others_are_not_held_up(blocked):
    comp = blocked.comp
    first = alignment._start(alignment._store_key(comp, SETTINGS, CONTROLS), comp)
    again = alignment._start(alignment._store_key(comp, SETTINGS, CONTROLS), comp)
    assert again is first  # another session's identical request waits on the same job
    other = {**CONTROLS, "steps": 11}
    assert alignment.training(comp, SETTINGS, other) is None  # a different request is not it
    blocked.release.set()
    assert first.wait() is not None and len(blocked.calls) == 1


def test_a_training_error_reaches_the_page_that_waits(blocked):
    comp = blocked.comp
    settings = {**SETTINGS, "seed": 13}
    blocked.release.set()
    with pytest.raises(ValueError, match="each needs at least 10"):
        alignment.alignment(comp, settings, CONTROLS, bar=Bar(), train=True)
    assert alignment.training(comp, settings, CONTROLS) is None  # ended: Train starts anew
    assert alignment.alignment(comp, settings, CONTROLS) is None
