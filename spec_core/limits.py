"""Resource caps for one comparison, enforced by the engine and read by the CLI and the app.

A shared server runs many sessions on one machine: no single request may ask for more memory
than the machine can give. Two kinds of checks:

- hard bounds on the parameters (`CAPS`), the same for the engine, the CLI and the app's form;
- a memory estimate of the whole comparison (`estimate_bytes`) against a budget: the memory
  the machine has available now, or `$SPEC_EXPLORER_MAX_MEMORY_GB` when the operator sets it
  (a per-request cap for shared servers).

Every refusal is a ValueError that says what was asked, what the cap is and what to change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Caps:
    """Hard upper bounds on the parameters of one comparison."""

    max_n_features: int = 8192  # per embedding: the Gram is (2 x this)^2 float64
    max_n_modes: int = 50  # per direction
    max_n_eigenvalues: int = 200  # per end of the spectrum
    max_top_k: int = 5000  # member rows listed per mode
    max_knn_k: int = 200
    max_rows: int = 20_000_000
    max_dim: int = 65_536  # columns of one embedding
    max_eta: float = 1e6
    min_rows: int = 3
    max_models: int = 16  # embeddings compared at once (compare_many): the pairs grow as N^2


CAPS = Caps()

#: Environment variable: the most memory (GiB) one comparison may plan to use.
MEMORY_ENV = "SPEC_EXPLORER_MAX_MEMORY_GB"
#: Without it, this share of the memory available now.
AVAILABLE_SHARE = 0.7


def available_bytes() -> int | None:
    """Memory the machine can give now (MemAvailable), or None where that is unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget() -> tuple[int | None, str]:
    """(bytes one comparison may use, where that number comes from). A value of the variable
    that is not a positive number of GiB is an error, not silently ignored."""
    raw = os.environ.get(MEMORY_ENV, "").strip()
    if raw:
        try:
            gib = float(raw)
        except ValueError:
            gib = float("nan")
        if not 0 < gib < 2**40:
            raise ValueError(
                f"${MEMORY_ENV}={raw[:40]!r} is not a memory size: give a positive number of "
                "GiB (e.g. 4), or unset it"
            )
        return int(gib * 2**30), f"the operator's cap ${MEMORY_ENV}={raw}"
    avail = available_bytes()
    if avail is None:
        return None, "unknown"
    return int(avail * AVAILABLE_SHARE), f"{AVAILABLE_SHARE:.0%} of the memory available now"


def format_bytes(count: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count / 2**10:.0f} KiB"


def check_budget(need: int, what: str, advice: str) -> None:
    """Refuse up front when `need` bytes exceed the budget."""
    budget, source = memory_budget()
    if budget is not None and need > budget:
        raise ValueError(
            f"{what} would need about {format_bytes(need)} of memory, more than the "
            f"{format_bytes(budget)} allowed ({source}); {advice}"
        )
