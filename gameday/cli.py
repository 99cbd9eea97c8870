"""``chaosctl``: the command line of gameday.

Each sub-command lives in ``gameday/commands/<name>.py`` with ``register(subparsers)``; heavy
imports happen inside the handlers so ``--help`` stays fast. User mistakes (any ``GameDayError``)
print a message and exit non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gameday import __version__
from gameday.errors import GameDayError
from gameday.redact import install_log_redaction

#: Sub-commands, in the order ``--help`` lists them.
COMMANDS = ("catalog", "start", "status", "stop", "report", "demo", "proxy", "blocks", "env",
            "deploy", "reaper", "ui")
#: Sub-commands registered by a module of another name.
MODULES = {"start": "run", "status": "run", "stop": "run", "env": "blocks",
           "deploy": "deployments", "reaper": "deployments", "ui": "deployments"}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="chaosctl",
        description="Run chaos game days: a catalog of fault scenarios, injected at service "
        "boundaries, watched by Prometheus guards, rolled back always.",
        epilog="Run 'chaosctl COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"gameday {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in dict.fromkeys(MODULES.get(c, c) for c in COMMANDS):
        importlib.import_module(f"gameday.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``chaosctl``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    install_log_redaction()  # whatever a command logs, through whichever handler
    try:
        code = args.handler(args)
    except GameDayError as exc:
        print(f"chaosctl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("chaosctl: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
