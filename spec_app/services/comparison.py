"""Comparisons: the settings checked, both embeddings and SPEC run with progress bars, the modes
of any bar of the spectrum on demand, and the spectrum across bandwidth scales.

SPEC results (and scale sweeps) are kept in a small in-process store (services.store) keyed by
the two embedding keys and the SPEC parameters (`SpecConfig`), so only a change of SPEC
parameters recomputes SPEC (and shows a progress bar while it does). What depends on fewer
parameters is kept by those alone: the context metrics (not on a bandwidth nor on the modes),
the reference SPEC-diff (not on the number of modes) and each mode's description.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from spec_app import safe
from spec_app.policy import ModelRefused
from spec_app.services.data import dataset_for
from spec_app.services.errors import SHOWN_AS_MESSAGE, DataGone, message
from spec_app.services.models import (
    bar_progress,
    embedding_key,
    embeds_label,
    load_embedding,
    model_label,
    model_modalities,
)
from spec_app.services.store import LruStore, release_freed_memory
from spec_core import config
from spec_core.config import SpecConfig
from spec_core.data.datasets import Dataset
from spec_core.engine.result import ContextMetrics, SpecResult
from spec_core.limits import CAPS

if TYPE_CHECKING:
    from spec_core.engine.describe import ModeDescription
    from spec_core.engine.reference import SpecDiffReference
    from spec_core.engine.scales import ScaleSweep

#: SPEC results and scale sweeps kept in the process (the most recently used).
RESULTS_KEPT = 16

#: A mode's label: its direction and its rank (1-based) among that direction's eigenvalues.
MODE_LABEL = re.compile(r"(A-not-B|B-not-A) #([1-9][0-9]{0,3})")

#: The reference SPEC-diff (B's rows shuffled) is computed with the page up to this many rows
#: on the exact route: one more solve, without resamples (0.09 s at 540 rows, 0.4 s at 1,500,
#: 1.0 s at 3,000 on one core under load, benchmarks/bench_reference.py); beyond, or on the
#: feature route, it waits for a button.
REFERENCE_AUTO_ROWS = 3000

#: The parameters a scale sweep sets itself (its multipliers x the data-driven bandwidths).
SET_BY_THE_SWEEP = ("sigma_a", "sigma_b", "sigma_scale")

#: The parameters the reference SPEC-diff sets itself (spec_core.engine.reference: one mode, no
#: resamples, no context metrics): a change of these alone finds the reference in the store.
SET_BY_THE_REFERENCE = {"n_modes": 1, "stability": False, "context": False}

#: After a comparison whose inputs and two n x n float64 matrices come to at least this, the
#: freed memory is handed back (store.release_freed_memory). Below it there is little to hand
#: back, and the full gc pass costs 0.1-0.3 s with torch and plotly loaded: a third of a warm
#: re-run of the demo (540 rows: 6 MB; the threshold is passed from about 2,000 rows).
RELEASE_FROM_BYTES = 64 * 2**20

#: Mode descriptions kept (each a few label counts and terms).
DESCRIPTIONS_KEPT = 256


@dataclass(frozen=True)
class Comparison:
    """What the pages show: the dataset, the two models (as set, with what each embeds), the
    cache keys of their embeddings, and SPEC's result with the parameters it ran with."""

    dataset: Dataset
    model_a: str
    model_b: str
    modality_a: str
    modality_b: str
    key_a: str
    key_b: str
    result: SpecResult
    params: SpecConfig  # the SPEC parameters used, fitted to the rows (see fit_to_rows)
    notes: tuple[str, ...] = ()

    def mode(self, label: str | None):
        """The mode with this label, else the strongest mode (or None when there is none)."""
        for mode in self.result.modes:
            if mode.label == label:
                return mode
        return max(self.result.modes, key=lambda m: abs(m.eigenvalue), default=None)

    @property
    def names(self) -> tuple[str, str]:
        """How the two models are called on screen."""
        return model_label(self.model_a), model_label(self.model_b)

    @property
    def embeds(self) -> tuple[str, str]:
        """What each side embeds, for captions: "images", "texts" or "embeddings" (uploaded)."""
        return embeds_label(self.model_a, self.modality_a), embeds_label(
            self.model_b, self.modality_b
        )


def spec_params(settings: dict) -> SpecConfig:
    """The SPEC parameters of a comparison: the app's (the parameter table's APP ones) from the
    settings, canonical (a bandwidth of 0 is the data-driven one), the engine's defaults for
    the others. Frozen and hashable: it keys the stores and caches of results."""
    values = {}
    for param in config.params(where=config.APP):
        value = settings[param.name]
        if param.optional:
            value = float(value) if value else None
        elif param.kind in (int, float):
            value = param.kind(value)
        values[param.name] = value
    return config.SpecConfig(**values)


def fit_to_rows(params: SpecConfig, n_rows: int) -> tuple[SpecConfig, list[str]]:
    """Modes and members within what `n_rows` allow, with a note for each change."""
    notes = []
    most_modes = max(n_rows // 2, 1)
    if params.n_modes > most_modes:
        notes.append(f"{n_rows} rows allow {most_modes} mode(s) per side; showing {most_modes}.")
        params = params.replace(n_modes=most_modes)
    if params.top_k > n_rows:
        params = params.replace(top_k=n_rows)
    return params, notes


def labels_digest(labels: Sequence[str] | None) -> bytes | None:
    """A short key for a dataset's labels (they change the result: each mode's purity)."""
    return None if labels is None else hashlib.sha256("\x1f".join(labels).encode()).digest()


# ---------------------------------------------------------------------------------------------
# Running a comparison


def check_settings(settings: dict, dataset: Dataset) -> list[str]:
    """Why these settings cannot run on `dataset` (plain text), before anything is embedded:
    a refused or unknown model, a model that cannot embed the chosen modality, a modality the
    data does not have, too few rows."""
    problems = []
    if len(dataset) < CAPS.min_rows:
        problems.append(
            f"This dataset has {len(dataset)} row(s); a comparison needs at least "
            f"{CAPS.min_rows} (two groups and something to tell them from)."
        )
    for side in ("a", "b"):
        model, modality = settings[f"model_{side}"], settings[f"modality_{side}"]
        label = side.upper()
        try:
            modalities = model_modalities(model, dataset)
        except ModelRefused as err:
            problems.append(f"Model {label} ({safe.clip(model, 80)}): {err}")
            continue
        except ValueError as err:
            problems.append(f"Model {label}: {err}")
            continue
        if modality not in modalities:
            problems.append(
                f"Model {label} ({safe.clip(model, 80)}) embeds {' and '.join(modalities)}, "
                f"not {modality}s."
            )
        elif modality not in dataset.modalities:
            have = " and ".join(dataset.modalities) or "nothing"
            problems.append(
                f"Model {label} would embed {modality}s, but this dataset has {have}: pick a "
                f"{' or '.join(dataset.modalities)} model."
            )
    return problems


@st.cache_resource(show_spinner=False)
def _results() -> LruStore:
    return LruStore(RESULTS_KEPT)


def spec_result(
    key_a: str, key_b: str, params: SpecConfig, bar, *, labels: Sequence[str] | None = None
) -> SpecResult:
    """SPEC of two cached embeddings (kept in a small in-process store); `labels` (one per row)
    give each mode its purity."""
    from spec_core import compare

    store_key = (key_a, key_b, params, labels_digest(labels))
    found = _results().get(store_key)
    if found is not None:
        return found
    emb_a, emb_b = load_embedding(key_a), load_embedding(key_b)
    progress = bar_progress(bar) if bar is not None else None
    kwargs = {**params.kwargs(), "context": False}  # measured below, kept across parameters
    result = compare(emb_a, emb_b, progress=progress, labels=labels, **kwargs)
    if params.context:
        clock = time.perf_counter()
        context = context_metrics(key_a, key_b, emb_a, emb_b, params)
        timings = {**result.timings, "context": time.perf_counter() - clock}  # ~0 when kept
        result = dataclasses.replace(result, context=context, timings=timings)
    worked_bytes = emb_a.nbytes + emb_b.nbytes + 2 * 8 * emb_a.shape[0] ** 2
    del emb_a, emb_b
    _results().put(store_key, result)
    if worked_bytes >= RELEASE_FROM_BYTES:
        release_freed_memory()  # the engine's temporaries and the inputs: the result alone stays
    return result


@st.cache_resource(show_spinner=False)
def _contexts() -> LruStore:
    return LruStore(RESULTS_KEPT)


def context_metrics(key_a: str, key_b: str, emb_a, emb_b, params: SpecConfig) -> ContextMetrics:
    """The context metrics of two cached embeddings (linear CKA, kNN overlap: what compare
    measures with `context=True`, spec_core.engine.metrics), kept by what they depend on: the
    embeddings, the kernel (its neighbour metric), knn_k, the seed and the device. A change of
    any other parameter (a bandwidth, the number of modes) finds them in the store."""
    from spec_core.engine.compare import resolve_device
    from spec_core.engine.metrics import context_metrics as measure

    knn_k, seed = int(params.knn_k), int(params.seed)
    store_key = (key_a, key_b, params.kernel, knn_k, seed, params.device)
    found = _contexts().get(store_key)
    if found is not None:
        return found
    device = resolve_device(params.device)
    found = measure(emb_a, emb_b, kernel=params.kernel, k=knn_k, seed=seed, device=device)
    return _contexts().put(store_key, found)


def keep_result(
    key_a: str, key_b: str, params: SpecConfig, result: SpecResult, *, labels=None
) -> None:
    """Keep a result computed elsewhere (a pair of the model map: the same comparison
    spec_result would compute) under spec_result's key, so opening that pair is instant."""
    _results().put((key_a, key_b, params, labels_digest(labels)), result)


def run_comparison(settings: dict, *, show_errors: bool = True) -> Comparison | None:
    """Dataset, both embeddings and SPEC for the applied settings, with progress bars; a user
    error is shown as a message (`show_errors`) and gives None; DataGone is raised."""
    dataset = dataset_for(settings["data"])
    problems = check_settings(settings, dataset)
    if problems:
        if show_errors:
            for problem in problems:
                st.error(safe.md(problem))
            st.session_state.compare_error = " ".join(problems)
        return None
    status = st.empty()
    try:
        with status.container():
            keys = []
            for side in ("a", "b"):
                model, modality = settings[f"model_{side}"], settings[f"modality_{side}"]
                shown = model_label(model)
                bar = st.progress(0.0, text=safe.fmt("model {}: {}", side.upper(), shown))
                keys.append(embedding_key(dataset, model, modality, settings["device"], bar))
            bar = st.progress(0.0, text="SPEC")
            params, notes = fit_to_rows(spec_params(settings), len(dataset))
            result = spec_result(keys[0], keys[1], params, bar, labels=dataset.labels)
    except DataGone:
        status.empty()
        raise
    except SHOWN_AS_MESSAGE as err:
        status.empty()
        if show_errors:
            st.error(safe.md(message(err), limit=1000))
            st.session_state.compare_error = safe.clip(message(err), 1000)
        return None
    status.empty()
    return Comparison(
        dataset=dataset,
        model_a=settings["model_a"],
        model_b=settings["model_b"],
        modality_a=settings["modality_a"],
        modality_b=settings["modality_b"],
        key_a=keys[0],
        key_b=keys[1],
        result=result,
        params=params,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# Built on a comparison


def bar_labels(eigenvalues) -> list[str]:
    """The mode label of every bar of the spectrum (descending eigenvalues): positive ones are
    A-not-B #1, #2, ... from the top, negative ones B-not-A #1, #2, ... from the bottom, as in
    spec_core's modes; '' for a zero."""
    values = list(eigenvalues)
    labels = []
    for i, value in enumerate(values):
        if value > 0:
            labels.append(f"A-not-B #{sum(1 for v in values[:i] if v > 0) + 1}")
        elif value < 0:
            labels.append(f"B-not-A #{sum(1 for v in values[i + 1 :] if v < 0) + 1}")
        else:
            labels.append("")
    return labels


def mode_by_label(comp: Comparison, label: str | None, bar=None):
    """The mode with this label: one of the comparison's, or, for any other bar of the spectrum,
    computed on demand (SPEC again with enough modes per side; its eigenvalues are the same,
    the result is kept in the SPEC store). None for a label that names no bar."""
    for mode in comp.result.modes:
        if mode.label == label:
            return mode
    match = MODE_LABEL.fullmatch(label or "")
    if match is None or label not in bar_labels(comp.result.eigenvalues):
        return None
    params = comp.params.replace(n_modes=max(int(match.group(2)), comp.params.n_modes))
    if 2 * params.n_modes > len(comp.dataset):
        return None
    result = spec_result(comp.key_a, comp.key_b, params, bar, labels=comp.dataset.labels)
    return next((mode for mode in result.modes if mode.label == label), None)


@st.cache_resource(show_spinner=False)
def _descriptions() -> LruStore:
    return LruStore(DESCRIPTIONS_KEPT)


def describe_mode(mode, dataset: Dataset) -> ModeDescription:
    """What a mode's members share (spec_core.engine.describe): their label make-up, their
    telling terms and a one-line headline. Kept by the dataset's content (its fingerprints and
    labels) and the members, so that a rerun (a click, a page switch) does not read every text
    again for each card."""
    from spec_core.engine.describe import describe_members

    members = np.asarray(mode.members, dtype=np.int64)
    store_key = (
        dataset.kind,
        len(dataset),
        tuple(sorted(dataset.fingerprints.items())),
        labels_digest(dataset.labels),
        members.tobytes(),
    )
    found = _descriptions().get(store_key)
    if found is not None:
        return found
    description = describe_members(members, labels=dataset.labels, texts=dataset.texts)
    return _descriptions().put(store_key, description)


def scale_sweep(comp: Comparison, bar=None) -> ScaleSweep | None:
    """The comparison's spectrum across bandwidth scales (spec_core.engine.scales), kept in the SPEC
    store beside the results; None for the cosine kernel (no bandwidth)."""
    from spec_core.engine.scales import scale_sweep as sweep

    if comp.params.kernel != "gaussian":
        return None
    kwargs = {  # the app's parameters (the others keep the sweep's own defaults)
        p.name: getattr(comp.params, p.name)
        for p in config.params(where=config.APP)
        if p.name not in SET_BY_THE_SWEEP
    }
    store_key = ("scales", comp.key_a, comp.key_b, tuple(kwargs.items()))
    found = _results().get(store_key)
    if found is not None:
        return found
    emb_a, emb_b = load_embedding(comp.key_a), load_embedding(comp.key_b)
    progress = bar_progress(bar) if bar is not None else None
    result = sweep(emb_a, emb_b, progress=progress, **kwargs)
    return _results().put(store_key, result)


def reference_words(spec_diff: float, shuffled: float) -> str:
    """SPEC-diff against its shuffled reference, in words: the share, and what it says."""
    if not shuffled > 0:
        return "no reference to weigh it against."
    share = spec_diff / shuffled
    if share < 0.5:
        said = "far less than unrelated embeddings would: their differences are particular groups"
    elif share < 0.9:
        said = "less than unrelated embeddings would, but not by much"
    else:
        said = "about as much as unrelated embeddings would: they group these rows very differently"
    return f"A and B disagree {share:.0%} as strongly, {said}."


def reference_is_cheap(comp: Comparison) -> bool:
    """Whether the reference SPEC-diff costs little enough to compute with the page."""
    params = comp.result.params
    return params.method == "exact" and params.n_rows <= REFERENCE_AUTO_ROWS


def spec_diff_reference(comp: Comparison, *, compute: bool = True) -> SpecDiffReference | None:
    """SPEC-diff of the same data with B's rows shuffled (spec_core.engine.reference: what an
    unrelated pair gives; identical embeddings give 0), on the comparison's own kernels (its
    bandwidths and route), kept in the SPEC store; None when it is not there and `compute` is
    False."""
    from spec_core.engine.reference import shuffled_spec_diff

    store_key = ("shuffled", comp.key_a, comp.key_b, comp.params.replace(**SET_BY_THE_REFERENCE))
    found = _results().get(store_key)
    if found is not None or not compute:
        return found
    used = comp.result.params
    kwargs = {
        **comp.params.kwargs(),
        "sigma_a": used.sigma_a,
        "sigma_b": used.sigma_b,
        "method": used.method,
    }
    emb_a, emb_b = load_embedding(comp.key_a), load_embedding(comp.key_b)
    reference = shuffled_spec_diff(emb_a, emb_b, **kwargs)
    return _results().put(store_key, reference)
