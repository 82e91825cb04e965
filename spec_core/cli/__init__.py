"""The command line, `python -m spec_core COMMAND` (or `spec-explorer COMMAND`)."""

from spec_core.cli.entry import main

__all__ = ["main"]
