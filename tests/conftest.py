"""Shared fixtures and helpers: seeded data with structure whose SPEC answer is known in closed
form, the comparison as the paper defines it, and small seeded images and text sets."""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import spec_core
from spec_core.data.datasets import load_texts


def planted(n: int, groups_a: dict, groups_b: dict, *, sigma: float = 1.0, far: float = 6.0):
    """Embeddings where each listed group is tight in one embedding and spread in the other.

    Every row starts on its own coordinate axis at distance `far` x sigma from the origin, so two
    distinct rows have kernel exp(-far^2) ~ 0. A group {rows: rho} in an embedding instead puts its
    rows at centre + s e_i with exp(-s^2 / sigma^2) = rho: the group's within kernel is exactly rho
    for every pair and ~0 to everything else. The closed form: such a group gives the eigenvalue
    rho (|I| - 1) / n with eigenvector the group's indicator.
    """

    def build(groups: dict) -> np.ndarray:
        dim = n + len(groups)
        x = np.zeros((n, dim))
        x[np.arange(n), np.arange(n)] = far * sigma
        for g, (rows, rho) in enumerate(groups.items()):
            spread = sigma * np.sqrt(-np.log(rho))
            x[list(rows)] = 0.0
            x[list(rows), n + g] = 3 * far * sigma  # group centre, far from everything
            x[list(rows), list(rows)] = spread
        return x

    return build(groups_a), build(groups_b)


def direct_lambda(a, b, *, kernel, sigma_a=None, sigma_b=None, eta=1.0) -> np.ndarray:
    """(K_A - eta K_B) / n computed the textbook way, independently of spec_core."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)

    def gram(x, sigma):
        if kernel == "cosine":
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
            return x @ x.T
        sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        return np.exp(-sq / (2 * sigma**2))

    return (gram(a, sigma_a) - eta * gram(b, sigma_b)) / len(a)


def paper_compare(*args, **kwargs):
    """`spec_core.compare` with the paper's definition, uncentred, which the closed forms and
    direct NumPy builds describe; the centred kernels (the default) are checked against NumPy in
    test_evidence. The spectrum only: the stability resamples are tested in test_evidence too."""
    kwargs.setdefault("centre", False)
    kwargs.setdefault("stability", False)
    return spec_core.compare(*args, **kwargs)


def png_bytes(seed: int = 0, size: int = 8) -> bytes:
    """A size x size PNG of seeded random RGB pixels: a valid image, a different one per seed."""
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def text_set(lines: list[str], name: str = "notes.txt", **kwargs):
    """The text dataset a user gets by uploading these lines as the file `name` (kwargs go to
    load_texts, e.g. limits)."""
    return load_texts((name, "\n".join(lines).encode()), **kwargs)


@pytest.fixture
def clusters():
    """A: 6 well-separated clusters in 8-d; B: the same rows where clusters 0+1 and 2+3 merge
    and the rest spread out; n = 360."""
    rng = np.random.default_rng(7)
    n = 360
    labels = np.repeat(np.arange(6), n // 6)
    centres_a = rng.normal(scale=4.0, size=(6, 8))
    a = centres_a[labels] + 0.6 * rng.normal(size=(n, 8))
    merged = np.array([0, 0, 1, 1, 2, 3])
    centres_b = rng.normal(scale=4.0, size=(4, 6))
    b = centres_b[merged[labels]] + 0.6 * rng.normal(size=(n, 6))
    b[labels >= 4] = 3.0 * rng.normal(size=(int((labels >= 4).sum()), 6))
    return a.astype(np.float64), b.astype(np.float64), labels


@pytest.fixture
def opened_paths(monkeypatch):
    """Every path opened (builtins.open, io.open, os.open), resolved; a test clears it when its
    set-up is done."""
    opened: list[Path] = []

    def watch(opener):
        def wrapped(file, *args, **kwargs):
            if isinstance(file, str | bytes | os.PathLike):
                opened.append(Path(os.fsdecode(file)).resolve())
            return opener(file, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(builtins, "open", watch(builtins.open))
    monkeypatch.setattr(io, "open", watch(io.open))
    monkeypatch.setattr(os, "open", watch(os.open))
    return opened


def assert_in_eigenspace(lam, result, mode, tol=1e-5):
    """A mode's scores are an eigenvector of Lambda (from a direct eigh), or, when its
    eigenvalue is near-repeated (evidence.near_repeated: the equal clusters of the fixture), a
    unit vector of the span of the direct eigenvectors of that run: then its residual is at
    most the run's spread, |Lambda u - lambda u| <= max |lambda_j - lambda|. Scores are stored
    as float32."""
    from spec_core.engine.evidence import near_repeated

    u = mode.sample_scores.astype(np.float64)
    values = result.eigenvalues
    run = next((r for r in near_repeated(values) if mode.eigenvalue in values[r]), None)
    spread = 0.0 if run is None else float(np.ptp(values[run]))
    assert np.linalg.norm(lam @ u - mode.eigenvalue * u) < spread + tol
    vals, vecs = np.linalg.eigh(lam)
    low, high = (
        (mode.eigenvalue, mode.eigenvalue)
        if run is None
        else (values[run].min(), values[run].max())
    )
    span = vecs[:, (vals >= low - 1e-9) & (vals <= high + 1e-9)]
    assert np.linalg.norm(span.T @ u) == pytest.approx(1.0, abs=tol)
