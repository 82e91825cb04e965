"""The app's speed targets, measured with streamlit's AppTest (script time, no browser):

1. with embeddings cached, a change of SPEC parameters on 5,000 items redraws in < 2 s;
2. the first render of the demo landing page with a warm cache (a new session) in < 3 s.

    python benchmarks/bench_app.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPEC_EXPLORER_CACHE", tempfile.mkdtemp(prefix="spec-bench-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

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


if __name__ == "__main__":
    main()
