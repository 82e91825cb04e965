"""Hover cards: an image's thumbnail (or a text's snippet) beside the pointer in the 2-D views,
and a mode's strongest members on the spectrum's bars.

Plotly's hover label renders a small subset of HTML, with no images (plotly.js #1323,
plotly.py #4905), so the cards are drawn outside it: `attach` draws a zero-height same-origin
frame (st.iframe) whose script hands the cards to a small script in the page, which listens to
the Plotly charts' `plotly_hover` / `plotly_unhover` events and shows a card at the pointer.
No new dependency, nothing fetched from outside: the images are small JPEGs the server made
from the session's own dataset, inlined as data URIs, and every text is set as text
(`textContent`), never as HTML. The cards are bounded: at most `MAX_ROWS` rows per view
(the mode's members first, then rows spread evenly over the dataset), `MEMBERS` per bar.
Streamlit sends an unchanged frame by reference (its message cache), so a rerun with the same
cards costs nothing more.

A figure opts in with `mark(figure, kind)`: "rows" (customdata: the dataset row) or "modes"
(customdata: the mode's label).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from spec_app import safe, services

#: The thumbnail's longest side, in pixels.
THUMB_PX = 64
#: The most rows of a 2-D view with a card (beyond: Plotly's own label only).
MAX_ROWS = 600
#: The members shown for a bar of the spectrum.
MEMBERS = 4
#: The longest text of a card, in characters.
SNIPPET = 200


def mark(figure, kind: str):
    """Let the hover cards of `kind` ("rows" or "modes") show on this figure."""
    if kind not in ("rows", "modes"):
        raise ValueError(f"kind must be 'rows' or 'modes', not {kind!r}")
    figure.update_layout(meta=f"spec-hover:{kind}")
    return figure


def snippet(text: str, limit: int = SNIPPET) -> str:
    """Plain text for a card: one line, no control or bidi-override characters, at most
    `limit` characters."""
    return safe.clip(" ".join(safe.plain(text).split()), limit)


def _cards(dataset, rows: list[int]) -> list[dict[str, Any]]:
    """Each row's card: its text (caption, else id) and label, and its thumbnail (images)."""
    cards = []
    for row in rows:
        caption = dataset.texts[row] if dataset.texts else ""
        card: dict[str, Any] = {"text": snippet(f"{row}: {caption or dataset.ids[row]}")}
        if dataset.labels:
            card["label"] = snippet(dataset.labels[row], 60)
        cards.append(card)
    if dataset.kind == "image" and dataset.image_paths:
        images = services.projections.hover_images(
            dataset.fingerprint("image"), tuple(rows), dataset.image_paths, THUMB_PX
        )
        for card, image in zip(cards, images, strict=True):
            card["img"] = image
    return cards


def card_rows(n_rows: int, first=(), limit: int = MAX_ROWS) -> list[int]:
    """The rows that get a card: every row when there are at most `limit`; otherwise the rows
    of `first` (e.g. the mode's members), then rows spread evenly, `limit` in all."""
    if n_rows <= limit:
        return list(range(n_rows))
    rows = list(dict.fromkeys(int(r) for r in first if 0 <= int(r) < n_rows))[:limit]
    chosen = set(rows)
    for row in np.linspace(0, n_rows - 1, limit).astype(int):
        if len(rows) >= limit:
            break
        if int(row) not in chosen:
            rows.append(int(row))
            chosen.add(int(row))
    return rows


def row_cards(dataset, first=()) -> dict[str, dict]:
    """The cards of a 2-D view, by dataset row."""
    rows = card_rows(len(dataset), first)
    return {str(row): card for row, card in zip(rows, _cards(dataset, rows), strict=True)}


def mode_cards(dataset, modes) -> dict[str, dict]:
    """The cards of the spectrum's bars, by mode label: each mode's strongest members."""
    return {
        mode.label: {
            "members": _cards(dataset, [int(row) for row in mode.members[:MEMBERS]]),
            "title": f"{mode.label}: strongest members",
        }
        for mode in modes
    }


def attach(rows: dict | None = None, modes: dict | None = None) -> None:
    """Show these cards on hover over the page's marked charts (see `mark`)."""
    payload = {"rows": rows or {}, "modes": modes or {}}
    data = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        data = data.replace(char, escaped)  # nothing in the data can end the script
    st.iframe(_PAGE_SCRIPT + f"<script>{_SCRIPT.replace('__DATA__', data)}</script>", height=1)


#: Runs in the frame: hands the cards to the page, and installs the page's listener once.
_SCRIPT = """
const host = window.parent;
host.__specHover = __DATA__;
if (!host.__specHoverInstalled) {
  host.__specHoverInstalled = true;
  const tag = host.document.createElement("script");
  tag.textContent = document.getElementById("spec-hover-page").textContent;
  host.document.head.appendChild(tag);
}
"""

#: Runs in the page (installed by _SCRIPT): the card, and the charts' hover listeners.
_PAGE_SCRIPT = """<script type="text/plain" id="spec-hover-page">
(() => {
  const doc = document;
  const card = doc.createElement("div");
  card.id = "spec-hover-card";
  card.setAttribute("data-testid", "spec-hover-card");
  Object.assign(card.style, {
    position: "fixed", zIndex: 2147483647, pointerEvents: "none", display: "none",
    background: "white", border: "1px solid #bbb", borderRadius: "6px", padding: "6px",
    boxShadow: "0 2px 8px rgba(0,0,0,0.2)", font: "12px sans-serif", color: "#111",
    maxWidth: "260px",
  });
  doc.body.appendChild(card);
  const JPEG = "data:image/jpeg;base64,";
  function item(entry) {
    const box = doc.createElement("div");
    Object.assign(box.style, {display: "flex", gap: "6px", alignItems: "center",
                              margin: "2px 0"});
    if (typeof entry.img === "string" && entry.img.startsWith(JPEG)) {
      const img = doc.createElement("img");
      img.src = entry.img;
      img.alt = "";
      Object.assign(img.style, {width: "64px", height: "64px", objectFit: "contain",
                                flex: "none"});
      box.appendChild(img);
    }
    const words = doc.createElement("div");
    words.textContent = String(entry.text || "") + (entry.label ? " · " + entry.label : "");
    words.style.overflowWrap = "anywhere";
    box.appendChild(words);
    return box;
  }
  function show(event) {
    const data = window.__specHover || {};
    const point = (event.points || [])[0];
    const kind = String((this.layout && this.layout.meta) || "").replace("spec-hover:", "");
    if (!point || !(kind in data)) return;
    const key = String(point.customdata);
    const entry = data[kind][key];
    card.replaceChildren();
    if (!entry) { card.style.display = "none"; return; }
    if (kind === "modes") {
      const title = doc.createElement("div");
      title.textContent = entry.title;
      title.style.fontWeight = "bold";
      card.appendChild(title);
      for (const member of entry.members || []) card.appendChild(item(member));
    } else {
      card.appendChild(item(entry));
    }
    const mouse = event.event || {};
    const x = mouse.clientX || 0, y = mouse.clientY || 0;
    card.style.display = "block";
    // above the pointer (Plotly's own label is beside it), inside the window
    const width = card.offsetWidth, height = card.offsetHeight;
    const left = Math.max(4, Math.min(x - width / 2, window.innerWidth - width - 4));
    const top = y - height - 18 >= 4 ? y - height - 18 : y + 18;
    card.style.left = left + "px";
    card.style.top = top + "px";
  }
  function hide() { card.style.display = "none"; }
  function bind() {
    for (const chart of doc.querySelectorAll(".js-plotly-plot")) {
      if (chart.__specHoverBound || typeof chart.on !== "function") continue;
      chart.__specHoverBound = true;
      chart.on("plotly_hover", show.bind(chart));
      chart.on("plotly_unhover", hide);
    }
  }
  setInterval(bind, 500);
  bind();
})();
</script>"""
