"""A real Pushgateway for the run-metrics tests, readers of its groups, and the flows' bench."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gameday import procs
from gameday.demo import pushgateway
from tests.flows.conftest import bench  # noqa: F401 - game days on the demo stack, as in flows


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Pushgateway on a free port of 127.0.0.1 (no persistence), stopped by PID."""
    port = procs.free_port()
    log: Path = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    process = procs.start(pushgateway.argv(port), log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        procs.wait_until(lambda: _ready(url), timeout=30, what="the Pushgateway")
        yield url
    finally:
        procs.stop(process.pid)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def groups(url: str) -> list[dict[str, Any]]:
    """Every group on the Pushgateway, as its API lists them."""
    response = httpx.get(f"{url}/api/v1/metrics", timeout=5, trust_env=False)
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def group_of(url: str, run: str) -> dict[str, Any] | None:
    """The group of ``run``, or None."""
    return next((g for g in groups(url) if g["labels"].get("run") == run), None)


def value(group: dict[str, Any], name: str, **labels: str) -> float | None:
    """A metric's value in a group (the first series whose labels include ``labels``)."""
    family = group.get(name)
    if family is None:
        return None
    for series in family["metrics"]:
        if all(series["labels"].get(k) == v for k, v in labels.items()):
            return float(series["value"])
    return None
