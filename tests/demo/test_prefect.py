"""`chaosctl demo up` with its Prefect server: ready in time, announced, stopped with the rest."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import asyncpg
import pytest

from gameday import procs
from gameday.demo.stack import UpOptions, down, up
from gameday.demo.state import TOKEN_VARIABLE, StackState, demo_env
from gameday.load import load_one
from gameday.models import Environment
from gameday.prefect_http import request

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _moved_cluster(notes: list[str]) -> Path | None:
    """The cluster folder in /var/tmp that up used because pytest's 0700 folder is out of the
    postgres user's reach (None when it runs unprivileged and nothing moved)."""
    if os.geteuid() != 0:
        assert notes == []
        return None
    assert len(notes) == 1 and "cannot enter" in notes[0], notes
    found = re.search(r"its data is in (\S+) instead", notes[0])
    assert found is not None, notes[0]
    return Path(found.group(1)) / "postgres"


def _prefect_tables(folder: Path, state: StackState) -> int:
    """Tables in the cluster's ``prefect`` database, asked of PostgreSQL directly."""
    password = (folder / "postgres.password").read_text()
    port = state.part("postgres").ports["tcp"]

    async def count() -> int:
        conn = await asyncpg.connect(f"postgresql://gameday@127.0.0.1:{port}/prefect",
                                     password=password, timeout=10)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"))
        finally:
            await conn.close()

    return asyncio.run(count())


def test_up_with_prefect_serves_its_api_and_down_stops_it(tmp_path: Path) -> None:
    """The full stack is up within its deadline; the Prefect API answers; down leaves nothing.

    ``up`` raises when a part is not ready by ``timeout``; how fast it is is not a test's
    business (two busy cores), only that it comes up at all.
    """
    state = up(UpOptions(tmp_path, prefect=True, rate=5, timeout=90))
    moved = _moved_cluster(state.notes)
    try:
        assert state.prefect_api_url is not None
        health = request("GET", f"{state.prefect_api_url}/health", timeout=5)
        assert health.status_code == 200
        environment = load_one(Environment, state.environment_file)
        assert environment.prefect_api_url == state.prefect_api_url
        assert demo_env(tmp_path)["PREFECT_API_URL"] == state.prefect_api_url
        assert TOKEN_VARIABLE in demo_env(tmp_path)
        # Its state is in the demo's PostgreSQL, not in a SQLite file.
        assert not (tmp_path / "prefect" / "prefect.db").exists()
        assert _prefect_tables(tmp_path, state) > 10
    finally:
        stopped = down(tmp_path)
        if moved is not None:
            shutil.rmtree(moved.parent, ignore_errors=True)
    prefect = state.part("prefect")
    assert prefect.pid in {part.pid for part in stopped}
    assert not procs.alive(prefect.pid)
    assert not procs.port_open(prefect.ports["http"])
