"""``chaosctl deploy``, ``chaosctl reaper install`` and ``chaosctl ui up|down``.

::

    chaosctl deploy [--api URL] [--no-reaper]   # work pool, prefect deploy --all, the reaper
    chaosctl reaper install [--api URL]          # the reaper's two automations, idempotently
    chaosctl ui up | down                        # everything `make ui` / `make ui-down` do
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gameday.commands import add_api_option
from gameday.extras import prefect_layer


def register(subparsers: Any) -> None:
    """Add ``deploy``, ``reaper`` and ``ui``."""
    deploy = subparsers.add_parser(
        "deploy", help="create the work pool and the deployments of prefect.yaml",
        description="Create the 'gameday' process work pool unless it exists, run 'prefect "
        "deploy --all' from the checkout (game-day, weekly-resilience, sweep) and install the "
        "reaper. Idempotent.")
    add_api_option(deploy)
    deploy.add_argument("--no-reaper", action="store_true",
                        help="do not install the reaper's automations")
    deploy.set_defaults(handler=_deploy)

    reaper = subparsers.add_parser(
        "reaper", help="the automations that clean up after crashed game days",
        description="A game-day run that crashes is swept at once (its faults reverted, its "
        "environment's slot freed); one silent for 60 s is marked Crashed first.")
    sub = reaper.add_subparsers(dest="reaper_command", metavar="SUBCOMMAND", required=True)
    install = sub.add_parser("install", help="create or update both automations",
                             description="Create or update gameday-reaper and gameday-zombies "
                             "(needs the sweep deployment). Idempotent.")
    add_api_option(install)
    install.set_defaults(handler=_reaper)

    ui = subparsers.add_parser(
        "ui", help="the Prefect UI with everything ready against the demo",
        description="up: start the demo stack (with its Prefect server), register blocks and "
        "limits, import the demo environment, create the deployments and the reaper, start a "
        "process worker; print the UI address. down: stop the worker and the stack by PID.")
    ui_sub = ui.add_subparsers(dest="ui_command", metavar="SUBCOMMAND", required=True)
    ui_sub.add_parser("up", help="start everything").set_defaults(handler=_ui_up)
    ui_sub.add_parser("down", help="stop everything").set_defaults(handler=_ui_down)


def _deploy(args: argparse.Namespace) -> int:
    provision = prefect_layer("orchestration.provision", "chaosctl deploy")
    api = provision.use_api(args.api)
    provision.deploy()
    print(f"deployments on {api} (work pool {provision.WORK_POOL}): "
          f"{', '.join(provision.DEPLOYMENTS)}")
    if not args.no_reaper:
        print(f"reaper automations: {', '.join(provision.install_reaper())}")
    return 0


def _reaper(args: argparse.Namespace) -> int:
    provision = prefect_layer("orchestration.provision", "chaosctl reaper install")
    provision.use_api(args.api)
    print(f"reaper automations installed: {', '.join(provision.install_reaper())}")
    return 0


def _ui_up(args: argparse.Namespace) -> int:
    from gameday.demo.stack import UpOptions, status, up
    from gameday.demo.state import TOKEN_VARIABLE, default_state_dir, load_state

    provision = prefect_layer("orchestration.provision", "chaosctl ui up")
    start_worker = prefect_layer("orchestration.worker", "chaosctl ui up").start_worker

    folder = default_state_dir()
    parts = status(folder)
    state = load_state(folder.resolve()) if parts and all(p.up for p in parts) else None
    if state is None or not state.prefect_api_url:
        print(f"starting the demo stack in {folder} …", flush=True)
        state = up(UpOptions(folder))
    else:
        print(f"the demo stack in {folder} is up; using it")
    os.environ[TOKEN_VARIABLE] = state.token()
    api = provision.use_api(state.prefect_api_url)
    print(f"block types: {', '.join(provision.register_blocks())}")
    _environment, saved = provision.import_environment(state.environment_file)
    print(f"demo environment as blocks: {', '.join(saved)}")
    provision.create_slots(provision.known_environments())
    print("deploying (prefect deploy --all) …", flush=True)
    provision.deploy()
    print(f"deployments: {', '.join(provision.DEPLOYMENTS)}; reaper: "
          f"{', '.join(provision.install_reaper())}")
    pid = start_worker(folder, {"PREFECT_API_URL": api, TOKEN_VARIABLE: state.token()})
    ui = api.rstrip("/").removesuffix("/api")
    log = Path(folder, "logs", "worker.log")
    print(f"worker: pool {provision.WORK_POOL}, pid {pid}, log {log}")
    print()
    print(f"Prefect UI:  {ui}")
    print(f"start a game day: {ui}/deployments → game-day → Run → Custom run "
          "(pick a scenario, environment demo)")
    print(f"postmortems: {ui}/artifacts, and reports/out/<run>/postmortem.md")
    print("stop with:   make ui-down")
    return 0


def _ui_down(args: argparse.Namespace) -> int:
    from gameday.demo.stack import down
    from gameday.demo.state import default_state_dir

    stop_worker = prefect_layer("orchestration.worker", "chaosctl ui down").stop_worker

    folder = default_state_dir()
    pid = stop_worker(folder)
    print(f"worker (pid {pid}) stopped" if pid else "no worker was running")
    parts = down(folder)
    print(f"stopped {len(parts)} demo processes" if parts else "no demo stack was running")
    return 0
