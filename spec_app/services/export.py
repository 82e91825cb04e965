"""What leaves the app: a comparison's modes as CSV and JSON, its HTML report, and tables of rows
(shown, and downloaded as CSV through the core's one CSV writer, spec_core.export.tables)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from spec_app.services.comparison import Comparison
from spec_app.services.model_map import last_map
from spec_core.export import report, tables

if TYPE_CHECKING:
    from spec_core.data.datasets import Dataset


def report_context(comp: Comparison) -> report.ReportContext:
    """What the exports say about the comparison's inputs: the dataset, its fingerprint, the
    models as they are called on screen, and the rows' ids, labels, texts and images."""
    dataset = comp.dataset
    name_a, name_b = comp.names
    modality = "image" if dataset.kind == "image" else "text"
    return report.ReportContext(
        dataset_name=dataset.name,
        fingerprint=dataset.fingerprint(modality),
        model_a=name_a,
        model_b=name_b,
        ids=dataset.ids,
        labels=dataset.labels,
        texts=dataset.texts,
        image_paths=dataset.image_paths,
    )


def modes_csv(comp: Comparison) -> str:
    """One row per (mode, member), as CSV (spec_core.export.report.modes_table)."""
    return report.modes_csv(comp.result, report_context(comp))


def modes_json(comp: Comparison) -> str:
    """The result and the inputs as JSON, each mode's members with their ids."""
    return report.modes_json(comp.result, report_context(comp))


def html_report(comp: Comparison) -> str:
    """A self-contained HTML report of the comparison (spectrum, modes and their members),
    with the model map's section when this session made one of the same data (Models page)."""
    model_map = last_map(comp.dataset)
    return report.html_report(comp.result, report_context(comp), model_map=model_map)


def rows_table(
    dataset: Dataset,
    rows: Sequence[int],
    *,
    scores: Sequence[float] | None = None,
    score_name: str = "score",
) -> list[dict]:
    """One record per row: its number, id, text or caption, label (and a score)."""
    return tables.rows_table(dataset, rows, scores=scores, score_name=score_name)


def rows_csv(
    dataset: Dataset,
    rows: Sequence[int],
    *,
    scores: Sequence[float] | None = None,
    score_name: str = "score",
) -> str:
    """`rows_table` as CSV (text cells a spreadsheet would run as formulas are written as
    text)."""
    return tables.to_csv(rows_table(dataset, rows, scores=scores, score_name=score_name))
