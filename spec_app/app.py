"""SPEC Explorer, installed: `spec-explorer app` runs this file (the router is spec_app.router)."""

from spec_app.router import run

run()
