"""The one in-process store of the app: the most recently used entries, up to a number, safe to
share between the sessions' threads.

The services keep three of them, each made once per process by `st.cache_resource`: the loaded
encoders (services.models), the SPEC results and scale sweeps (services.comparison) and the
trained alignments (services.alignment). What they hold is too large or too unhashable for
`st.cache_data` (models, results with every mode), and is computed outside the lock, so two
sessions that ask at once may both compute it; the last one kept wins.

`release_freed_memory` hands the memory that nothing holds any more back to the system: after a
comparison (the engine's temporaries), an eviction or a deletion. Without it glibc keeps the
freed heap of each session's thread in its arena, and the server's RSS stays at its peak after
the session that needed it has gone (benchmarks/bench_session_memory.py measures it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")

_libc: list = []  # the C library, loaded once (Linux with glibc only)


def release_freed_memory() -> bool:
    """Collect unreachable objects, then ask glibc to return free heap pages of every arena to
    the system (malloc_trim(0)); whether it could trim (False off glibc: nothing to do)."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return False
    if not _libc:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.append(libc.malloc_trim)
        except (OSError, AttributeError):  # musl and others: no malloc_trim
            _libc.append(None)
    trim = _libc[0]
    if trim is None:
        return False
    trim(0)
    return True


class LruStore(Generic[Value]):
    """Up to `max_entries` values by key; the least recently used one goes first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Value | None:
        """The value kept under `key` (now the most recently used), else None."""
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: Hashable, value: Value) -> Value:
        """Keep `value` under `key`, dropping the least recently used beyond `max_entries`;
        returns `value`."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            evicted = len(self._entries) > self.max_entries
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        if evicted:
            release_freed_memory()
        return value

    def values(self) -> list[Value]:
        """The values kept, least recently used first."""
        with self._lock:
            return list(self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
