"""The app server's memory across one session that compares a large pair (issue 22: the RSS
stayed at 3.5-3.8 GB after a 100k-row session ended).

One process plays the server: streamlit's AppTest runs the app's script in it, as a session of
the server would (in a thread of the process). The session compares two uploaded matrices of
N rows (their own rows; 384 and 512 columns); the script prints the process's RSS before the
session, its peak during the comparison, after it (the session open), after the session ends
(its result still kept by the results store, for the next session that asks) and after the
stores are emptied (nothing holds the result). With --without-release the app's
release_freed_memory (gc + glibc malloc_trim) is switched off: the figures without the fix.

    python benchmarks/bench_session_memory.py [--rows 20000] [--without-release]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPEC_EXPLORER_CACHE", tempfile.mkdtemp(prefix="spec-bench-memory-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))  # this checkout's code, not the one installed

from _data import clustered_pair  # noqa: E402


def rss_mib() -> float:
    """This process's resident set size, MiB (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakRss:
    """The highest RSS seen while the `with` block runs (sampled every 50 ms)."""

    def __enter__(self):
        self.peak = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def uploaded_pair(rows: int) -> dict:
    """Two matrices of `rows` rows stored as the Data page stores a pair on its own rows; the
    session settings that compare them."""
    from spec_app import services
    from spec_core.data import uploads
    from spec_core.data.cache import cache_key
    from spec_core.data.datasets import rows_dataset

    a, b = clustered_pair(rows, 384, 512)
    dataset = rows_dataset("A.npy + B.npy", [str(i) for i in range(rows)])
    refs = []
    for name, matrix in (("A.npy", a), ("B.npy", b)):
        key = cache_key(kind="precomputed", bench=name, rows=rows)
        refs.append(services.data.keep_matrix(key, matrix, name, dataset))
    del a, b
    return {
        "data": f"upload:{uploads.save_dataset(dataset)}",
        "model_a": f"precomputed:{refs[0]}",
        "model_b": f"precomputed:{refs[1]}",
        "modality_a": "text",
        "modality_b": "text",
    }


def warm_up() -> None:
    """A small comparison first, so that the baseline holds what any server holds once it has
    compared anything (torch and the engine's libraries loaded): the rest is the session's."""
    from spec_core import compare

    a, b = clustered_pair(500, 16, 16)
    compare(a, b, context=True, stability=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows compared (default: 20000)")
    parser.add_argument(
        "--without-release",
        action="store_true",
        help="switch the app's release_freed_memory off: the figures without the fix",
    )
    args = parser.parse_args()
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import spec_app.services.comparison as comparison
    import spec_app.services.store as store

    if args.without_release:
        comparison.release_freed_memory = store.release_freed_memory = lambda: False
    figures = [("before the session (app, torch warm, data stored)", None)]
    settings = uploaded_pair(args.rows)
    warm_up()
    gc.collect()
    figures[0] = (figures[0][0], rss_mib())

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    for key, value in settings.items():
        at.session_state[key] = value
    start = time.perf_counter()
    with PeakRss() as peak:
        at.run()
    elapsed = time.perf_counter() - start
    assert not at.exception and not at.error, [e.value for e in at.error][:2]
    rows = {m.label: m.value for m in at.metric}.get("Rows")
    figures.append(("peak during the comparison", peak.peak))
    figures.append(("after it, the session open", rss_mib()))

    del at  # the session ends: its state goes; the results store keeps the result
    gc.collect()
    time.sleep(0.5)
    figures.append(("after the session ended (result kept in the store)", rss_mib()))
    st.cache_data.clear()
    st.cache_resource.clear()
    if not args.without_release:
        store.release_freed_memory()
    else:
        gc.collect()
    time.sleep(0.5)
    figures.append(("after the stores are emptied (nothing holds the result)", rss_mib()))

    fix = "without release_freed_memory" if args.without_release else "with release_freed_memory"
    print(f"session memory, {rows} rows compared in {elapsed:.1f} s ({fix}):")
    for what, mib in figures:
        print(f"  {what:<58} {mib:8.0f} MiB")


if __name__ == "__main__":
    main()
