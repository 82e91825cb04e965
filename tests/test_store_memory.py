"""Freed memory goes back to the system (issue 22: the server's RSS stayed at 3.5-3.8 GB after
a 100k-row session ended); benchmarks/bench_session_memory.py measures it on a real session."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import spec_app.services.store as store
from spec_app.services.store import LruStore, release_freed_memory


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_is_returned_to_the_system():
    """4,000 blocks of 64 kB (below glibc's mmap threshold: they live on the heap), all freed
    but every 64th, which pins the heap's top: free() alone keeps the holes' pages (about 248
    MiB); after the release, RSS has fallen by at least half of that."""
    if not release_freed_memory():
        pytest.skip("no malloc_trim in this C library")
    blocks = [np.ones(8_000, dtype=np.float64) for _ in range(4_000)]
    kept = blocks[::64]
    del blocks
    freed_mib = 4_000 * 63 / 64 * 64_000 / 2**20
    before = rss_mib()
    assert release_freed_memory()
    after = rss_mib()
    assert before - after > 0.5 * freed_mib, (before, after, freed_mib)
    assert len(kept) == 63


def test_an_eviction_releases_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(store, "release_freed_memory", lambda: calls.append(1) or True)
    kept = LruStore(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert calls == []  # nothing dropped, nothing to release
    kept.put("c", 3)
    assert calls == [1] and kept.get("a") is None and kept.get("c") == 3
