"""Input checks shared by the engine and the command line.

Every check raises a ValueError that names the bad value, where it is, and what is allowed,
so the CLI and the app can show it to a user as it is.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable

import numpy as np

KERNELS = ("gaussian", "cosine")
METHODS = ("auto", "exact", "rff", "nystrom")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
SIGMA_RULES = ("median", "knn")
MEMBER_RULES = ("cut", "top_k")


def check_choice(name: str, value: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {', '.join(allowed)}")
    return value


def check_positive(name: str, value: float | None, *, allow_none: bool = True) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required")
    number = real_number(name, value)
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def real_number(name: str, value: object) -> float:
    """`value` as a float, or a ValueError naming it (strings, complex numbers, integers too
    big for a float are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} = {value!r} is out of range") from None


def check_seed(seed: object, name: str = "seed") -> int:
    """A seed: an integer from 0 to 2**63 - 1 (numpy's generators take no more)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise ValueError(f"{name} must be an integer from 0 to 2**63 - 1, got {seed!r}")
    return int(seed)


def check_positive_int(name: str, value: int, *, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={value} is more than this tool allows (at most {maximum:,})")
    return int(value)


def hours_setting(name: str, *, default: float, minimum: float) -> float:
    """Hours from the environment variable `name`: unset or empty is the default; a positive
    number of hours is taken (`inf`: forever), raised to `minimum` when under it; anything else
    (0, negative, nan, not a number) gives the default. A value refused or raised is logged as
    a warning (logger `spec_explorer`) naming the variable, its value and what is used, once."""
    return _hours(name, os.environ.get(name, "").strip(), default, minimum)


@functools.lru_cache(maxsize=32)
def _hours(name: str, raw: str, default: float, minimum: float) -> float:
    """hours_setting of one value (cached: its warning is logged once)."""
    if not raw:
        return default
    try:
        hours = float(raw)
    except ValueError:
        hours = float("nan")
    if not hours > 0:
        hours, why = default, "is not a positive number of hours (or inf, to keep forever)"
    elif hours < minimum:
        hours, why = minimum, f"is under the minimum of {minimum:g} hours"
    else:
        return hours
    logging.getLogger("spec_explorer").warning("%s=%r %s; using %g hours", name, raw, why, hours)
    return hours
