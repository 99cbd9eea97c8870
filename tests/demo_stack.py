"""The ``demo_stack`` fixture: one real demo stack (with Prefect) per test session.

Use it from any test::

    @pytest.mark.integration
    def test_something(demo_stack: DemoStack) -> None:
        demo_stack.add_fault("auth-service", {"kind": "latency", "ms": 120}, run="t1")
        ...

It runs ``chaosctl demo up``'s engine in a temporary state folder, exports
``GAMEDAY_DEMO_TOKEN`` for the session (the environment file references it) and stops every
process by PID at the end. Tests that inject faults remove them again (``clear_faults``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gameday.demo.parts import point_rules_file
from gameday.demo.settings import set_auth_timeout
from gameday.demo.stack import UpOptions, down, up
from gameday.demo.state import TOKEN_VARIABLE, StackState
from gameday.drivers.transport import TransportDriver
from gameday.load import load_one
from gameday.models import Environment

#: user-service's 5xx share over the last 4 s, in percent (0 when there are no errors).
CALM = ('100 * (sum(rate(service_requests_total{service="user-service", code=~"5.."}[4s]))'
        ' or vector(0)) / sum(rate(service_requests_total{service="user-service"}[4s]))')


@dataclass
class DemoStack:
    """A running demo stack and helpers to observe and disturb it.

    ``state`` is replaced when a setting restarts a part, so PIDs read through it stay true.
    """

    state: StackState
    token: str

    @property
    def state_dir(self) -> Path:
        """The stack's state folder."""
        return self.state.folder

    @property
    def env_file(self) -> Path:
        """The demo's environment file (``environment.yaml`` in the state folder)."""
        return self.state.environment_file

    @property
    def prometheus_url(self) -> str:
        """Prometheus, scraping every part each second."""
        return self.state.prometheus_url

    @property
    def user_service_url(self) -> str:
        """user-service's front door."""
        return self.state.user_service_url

    @property
    def loadgen_url(self) -> str:
        """The load generator's API (``/samples``, ``/rate``, ``/metrics``)."""
        return self.state.loadgen_url

    @property
    def proxy_admin(self) -> dict[str, str]:
        """Proxy admin URL by dependency: ``auth-service``, ``redis`` and ``postgres``."""
        return self.state.proxy_admin_urls

    @property
    def pids(self) -> dict[str, int]:
        """PID of each part."""
        return {part.name: part.pid for part in self.state.parts}

    def environment(self) -> Environment:
        """The environment file, loaded and validated."""
        return load_one(Environment, self.env_file)

    def env(self) -> dict[str, str]:
        """Environment variables a client needs (the token)."""
        return {TOKEN_VARIABLE: self.token}

    def query(self, promql: str, at: float | None = None) -> float | None:
        """The first value of an instant query, or None when it returns nothing."""
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params=params,
                             timeout=5.0, trust_env=False)
        response.raise_for_status()
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, check: Callable[[float], bool], timeout: float = 30.0,
                 ) -> float:
        """Poll ``promql`` until ``check`` holds for its value; that value."""
        deadline = time.monotonic() + timeout
        value: float | None = None
        while time.monotonic() < deadline:
            value = self.query(promql)
            if value is not None and check(value):
                return value
            time.sleep(0.5)
        raise AssertionError(f"{promql} never met the check within {timeout:g}s (last {value})")

    def wait_calm(self, timeout: float = 60.0) -> None:
        """Wait until user-service answers without 5xx (a tripped breaker has closed again)."""
        self.wait_for(CALM, lambda errors: errors < 1.0, timeout=timeout)

    def _admin(self, dependency: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, f"{self.proxy_admin[dependency]}{path}",
                                 headers={"authorization": f"Bearer {self.token}"},
                                 timeout=5.0, trust_env=False, **kwargs)
        response.raise_for_status()
        return response

    def add_fault(self, dependency: str, fault: dict[str, Any], run: str, ttl: float = 60.0,
                  step: int = 1) -> dict[str, Any]:
        """Inject ``fault`` (catalog fields) on the proxy in front of ``dependency``."""
        labels = {"run": run, "scenario": "test", "environment": "demo", "step": str(step)}
        body = {"fault": fault, "labels": labels, "ttl": ttl}
        result: dict[str, Any] = self._admin(dependency, "POST", "/rules", json=body).json()
        return result

    def clear_faults(self) -> None:
        """Remove every rule from the proxies and from user-service's fault points' file."""
        for dependency in self.proxy_admin:
            self._admin(dependency, "PUT", "/rules", json={"rules": []})
        points = TransportDriver(point_rules_file(self.state_dir))
        for handle in points.active():
            points.revert(handle)

    def set_rate(self, rate: float) -> None:
        """Change the load generator's request rate (0 pauses it)."""
        httpx.put(f"{self.loadgen_url}/rate", json={"rate": rate}, timeout=5.0,
                  trust_env=False).raise_for_status()

    def set_auth_timeout(self, ms: float) -> None:
        """Restart user-service with an auth timeout of ``ms`` milliseconds (as ``chaosctl demo
        set`` does) and wait until Prometheus scrapes the new process."""
        self.state = set_auth_timeout(self.state_dir, ms / 1000).state

    def samples(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Load requests started after ``since`` (unix seconds): ``t``, ``ms``, ``code``."""
        response = httpx.get(f"{self.loadgen_url}/samples", params={"since": since},
                             timeout=5.0, trust_env=False)
        response.raise_for_status()
        samples: list[dict[str, Any]] = response.json()["samples"]
        return samples


@pytest.fixture(scope="session")
def demo_stack() -> Iterator[DemoStack]:
    """A demo stack with its Prefect server, up for the whole session, stopped by PID at the
    end (game-day flows run against the server)."""
    # PostgreSQL runs as the postgres user, which cannot enter pytest's 0700 folders: a
    # folder of its own, enterable, keeps the cluster inside the state folder as in a checkout.
    folder = Path(tempfile.mkdtemp(prefix="gameday-demo-stack-"))
    folder.chmod(0o711)
    # Generous: two cores are shared with other test runs.
    state = up(UpOptions(folder, prefect=True, timeout=120.0))
    stack = DemoStack(state, state.token())
    before = os.environ.get(TOKEN_VARIABLE)
    os.environ[TOKEN_VARIABLE] = stack.token
    try:
        yield stack
    finally:
        if before is None:
            os.environ.pop(TOKEN_VARIABLE, None)
        else:
            os.environ[TOKEN_VARIABLE] = before
        down(folder)
        shutil.rmtree(folder, ignore_errors=True)
