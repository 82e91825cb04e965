"""What `compare_many` returns: every pair's SpecResult, the model-by-model matrices (SPEC-diff,
linear CKA, kNN overlap), a 2-D map of the models, and what was computed once per model.

Pairs are unordered: the pair of models i < j (in the order given) is compared with A = the
earlier model and B = the later one (eta weighs the later one), so `pairs[(names[i],
names[j])]` is `compare(emb[names[i]], emb[names[j]])`. Its SPEC-diff fills both cells (i, j)
and (j, i) of the matrix: with eta = 1 (the default) SPEC-diff is symmetric, and the reverse
comparison is the same spectrum negated, the same groups with their directions swapped.

`ManyResult.to_dict()` is strict JSON (every number finite), documented key by key there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from spec_core.engine.result import Mode, SpecResult

#: Bumped whenever the JSON layout of a ManyResult changes.
MANY_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelPiece:
    """What was computed once for one model and shared by its pairs.

    dim: its columns. sigma: its Gaussian bandwidth in its own units (None for the cosine
    kernel). computed: "kernel matrix" (its n x n kernel, for the pairs on the exact kernel
    route) and / or "features" (its feature map's rows, for the pairs on the feature route).
    n_features: the width of that feature map (None without one). noise_floor: the
    approximation's own floor for this model (two independent draws of its map compared with
    each other; None when the map is exact); a pair's floor is the larger of its A's and eta x
    its B's.
    """

    name: str
    dim: int
    sigma: float | None
    computed: tuple[str, ...]
    n_features: int | None = None
    noise_floor: float | None = None


@dataclass(frozen=True)
class ManyParams:
    """The parameters shared by every pair, as run (each pair's own are in its SpecResult)."""

    kernel: str
    method: str
    centre: bool
    eta: float
    n_modes: int
    top_k: int
    n_eigenvalues: int
    seed: int
    device: str
    dtype: str
    n_rows: int
    sigma_rule: str | None
    backend: str
    block_rows: int | None = None


@dataclass(frozen=True)
class ManyResult:
    """SPEC between every pair of N embeddings of the same rows.

    names: the models, in the order given. pairs: {(A, B): SpecResult} for every pair, A before
    B in `names`. spec_diff: N x N, the pair's SpecResult.spec_diff in both cells, 0 on the
    diagonal. linear_cka, knn_overlap: N x N context metrics (1 on the diagonal; None when
    context metrics were not asked for). model_map: N x 2, classical MDS of the SPEC-diff
    matrix (models close on the map compare with a small SPEC-diff). models: each model's
    shared pieces. timings: seconds of the shared stages and of all pairs' own work.
    """

    names: tuple[str, ...]
    models: tuple[ModelPiece, ...]
    pairs: dict[tuple[str, str], SpecResult]
    spec_diff: np.ndarray
    linear_cka: np.ndarray | None
    knn_overlap: np.ndarray | None
    model_map: np.ndarray
    params: ManyParams
    timings: dict[str, float]

    def index(self, name: str) -> int:
        """The position of a model; a ValueError naming the models for an unknown one."""
        if name not in self.names:
            raise ValueError(f"unknown model {name!r}; the models are {', '.join(self.names)}")
        return self.names.index(name)

    def pair(self, first: str, second: str) -> SpecResult:
        """The comparison of two models, A = the one listed first in `names`."""
        i, j = sorted((self.index(first), self.index(second)))
        if i == j:
            raise ValueError(f"a model is not compared with itself ({first!r})")
        return self.pairs[(self.names[i], self.names[j])]

    def strongest(self, first: str, second: str) -> Mode | None:
        """The strongest group that `first` clusters and `second` does not (its mode, from the
        pair in either order), or None when the spectrum has none on that side."""
        result = self.pair(first, second)
        direction = "A" if self.index(first) < self.index(second) else "B"
        modes = result.modes_for(direction)
        return modes[0] if modes else None

    def extremes(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(the closest pair, the farthest pair) by SPEC-diff."""
        ordered = sorted(self.pairs, key=lambda pair: self.pairs[pair].spec_diff)
        return ordered[0], ordered[-1]

    def to_dict(self, *, include_sample_scores: bool = False) -> dict[str, Any]:
        """A JSON-ready dict, every number finite (json.dumps(..., allow_nan=False) succeeds):

        - `format_version`, `kind` ("spec-explorer-many");
        - `names`: the models in order; `models`: one ModelPiece each (`name`, `dim`, `sigma`,
          `computed`, `n_features`, `noise_floor`);
        - `spec_diff`, `linear_cka`, `knn_overlap`: N x N lists of lists in the order of
          `names` (the last two null without context metrics);
        - `model_map`: N [x, y] points, classical MDS of `spec_diff`;
        - `closest`, `farthest`: {"a", "b", "spec_diff"};
        - `pairs`: one per pair, {"a", "b"} (A and B of that comparison) and every key of
          SpecResult.to_dict (`eigenvalues`, `spec_diff`, `noise_floor`, `modes` with their
          evidence, `params`, `timings`, `context`);
        - `params`: the shared parameters; `timings`: seconds per shared stage.
        """
        closest, farthest = self.extremes()

        def matrix(values: np.ndarray | None):
            return None if values is None else np.asarray(values, dtype=float).tolist()

        return {
            "format_version": MANY_FORMAT_VERSION,
            "kind": "spec-explorer-many",
            "names": list(self.names),
            "models": [dataclasses.asdict(piece) for piece in self.models],
            "spec_diff": matrix(self.spec_diff),
            "linear_cka": matrix(self.linear_cka),
            "knn_overlap": matrix(self.knn_overlap),
            "model_map": matrix(self.model_map),
            "closest": self._pair_entry(closest),
            "farthest": self._pair_entry(farthest),
            "pairs": [
                {"a": a, "b": b, **result.to_dict(include_sample_scores=include_sample_scores)}
                for (a, b), result in self.pairs.items()
            ],
            "params": dataclasses.asdict(self.params),
            "timings": dict(self.timings),
        }

    def _pair_entry(self, pair: tuple[str, str]) -> dict[str, Any]:
        return {"a": pair[0], "b": pair[1], "spec_diff": self.pairs[pair].spec_diff}

    def summary(self) -> str:
        """A few lines: the SPEC-diff matrix, the closest and farthest pairs, and each pair's
        strongest group of each direction."""
        width = max(8, *(len(name) for name in self.names))
        head = " " * width + "".join(f" {name[:10]:>10}" for name in self.names)
        lines = [f"SPEC-diff of {len(self.names)} models over {self.params.n_rows} rows", head]
        for i, name in enumerate(self.names):
            cells = "".join(f" {self.spec_diff[i, j]:>10.4g}" for j in range(len(self.names)))
            lines.append(f"{name:<{width}}{cells}")
        (c_a, c_b), (f_a, f_b) = self.extremes()
        lines.append(
            f"closest: {c_a} / {c_b} ({self.pairs[(c_a, c_b)].spec_diff:.4g}); "
            f"farthest: {f_a} / {f_b} ({self.pairs[(f_a, f_b)].spec_diff:.4g})"
        )
        for (a, b), result in self.pairs.items():
            context = ""
            if result.context is not None:
                context = f", linear CKA {result.context.linear_cka:.3f}"
            lines.append(f"  {a} vs {b}: SPEC-diff {result.spec_diff:.4g}{context}")
            for first, second in ((a, b), (b, a)):
                mode = self.strongest(first, second)
                if mode is not None:
                    rows = ", ".join(str(r) for r in mode.members[:6].tolist())
                    weak = " (weak)" if mode.weak else ""
                    lines.append(
                        f"    {first} clusters, {second} does not: eigenvalue "
                        f"{mode.eigenvalue:+.4g}{weak}; rows {rows}"
                    )
        return "\n".join(lines)
