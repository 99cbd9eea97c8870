"""What ``chaosctl start`` prints: the kit's progress and ending, Prefect's own lines only with
``--verbose``, a dry run's plan for a person, and JSON alone on stdout with ``--json``."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from gameday.procs import stop
from tests.flows.conftest import Bench

pytestmark = pytest.mark.integration

#: Lines Prefect's engine logs at INFO for every run and task.
PREFECT_LINES = ("Beginning flow run", "Finished in state", "Created flow run", "| INFO")


def test_a_run_prints_the_kit_not_prefect(bench: Bench) -> None:
    """Progress, outcome, postmortem and run link are shown; Prefect's INFO lines are not."""
    code, out = bench.run("quick-pass")
    assert code == 0, out
    assert "[step] step 1/2" in out and re.search(r"step 2 · error_rate_percent=", out), out
    assert "outcome: passed — every step held" in out
    assert re.search(r"^postmortem: .*postmortem\.md$", out, re.M), out
    (run,) = bench.journals()
    assert "Prefect run: http://127.0.0.1:" in out and run in out
    for line in PREFECT_LINES:
        assert line not in out, out


def test_verbose_shows_prefect_lines_too(bench: Bench) -> None:
    """With --verbose, Prefect's own run and task lines are back, beside the kit's."""
    code, out = bench.run("quick-pass", "--dry-run", "--verbose")
    assert code == 0, out
    assert "Beginning flow run" in out and "Task run 'prepare-" in out, out
    assert "dry run of quick-pass in demo" in out


def test_dry_run_prints_the_plan_for_a_person(bench: Bench) -> None:
    """Steps with fault, dwell, TTL and how long a dead run could leave the fault; guards with
    their preflight value; the baseline; the leftover of another run, listed and left in
    place."""
    bench.stack.add_fault("auth-service", {"kind": "latency", "ms": 5}, run="left-behind")
    code, out = bench.run("quick-pass", "--dry-run")
    assert code == 0, out
    assert "dry run of quick-pass in demo: nothing injected" in out
    assert "ladder (2 steps):" in out
    # The proxy is leased: a dead run leaves its fault for the 3 s lease and its 0.05 s timer.
    assert re.search(r"^  step 1\s+latency 20ms\s+dwell 3s\s+TTL \d+s\s+outlives a dead run "
                     r"by at most 3\.05s \(lease\)$", out, re.M), out
    assert re.search(r"^  step 2\s+latency 40ms\s+dwell 3s\s+TTL \d+s\s+outlives a dead run "
                     r"by at most 3\.05s \(lease\)$", out, re.M), out
    guard = re.search(r"^  error_rate_percent\s+stops the run at > 50 for 2s\s+preflight "
                      r"(\S+)$", out, re.M)
    assert guard and float(guard.group(1)) < 50, out
    assert re.search(r"^baseline \(last \d+s\):$", out, re.M), out
    assert re.search(r"^  latency_p95_ms\s+mean [\d.e+-]+\s+p95 [\d.e+-]+$", out, re.M), out
    leftovers = out.split("leftovers of earlier runs", 1)[1]
    assert "(run left-behind)" in leftovers, out
    assert '"outcome"' not in out and "Traceback" not in out
    assert [r["labels"]["run"] for r in bench.rules()] == ["left-behind"]


def test_json_goes_alone_to_stdout(bench: Bench) -> None:
    """--json: stdout parses as the run's summary with its plan; progress is on stderr."""
    argv = [sys.executable, "-m", "gameday", "start", "quick-pass", "--dry-run", "--json",
            "--env", str(bench.stack.env_file)]
    proc = subprocess.Popen(argv, env=bench.env(), cwd=bench.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            stop(proc.pid)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["outcome"] == "dry_run" and summary["scenario"] == "quick-pass"
    (run,) = bench.journals()
    assert summary["run"] == run and summary["environment"] == "demo"
    steps = summary["plan"]["steps"]
    assert [(s["severity"], s["fault"], s["dwell"]) for s in steps] == [
        (1, "latency 20ms", 3.0), (2, "latency 40ms", 3.0)]
    # The scenario's guard, and the incident guard the demo's Alertmanager adds.
    guard, incident = summary["plan"]["guards"]
    assert guard["name"] == "error_rate_percent" and isinstance(guard["preflight"], float)
    assert incident["name"] == "incident" and incident["preflight"] == 0.0
    assert "game day quick-pass in demo" in err
