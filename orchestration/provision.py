"""Provisioning a Prefect server for gameday: the API to use, block types, environments as
blocks, limits, the work pool and the deployments (the worker is in ``worker.py``).

``chaosctl blocks register``, ``env import``, ``deploy``, ``reaper install`` and ``ui up`` are
thin shells over these functions. Everything is idempotent: run it again and nothing doubles.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from gameday.errors import ConfigError, GameDayError
from gameday.load import catalog_root, load_one
from gameday.models import Environment
from gameday.paths import state_dir
from gameday.prefect_http import request

#: The checkout: ``prefect.yaml`` lives here and workers run flows from here.
CHECKOUT = Path(__file__).resolve().parents[1]
#: The work pool the deployments use (``prefect.yaml``).
WORK_POOL = "gameday"
#: The deployments ``prefect.yaml`` defines, as ``flow/deployment``.
DEPLOYMENTS = ("game-day/game-day", "weekly-resilience/weekly-resilience", "sweep/sweep")


def use_api(url: str | None = None) -> str:
    """Point this process at a Prefect server and check that it answers; its API URL.

    ``url``, else ``$PREFECT_API_URL``, else the API of a running demo stack. Never the
    temporary in-process server Prefect would otherwise start.
    """
    api = url or os.environ.get("PREFECT_API_URL")
    if not api:
        from gameday.demo.state import default_state_dir, load_state

        state = load_state(default_state_dir())
        api = state.prefect_api_url if state else None
    if not api:
        raise ConfigError("no Prefect server: pass --api URL, set PREFECT_API_URL, or start "
                          "the demo (chaosctl demo up)")
    try:
        # Retried as Prefect's client retries: a busy server (503, 429) is not a dead one.
        request("GET", f"{api.rstrip('/')}/health", timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(f"the Prefect server at {api} does not answer: {exc}") from exc
    os.environ["PREFECT_API_URL"] = api
    return api


def known_environments() -> list[str]:
    """Environment names from the catalog and from the state folder (e.g. the demo's)."""
    names = {p.stem for p in (catalog_root() / "environments").glob("*.yaml")}
    names |= {p.parent.name for p in state_dir().glob("*/environment.yaml")}
    return sorted(names)


def register_blocks() -> list[str]:
    """Register the block types (so the UI can create and edit them); their slugs."""
    from blocks import BLOCK_TYPES

    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema(_sync=True)  # type: ignore[call-arg]
    return [b.get_block_type_slug() for b in BLOCK_TYPES]


def create_slots(environments: list[str]) -> list[str]:
    """Each environment's one-slot concurrency limit, unless it exists; the names created."""
    from orchestration.slots import ensure_slots

    return asyncio.run(ensure_slots(environments))


def import_environment(path: Path) -> tuple[Environment, list[str]]:
    """An environment file as blocks (its secrets read now), plus its slot; the blocks saved."""
    from blocks import save_environment

    environment = load_one(Environment, path)
    register_blocks()
    saved = save_environment(environment)
    create_slots([environment.name])
    return environment, saved


def create_work_pool(name: str = WORK_POOL) -> bool:
    """The process work pool, unless it exists; whether it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async def create() -> bool:
        async with get_client() as client:
            try:
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            except ObjectAlreadyExists:
                return False
            return True

    return asyncio.run(create())


def deploy() -> str:
    """``prefect deploy --all`` from the checkout (pool first); its output. Raises
    ``GameDayError`` with the output when it fails."""
    create_work_pool()
    prefect = Path(sys.executable).with_name("prefect")
    done = subprocess.run([str(prefect), "--no-prompt", "deploy", "--all"], cwd=CHECKOUT,
                          env={"DO_NOT_TRACK": "1", **os.environ}, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise GameDayError(f"prefect deploy failed ({done.returncode}):\n{done.stdout}"
                           f"{done.stderr}")
    return done.stdout


def install_reaper() -> list[str]:
    """The reaper's automations (needs the ``sweep`` deployment); their names."""
    from orchestration.reaper import install

    return asyncio.run(install())
