"""Sub-commands of ``chaosctl``, one module each, and the options they share."""

from __future__ import annotations

import argparse


def add_api_option(parser: argparse.ArgumentParser) -> None:
    """``--api URL``: the Prefect server a command talks to."""
    parser.add_argument("--api", default=None, metavar="URL",
                        help="Prefect API (default: $PREFECT_API_URL, else the running demo's)")
