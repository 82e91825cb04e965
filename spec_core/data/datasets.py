"""Datasets users bring, the way in: `load_dataset(path)` reads an image set (a folder or
a .zip, see image_sets.py) or a text set (.txt, .csv/.tsv, .jsonl, see text_sets.py);
`rows_dataset` stands for the rows of two precomputed embedding matrices.

Row order is stable and documented: images by relative path (POSIX separators, code-point
order), texts in file order. Each row has a stable id (the relative path; the id column or
`line-N` for texts). Hostile or broken input never stops the load and never writes outside the
work folder: each bad item is skipped with its reason, and the dataset holds only good rows, so
two embeddings of it always have the same rows.

The types a load returns or raises (`Dataset`, `Skipped`, `Limits`, `DatasetError`) are defined
in dataset_types.py, which the loaders share, and are imported from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spec_core.data.dataset_types import Dataset, DatasetError, Limits, Skipped, fingerprint_rows
from spec_core.data.image_sets import load_image_folder, load_image_zip
from spec_core.data.text_sets import TEXT_SUFFIXES, load_texts

__all__ = ["Dataset", "DatasetError", "Limits", "Skipped", "load_dataset", "rows_dataset"]


#: What a dataset of two matrices' rows says of its rows (until captions are attached).
ROWS_NOTE = (
    "Rows of the uploaded matrices: there are no images or texts, so each row is shown by its "
    "id. Text models would embed the ids themselves."
)


def rows_dataset(name: str, ids: Sequence[str]) -> Dataset:
    """A dataset that is only its rows: for comparing two precomputed embedding matrices on
    their own (no images or texts). The row ids (an id column, or row numbers) stand in as the
    rows' text, so every page can name a row."""
    ids = tuple(str(i) for i in ids)
    if not ids:
        raise DatasetError(f"{name}: no rows")
    return Dataset(
        name=name,
        kind="text",
        ids=ids,
        texts=ids,
        notes=(ROWS_NOTE,),
        fingerprints={"text": fingerprint_rows("rows", zip(ids, ids, strict=True))},
    )


def load_dataset(path: str | Path, *, store: str | Path | None = None, **kwargs) -> Dataset:
    """Dispatch on what `path` is: a folder or .zip of images, or a text file."""
    path = Path(path).expanduser()
    if path.is_dir():
        return load_image_folder(path, **kwargs)
    if path.suffix.lower() == ".zip":
        from spec_core.data.cache import image_store

        return load_image_zip(path, store=store or image_store(), **kwargs)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return load_texts(path, **kwargs)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    raise DatasetError(
        f"{path}: expected a folder or .zip of images, or a text file ({', '.join(TEXT_SUFFIXES)})"
    )
