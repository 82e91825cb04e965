"""SPEC Explorer's numerical core: compare two embeddings of the same samples.

    >>> from spec_core import compare
    >>> result = compare(emb_a, emb_b, kernel="gaussian")
    >>> result.spec_diff, result.modes_for("A")[0].members
    >>> many = compare_many({"clip": emb_a, "dino": emb_b, "siglip": emb_c})
    >>> many.spec_diff, many.pair("clip", "dino").modes

Importing this package is cheap: torch and the model libraries load inside the functions that
need them. Nothing here imports streamlit. SPEC-align lives in `spec_core.align`; the layout of
the package (engine, data, models, align, export, cli) is described in docs/architecture.md.
"""

from spec_core.config import DEFAULTS, SpecConfig
from spec_core.engine.compare import compare
from spec_core.engine.kernels import cosine_kernel, gaussian_kernel, median_sigma
from spec_core.engine.many import compare_many
from spec_core.engine.many_result import ManyResult, ModelPiece
from spec_core.engine.metrics import knn_overlap, linear_cka
from spec_core.engine.result import ContextMetrics, Mode, SpecParams, SpecResult
from spec_core.engine.scales import ScaleSweep, scale_sweep

__all__ = [
    "DEFAULTS",
    "ContextMetrics",
    "ManyResult",
    "Mode",
    "ModelPiece",
    "ScaleSweep",
    "SpecConfig",
    "SpecParams",
    "SpecResult",
    "compare",
    "compare_many",
    "cosine_kernel",
    "gaussian_kernel",
    "knn_overlap",
    "linear_cka",
    "median_sigma",
    "scale_sweep",
]
__version__ = "0.1.0"
