"""The HTML report's spectrum: bars with their values, axes with ticks, the noise band."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from spec_core import compare
from spec_core.export.report import spectrum_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_spectrum_svg_has_axes_values_and_the_noise_band():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 6))
    a[:40] = 0.2 * a[:40] + 3.0  # a group A clusters and B does not
    result = compare(a, b, method="rff", n_features=128, n_eigenvalues=10)
    root = ET.fromstring(spectrum_svg(result))  # well-formed, self-contained
    texts = [t.text for t in root.iter(f"{SVG}text")]
    values = result.eigenvalues
    for value in values:  # every bar is labelled with its value
        assert f"{value:+.3g}" in texts
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("fill") in ("#1f77b4", "#d62728")]
    assert len(bars) == len(values)
    assert [r.get("fill") for r in bars] == ["#1f77b4" if v > 0 else "#d62728" for v in values]
    heights = np.array([float(r.get("height")) for r in bars])
    assert np.argmax(heights) == np.argmax(np.abs(values))  # drawn to scale
    assert "eigenvalue" in texts and any(t and t.startswith("rank") for t in texts)
    assert "0" in texts and "1" in texts and "20" in texts  # y zero tick, x ranks
    ticks = [float(t) for t in texts if t and t.replace(".", "").replace("-", "").isdigit()]
    assert min(ticks) < 0 < max(ticks)
    floor = f"{result.noise_floor:.3g}"
    assert f"noise floor ±{floor}" in texts
    band = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "#999"]
    assert len(band) == 1 and float(band[0].get("height")) > 1


def test_spectrum_svg_without_eigenvalues():
    class Empty:
        eigenvalues = np.array([])
        noise_floor = 0.0

    assert spectrum_svg(Empty()) == "<p>No eigenvalues.</p>"
