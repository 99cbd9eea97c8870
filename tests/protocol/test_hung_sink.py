"""A notification sink that hangs never delays rollback (engine level, no Prefect)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest

from gameday.load import load_default
from gameday.models import Scenario
from gameday.notify import Notice
from gameday.protocol.checks import Request
from gameday.protocol.escalate import escalate
from gameday.protocol.prepare import open_run, prepare
from gameday.protocol.rollback import revert_run
from tests.demo_stack import DemoStack

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


class HangingSink:
    """A chat integration that never answers."""

    name = "hangs"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def send(self, notice: Notice) -> None:
        self.calls += 1
        self.release.wait(60)


def one_step(stack: DemoStack, sinks: list[HangingSink]) -> float:
    """Run a one-step ladder and return how long its rollback took."""
    stack.wait_calm()  # an earlier test's errors would breach the guard at preflight
    catalog = load_default(REPO / "catalog")
    data = catalog.scenario("auth-latency-ladder").model_dump(by_alias=True)
    scenario = Scenario.model_validate(data | {"steps": [{"ms": 50, "dwell": "2s"}]})
    request = Request(scenario, stack.environment(), "tester", max_severity=1)
    ctx = open_run(str(uuid.uuid4()), request, catalog.signals, extra_sinks=list(sinks),
                   console=False)
    try:
        asyncio.run(prepare(ctx))
        asyncio.run(escalate(ctx))
        result = revert_run(ctx.run, ctx.environment, journal=ctx.journal)
    finally:
        ctx.close()
    assert result.clean
    return result.seconds


def test_hung_sink_leaves_rollback_timing_unchanged(
        demo_stack: DemoStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rollback with a sink that hangs takes as long as rollback without one."""
    monkeypatch.setenv("GAMEDAY_STATE", str(tmp_path))
    plain = one_step(demo_stack, [])
    hung = HangingSink()
    with_hung = one_step(demo_stack, [hung])
    hung.release.set()
    assert hung.calls >= 1  # the sink was really in the path, and stuck
    # The sink hangs until released: waiting on it would never end. The bounds only allow for
    # two busy cores.
    assert with_hung < 3.0 and with_hung < plain + 2.0, (plain, with_hung)
    assert demo_stack.query('sum(chaos_active{scenario="auth-latency-ladder"})') in (None, 0.0)
