"""`chaosctl demo up` with its Prefect server: ready in time, announced, stopped with the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameday import procs
from gameday.demo.stack import UpOptions, down, up
from gameday.demo.state import TOKEN_VARIABLE, demo_env
from gameday.load import load_one
from gameday.models import Environment
from gameday.prefect_http import request

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_up_with_prefect_serves_its_api_and_down_stops_it(tmp_path: Path) -> None:
    """The full stack is up within its deadline; the Prefect API answers; down leaves nothing.

    ``up`` raises when a part is not ready by ``timeout``; how fast it is is not a test's
    business (two busy cores), only that it comes up at all.
    """
    state = up(UpOptions(tmp_path, prefect=True, rate=5, timeout=90))
    try:
        assert state.prefect_api_url is not None
        health = request("GET", f"{state.prefect_api_url}/health", timeout=5)
        assert health.status_code == 200
        environment = load_one(Environment, state.environment_file)
        assert environment.prefect_api_url == state.prefect_api_url
        assert demo_env(tmp_path)["PREFECT_API_URL"] == state.prefect_api_url
        assert TOKEN_VARIABLE in demo_env(tmp_path)
        assert (tmp_path / "prefect" / "prefect.db").exists()
    finally:
        stopped = down(tmp_path)
    prefect = state.part("prefect")
    assert prefect.pid in {part.pid for part in stopped}
    assert not procs.alive(prefect.pid)
    assert not procs.port_open(prefect.ports["http"])
