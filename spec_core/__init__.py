"""SPEC Explorer's numerical core: compare two embeddings of the same samples.

    >>> from spec_core import compare
    >>> result = compare(emb_a, emb_b, kernel="gaussian")
    >>> result.spec_diff, result.modes_for("A")[0].members

Importing this package is cheap: torch and the model libraries load inside the functions that
need them. Nothing here imports streamlit.
"""

from spec_core.kernels import cosine_kernel, gaussian_kernel, median_sigma
from spec_core.metrics import knn_overlap, linear_cka
from spec_core.result import ContextMetrics, Mode, SpecParams, SpecResult
from spec_core.spec import compare

__all__ = [
    "ContextMetrics",
    "Mode",
    "SpecParams",
    "SpecResult",
    "compare",
    "cosine_kernel",
    "gaussian_kernel",
    "knn_overlap",
    "linear_cka",
    "median_sigma",
]
__version__ = "0.1.0"
