"""SPEC-align on the Align page: training an adapter on one side of a comparison (torch on one
thread meanwhile), its numbers in the app's frame, the before/after views, and the downloads.

Trained alignments are kept in a small in-process store (services.store) keyed by the two
embedding keys, the alignment's parameters (`AlignParams`) and the labels; the 2-D views and
the files by `st.cache_data`, keyed by the alignment's id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from spec_app import safe
from spec_app.services.comparison import Comparison, labels_digest
from spec_app.services.data import keep_matrix
from spec_app.services.models import load_embedding
from spec_app.services.store import LruStore
from spec_core.data.cache import cache_key

if TYPE_CHECKING:
    from spec_core.align.train import AlignResult

#: Trained alignments kept in the process (each holds an aligned copy of one embedding).
ALIGN_KEEP = 4


@dataclass(frozen=True)
class AlignParams:
    """An alignment's parameters: which side changes (`direction` "b_to_a" or "a_to_b"), the
    comparison's kernel, bandwidth scale, seed and device, and the Align page's controls.
    Frozen and hashable: it keys the store of alignments."""

    direction: str
    kernel: str
    sigma_scale: float
    seed: int
    device: str
    adapter: str
    steps: int
    val_fraction: float

    def training_kwargs(self) -> dict[str, Any]:
        """The parameters as keyword arguments for spec_core.align.train.align (all but the
        direction, which decides the order of the embeddings)."""
        kwargs = dataclasses.asdict(self)
        kwargs.pop("direction")
        return kwargs


@dataclass(frozen=True)
class Alignment:
    """A trained adapter (spec_core.align.train.AlignResult) and how it maps to the comparison:
    `swapped` when A was aligned to B (the core then calls the app's B "A": its target). The
    functions below turn its numbers into the app's frame, where positive eigenvalues are
    A-not-B whichever side was aligned."""

    id: str  # names this alignment in caches (a digest of its store key)
    result: AlignResult
    swapped: bool
    key_target: str
    key_adapted: str

    @property
    def target_side(self) -> str:
        return "B" if self.swapped else "A"

    @property
    def adapted_side(self) -> str:
        return "A" if self.swapped else "B"


def align_params(settings: dict, controls: dict) -> AlignParams:
    """The alignment's parameters, canonical: the comparison's kernel, bandwidth scale, seed
    and device, and the Align page's controls."""
    return AlignParams(
        direction=controls["direction"],
        kernel=settings["kernel"],
        sigma_scale=float(settings["sigma_scale"]),
        seed=int(settings["seed"]),
        device=settings["device"],
        adapter=controls["adapter"],
        steps=int(controls["steps"]),
        val_fraction=float(controls["val_fraction"]),
    )


# ---------------------------------------------------------------------------------------------
# Training


@st.cache_resource(show_spinner=False)
def _alignments() -> LruStore:
    return LruStore(ALIGN_KEEP)


_THREADS_LOCK = threading.Lock()
_THREADS = {"training": 0, "saved": 1}


@contextlib.contextmanager
def _one_torch_thread():
    """Torch on one thread while an adapter trains. Each step solves a small (batch x batch)
    eigenproblem; with two OpenMP threads on a busy 2-core server every step waits on a thread
    that is not running (the demo, measured side by side under load: 0.6-1.2 s a step with 2
    threads, 0.035-0.06 s with 1). torch's setting is the process's: it is restored when the
    last training ends."""
    import torch

    with _THREADS_LOCK:
        if _THREADS["training"] == 0:
            _THREADS["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS["training"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS["training"] -= 1
            if _THREADS["training"] == 0:
                torch.set_num_threads(_THREADS["saved"])


def _align_callback(bar) -> Callable[[str, int, int], None]:
    """Training fills the bar to 90%; the before/after measurements the rest."""

    def update(stage: str, done: int, total: int) -> None:
        if stage == "train":
            share = 0.9 * min(done / max(total, 1), 1.0)
            bar.progress(share, text=f"training the adapter: step {done} of {total}")
        else:
            bar.progress(0.95, text=safe.fmt("measuring before and after: {}", stage))

    return update


def _store_key(comp: Comparison, settings: dict, controls: dict) -> tuple:
    params = align_params(settings, controls)
    swapped = params.direction == "a_to_b"
    key_target, key_adapted = (comp.key_b, comp.key_a) if swapped else (comp.key_a, comp.key_b)
    return (key_target, key_adapted, params, labels_digest(comp.dataset.labels))


def alignment(
    comp: Comparison, settings: dict, controls: dict, *, bar=None, train: bool = False
) -> Alignment | None:
    """The alignment of this comparison's embeddings with these settings and controls: from
    the in-process store, else (`train`) trained now with `bar` showing the progress, else
    None. Training runs as a job of the process (see `TrainingJob`): when the page is left
    meanwhile, it goes on, and the page finds it again (`training`). A user error (too few
    rows for the split, ...) is raised as it is."""
    store_key = _store_key(comp, settings, controls)
    found = _alignments().get(store_key)
    if found is not None or not train:
        return found
    job = _start(store_key, comp)
    return job.wait(bar)


def training(comp: Comparison, settings: dict, controls: dict) -> TrainingJob | None:
    """The job training this alignment, while it runs (it outlives the page run that started
    it), else None."""
    job = _jobs().get(_store_key(comp, settings, controls))
    return job if job is not None and not job.finished.is_set() else None


class TrainingJob:
    """One adapter's training in a thread of the server process, so that it outlives the page
    run that started it: the Align page shows its progress while it runs (`wait`), a later run
    finds it again, and the same request from another session waits on the same job (trained
    once). Its `progress` is the progress callback's bar."""

    def __init__(self) -> None:
        self.share = 0.0
        self.text = "starting the training"
        self.finished = threading.Event()
        self.result: Alignment | None = None
        self.error: BaseException | None = None

    def progress(self, share: float, text: str = "") -> None:
        self.share, self.text = share, text

    def wait(self, bar=None, poll: float = 0.2) -> Alignment | None:
        """The trained alignment, once the job ends, with `bar` following its progress; the
        job's error is raised here as it was raised in training. Leaving the page stops this
        wait (streamlit ends the run at the bar's next update), not the job."""
        while not self.finished.wait(poll):
            if bar is not None:
                bar.progress(self.share, text=self.text)
        if self.error is not None:
            raise self.error
        return self.result


@st.cache_resource(show_spinner=False)
def _jobs() -> dict:
    return {}


_JOBS_LOCK = threading.Lock()


def _start(store_key: tuple, comp: Comparison) -> TrainingJob:
    """The running job of `store_key`, else a new one started (the embeddings are read here,
    in the page's run, before the job exists: the thread needs no streamlit, and a job never
    waits on inputs that could not be read)."""
    jobs = _jobs()
    job = jobs.get(store_key)
    if job is not None and not job.finished.is_set():
        return job
    key_target, key_adapted, _, _ = store_key
    inputs = (load_embedding(key_target), load_embedding(key_adapted), comp.dataset.labels)
    with _JOBS_LOCK:
        job = jobs.get(store_key)
        if job is not None and not job.finished.is_set():
            return job  # started meanwhile by another session
        job = jobs[store_key] = TrainingJob()
    where = (_alignments(), jobs)
    thread = threading.Thread(
        target=_train, args=(job, where, store_key, inputs), name="spec-align", daemon=True
    )
    thread.start()
    return job


def _train(job: TrainingJob, where: tuple[LruStore, dict], store_key: tuple, inputs) -> None:
    """The job's work, in its thread: train, keep the result in the store, end the job."""
    from spec_core.align.train import align

    store, jobs = where
    target, adapted, labels = inputs
    key_target, key_adapted, params, _ = store_key
    try:
        with _one_torch_thread():
            result = align(
                target,
                adapted,
                labels=labels,
                progress=_align_callback(job),
                **params.training_kwargs(),
            )
        trained = Alignment(
            hashlib.sha256(repr(store_key).encode()).hexdigest()[:32],
            result,
            params.direction == "a_to_b",
            key_target,
            key_adapted,
        )
        job.result = store.put(store_key, trained)
    except BaseException as err:  # raised again in the page that waits (see TrainingJob.wait)
        job.error = err
    finally:
        with _JOBS_LOCK:
            if jobs.get(store_key) is job:
                del jobs[store_key]
        job.finished.set()


# ---------------------------------------------------------------------------------------------
# Its numbers in the app's frame


def in_app_frame(text: str, swapped: bool) -> str:
    """A core text about A (the target) and B (the adapted side), such as a mode label or a
    weak mode's reason, in the app's frame: A and B swap when A was the side aligned."""
    if not swapped:
        return text
    return re.sub(r"\b[AB]\b", lambda m: "B" if m.group() == "A" else "A", text)


def verdict(al: Alignment) -> tuple[str, str]:
    """(kind, text) of the alignment's verdict (spec_core.align.verdict.Verdict) in the app's
    frame: "closed", "partly", "cannot" or "agree", and the case in words, e.g. "The
    alignment closed 92% of the difference on rows it never trained on"."""
    found = al.result.verdict
    return found.kind, in_app_frame(found.text, al.swapped)


def align_spectra(al: Alignment) -> dict[str, dict]:
    """Before and after, on the validation rows: the eigenvalues (descending, positive =
    A-not-B as on the Spectrum page) and the noise floor of each."""
    out = {}
    for stage in ("before", "after"):
        entry = al.result.metrics["val"][stage]
        values = np.asarray(entry["spectrum"], dtype=np.float64)
        if al.swapped:  # SPEC(B, A) = -SPEC(A, B)
            values = -values[::-1]
        out[stage] = {"eigenvalues": values, "noise_floor": float(entry["noise_floor"])}
    return out


def closed_modes(al: Alignment) -> list[dict]:
    """The strongest modes on the validation rows before alignment, strongest first, in the
    app's frame: label, eigenvalue before and after (of the same score vector), the share of
    it left after alignment, weak or not, its members (dataset rows, best first), and for the
    2-D views its scores over the validation rows and its members' positions among them."""
    sign = -1.0 if al.swapped else 1.0
    modes = {m.label: m for m in al.result.before_val.modes}
    out = []
    for entry in al.result.closed:
        mode = modes[entry["label"]]
        before, after = sign * entry["before"], sign * entry["after"]
        out.append(
            {
                "label": in_app_frame(entry["label"], al.swapped),
                "before": before,
                "after": after,
                "left": after / before if before else float("nan"),
                "weak": bool(entry["weak_before"]),
                "weak_reasons": tuple(in_app_frame(r, al.swapped) for r in mode.weak_reasons),
                "members": list(entry["members"]),
                "scores": np.asarray(mode.sample_scores),
                "positions": np.asarray(mode.members),
            }
        )
    return sorted(out, key=lambda m: -abs(m["before"]))


# ---------------------------------------------------------------------------------------------
# Before and after in 2-D


def scores_without_mode(al: Alignment) -> tuple[np.ndarray, np.ndarray]:
    """Scores and members for the 2-D views when no mode colours them: zeros, none."""
    return np.zeros(len(al.result.val_metric_rows)), np.zeros(0, dtype=int)


@st.cache_data(show_spinner=False, max_entries=16)
def align_projection(align_id: str, kind: str, _al: Alignment) -> dict[str, np.ndarray]:
    """The adapted embedding before and after alignment in 2-D (`kind` "pca" or "umap"), on
    the validation rows the metrics use: {"rows", "before", "after"}; cached per alignment."""
    from spec_core.engine.projection import pca_2d, umap_2d

    rows = _al.result.val_metric_rows
    project = pca_2d if kind == "pca" else (lambda m: umap_2d(m, seed=0))
    return {
        "rows": rows,
        "before": project(np.asarray(load_embedding(_al.key_adapted)[rows])),
        "after": project(np.asarray(_al.result.aligned[rows])),
    }


# ---------------------------------------------------------------------------------------------
# Downloads, and the aligned embedding as a model


@st.cache_data(show_spinner=False, max_entries=8)
def adapter_file(align_id: str, _al: Alignment) -> bytes:
    """The adapter as a .safetensors file (spec_core.align.load_adapter reads it back)."""
    return _al.result.aligner.to_bytes({"aligned_side": _al.adapted_side})


@st.cache_data(show_spinner=False, max_entries=8)
def aligned_file(align_id: str, _al: Alignment) -> bytes:
    """The aligned embedding as .npy: every row of the data, in its order."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(_al.result.aligned), allow_pickle=False)
    return buf.getvalue()


def align_report(al: Alignment, comp: Comparison) -> bytes:
    """The alignment's strict-JSON report, with what was aligned to what."""
    import json

    names = dict(zip("AB", comp.names, strict=True))
    report = {
        **al.result.to_dict(),
        "comparison": {
            "data": comp.dataset.name,
            "model_a": names["A"],
            "model_b": names["B"],
            "aligned": al.adapted_side,
            "target": al.target_side,
        },
    }
    return json.dumps(report, indent=1, allow_nan=False).encode()


def store_aligned(al: Alignment, comp: Comparison) -> str:
    """Keep the aligned embedding as an uploaded matrix of the comparison's rows (as the Data
    page keeps a precomputed one: a model setting 'precomputed:REF' then names it, in links
    too); its REF."""
    dataset = comp.dataset
    matrix = np.ascontiguousarray(al.result.aligned, dtype=np.float32)
    names = dict(zip("AB", comp.names, strict=True))
    name = safe.clip(
        f"{names[al.adapted_side]} aligned to {names[al.target_side]}"
        f" ({al.result.params['adapter']})",
        120,
    )
    digest = hashlib.sha256(matrix.tobytes()).hexdigest()
    key = cache_key(
        kind="precomputed", sha256=digest, shape=list(matrix.shape), rows=list(dataset.ids)
    )
    return keep_matrix(key, matrix, name, dataset)
