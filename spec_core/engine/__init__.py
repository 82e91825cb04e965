"""The SPEC engine: two embeddings in, the eigendecomposition of their kernels' difference and
its modes out, with every mode's evidence.

`compare` (compare.py) resolves the inputs and parameters, solves on one of two routes
(solve.py: the exact n x n matrix, or feature maps that make it linear in n) and assembles the
result (result.py). Below it: the kernels and their feature maps (kernels.py, features.py), the
rows on the device (rows.py), the eigensolvers (linalg.py), the evidence per mode
(evidence.py), the context metrics (metrics.py), SPEC-diff's reference (reference.py), the Ray
runner of the row passes (backends.py), and what is built on a result: scale sweeps
(scales.py), mode descriptions (describe.py), row selections (selection.py), 2-D projections
(projection.py).
"""
