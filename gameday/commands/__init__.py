"""Sub-commands of ``chaosctl``, one module each, and the options they share."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gameday.errors import ConfigError

if TYPE_CHECKING:
    from gameday.models import Environment


def add_api_option(parser: argparse.ArgumentParser) -> None:
    """``--api URL``: the Prefect server a command talks to."""
    parser.add_argument("--api", default=None, metavar="URL",
                        help="Prefect API (default: $PREFECT_API_URL, else the running demo's)")


def find_environment(name_or_path: str) -> Environment:
    """The environment a command works on: a Prefect block of that name first, when the
    Prefect layer can be loaded (the ``prefect`` extra and a checkout), then the files."""
    from gameday.environments import load_environment
    from gameday.extras import checkout, installed, prefect_layer

    lookup = None
    if installed("prefect"):
        try:
            checkout()
        except ConfigError:  # an installed kit outside a checkout: files only
            pass
        else:
            lookup = prefect_layer("blocks", "reading environment blocks").environment_block
    return load_environment(name_or_path, lookup=lookup)
