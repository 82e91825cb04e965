"""The app's way into spec_core, and the only place that decides what Streamlit caches.

One module per concern; pages import this package and call a module's functions
(`services.data.current_dataset()`, `services.comparison.run_comparison(settings)`):

- `data`: the demo sets, uploads (kept by spec_core.data.uploads under an unguessable reference,
  which the URL carries), uploaded embedding matrices, deleting my data;
- `models`: model names and what they embed, encoders (`st.cache_resource`-held, a few kept),
  the Hub's reachability and a download's progress, embeddings in the core's content-addressed
  disk cache (switching pages or changing a SPEC parameter never re-embeds);
- `comparison`: `Comparison` and its `SpecConfig`, SPEC results in a small in-process store
  (only a change of SPEC parameters recomputes SPEC), modes on demand, scale sweeps;
- `model_map`: 3 to 8 models compared at once (spec_core.compare_many): entries checked before
  any work, a progress bar per model, the models that failed left out with why, the map's
  views and downloads;
- `alignment`: SPEC-align's training, its before/after views and downloads;
- `projections`: 2-D projections, neighbours, rankings, thumbnails (`st.cache_data`, keyed by
  embedding key or file path);
- `export`: the modes as CSV / JSON, the HTML report, tables of rows;
- `store`: the one in-process store class (lock + least recently used entries);
- `errors`: `DataGone` and the errors shown as a message (`SHOWN_AS_MESSAGE`).

Every message shown here quotes user values through spec_app.safe.
"""

from spec_app.services import (
    alignment,
    comparison,
    data,
    errors,
    export,
    model_map,
    models,
    projections,
    store,
)

__all__ = [
    "alignment",
    "comparison",
    "data",
    "errors",
    "export",
    "model_map",
    "models",
    "projections",
    "store",
]
