"""Running real game days against the demo stack and its Prefect server.

Each test gets its own catalog (short ladders), state folder and reports folder; game days
run as ``chaosctl start`` processes in their own session, so tests can signal them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gameday.journal import Event, read_journal
from gameday.procs import alive, free_port, port_open, stop, wait_until
from gameday.procs import start as start_process
from tests.demo_stack import DemoStack

REPO = Path(__file__).resolve().parents[2]
GUARD = {"error_rate_percent": "> 5 for 1s"}

SCENARIOS: list[dict[str, Any]] = [
    {"name": "quick-pass", "steps": [{"ms": 20, "dwell": "3s"}, {"ms": 40, "dwell": "3s"}],
     "fault": {"kind": "latency", "ms": 20}, "guards": {"error_rate_percent": "> 50 for 2s"},
     "signals": {"latency_p95_ms": "<= 2000"}},
    {"name": "quick-trip", "steps": [{"ms": 20, "dwell": "3s"}, {"ms": 450, "dwell": "20s"}],
     "fault": {"kind": "latency", "ms": 20}, "guards": GUARD,
     "signals": {"error_rate_percent": "<= 0.5"}},
    {"name": "long-hold", "steps": [{"ms": 30, "dwell": "8s"}], "ttl_margin": "2s",
     "fault": {"kind": "latency", "ms": 30}, "guards": {"error_rate_percent": "> 50 for 2s"}},
    {"name": "longer-hold", "steps": [{"ms": 30, "dwell": "60s"}], "ttl_margin": "2s",
     "fault": {"kind": "latency", "ms": 30}, "guards": {"error_rate_percent": "> 50 for 2s"}},
    {"name": "blind-hold", "steps": [{"ms": 30, "dwell": "20s"}], "ttl_margin": "2s",
     "fault": {"kind": "latency", "ms": 30},
     "guards": {"error_rate_percent": {"op": ">", "threshold": 50, "for": "2s",
                                       "on_no_data": "ignore"}}},
    {"name": "needs-load", "steps": [{"ms": 20, "dwell": "3s"}],
     "fault": {"kind": "latency", "ms": 20}, "guards": {"error_rate_percent": "> 50 for 2s"},
     "trigger": {"min_load": {"query": 'sum(rate(service_requests_total{service="{service}"}'
                                       '[{window}]))', "at_least": 100000}}},
    # 260 ms breaks user-service's 200 ms auth timeout; the first probe, at 140 ms, holds its
    # minute: long enough to stop the run in the middle of it.
    {"name": "search-hold", "steps": [{"ms": 20, "dwell": "3s"}, {"ms": 260, "dwell": "20s"}],
     "ttl_margin": "2s", "fault": {"kind": "latency", "ms": 20}, "guards": GUARD,
     "search": {"resolution": "100ms", "dwell": "60s"}},
    {"name": "ttl-overflow", "steps": [{"ms": 20, "dwell": "3s"}, {"ms": 30, "dwell": "2h"}],
     "max_duration": "3h", "fault": {"kind": "latency", "ms": 20},
     "guards": {"error_rate_percent": "> 50 for 2s"}},
]


def repo_scenarios(root: Path, source: str, names: tuple[str, ...] = (),
                   dwell: str | None = None, **changes: Any) -> None:
    """A catalog in ``root/catalog``: the repo's signals and the scenarios of
    ``catalog/scenarios/<source>`` (only ``names`` when given), each with its runbook made
    absolute, every step's dwell set to ``dwell`` (when given) and ``changes`` applied."""
    catalog = root / "catalog"
    (catalog / "scenarios").mkdir(parents=True)
    shutil.copy(REPO / "catalog" / "signals.yaml", catalog / "signals.yaml")
    items = yaml.safe_load((REPO / "catalog" / "scenarios" / source).read_text())
    items = [item for item in items if not names or item["name"] in names]
    assert not names or len(items) == len(names), f"{source} lacks one of {names}"
    for item in items:
        item["runbook"] = str(REPO / item["runbook"])
        if dwell is not None:
            item["steps"] = [step | {"dwell": dwell} for step in item["steps"]]
        item.update(changes)
    (catalog / "scenarios" / source).write_text(yaml.safe_dump(items))


@dataclass
class Bench:
    """One test's catalog, state and stack, and helpers to run and inspect game days."""

    stack: DemoStack
    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / "catalog"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment variables of a ``chaosctl`` process for this test."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        return {**base, **self.stack.env(), "GAMEDAY_CATALOG": str(self.catalog),
                "GAMEDAY_STATE": str(self.state), "GAMEDAY_REPORTS": str(self.root / "reports"),
                "PREFECT_API_URL": str(self.stack.state.prefect_api_url),
                "DO_NOT_TRACK": "1", "GAMEDAY_REQUESTER": "tester", **extra}

    def environment_file(self, **changes: Any) -> Path:
        """The demo's environment file, with ``changes`` applied (a copy)."""
        data = yaml.safe_load(self.stack.env_file.read_text()) | changes
        path = self.root / f"env-{len(list(self.root.glob('env-*')))}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def start(self, *args: str, env_file: Path | None = None, **extra: str
              ) -> subprocess.Popen[str]:
        """``chaosctl start ARGS`` in its own session."""
        argv = [sys.executable, "-m", "gameday", "start", *args,
                "--env", str(env_file or self.stack.env_file)]
        return subprocess.Popen(argv, env=self.env(**extra), cwd=self.root, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def run(self, *args: str, env_file: Path | None = None, timeout: float = 180.0,
            **extra: str) -> tuple[int, str]:
        """Run ``chaosctl start ARGS`` to its end; exit code and output."""
        return finished(self.start(*args, env_file=env_file, **extra), timeout)

    def rules(self, dependency: str = "auth-service", admin: str | None = None
              ) -> list[dict[str, Any]]:
        """Rules in place on a proxy (by dependency, or at an admin URL)."""
        admin = admin or self.stack.proxy_admin[dependency]
        response = httpx.get(f"{admin}/rules", timeout=5,
                             headers={"authorization": f"Bearer {self.stack.token}"},
                             trust_env=False)
        response.raise_for_status()
        rules: list[dict[str, Any]] = response.json()["rules"]
        return rules

    def injected(self, dependency: str = "auth-service") -> float:
        """``chaos_faults_injected_total`` summed over a proxy's series."""
        text = httpx.get(f"{self.stack.proxy_admin[dependency]}/metrics", timeout=5,
                         headers={"authorization": f"Bearer {self.stack.token}"},
                         trust_env=False).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("chaos_faults_injected_total"))

    def journals(self) -> dict[str, list[Event]]:
        """Every run's journal in this test's state folder, by run id."""
        return {p.parent.name: read_journal(p)
                for p in (self.state / "runs").glob("*/journal.jsonl")}

    def wait_for_rule(self, scenario: str, timeout: float = 60.0, admin: str | None = None,
                      step: int | None = None) -> dict[str, Any]:
        """The first rule of ``scenario`` (of its step label ``step``, if given) to appear on
        the auth proxy (or at ``admin``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.rules(admin=admin) if r["labels"]["scenario"] == scenario
                     and (step is None or r["labels"]["step"] == step)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no rule of {scenario} appeared within {timeout:g}s")


def finished(proc: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, str]:
    """Wait for a ``chaosctl start`` process (stopped by PID if it overstays); code, output."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            stop(proc.pid)
    return proc.returncode, out


@dataclass
class Output:
    """What a ``chaosctl start`` process printed, each line with when it came."""

    code: int
    lines: list[tuple[float, str]]
    #: When the process had exited (``time.monotonic()``).
    exited: float

    @property
    def text(self) -> str:
        """The whole output."""
        return "".join(line for _, line in self.lines)

    def first(self, part: str) -> float:
        """When the first line containing ``part`` came."""
        found = [at for at, line in self.lines if part in line]
        assert found, f"no line with {part!r} in:\n{self.text}"
        return found[0]


def timed(proc: subprocess.Popen[str], timeout: float = 120.0) -> Output:
    """Read a ``chaosctl start`` process's output to its end (stopped by PID if it overstays),
    timing each line and the exit."""
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.append((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            stop(proc.pid)
    exited = time.monotonic()
    reader.join(timeout=10)
    return Output(proc.returncode, lines, exited)


def signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    """Send ``sig`` to the process group of ``proc`` (as a terminal's Ctrl-C does)."""
    os.killpg(proc.pid, sig)


@pytest.fixture
def bench(demo_stack: DemoStack, tmp_path: Path) -> Iterator[Bench]:
    """A fresh catalog of short scenarios and state folders on the shared demo stack."""
    catalog = tmp_path / "catalog"
    (catalog / "scenarios").mkdir(parents=True)
    shutil.copy(REPO / "catalog" / "signals.yaml", catalog / "signals.yaml")
    common = {"description": "test", "owner": "tests",
              "target": {"service": "user-service", "dependency": "auth-service"},
              "environments": ["demo"], "max_duration": "5m",
              "rollback": {"recovery": {"timeout": "20s", "tolerance_percent": 100}}}
    items = [common | s for s in SCENARIOS]
    (catalog / "scenarios" / "tests.yaml").write_text(yaml.safe_dump(items))
    bench = Bench(demo_stack, tmp_path)
    # An earlier test may have tripped user-service's breaker: start from a calm service, or
    # preflight would rightly refuse with a guard already breached.
    demo_stack.clear_faults()
    demo_stack.wait_calm()
    yield bench
    demo_stack.clear_faults()


@pytest.fixture
def spare_proxy(bench: Bench) -> dict[str, int]:
    """Ports for an extra gameday proxy in front of auth-service, started (and restarted or
    killed) by the test with ``start_proxy``."""
    upstream = int(bench.stack.state.part("auth-service").url.rsplit(":", 1)[1])
    return {"listen": free_port(), "admin": free_port(), "upstream": upstream}


def start_proxy(bench: Bench, ports: dict[str, int], log: Path) -> int:
    """Start the spare proxy on ``ports`` with the stack's token; its PID, to stop it by."""
    argv = [sys.executable, "-m", "gameday", "proxy", "--listen",
            f"127.0.0.1:{ports['listen']}", "--upstream",
            f"http://127.0.0.1:{ports['upstream']}", "--admin", f"127.0.0.1:{ports['admin']}"]
    proc = start_process(argv, log=log, env={"GAMEDAY_PROXY_TOKEN": bench.stack.token})
    wait_until(lambda: port_open(ports["admin"]), 30, what="spare proxy")
    return proc.pid


def outcome(events: list[Event]) -> str | None:
    """The ``run_ended`` outcome of a journal."""
    ends = [e for e in events if getattr(e, "event", "") == "run_ended"]
    return getattr(ends[-1], "outcome", None) if ends else None


def dump(events: list[Event]) -> str:
    """A journal, for assertion messages."""
    return "\n".join(json.dumps(e.model_dump(mode="json"))[:300] for e in events)


__all__ = ["Bench", "Output", "alive", "dump", "finished", "outcome", "signal", "signal_group",
           "timed"]
