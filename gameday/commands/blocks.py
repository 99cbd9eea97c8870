"""``chaosctl blocks register`` and ``chaosctl env import FILE``: gameday's Prefect blocks.

::

    chaosctl blocks register [--env NAME]... [--api URL]
    chaosctl env import FILE [--api URL]

Secrets an environment file references are read when it is imported and stored in the
blocks (encrypted by the server, masked in the UI); they are never printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gameday.commands import add_api_option
from gameday.extras import prefect_layer


def register(subparsers: Any) -> None:
    """Add ``blocks`` and ``env``."""
    blocks = subparsers.add_parser(
        "blocks", help="register gameday's Prefect block types and environment limits",
        description="Prefect blocks hold gameday's configuration and secrets: Prometheus "
        "Source, Slack Channel and Game Day Environment.")
    sub = blocks.add_subparsers(dest="blocks_command", metavar="SUBCOMMAND", required=True)
    reg = sub.add_parser(
        "register", help="register the block types and create each environment's limit",
        description="Register the block types (so the UI can create and edit them) and "
        "create a one-slot global concurrency limit per environment (gameday-env-NAME), "
        "which keeps deployment runs to one game day per environment. Idempotent.")
    reg.add_argument("--env", action="append", default=[], metavar="NAME",
                     help="also create this environment's limit (default: every environment "
                     "of the catalog and the state folder)")
    add_api_option(reg)
    reg.set_defaults(handler=_register)

    env = subparsers.add_parser(
        "env", help="environments as Prefect blocks",
        description="Manage environments stored as Prefect blocks.")
    env_sub = env.add_subparsers(dest="env_command", metavar="SUBCOMMAND", required=True)
    imp = env_sub.add_parser(
        "import", help="store an environment file as blocks",
        description="Validate FILE and save it as blocks named after the environment: a "
        "Game Day Environment, a Prometheus Source and (with notify.slack) a Slack Channel. "
        "Secrets it references ({env: VAR} or {block: NAME}) are read now and stored in the "
        "blocks; they are never printed. Blocks win over files for a name (see README).")
    imp.add_argument("file", type=Path, help="environment file (YAML)")
    add_api_option(imp)
    imp.set_defaults(handler=_import)


def _register(args: argparse.Namespace) -> int:
    provision = prefect_layer("orchestration.provision", "chaosctl blocks register")
    api = provision.use_api(args.api)
    types = provision.register_blocks()
    print(f"block types registered on {api}: {', '.join(types)}")
    environments = sorted(set(provision.known_environments()) | set(args.env))
    created = provision.create_slots(environments)
    print(f"environment limits (one slot each): {', '.join(environments) or 'none'}"
          + (f"; created {', '.join(created)}" if created else "; all existed"))
    return 0


def _import(args: argparse.Namespace) -> int:
    provision = prefect_layer("orchestration.provision", "chaosctl env import")
    provision.use_api(args.api)
    environment, saved = provision.import_environment(args.file)
    print(f"environment {environment.name} saved as blocks: {', '.join(saved)}")
    print("secrets were read from their references and stored in the blocks (not shown)")
    return 0
