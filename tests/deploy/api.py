"""A small client of the Prefect REST API for the tests: runs, states, inputs, limits.

Plain HTTP keeps the test process free of Prefect settings and event threads; the flows under
test use Prefect's own client. Requests are retried as that client retries them (503 while the
server's SQLite is locked, 429, 502; see ``gameday.prefect_http``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from gameday.prefect_http import request

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class PrefectAPI:
    """The REST API of one Prefect server."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def attempt(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request (retried while the server is busy); its response, whatever it says."""
        return request(method, f"{self.url}{path}", timeout=15.0, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; its JSON (None for an empty answer)."""
        response = self.attempt(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def deployment(self, name: str) -> dict[str, Any]:
        """A deployment by ``flow/deployment`` name."""
        found: dict[str, Any] = self.call("GET", f"/deployments/name/{name}")
        return found

    def create_run(self, deployment: str, **parameters: Any) -> str:
        """A run of ``deployment`` with ``parameters``; its ID."""
        found = self.deployment(deployment)
        run = self.call("POST", f"/deployments/{found['id']}/create_flow_run",
                        json={"parameters": parameters})
        return str(run["id"])

    def flow_run(self, run: str) -> dict[str, Any]:
        """The flow run, with its current state."""
        found: dict[str, Any] = self.call("GET", f"/flow_runs/{run}")
        return found

    def runs(self, flow: str | None = None, **flow_run_filter: Any) -> list[dict[str, Any]]:
        """Flow runs of ``flow`` (by name) matching a ``flow_runs`` filter, e.g.
        ``deployment_id={"any_": [...]}``."""
        body: dict[str, Any] = {"flow_runs": flow_run_filter}
        if flow is not None:
            body["flows"] = {"name": {"any_": [flow]}}
        found: list[dict[str, Any]] = self.call("POST", "/flow_runs/filter", json=body)
        return found

    def states(self, run: str) -> list[dict[str, Any]]:
        """Every state the run went through, oldest first."""
        found: list[dict[str, Any]] = self.call("GET", "/flow_run_states/",
                                                params={"flow_run_id": run})
        return sorted(found, key=lambda s: s["timestamp"])

    def wait(self, run: str, check: Callable[[dict[str, Any]], bool], timeout: float,
             what: str) -> dict[str, Any]:
        """Poll the run until ``check(state)`` holds; the run."""
        deadline = time.monotonic() + timeout
        found = self.flow_run(run)
        while time.monotonic() < deadline:
            found = self.flow_run(run)
            if found["state"] and check(found["state"]):
                return found
            time.sleep(0.3)
        state = found["state"] or {}
        raise AssertionError(f"run {run} not {what} within {timeout:g}s: "
                             f"{state.get('type')} {state.get('name')} {state.get('message')}")

    def wait_final(self, run: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the run is over; the run."""
        return self.wait(run, lambda s: s["type"] in FINAL, timeout, "finished")

    def resume(self, run: str, answer: dict[str, Any]) -> dict[str, Any]:
        """Resume a paused run with ``answer`` as its input; Prefect's orchestration result."""
        found: dict[str, Any] = self.call("POST", f"/flow_runs/{run}/resume",
                                          json={"run_input": answer})
        return found

    def cancel(self, run: str) -> None:
        """Ask for the run's cancellation, as the UI's Cancel button does."""
        self.call("POST", f"/flow_runs/{run}/set_state",
                  json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})

    def limit(self, name: str) -> dict[str, Any]:
        """A global concurrency limit."""
        found: dict[str, Any] = self.call("GET", f"/v2/concurrency_limits/{name}")
        return found

    def artifacts(self, run: str) -> list[dict[str, Any]]:
        """Artifacts created by the flow run itself (not by its subflows)."""
        found: list[dict[str, Any]] = self.call(
            "POST", "/artifacts/filter",
            json={"artifacts": {"flow_run_id": {"any_": [run]}}})
        return found
