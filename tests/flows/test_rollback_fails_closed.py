"""Rollback fails closed end to end: a run whose faults cannot be checked is never "clean".

A game day is SIGKILLed with its fault in place; its crash hook, the sweep flow and
``chaosctl stop`` then run in a process without the proxies' token, as a worker missing the
secret would. Each reports the rollback failed: journal, exit code, postmortem, run metrics.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gameday.demo.state import TOKEN_VARIABLE
from gameday.journal import Event, RevertFailedEvent
from gameday.notify.pushgateway import RunLabels, group_url
from gameday.procs import stop
from tests.flows.conftest import REPO, Bench, dump, finished, outcome, start_proxy

pytestmark = pytest.mark.integration


def without_token(bench: Bench) -> dict[str, str]:
    """The test's ``chaosctl`` environment, less the proxies' admin token."""
    env = bench.env()
    env.pop(TOKEN_VARIABLE, None)
    return env


def tokenless(bench: Bench, *argv: str, timeout: float = 120.0) -> tuple[int, str]:
    """Run ``python ARGV`` without the token, to its end (stopped by PID if it overstays)."""
    proc = subprocess.Popen([sys.executable, *argv], env=without_token(bench), cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return finished(proc, timeout)


def killed_run(bench: Bench) -> str:
    """A game day SIGKILLed while its fault is in place (no rollback ran); its run ID."""
    proc = bench.start("long-hold")
    rule = bench.wait_for_rule("long-hold")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return str(rule["labels"]["run"])


def rollback_failed_metric(bench: Bench, run: str) -> float | None:
    """``chaos_run_rollback_failed`` of the run's group on the stack's Pushgateway."""
    url = bench.stack.state.pushgateway_url
    assert url, "the demo stack runs a Pushgateway"
    groups = httpx.get(f"{url}/api/v1/metrics", timeout=5, trust_env=False).json()["data"]
    for group in groups:
        if group.get("labels", {}).get("run") == run:
            series = group.get("chaos_run_rollback_failed", {}).get("metrics", [])
            return float(series[0]["value"]) if series else None
    return None


def forget_group(bench: Bench, run: str) -> None:
    """Delete the run's group, which a failed rollback keeps for a person to clear."""
    url = bench.stack.state.pushgateway_url
    if url:
        httpx.delete(group_url(url, RunLabels(run, "", "demo")), timeout=5, trust_env=False)


def unchecked_proxy(bench: Bench, events: list[Event]) -> RevertFailedEvent:
    """The journal's revert failure at the auth proxy, which names the missing token."""
    admin = bench.stack.proxy_admin["auth-service"].rstrip("/")
    found = [e for e in events if isinstance(e, RevertFailedEvent) and e.endpoint == admin]
    assert found, dump(events)
    assert TOKEN_VARIABLE in found[0].error and "is not set" in found[0].error, found[0]
    return found[0]


def rollback_section(bench: Bench, run: str) -> str:
    """The postmortem's rollback section."""
    report = (bench.root / "reports" / run / "postmortem.md").read_text()
    return report.split("## Rollback", 1)[1].split("\n## ", 1)[0]


def test_crash_hook_without_the_token_reports_rollback_failed(bench: Bench) -> None:
    """The crash hook cannot build the proxy driver: rollback_failed, named, and alerted on."""
    run = killed_run(bench)
    try:
        code, out = tokenless(bench, "-m", "tests.flows.dead_run", "hook", run)
        assert code == 0, out
        events = bench.journals()[run]
        assert outcome(events) == "rollback_failed", dump(events)
        unchecked_proxy(bench, events)
        assert any(getattr(e, "notice", "") == "rollback_failed" for e in events), dump(events)
        section = rollback_section(bench, run)
        assert bench.stack.proxy_admin["auth-service"].rstrip("/") in section, section
        assert f"{TOKEN_VARIABLE} is not set" in section, section
        assert rollback_failed_metric(bench, run) == 1.0

        code, out = tokenless(bench, "-m", "gameday", "stop", "--env", str(bench.stack.env_file))
        assert code == 5, out
        for admin in bench.stack.proxy_admin.values():
            assert f"proxy at {admin.rstrip('/')} could not be checked" in out, out
    finally:
        forget_group(bench, run)


def test_sweep_without_the_token_reports_rollback_failed(bench: Bench) -> None:
    """The sweep flow reaps the dead run but cannot check its proxy: the run ends failed."""
    run = killed_run(bench)
    try:
        code, out = tokenless(bench, "-m", "tests.flows.dead_run", "sweep", run,
                              str(bench.stack.env_file))
        assert code == 0, out
        answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        assert answer["state"] == "FAILED" and "faults may remain" in answer["message"], answer
        events = bench.journals()[run]
        assert outcome(events) == "rollback_failed", dump(events)
        unchecked_proxy(bench, events)
        assert f"{TOKEN_VARIABLE} is not set" in rollback_section(bench, run)
        assert rollback_failed_metric(bench, run) == 1.0
    finally:
        forget_group(bench, run)


def test_sigterm_exits_5_when_the_rollback_fails(bench: Bench, spare_proxy: dict[str, int],
                                                 tmp_path: Path) -> None:
    """SIGTERM while the run's proxy is gone: the rollback fails, and exit 5 beats 143."""
    pid = start_proxy(bench, spare_proxy, tmp_path / "proxy.log")
    admin = f"http://127.0.0.1:{spare_proxy['admin']}"
    endpoints = yaml.safe_load(bench.stack.env_file.read_text())["endpoints"]
    endpoints[0]["admin_url"] = admin
    run = ""
    try:
        proc = bench.start("long-hold", env_file=bench.environment_file(endpoints=endpoints))
        run = str(bench.wait_for_rule("long-hold", admin=admin)["labels"]["run"])
        stop(pid, grace=0.0)
        proc.send_signal(signal.SIGTERM)
        code, out = finished(proc)
        assert code == 5, out
        assert "cancelled by signal SIGTERM" in out and "faults may remain" in out, out
        assert "Crash detected" not in out and "Traceback" not in out, out
        events = bench.journals()[run]
        assert outcome(events) == "rollback_failed", dump(events)
    finally:
        stop(pid)
        if run:
            forget_group(bench, run)
