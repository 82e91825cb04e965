"""Plain text in Streamlit elements that render markdown, and in Plotly's pseudo-HTML.

Most Streamlit text (st.markdown, st.caption, st.error / warning / info / success, st.toast,
st.subheader, st.image captions, st.metric labels, widget labels, st.table cells, progress
texts) is GitHub-flavoured markdown with Streamlit's extensions: links, images (the browser
fetches them), `:red[...]` directives, `$...$` LaTeX, and *autolinks*: a bare
`https://host`, `www.host` or `a@host` becomes a link even when every markdown character is
backslash-escaped. Anything a user, an upload or a URL supplies (model names, file and dataset
names, labels, captions, ids, messages that quote them) goes through `md()` before it reaches
such an element; `fmt()` builds a message from trusted markdown and escaped values.

`md()` backslash-escapes every ASCII punctuation character (CommonMark allows that for all of
them) and puts a zero-width space on both sides of `.`, `:` and `@` (except between two digits,
where no autolink can form and numbers such as 0.306 must stay whole), which breaks the
autolink patterns without changing what a reader sees. Control and bidirectional-override
characters, which could disguise the text, are replaced by U+FFFD.

Plotly renders `<a href>`, `<b>`, `<br>` in titles, tick labels and hover texts; `plotly()`
escapes `&`, `<` and `>` (Plotly turns the entities back into characters as text, not tags).

st.text, st.code, st.dataframe and download file contents are plain already. The tables'
toolbars offer no CSV download of their raw cells (`client.disableDataExport`, set by the
router): CSV leaves through the app's buttons and spec_core/export/tables.py.
"""

from __future__ import annotations

import html
import string
import unicodedata

ZWSP = "\u200b"
_PUNCTUATION = frozenset(string.punctuation)
_AUTOLINK = frozenset(".:@")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _visible(text: str) -> str:
    """Control and bidi-override characters replaced (newlines and tabs become spaces)."""
    out = []
    for char in text:
        if char in "\n\r\t":
            out.append(" ")
        elif char in _BIDI or unicodedata.category(char) in ("Cc", "Cs"):
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)


def plain(value: object) -> str:
    """str(value) for an element that sets it as text (no markup to escape): control and
    bidi-override characters replaced, so that it cannot reorder or hide what is around it."""
    return _visible(str(value))


def clip(value: object, limit: int = 200) -> str:
    """str(value) cut to `limit` characters (an ellipsis marks the cut)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md(value: object, *, limit: int | None = 500) -> str:
    """`value` as markdown that renders as exactly its text (see the module docstring)."""
    text = _visible(clip(value, limit) if limit else str(value))
    out = []
    for i, char in enumerate(text):
        if char in _AUTOLINK and _near_letter(text, i):
            out.append(f"{ZWSP}\\{char}{ZWSP}")
        elif char in _PUNCTUATION:  # `.` and `:` between digits too: no link forms there
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _near_letter(text: str, i: int) -> bool:
    """A letter (or anything not a digit) on either side: where an autolink could form."""
    left = text[i - 1] if i > 0 else ""
    right = text[i + 1] if i + 1 < len(text) else ""
    return not (left.isdigit() and right.isdigit())


def fmt(template: str, *values: object, **named: object) -> str:
    """`template` (trusted markdown with {} fields) filled with escaped values."""
    return template.format(*(md(v) for v in values), **{k: md(v) for k, v in named.items()})


def unescape(text: str) -> str:
    """The text a reader sees in `md(...)` output (for tests and logs)."""
    out = []
    chars = iter(text.replace(ZWSP, ""))
    for char in chars:
        out.append(next(chars, "") if char == "\\" else char)
    return "".join(out)


def plotly(value: object, *, limit: int | None = 200) -> str:
    """`value` as Plotly text: no tags, no links."""
    text = _visible(clip(value, limit) if limit else str(value))
    return html.escape(text, quote=False)


def filename(value: object, *, limit: int = 120) -> str:
    """A download file name made of [A-Za-z0-9._-] only."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in str(value))
    return cleaned.strip(".-")[:limit] or "download"
