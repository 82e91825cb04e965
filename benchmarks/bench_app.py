"""The app's speed targets, measured with streamlit's AppTest (script time, no browser):

1. with embeddings cached, a change of SPEC parameters on 5,000 items redraws in < 2 s;
2. the first render of the demo landing page with a warm cache (a new session) in < 3 s;
3. the same after a restart of the server (Streamlit's in-process caches emptied, so the
   embeddings are read from the disk cache and their checksums verified), and what the
   verification costs of it (< 5 %); and the verification of a larger matrix (100 MB) against
   reading it.

    python benchmarks/bench_app.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPEC_EXPLORER_CACHE", tempfile.mkdtemp(prefix="spec-bench-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))  # this checkout's code, not the one installed

from _data import clustered_pair  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from spec_app.state import settings_defaults  # noqa: E402
from spec_core.data import uploads  # noqa: E402
from spec_core.data.cache import EmbeddingCache, cache_key  # noqa: E402
from spec_core.data.text_sets import load_texts  # noqa: E402


def timed_run(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    assert not at.exception and not at.error, [e.value for e in at.error]
    return elapsed


def main() -> None:
    app = str(ROOT / "app.py")
    # 1. 5,000 items, embeddings already in the cache (precomputed keys)
    n = 5000
    a, b = clustered_pair(n, 512, 384)
    cache = EmbeddingCache()
    texts = load_texts(("bench.txt", "\n".join(f"item {i}" for i in range(n)).encode()))
    refs = []
    for name, matrix in (("a", a), ("b", b)):
        key = cache_key(kind="bench", side=name, n=n)
        cache.put(key, matrix, {})
        refs.append(uploads.save_matrix(key, f"{name}.npy", texts.fingerprint("text")))
    applied = {
        **settings_defaults(),
        "data": f"upload:{uploads.save_dataset(texts)}",
        "modality_a": "text",
        "modality_b": "text",
        "model_a": f"precomputed:{refs[0]}",
        "model_b": f"precomputed:{refs[1]}",
    }
    at = AppTest.from_file(app, default_timeout=300)
    for k, v in applied.items():
        at.session_state[k] = v
    first = timed_run(at)
    print(f"5,000 items, first comparison (exact, gaussian): {first:.2f} s")
    for label, changes in (
        ("eta 0.5", {"eta": 0.5}),
        ("cosine", {"kernel": "cosine"}),
        ("sigma A 20", {"sigma_a": 20.0, "kernel": "gaussian"}),
        ("nystrom 1000", {"method": "nystrom", "n_features": 1000}),
    ):
        applied = {**applied, **changes}
        at.session_state["pending"] = {**applied, "custom_a": "", "custom_b": ""}
        at.button(key="compare_button").click()  # the sidebar's edits, applied
        print(f"  change {label:<14} redraw {timed_run(at):.2f} s (target < 2 s)")
    again = timed_run(at)
    print(f"  rerun, nothing changed: {again:.2f} s")

    # 2. demo landing page, warm cache, new session
    warmup = AppTest.from_file(app, default_timeout=600)
    print(f"demo landing, cold cache (embeds 540 images + captions): {timed_run(warmup):.1f} s")
    fresh = AppTest.from_file(app, default_timeout=300)
    print(f"demo landing, warm cache, new session: {timed_run(fresh):.2f} s (target < 3 s)")
    restarted_load(app)
    large_matrix(cache)


def restart() -> None:
    """What a restart forgets: Streamlit's caches and stores, and the files verified."""
    import streamlit as st

    from spec_core.data import cache as disk_cache

    st.cache_data.clear()
    st.cache_resource.clear()
    vars(disk_cache).get("_verified", set()).clear()


def restarted_load(app: str, repeats: int = 5) -> None:
    """3. The demo landing page after a restart (median of `repeats`), and the verification of
    the embeddings it reads, timed alone."""
    times = []
    for _ in range(repeats):
        restart()
        times.append(timed_run(AppTest.from_file(app, default_timeout=300)))
    load = statistics.median(times)
    print(f"demo landing, warm disk cache, restarted server: {load:.2f} s (median of {repeats})")
    cache = EmbeddingCache()
    if not hasattr(cache, "verify"):
        print("  (no checksums in this version)")
        return
    keys = [entry.key for entry in cache.entries() if "weights" in entry.meta]  # the demo's
    verifying = []
    for _ in range(repeats):
        restart()
        start = time.perf_counter()
        assert all(cache.verify(key) is not None for key in keys)
        verifying.append(time.perf_counter() - start)
    cost = statistics.median(verifying)
    print(
        f"  verifying the {len(keys)} cached embeddings (first read after a restart): "
        f"{cost * 1e3:.1f} ms = {100 * cost / load:.2f} % of the load (target < 5 %)"
    )


def large_matrix(cache: EmbeddingCache, rows: int = 25_000, dim: int = 1024) -> None:
    """A 100 MB float32 matrix: reading it, verifying it the first time, and again."""
    import numpy as np

    matrix = np.random.default_rng(0).random((rows, dim), dtype=np.float32)
    key = cache_key(kind="bench-large", rows=rows, dim=dim)
    cache.put(key, matrix, {})
    path = cache.folder / f"{key}.npy"
    del matrix
    size = path.stat().st_size / 1e6
    restart()
    start = time.perf_counter()
    np.load(path)
    plain = time.perf_counter() - start
    start = time.perf_counter()
    cache.get(key)
    first = time.perf_counter() - start
    start = time.perf_counter()
    cache.get(key)
    again = time.perf_counter() - start
    cache.delete(key)
    print(
        f"a {size:.0f} MB matrix (page cache warm): np.load {plain:.2f} s, get with its checksum "
        f"verified {first:.2f} s, get again (verified before) {again:.2f} s"
    )


if __name__ == "__main__":
    main()
