"""SPEC Explorer: `streamlit run app.py` (the router is spec_app.router)."""

from spec_app.router import run

run()
