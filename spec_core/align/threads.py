"""How many threads torch uses while an adapter trains, set for one call and restored after.

Each training step solves a small (batch x batch) eigenproblem and a few matrix products of the
adapter's size; on the 2-core machine this project runs on, one torch thread trains faster than
two (benchmarks/bench_align_threads.py measures both in one run; see the README), and the app
already trains on one. torch's thread count is the process's: `torch_threads` puts back the
count it found, also when the call raises, so nothing else in the process (a comparison after
an alignment, the tests calling the CLI in-process) inherits it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

#: Threads for `align` from the command line (--threads): measured with
#: benchmarks/bench_align_threads.py (the README has the figures).
DEFAULT_THREADS = 1
#: The most threads one may ask for.
MAX_THREADS = 1024


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch.set_num_threads(threads) inside the block, the previous count restored after;
    None: leave torch as it is."""
    if threads is None:
        yield
        return
    import torch

    from spec_core import checks as v

    v.check_positive_int("threads", threads, maximum=MAX_THREADS)
    saved = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(saved)
