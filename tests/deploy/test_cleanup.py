"""One game day per environment, cancellation from the UI, and the reaper after a SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from tests.deploy.conftest import Deployed

pytestmark = pytest.mark.integration


def _window(events: list[Any]) -> tuple[float, float]:
    """From the first fault intent to the last revert of a journal."""
    intents = [e.at for e in events if getattr(e, "event", "") == "fault_intent"]
    reverts = [e.at for e in events if getattr(e, "event", "") == "fault_reverted"]
    assert intents and reverts, "the run injected and reverted nothing"
    return min(intents), max(reverts)


def test_second_run_waits_for_the_environment(bench: Deployed) -> None:
    """A second run on the environment waits, shown in the UI, then runs; no overlap."""
    first = bench.api.create_run("game-day/game-day", scenario="ui-short-hold")
    bench.wait_for_rule(first)
    second = bench.api.create_run("game-day/game-day", scenario="ui-quick")
    waiting = bench.api.wait(second, lambda s: s["name"] == "AwaitingEnvironment", 60,
                             "waiting for the environment")
    assert first in waiting["state"]["message"]
    for run in (first, second):
        final = bench.api.wait_final(run, timeout=120)
        assert final["state"]["type"] == "COMPLETED", final["state"]
    first_window, second_window = _window(bench.journal(first)), _window(bench.journal(second))
    assert first_window[1] <= second_window[0], (first_window, second_window)
    assert bench.api.limit("gameday-env-demo")["active_slots"] == 0


def test_cancelling_a_run_reverts_its_faults(bench: Deployed) -> None:
    """Cancel from the API mid-step: the fault goes at once, long before its TTL."""
    run = bench.api.create_run("game-day/game-day", scenario="ui-hold")
    rule = bench.wait_for_rule(run)
    bench.api.cancel(run)
    final = bench.api.wait_final(run, timeout=60)
    assert final["state"]["type"] == "CANCELLED", final["state"]
    assert bench.rules() == []
    assert time.time() < rule["expires_at"] - 100, "reverted by the run, not by the TTL"
    ended = [e for e in bench.journal(run) if getattr(e, "event", "") == "run_ended"]
    assert ended and ended[-1].outcome == "cancelled"  # type: ignore[union-attr]
    assert bench.api.limit("gameday-env-demo")["active_slots"] == 0


def test_reaper_cleans_up_a_killed_run_without_hooks(bench: Deployed) -> None:
    """SIGKILL a run whose flow has no hooks: the reaper reverts it and frees the slot."""
    run = bench.api.create_run("game-day/unhooked", scenario="ui-hold")
    rule = bench.wait_for_rule(run)
    holder = bench.holder()
    assert holder is not None and holder.run == run
    assert bench.api.limit("gameday-env-demo")["active_slots"] == 1
    os.kill(holder.pid, signal.SIGKILL)
    bench.api.wait(run, lambda s: s["type"] == "CRASHED", 30, "crashed")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
            bench.rules() or bench.api.limit("gameday-env-demo")["active_slots"]):
        time.sleep(0.3)
    assert bench.rules() == [], "the reaper did not revert the fault"
    assert time.time() < rule["expires_at"] - 90, "reverted by the reaper, not by the TTL"
    assert bench.api.limit("gameday-env-demo")["active_slots"] == 0
    (sweep,) = [r for r in bench.api.runs("sweep")
                if r["parameters"].get("run") == run]
    assert bench.api.wait_final(sweep["id"], 60)["state"]["type"] == "COMPLETED"
    ended = [e for e in bench.journal(run) if getattr(e, "event", "") == "run_ended"]
    assert ended, "the sweep did not end the dead run's journal"
