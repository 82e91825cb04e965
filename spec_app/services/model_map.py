"""The model map: 3 to 8 models of the current data compared at once (spec_core.compare_many),
for the Models page and the report.

A model is an entry MODALITY:NAME (a registry model and what it embeds, or an uploaded matrix
of this data). Every entry is checked before anything is embedded; each model is embedded with
its own progress bar (through the disk cache, as for a pair); a model that fails leaves the
others, and the map is made of those that worked. Maps are kept in a small in-process store;
each pair's result also goes into the SPEC results store, so opening a pair on the Spectrum
page does not compute it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from spec_app import safe
from spec_app.policy import ModelRefused
from spec_app.services.comparison import (
    fit_to_rows,
    keep_result,
    labels_digest,
    spec_params,
)
from spec_app.services.data import dataset_for
from spec_app.services.errors import SHOWN_AS_MESSAGE, DataGone
from spec_app.services.models import (
    bar_progress,
    embedding_key,
    is_precomputed,
    load_embedding,
    model_label,
    model_modalities,
    model_names,
)
from spec_app.services.store import LruStore
from spec_core.config import SpecConfig
from spec_core.data.datasets import Dataset
from spec_core.engine.many_result import ManyResult

#: Model maps kept in the process (the most recently used).
MAPS_KEPT = 4


@dataclass(frozen=True)
class ModelMap:
    """What the Models page shows: the dataset, the entries that worked (MODALITY:NAME) with
    their names on screen and embedding keys, compare_many's result, the SPEC parameters it
    ran with, the models that failed (each with why) and notes."""

    dataset: Dataset
    entries: tuple[str, ...]
    names: tuple[str, ...]
    keys: tuple[str, ...]
    result: ManyResult
    params: SpecConfig
    failed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def entry_of(self, name: str) -> str:
        return self.entries[self.names.index(name)]


def entry_parts(entry: str) -> tuple[str, str]:
    """(modality, model name) of an entry."""
    modality, _, name = entry.partition(":")
    return modality, name


def entry_label(entry: str) -> str:
    """An entry as people read it: 'pixels-16 (image)', an upload by its file name (an
    embedding, not of images or texts: 'm6.npy (uploaded)')."""
    modality, name = entry_parts(entry)
    if is_precomputed(name):
        return model_label(name)
    return f"{model_label(name)} ({modality})"


def choices(dataset: Dataset, matrices: Sequence[str]) -> list[str]:
    """The entries the Models page offers for this data: the registry's models for each
    modality it has (offline ones first), then this session's uploaded matrices of its
    rows."""
    from spec_core.data import uploads

    out = [
        f"{modality}:{name}" for modality in dataset.modalities for name in model_names((modality,))
    ]
    modality = "image" if dataset.kind == "image" else "text"
    for ref in matrices:
        try:
            upload = uploads.load_matrix(ref)
        except (uploads.UploadGone, KeyError):
            continue
        if upload.fingerprint in dataset.fingerprints.values():
            out.append(f"{modality}:precomputed:{ref}")
    return out


def check_entries(entries: Sequence[str], dataset: Dataset) -> list[str]:
    """Why these entries cannot run on this data (plain text), before anything is embedded:
    too few or too many, a refused or unknown model, a model that cannot embed its
    modality, a modality the data does not have."""
    from spec_app.state import MAP_MODELS

    low, high = MAP_MODELS
    problems = []
    if not low <= len(entries) <= high:
        problems.append(f"Pick {low} to {high} models (now {len(entries)}).")
    for entry in entries:
        modality, name = entry_parts(entry)
        shown = safe.clip(name, 80)
        try:
            can = model_modalities(name, dataset)
        except ModelRefused as err:
            problems.append(f"{shown}: {err}")
            continue
        except ValueError as err:
            problems.append(f"{shown}: {err}")
            continue
        if modality not in can:
            problems.append(f"{shown} embeds {' and '.join(can)}, not {modality}s.")
        elif modality not in dataset.modalities:
            have = " and ".join(dataset.modalities) or "nothing"
            problems.append(f"{shown} would embed {modality}s, but this data has {have}.")
    return problems


@st.cache_resource(show_spinner=False)
def _maps() -> LruStore:
    return LruStore(MAPS_KEPT)


def run_model_map(settings: dict, entries: Sequence[str]) -> ModelMap | None:
    """Embed each entry (a progress bar each; a failure is noted and the others go on), then
    compare_many on those that worked (a progress bar); None, with the errors shown, when fewer
    than two worked or the comparison itself is refused. DataGone when the data is gone."""
    dataset = dataset_for(settings["data"])
    params, notes = fit_to_rows(spec_params(settings), len(dataset))
    if params.sigma_a is not None or params.sigma_b is not None:
        notes.append(
            "Bandwidths set by hand belong to one pair: the model map uses each model's "
            "data-driven bandwidth (x the bandwidth scale)."
        )
        params = params.replace(sigma_a=None, sigma_b=None)
    if params.eta != 1:
        notes.append(
            f"eta = {params.eta:g}: each pair weighs its second model (the later one in the "
            "list) by eta, so a cell is that pair's SPEC-diff in the list's order."
        )
    status = st.empty()
    kept, failed = [], []
    with status.container():
        for entry in entries:
            modality, name = entry_parts(entry)
            bar = st.progress(0.0, text=safe.fmt("model {}", entry_label(entry)))
            try:
                key = embedding_key(dataset, name, modality, settings["device"], bar)
            except SHOWN_AS_MESSAGE as err:
                failed.append(f"{entry_label(entry)}: {safe.clip(err, 400)}")
                continue
            kept.append((entry, key))
        found = _compute(dataset, kept, params, failed, notes) if len(kept) >= 2 else None
    status.empty()
    for problem in failed:
        st.warning(safe.md(f"Left out: {problem}", limit=600), icon=":material/error:")
    if found is None and len(kept) < 2:
        st.error("Fewer than two models worked: nothing to compare.")
    return found


def _compute(dataset, kept, params: SpecConfig, failed, notes) -> ModelMap | None:
    """compare_many on the embedded entries (kept in the store), each pair's result also kept
    under the pair's SPEC key; None with the error shown when it is refused."""
    from spec_core import compare_many

    entries = tuple(entry for entry, _ in kept)
    keys = tuple(key for _, key in kept)
    names = _distinct([entry_label(entry) for entry in entries])
    store_key = (keys, names, params, labels_digest(dataset.labels))
    result = _maps().get(store_key)
    if result is None:
        bar = st.progress(0.0, text="SPEC between every pair")
        kwargs = {k: v for k, v in params.kwargs().items() if k not in ("sigma_a", "sigma_b")}
        try:
            embeddings = {name: load_embedding(key) for name, key in zip(names, keys, strict=True)}
            result = compare_many(
                embeddings, labels=dataset.labels, progress=bar_progress(bar), **kwargs
            )
        except DataGone:
            raise
        except SHOWN_AS_MESSAGE as err:
            st.error(safe.md(err, limit=1000))
            return None
        _maps().put(store_key, result)
    for (name_a, name_b), pair in result.pairs.items():  # each pair opens without a rerun
        key_a, key_b = keys[names.index(name_a)], keys[names.index(name_b)]
        keep_result(key_a, key_b, params, pair, labels=dataset.labels)
    st.session_state.model_map_key = store_key
    return ModelMap(dataset, entries, names, keys, result, params, tuple(failed), tuple(notes))


def _distinct(names: list[str]) -> tuple[str, ...]:
    """Names made distinct (two uploads with the same file name get a number)."""
    out: list[str] = []
    for name in names:
        candidate, count = name, 1
        while candidate in out:
            count += 1
            candidate = f"{name} #{count}"
        out.append(candidate)
    return tuple(out)


def last_map(dataset: Dataset) -> ManyResult | None:
    """The model map this session last computed, when it is of this dataset's rows (for the
    report); None otherwise."""
    key = st.session_state.get("model_map_key")
    if key is None:
        return None
    found = _maps().get(key)
    if found is None or found.params.n_rows != len(dataset):
        return None
    if key[3] != labels_digest(dataset.labels):
        return None
    return found


# ---------------------------------------------------------------------------------------------
# Views of a map


def cell_text(model_map: ModelMap, row: int, col: int) -> str:
    """A cell's hover text (plain text, one line per part): the pair, its SPEC-diff and context
    metrics, and the strongest group of each direction in words."""
    from spec_core.export.matrix import strongest_words

    result, dataset = model_map.result, model_map.dataset
    first, second = result.names[row], result.names[col]
    if row == col:
        return first
    pair = result.pair(first, second)
    lines = [f"A = {first} · B = {second}", f"SPEC-diff {pair.spec_diff:.4f}"]
    if pair.context is not None:
        lines[-1] += (
            f" · linear CKA {pair.context.linear_cka:.3f} · {pair.context.knn_k}-NN overlap "
            f"{pair.context.knn_overlap_mean:.3f}"
        )
    for one, other in ((first, second), (second, first)):
        words = strongest_words(result, one, other, labels=dataset.labels, texts=dataset.texts)
        lines.append(f"{one} groups, {other} does not: {words}")
    lines.append("click: open this pair on the Spectrum page")
    return "\n".join(lines)


def pair_label(model_map: ModelMap, cell: str) -> str:
    """A cell "row,column" as the pair picker lists it."""
    row, col = (int(part) for part in cell.split(","))
    names = model_map.result.names
    value = model_map.result.spec_diff[row, col]
    return f"A = {names[row]} · B = {names[col]} · SPEC-diff {value:.4f}"


def pairs_table(model_map: ModelMap) -> list[dict]:
    """One record per pair: its models, SPEC-diff, context metrics and the strongest group of
    each direction in words."""
    from spec_core.export.matrix import strongest_words

    result, dataset = model_map.result, model_map.dataset
    records = []
    for (a, b), pair in result.pairs.items():
        record = {"A": a, "B": b, "SPEC-diff": round(pair.spec_diff, 5)}
        if pair.context is not None:
            record["linear CKA"] = round(pair.context.linear_cka, 3)
            record["kNN overlap"] = round(pair.context.knn_overlap_mean, 3)
        for one, other, column in ((a, b, "A groups, B does not"), (b, a, "B groups, A does not")):
            record[column] = strongest_words(
                result, one, other, labels=dataset.labels, texts=dataset.texts
            )
        records.append(record)
    return records


def matrix_csv(model_map: ModelMap) -> str:
    from spec_core.export.matrix import matrix_csv as csv_of

    return csv_of(model_map.result)


def matrix_json(model_map: ModelMap) -> str:
    """The map as strict JSON, with the data and each model's entry."""
    from spec_core.export.matrix import matrix_json as json_of

    dataset = model_map.dataset
    inputs = {
        "dataset": dataset.name,
        "models": [
            {"name": name, "model": entry_parts(entry)[1], "modality": entry_parts(entry)[0]}
            for name, entry in zip(model_map.names, model_map.entries, strict=True)
        ],
        "failed": list(model_map.failed),
    }
    return json_of(model_map.result, inputs)


def matrix_report(model_map: ModelMap) -> str:
    """The map as a self-contained HTML page (matrix, map, every pair in words)."""
    from spec_core.export.matrix import matrix_report as report_of

    dataset = model_map.dataset
    return report_of(
        model_map.result, dataset_name=dataset.name, labels=dataset.labels, texts=dataset.texts
    )
