"""Guards on the demo stack: a real latency rule through the proxy breaks a real guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.drivers.proxy import ProxyDriver
from gameday.faults import LatencyFault
from gameday.guards import GuardQuery, HoldResult, Prometheus, guard_query, hold, judge, stale_bound
from gameday.journal import (
    FaultAppliedEvent,
    FaultIntentEvent,
    FaultRevertedEvent,
    GuardSampleEvent,
    Journal,
    handles_to_revert,
    read_journal,
)
from gameday.load import load_default
from gameday.models import Environment, Guard, Target
from gameday.records import FaultSpec, Labels
from tests.demo_stack import DemoStack

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TARGET = Target(service="user-service", dependency="postgres")


@pytest.fixture
def quiet(demo_stack: DemoStack) -> Iterator[DemoStack]:
    """The session's demo stack with no faults before and after the test."""
    demo_stack.clear_faults()
    try:
        yield demo_stack
    finally:
        demo_stack.clear_faults()


def latency_guard(environment: Environment) -> GuardQuery:
    """``latency_p95_ms > 200 for 1s`` on user-service, from the catalog's template."""
    catalog = load_default(REPO / "catalog")
    rule = Guard.model_validate({"op": ">", "threshold": 200, "for": "1s"})
    return guard_query("latency_p95_ms", rule, TARGET, environment.prometheus.window,
                       catalog.signals)


async def settled(prom: Prometheus, guard: GuardQuery, stale: float) -> None:
    """Wait until the guard is clear on three samples in a row (earlier faults have aged out)."""
    deadline = time.monotonic() + 60
    streak = 0
    while streak < 3:
        assert time.monotonic() < deadline, "the latency guard never settled"
        verdict = judge(guard.name, guard.guard, [await prom.sample(guard)], stale_after=stale)
        streak = streak + 1 if verdict.clear else 0
        await asyncio.sleep(0.5)


def test_latency_rule_through_the_proxy_breaks_the_guard(quiet: DemoStack,
                                                         tmp_path: Path) -> None:
    """Without a fault the step holds; 300 ms on PostgreSQL replies breaches p95 > 200 for 1s."""
    environment = quiet.environment()
    guard = latency_guard(environment)
    interval = environment.guard_interval
    stale = stale_bound(environment.prometheus.scrape_interval)
    endpoint = environment.endpoint_for(TARGET)
    assert endpoint is not None
    labels = Labels(run="guards-demo-test", scenario="test", environment="demo", step=1)
    spec = FaultSpec(fault=LatencyFault(ms=300), target=TARGET, labels=labels)
    path = tmp_path / "journal.jsonl"

    async def scenario() -> tuple[HoldResult, HoldResult, float]:
        with Prometheus.from_settings(environment.prometheus, interval) as prom, \
                ProxyDriver.from_endpoint(endpoint) as driver, Journal(path) as journal:
            await settled(prom, guard, stale)
            calm = await hold(3.0, [guard], interval, sampler=prom, stale_after=stale,
                              record=journal.guard_recorder(0))
            journal.write(FaultIntentEvent(driver=driver.kind, endpoint=driver.admin_url,
                                           labels=labels, fault=spec.fault.summary(),
                                           expires_at=time.time() + 30))
            handle = driver.apply(spec, 30.0)
            applied = time.time()
            journal.write(FaultAppliedEvent(handle=handle))
            try:
                hot = await hold(30.0, [guard], interval, sampler=prom, stale_after=stale,
                                 record=journal.guard_recorder(1))
            finally:
                driver.revert(handle)
                journal.write(FaultRevertedEvent(driver=driver.kind, endpoint=driver.admin_url,
                                                 labels=labels, handle=handle))
            assert driver.active(run=labels.run) == []
            return calm, hot, applied

    calm, hot, applied = asyncio.run(scenario())
    assert calm.held, calm.summary
    assert hot.verdict is not None and hot.verdict.state == "breached", hot.summary
    assert hot.verdict.value is not None and hot.verdict.value > 200
    assert hot.breached_at is not None
    # Slowed requests finish (0.3 s), get scraped (1 s), then must hold for 1 s on samples
    # one interval apart: 3.3 s at most, bounded generously for shared cores.
    assert hot.breached_at - applied <= 0.3 + 1.0 + 1.0 + 3 * interval, hot.summary
    events = read_journal(path)
    assert handles_to_revert(events) == []
    assert sum(isinstance(e, GuardSampleEvent) for e in events) == calm.samples + hot.samples
