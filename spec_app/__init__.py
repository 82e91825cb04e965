"""The Streamlit layer of SPEC Explorer: session state, cached services, and chart builders.
Only `services` decides what Streamlit caches; pages render and call it."""
