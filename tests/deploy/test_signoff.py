"""Two-person sign-off on a deployment run: pause, refusals, approval, timeout."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.conftest import Deployed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def sign_off_from_step_1(ui: Deployed) -> Iterator[None]:
    """The demo environment's block asks for sign-off from severity 1 while this module runs.

    Deployment runs name their environment (the form offers the known names, the server
    refuses a file path), so the setting goes where an operator would put it: the block.
    """
    env_import = [sys.executable, "-m", "gameday", "env", "import"]
    changed = ui.command(*env_import, ui.environment_file(sign_off_severity=1))
    assert changed.returncode == 0, changed.stdout
    try:
        yield
    finally:
        restored = ui.command(*env_import, str(ui.stack.env_file))
        assert restored.returncode == 0, restored.stdout


def _paused(key: str) -> Any:
    return lambda s: s["type"] == "PAUSED" and s["state_details"].get("pause_key") == key


def _events(bench: Deployed, run: str, name: str) -> list[Any]:
    return [e for e in bench.journal(run) if getattr(e, "event", "") == name]


def test_sign_off_needs_a_second_person_with_the_plan_hash(bench: Deployed) -> None:
    """Paused with the plan hash; self-approval and a wrong hash pause again; bob resumes it."""
    run = bench.api.create_run("game-day/game-day", scenario="ui-quick", requester="alice")
    bench.api.wait(run, _paused("signoff-1"), 90, "paused for sign-off")
    (requested,) = bench.notes(run, "signoff_requested")
    digest = requested.plan_hash
    assert len(digest) == 12 and requested.requester == "alice"
    assert _events(bench, run, "fault_intent") == [] and bench.rules() == []

    answer = bench.api.resume(run, {"approver": "Alice", "plan_hash": digest, "approve": True})
    assert answer["status"] == "ACCEPT", answer  # Prefect cannot tell; the flow refuses it
    bench.api.wait(run, _paused("signoff-2"), 30, "paused again after self-approval")
    assert "second person" in bench.notes(run, "signoff_refused")[0].message

    bench.api.resume(run, {"approver": "bob", "plan_hash": "0" * 12, "approve": True})
    bench.api.wait(run, _paused("signoff-3"), 30, "paused again after a wrong hash")
    assert "does not match" in bench.notes(run, "signoff_refused")[1].message
    assert _events(bench, run, "fault_intent") == []

    bench.api.resume(run, {"approver": "bob", "plan_hash": digest.upper(), "approve": True})
    final = bench.api.wait_final(run, timeout=90)
    assert final["state"]["type"] == "COMPLETED", final["state"]
    (granted,) = bench.notes(run, "signoff_granted")
    assert granted.approver == "bob"
    (intent, *_) = _events(bench, run, "fault_intent")
    assert intent.at > granted.at  # nothing was injected before the approval
    assert bench.rules() == []


def test_sign_off_timeout_injects_nothing(bench: Deployed) -> None:
    """Nobody answers within the timeout: the run ends refused and injects nothing."""
    run = bench.api.create_run("game-day/game-day", scenario="ui-quick", requester="alice",
                               sign_off_timeout=3)
    final = bench.api.wait_final(run, timeout=90)
    assert final["state"]["type"] == "FAILED", final["state"]
    refused = bench.notes(run, "signoff_refused")
    assert refused and refused[-1].timed_out is True
    ended = _events(bench, run, "run_ended")
    assert ended and ended[-1].outcome == "refused"
    assert _events(bench, run, "fault_intent") == [] and bench.rules() == []
    assert bench.api.limit("gameday-env-demo")["active_slots"] == 0
