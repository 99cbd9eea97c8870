"""`chaosctl demo set`: user-service's auth timeout changed on the running session stack."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from gameday import procs
from gameday.demo.settings import set_auth_timeout
from gameday.demo.state import StackState, load_state
from tests.demo_stack import DemoStack

GAUGE = 'service_dependency_timeout_seconds{service="user-service",dependency="auth-service"}'


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _answered(demo_stack: DemoStack, since: float, count: int = 40) -> list[str]:
    """The codes of the first ``count`` load requests started after ``since``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        samples = demo_stack.samples(since)
        if len(samples) >= count:
            return [str(sample["code"]) for sample in samples[:count]]
        time.sleep(0.25)
    raise AssertionError(f"fewer than {count} load requests since the restart")


@pytest.mark.integration
def test_auth_timeout_restarts_user_service_alone(demo_stack: DemoStack) -> None:
    """120 ms: a new user-service on the same port, the gauge follows, requests are answered,
    everything else keeps its PID; 200 ms again restores it, and a third time changes nothing."""
    old = demo_stack.state.part("user-service")
    others = {name: pid for name, pid in demo_stack.pids.items() if name != "user-service"}
    assert _cmdline(old.pid)[-3:-1] == ["--auth-timeout-ms", "200"]
    demo_stack.wait_for(GAUGE, lambda value: value == pytest.approx(0.2), timeout=5)
    try:
        demo_stack.set_auth_timeout(120)
        ready = time.time()
        new = demo_stack.state.part("user-service")
        assert new.pid != old.pid and procs.alive(new.pid) and not procs.alive(old.pid)
        assert (new.ports, new.url, new.log) == (old.ports, old.url, old.log)
        assert demo_stack.pids["user-service"] == new.pid
        assert {name: pid for name, pid in demo_stack.pids.items()
                if name != "user-service"} == others
        recorded = load_state(demo_stack.state_dir)
        assert recorded is not None and recorded.part("user-service") == new
        assert recorded.settings.auth_timeout == pytest.approx(0.12)
        assert _cmdline(new.pid)[-3:-1] == ["--auth-timeout-ms", "120"]
        assert "restarting user-service with an auth timeout of 120ms" in Path(
            new.log).read_text()
        demo_stack.wait_for(GAUGE, lambda value: value == pytest.approx(0.12), timeout=5)
        codes = _answered(demo_stack, ready)
        assert codes.count("200") >= 0.9 * len(codes), codes
    finally:
        demo_stack.set_auth_timeout(200)
    restored = demo_stack.state.part("user-service")
    assert restored.pid not in (old.pid, new.pid) and restored.ports == old.ports
    demo_stack.wait_for(GAUGE, lambda value: value == pytest.approx(0.2), timeout=5)
    unchanged = set_auth_timeout(demo_stack.state_dir, 0.2)
    assert not unchanged.restarted and unchanged.new.pid == restored.pid


def test_a_state_file_from_before_settings_loads_with_the_default() -> None:
    """state.json written without ``settings`` gets user-service's 200 ms."""
    state = StackState.model_validate_json(
        '{"version": 1, "state_dir": "/tmp/x", "created": 0, "prefect": false}')
    assert state.settings.auth_timeout == 0.2


@pytest.mark.parametrize(("argv", "says"), [
    (["set", "--auth-timeout", "120ms"], "start one with 'chaosctl demo up --state"),
    (["set", "--auth-timeout", "fast"], "--auth-timeout: expected a duration like 100ms"),
    (["set", "--auth-timeout", "0ms"], "more than 0"),
    (["up", "--auth-timeout", "1h"], "at most 30s"),
])
def test_demo_set_errors_say_what_to_do(tmp_path: Path, argv: list[str], says: str) -> None:
    """No stack, or a bad duration: exit 2, one line saying why, no traceback, nothing made."""
    folder = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "gameday", "demo", *argv, "--state", str(folder)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert not folder.exists()
