"""Seeded synthetic embedding pairs with a known answer, for tests and benchmarks (numpy only)."""

from __future__ import annotations

import numpy as np


def merged_pair(
    n: int = 1500,
    dim: int = 32,
    groups: int = 10,
    *,
    merged: int = 3,
    shrink: float = 30.0,
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, labels): A has `groups` Gaussian clusters; B is a linear distortion of A that
    merges `merged` pairs of them (groups 0/1, 2/3, ...): the direction between the two centres
    of each pair is shrunk `shrink`-fold, then everything is rotated at random, plus a little
    noise. A keeps those groups apart, B does not: SPEC finds A-not-B modes there, and a linear
    map can undo the distortion (what SPEC-align should learn). float32, labels as strings."""
    if 2 * merged > groups:
        raise ValueError(f"merged={merged} pairs need at least {2 * merged} groups")
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim)) * 3.0
    labels = rng.integers(0, groups, n)
    a = centres[labels] + rng.normal(size=(n, dim))
    between = np.stack([centres[2 * i + 1] - centres[2 * i] for i in range(merged)])
    basis, _ = np.linalg.qr(between.T)
    distortion = np.eye(dim) - (1.0 - 1.0 / shrink) * basis @ basis.T
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    b = a @ distortion @ rotation + noise * rng.normal(size=(n, dim))
    return a.astype(np.float32), b.astype(np.float32), labels.astype(str)


#: The planted distortions of `distorted_pair`: which a linear map undoes, which delete.
DISTORTIONS = ("shrink", "scale", "delete")


def class_pair_directions(
    x: np.ndarray, labels, pairs: list[tuple[str, str]], *, per_pair: int = 1
) -> np.ndarray:
    """An orthonormal basis (d x k) of the directions that separate each pair of classes in x:
    per pair, the difference of the two class means and, with per_pair > 1, then the
    directions where the two classes' spreads differ most (the top |eigenvalue| eigenvector of
    the difference of their covariances), each found after the previous ones are projected
    out. Projecting out the mean difference alone leaves a pair linearly inseparable; the
    spread directions take what a nearest-neighbour vote still sees."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels).astype(str)
    found: list[np.ndarray] = []
    for first, second in pairs:
        one, two = x[labels == str(first)], x[labels == str(second)]
        if len(one) < 2 or len(two) < 2:
            raise ValueError(f"classes {first!r} and {second!r} need at least 2 rows each")
        between = two.mean(axis=0) - one.mean(axis=0)
        found.append(between / np.linalg.norm(between))
        for _ in range(per_pair - 1):
            basis = np.linalg.qr(np.stack(found, axis=1))[0]
            off = np.eye(x.shape[1]) - basis @ basis.T
            spread = np.cov((one @ off).T) - np.cov((two @ off).T)
            values, vectors = np.linalg.eigh(spread)
            found.append(off @ vectors[:, np.argmax(np.abs(values))])
    return np.linalg.qr(np.stack(found, axis=1))[0]


def distorted_pair(
    x: np.ndarray,
    labels,
    kind: str,
    *,
    pairs: list[tuple[str, str]] = (),
    factor: float = 12.0,
    per_pair: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) with A = x and B a planted distortion of it, then rotated at random:

    - "shrink": the directions that separate each pair of classes (class_pair_directions)
      shrunk `factor`-fold: B merges them; a linear map undoes it exactly.
    - "scale": every coordinate of a random orthonormal basis scaled by a factor log-uniform
      in [1 / factor, factor]: the neighbourhoods change; a linear map undoes it exactly.
    - "delete": those pair directions (per_pair of them per pair) projected out: what
      separated the pairs is not in B, and no map of B can put it back.

    float32; x is only read."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    if kind == "scale":
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
        factors = np.exp(rng.uniform(-np.log(factor), np.log(factor), size=d))
        distortion = basis @ np.diag(factors) @ basis.T
    elif kind in ("shrink", "delete"):
        basis = class_pair_directions(x, labels, list(pairs), per_pair=per_pair)
        keep = 1.0 / factor if kind == "shrink" else 0.0
        distortion = np.eye(d) - (1.0 - keep) * basis @ basis.T
    else:
        choices = ", ".join(DISTORTIONS)
        raise ValueError(f"kind={kind!r} is not a distortion; choose one of {choices}")
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return x.astype(np.float32), (x @ distortion @ rotation).astype(np.float32)


def planted_groups(
    n: int = 4000,
    dim: int = 16,
    groups: int = 10,
    group_rows: int = 200,
    *,
    spread: float = 0.3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, labels): `groups` planted clusters of `group_rows` rows each that A separates and
    B does not, among background rows both embed alike. The background rows are one standard
    Gaussian cloud, the same in A and B; in A each cluster is a tight ball (`spread` around a
    centre drawn at scale 3), in B its rows are drawn from the background's cloud. Labels:
    "group-i", or "background". The answer by construction: `groups` A-not-B groups of
    `group_rows` rows each. float32."""
    if groups * group_rows > n:
        raise ValueError(
            f"{groups} groups of {group_rows} rows need at least {groups * group_rows} rows, "
            f"not n={n}"
        )
    rng = np.random.default_rng(seed)
    labels = np.full(n, "background", dtype=object)
    rows = rng.permutation(n)
    a = rng.normal(size=(n, dim))
    b = a.copy()
    centres = rng.normal(size=(groups, dim)) * 3.0
    for g in range(groups):
        members = rows[g * group_rows : (g + 1) * group_rows]
        a[members] = centres[g] + spread * rng.normal(size=(group_rows, dim))
        b[members] = rng.normal(size=(group_rows, dim))
        labels[members] = f"group-{g}"
    return a.astype(np.float32), b.astype(np.float32), labels.astype(str)
