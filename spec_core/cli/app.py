"""`app [--port P] [--address A]`: start the web app (streamlit) on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spec_core import checks as v


def add(subparsers) -> None:
    p = subparsers.add_parser("app", help="start the web app (streamlit) on this machine")
    p.add_argument("--port", type=int, default=8501, help="the port the app listens on")
    p.add_argument("--address", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    p.set_defaults(run=run)


def app_script() -> Path:
    """The installed app's entry script (spec_app/app.py)."""
    return Path(__file__).resolve().parents[2] / "spec_app" / "app.py"


def run(args: argparse.Namespace) -> int:
    import importlib.util
    import subprocess

    script = app_script()
    if not script.is_file() or importlib.util.find_spec("streamlit") is None:
        raise ValueError(
            "the web app is not installed here: pip install 'spec-explorer[app]' (or run "
            "`make run` in a checkout)"
        )
    v.check_positive_int("--port", args.port, maximum=65535)
    # no CSV download in the tables' toolbars: it writes raw cells (see spec_app/router.py)
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
               "--client.disableDataExport", "true",
               "--server.port", str(args.port), "--server.address", args.address]  # fmt: skip
    print(f"SPEC Explorer on http://{args.address}:{args.port} (Ctrl-C stops it)", flush=True)
    return subprocess.call(command, cwd=script.parent)
