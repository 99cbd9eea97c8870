"""Game days from deployments, on the demo stack's Prefect server with a real process worker.

Once per package: a test catalog of short scenarios, the demo environment imported as blocks
(``chaosctl env import``), the work pool, the deployments and the reaper (``chaosctl deploy``),
and a ``game-day/unhooked`` deployment whose flow has no crash or cancellation hooks. Once per
module: a process worker polling every second, in its own session, stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gameday.journal import Event, read_journal
from gameday.procs import start, stop
from gameday.protocol.lock import EnvironmentLock, Holder
from tests.demo_stack import DemoStack
from tests.deploy.api import PrefectAPI

REPO = Path(__file__).resolve().parents[2]
GUARD = {"error_rate_percent": "> 50 for 2s"}


def _latency(name: str, *dwells: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "fault": {"kind": "latency", "ms": 20}, "guards": GUARD,
            "steps": [{"ms": 20 + 10 * i, "dwell": d} for i, d in enumerate(dwells)], **extra}


SCENARIOS: list[dict[str, Any]] = [
    _latency("ui-quick", "2s"),
    # Long enough that the second run starts (about 4 s) while this one still holds.
    _latency("ui-short-hold", "15s"),
    # Expires by itself only after 150 s: a revert well before that was not the TTL's doing.
    _latency("ui-hold", "90s", ttl_margin="60s"),
    _latency("weekly-a", "2s", suites=["weekly"]),
    _latency("weekly-b", "2s", suites=["weekly"]),
    _latency("weekly-severe", "2s", "2s", suites=["weekly"]),
]


@dataclass
class Deployed:
    """The deployments on the demo stack's Prefect server, and helpers to watch runs."""

    stack: DemoStack
    root: Path
    api: PrefectAPI
    #: What ``chaosctl env import`` printed.
    import_output: str = ""

    @property
    def state(self) -> Path:
        """The flows' state folder (journals, locks)."""
        return self.root / "state"

    def env(self) -> dict[str, str]:
        """Environment variables of the worker and of ``chaosctl``/``prefect`` commands."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        return {**base, **self.stack.env(), "PREFECT_API_URL": self.api.url,
                "PREFECT_HOME": str(self.root / "prefect-home"),
                "GAMEDAY_CATALOG": str(self.root / "catalog"), "GAMEDAY_STATE": str(self.state),
                "GAMEDAY_REPORTS": str(self.root / "reports"),
                "GAMEDAY_HISTORY": str(self.root / "history"), "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def command(self, *argv: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """Run a command from the checkout with :meth:`env`; its result (output merged)."""
        return subprocess.run(list(argv), cwd=REPO, env=self.env(), text=True, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)

    def environment_file(self, **changes: Any) -> str:
        """A copy of the demo's environment file with ``changes``; its path."""
        data = yaml.safe_load(self.stack.env_file.read_text()) | changes
        path = self.root / f"env-{len(list(self.root.glob('env-*')))}.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    def journal(self, run: str) -> list[Event]:
        """A run's journal (empty when it has none yet)."""
        path = self.state / "runs" / run / "journal.jsonl"
        return read_journal(path) if path.exists() else []

    def notes(self, run: str, kind: str) -> list[Any]:
        """The run's journal notes of ``kind``."""
        return [e for e in self.journal(run) if getattr(e, "kind", None) == kind]

    def rules(self) -> list[dict[str, Any]]:
        """Rules in place on the auth proxy."""
        response = httpx.get(f"{self.stack.proxy_admin['auth-service']}/rules", timeout=5,
                             headers={"authorization": f"Bearer {self.stack.token}"},
                             trust_env=False)
        response.raise_for_status()
        rules: list[dict[str, Any]] = response.json()["rules"]
        return rules

    def wait_for_rule(self, run: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first rule of ``run`` on the auth proxy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.rules() if r["labels"]["run"] == run]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"run {run} applied no rule within {timeout:g}s")

    def holder(self) -> Holder | None:
        """Who holds the demo environment's file lock."""
        return EnvironmentLock("demo", self.state / "locks" / "demo.lock").holder()


@pytest.fixture(scope="package")
def deployed(demo_stack: DemoStack, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """The test catalog, the demo environment as blocks, the deployments and the reaper."""
    root = tmp_path_factory.mktemp("ui")
    catalog = root / "catalog"
    (catalog / "scenarios").mkdir(parents=True)
    shutil.copy(REPO / "catalog" / "signals.yaml", catalog / "signals.yaml")
    common = {"description": "test", "owner": "tests", "environments": ["demo"],
              "target": {"service": "user-service", "dependency": "auth-service"},
              "max_duration": "10m",
              "rollback": {"recovery": {"timeout": "10s", "tolerance_percent": 100}}}
    (catalog / "scenarios" / "ui.yaml").write_text(yaml.safe_dump([common | s
                                                                    for s in SCENARIOS]))
    bench = Deployed(demo_stack, root, PrefectAPI(str(demo_stack.state.prefect_api_url)))
    chaosctl = [sys.executable, "-m", "gameday"]
    imported = bench.command(*chaosctl, "env", "import", str(demo_stack.env_file))
    assert imported.returncode == 0, imported.stdout
    bench.import_output = imported.stdout
    for argv in ([*chaosctl, "deploy"],
                 [str(Path(sys.executable).with_name("prefect")), "--no-prompt", "deploy",
                  "tests/deploy/unhooked.py:game_day_unhooked", "--name", "unhooked",
                  "--pool", "gameday"]):
        done = bench.command(*argv)
        assert done.returncode == 0, done.stdout
    return bench


@pytest.fixture(scope="module")
def ui(deployed: Deployed, request: pytest.FixtureRequest) -> Iterator[Deployed]:
    """A process worker for the ``gameday`` pool while this module's tests run."""
    log = deployed.root / f"worker-{request.module.__name__.rsplit('.', 1)[-1]}.log"
    prefect = str(Path(sys.executable).with_name("prefect"))
    env = deployed.env() | {"PREFECT_WORKER_QUERY_SECONDS": "1"}
    worker = start([prefect, "worker", "start", "--pool", "gameday", "--type", "process"],
                   log=log, env=env, cwd=REPO)
    try:
        yield deployed
    finally:
        stop(worker.pid, grace=10.0)
        deployed.stack.clear_faults()


@pytest.fixture
def bench(ui: Deployed) -> Iterator[Deployed]:
    """The module's deployments and worker, on a calm service; faults cleared after the test."""
    ui.stack.clear_faults()
    ui.stack.wait_calm()  # a breaker tripped by an earlier test would fail preflight
    yield ui
    ui.stack.clear_faults()
