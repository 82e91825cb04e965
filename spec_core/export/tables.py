"""The one CSV writer of every export (the Export page's modes, the Clusters and UMAP pages'
row tables): text cells a spreadsheet would run as a formula are written as text.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula (`=HYPERLINK(...)`,
`-2+3`, `@SUM(...)`), and one that starts with a tab or carriage return may be trimmed to such a
cell. Following OWASP's advice on CSV injection, such a cell gets a leading single quote, which
the spreadsheet shows as text and does not run. So does a cell where one of the four (or its
fullwidth or small form, `＝` U+FF1D, `＋`, `－`, `＠`, which some importers fold to ASCII) comes
after white space (a space, a line feed, a no-break space) or invisible characters (a BOM, a
zero-width space): an importer that trims or drops them would see the formula.

Only text is neutralised: numbers the code itself computed (an eigenvalue of -0.03, a score of
-0.25) stay numbers, so numeric columns still sort and sum. A label or id that *looks* like a
number but came as text ("-1") is text from a user file and gets the quote.
"""

from __future__ import annotations

import csv
import io
import numbers
import re
from collections.abc import Mapping, Sequence

#: A text cell starting with one of these is a formula to a spreadsheet (OWASP's list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: The formula signs and every character that compatibility folding (NFKC) turns into one:
#: fullwidth (U+FF1D, U+FF0B, U+FF0D, U+FF20), small (U+FE66, U+FE62, U+FE63, U+FE6B),
#: superscript and subscript (U+207A, U+207C, U+208A, U+208C) and Hebrew (U+FB29) forms.
FORMULA_SIGNS = frozenset(
    "=+-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b\u207a\u207c\u208a\u208c\ufb29"
)
#: What may come before a sign and be trimmed or dropped on import: white space (str.isspace:
#: space, tab, line breaks, no-break spaces, ...), the BOM and the zero-width characters.
_LEADING = re.compile(r"[\s\ufeff\u200b\u200c\u200d\u2060\u180e]*")


def runs_as_formula(text: str) -> bool:
    """Whether a spreadsheet (or an importer that trims the start of a cell) may run `text`."""
    if text.startswith(FORMULA_START):
        return True
    return text[_LEADING.match(text).end() :][:1] in FORMULA_SIGNS


def safe_cell(value):
    """A cell as written: numbers (bool, int, float, NumPy scalars) as they are, None as empty,
    anything else as text, with a leading quote when a spreadsheet would run it."""
    if value is None:
        return ""
    if isinstance(value, numbers.Number):
        return value
    text = str(value)
    return "'" + text if runs_as_formula(text) else text


def records_csv(records: Sequence[Mapping], *, empty_fields: Sequence[str] = ("row",)) -> str:
    """Records (dicts with the same keys, the first one's order) as CSV text with a header;
    `empty_fields` is the header when there are no records. Every cell goes through safe_cell,
    the header too. A record with a key the first one lacks is a ValueError."""
    fields = list(records[0]) if records else list(empty_fields)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([safe_cell(name) for name in fields])
    for record in records:
        extra = record.keys() - set(fields)
        if extra:
            raise ValueError(f"a record has fields {sorted(extra)} that the first one lacks")
        writer.writerow([safe_cell(record.get(name)) for name in fields])
    return buf.getvalue()


def rows_table(
    dataset,
    rows: Sequence[int],
    *,
    scores: Sequence[float] | None = None,
    score_name: str = "score",
) -> list[dict]:
    """One record per row: its number, id, text or caption, label (and a score)."""
    out = []
    texts = None if dataset.texts is None or dataset.texts_are_ids else dataset.texts  # id once
    for i, row in enumerate(int(r) for r in rows):
        record = {"row": row, "id": dataset.ids[row]}
        if scores is not None:
            record[score_name] = float(scores[i])
        if texts is not None:
            record["text" if dataset.kind == "text" else "caption"] = texts[row]
        if dataset.labels is not None:
            record["label"] = dataset.labels[row]
        out.append(record)
    return out


def to_csv(records: Sequence[dict]) -> str:
    """Records as CSV, through the one export writer (spec_core.export.tables): text cells a
    spreadsheet would run as formulas get a leading quote."""
    return records_csv(records, empty_fields=("row",))
