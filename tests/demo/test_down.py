"""`chaosctl demo down` stops exactly the recorded processes, also after `up` was killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gameday import procs
from gameday.demo.stack import down
from gameday.demo.state import load_state

pytestmark = pytest.mark.integration
CHAOSCTL = [sys.executable, "-m", "gameday"]


def _chaosctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHAOSCTL, *args], capture_output=True, text=True, timeout=timeout)


def test_down_stops_every_recorded_process(state_folder: Path) -> None:
    """After `up` and `down` no recorded PID is alive and no recorded port listens."""
    result = _chaosctl("demo", "up", "--no-prefect", "--rate", "5", "--state", str(state_folder))
    state = json.loads((state_folder / "state.json").read_text()) \
        if (state_folder / "state.json").exists() else {"parts": []}
    pids = [part["pid"] for part in state["parts"]]
    ports = [port for part in state["parts"] for port in part["ports"].values()]
    try:
        # Checked inside: a failed check must not leave the stack running.
        assert result.returncode == 0, result.stdout + result.stderr
        assert "demo stack up in" in result.stdout
        status = _chaosctl("demo", "status", "--json", "--state", str(state_folder))
        assert status.returncode == 0
        assert all(part["up"] for part in json.loads(status.stdout))
    finally:
        stopped = _chaosctl("demo", "down", "--state", str(state_folder))
    assert stopped.returncode == 0, stopped.stderr
    assert not [pid for pid in pids if procs.alive(pid)]
    assert not [port for port in ports if procs.port_open(port)]
    assert not (state_folder / "state.json").exists()
    assert (state_folder / "traces").is_dir()  # evidence of the game days run on it: kept
    assert _chaosctl("demo", "status", "--state", str(state_folder)).returncode == 1


def test_down_after_a_killed_up_stops_what_it_had_started(state_folder: Path) -> None:
    """SIGKILL `up` half-way: `down` still finds and stops every process it recorded."""
    runner = procs.start([*CHAOSCTL, "demo", "up", "--no-prefect", "--state", str(state_folder)])
    try:
        procs.wait_until(lambda: len(getattr(load_state(state_folder), "parts", [])) >= 4,
                         timeout=60, interval=0.05, what="four parts recorded")
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
    state = load_state(state_folder)
    assert state is not None
    recorded = [part.pid for part in state.parts]
    # A part the runner started but had no time to record wrote its own PID file.
    time.sleep(0.5)
    pidfiles = [int(path.read_text()) for path in (state_folder / "pids").glob("*.pid")]
    assert set(recorded) <= set(pidfiles)
    assert any(procs.alive(pid) for pid in pidfiles)
    stopped = {part.pid for part in down(state_folder)}
    assert stopped >= {pid for pid in pidfiles if pid not in recorded} | set(recorded)
    assert not [pid for pid in pidfiles if procs.alive(pid)]
