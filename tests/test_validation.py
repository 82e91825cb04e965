"""One test per invalid input: the error names the problem and where it is."""

from __future__ import annotations

import numpy as np
import pytest

from spec_core import compare

rng = np.random.default_rng(0)
A = rng.normal(size=(20, 4))
B = rng.normal(size=(20, 3))


def test_row_count_mismatch():
    with pytest.raises(ValueError, match=r"A has 20 rows, B has 19"):
        compare(A, B[:19])


def test_not_two_dimensional():
    with pytest.raises(ValueError, match=r"A must be 2-D .* got shape \(20,\)"):
        compare(A[:, 0], B)


def test_no_columns():
    with pytest.raises(ValueError, match=r"B has no feature columns"):
        compare(A, np.zeros((20, 0)))


def test_nan_names_first_bad_row():
    bad = A.copy()
    bad[7, 2] = np.nan
    bad[12, 0] = np.inf
    with pytest.raises(
        ValueError, match=r"A has NaN or infinite values in 2 row\(s\); the first is row 7"
    ):
        compare(bad, B)


def test_non_numeric():
    with pytest.raises(ValueError, match=r"B must hold real numbers .* got dtype <U1"):
        compare(A, np.array([["x"] * 3] * 20))


def test_zero_row_under_cosine():
    bad = B.copy()
    bad[5] = 0.0
    with pytest.raises(ValueError, match=r"B row 5 is all zeros"):
        compare(A, bad, kernel="cosine")
    compare(A, bad, kernel="gaussian")  # fine for the Gaussian kernel


def test_too_few_rows():
    with pytest.raises(ValueError, match=r"at least 3 rows"):
        compare(A[:2], B[:2])


@pytest.mark.parametrize("name", ["sigma_a", "sigma_b"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_non_positive_sigma(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be a positive number"):
        compare(A, B, **{name: value})


@pytest.mark.parametrize("value", [0, -5, 2.5])
def test_bad_n_features(value):
    with pytest.raises(ValueError, match=r"n_features must be a positive integer"):
        compare(A, B, method="rff", n_features=value)


def test_rff_needs_two_features():
    with pytest.raises(ValueError, match=r"n_features must be at least 2 for rff"):
        compare(A, B, method="rff", n_features=1)


@pytest.mark.parametrize("value", [-0.1, float("inf")])
def test_bad_eta(value):
    with pytest.raises(ValueError, match=r"eta must be a finite number from 0 to"):
        compare(A, B, eta=value)


def test_too_many_modes():
    with pytest.raises(
        ValueError, match=r"n_modes=11 is larger than possible: 20 rows allow at most 10"
    ):
        compare(A, B, n_modes=11)


def test_top_k_too_large():
    with pytest.raises(ValueError, match=r"top_k=21 is larger than the number of rows \(20\)"):
        compare(A, B, top_k=21)


@pytest.mark.parametrize(
    ("arg", "value"),
    [("kernel", "laplace"), ("method", "svd"), ("device", "tpu"), ("dtype", "float16")],
)
def test_unknown_choice(arg, value):
    with pytest.raises(ValueError, match=rf"{arg}='{value}' is not supported; choose one of"):
        compare(A, B, **{arg: value})


def test_cosine_with_approximation():
    with pytest.raises(ValueError, match=r"the cosine kernel has an exact feature map"):
        compare(A, B, kernel="cosine", method="rff")


def test_cuda_when_unavailable():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match=r"no CUDA device is available"):
        compare(A, B, device="cuda")


def test_integer_input_is_accepted():
    result = compare(np.arange(60).reshape(20, 3) % 7, B, method="exact")
    assert result.params.n_rows == 20
