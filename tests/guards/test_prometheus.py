"""Guard samples, values and range queries against a real Prometheus."""

from __future__ import annotations

import asyncio
import time

import pytest

from gameday.errors import GuardError
from gameday.guards.prometheus import Prometheus
from gameday.guards.queries import GuardQuery, guard_query
from gameday.guards.rules import Sample, judge
from gameday.models import Guard, PrometheusSettings, Target
from tests.guards.conftest import SCRAPE_INTERVAL, PromStack
from tests.guards.conftest import Target as ScrapeTarget

pytestmark = pytest.mark.integration
STALE = 3 * SCRAPE_INTERVAL


def gauge_guard(name: str, instance: str, text: str = "> 5", expr: str | None = None) -> GuardQuery:
    """A guard over one test gauge (or ``expr`` with ``SERIES`` standing for it)."""
    series = f'gameday_test_value{{name="{name}",instance="{instance}"}}'
    op, threshold = text.split()
    rule = Guard.model_validate({"op": op, "threshold": threshold,
                                 "query": (expr or "SERIES").replace("SERIES", series)})
    assert rule.query is not None
    return guard_query(name, rule, Target(service="test"), "4s", {})


def take(url: str, guard: GuardQuery, timeout: float = 1.0) -> Sample:
    """One sample through a fresh client."""
    async def once() -> Sample:
        with Prometheus(url, timeout=timeout) as client:
            return await client.sample(guard)
    return asyncio.run(once())


def test_sample_carries_value_and_its_own_fresh_timestamp(prom: PromStack,
                                                          target: ScrapeTarget) -> None:
    """A scraped gauge is sampled with its value and a sample time under a scrape old."""
    prom.set_and_wait(target, "fresh", 2.5)
    sample = take(prom.url, gauge_guard("fresh", target.instance))
    assert sample.error is None and sample.value == 2.5
    assert sample.age is not None and 0 <= sample.age <= 2 * SCRAPE_INTERVAL + 0.5
    assert abs(sample.query_time - time.time()) < 5


def test_guard_breaches_when_condition_injected_and_not_otherwise(prom: PromStack,
                                                                  target: ScrapeTarget) -> None:
    """Below the threshold the guard is met; once the value crosses it, it breaches."""
    guard = gauge_guard("inject", target.instance, "> 5")
    prom.set_and_wait(target, "inject", 1.0)
    calm = judge("inject", guard.guard, [take(prom.url, guard)], stale_after=STALE)
    assert calm.state == "met" and not calm.stops, calm.summary
    prom.set_and_wait(target, "inject", 9.0)
    hot = judge("inject", guard.guard, [take(prom.url, guard)], stale_after=STALE)
    assert hot.state == "breached" and hot.stops and hot.value == 9.0, hot.summary


def test_several_series_are_judged_by_the_worst(prom: PromStack, target: ScrapeTarget) -> None:
    """A query returning several series is judged on the one nearest to breaching."""
    prom.set_and_wait(target, "many-a", 1.0)
    prom.set_and_wait(target, "many-b", 7.0)
    guard = gauge_guard("many", target.instance, "> 5",
                        expr=f'gameday_test_value{{name=~"many-.",instance="{target.instance}"}}')
    assert take(prom.url, guard).value == 7.0


def test_series_that_never_existed_is_no_data(prom: PromStack, target: ScrapeTarget) -> None:
    """A query with no series is no data, which stops the run."""
    sample = take(prom.url, gauge_guard("never-set", target.instance))
    assert sample.value is None and sample.error is None
    assert judge("g", gauge_guard("x", "y").guard, [sample], stale_after=STALE).stops


def test_frozen_exporter_timestamp_is_stale(prom: PromStack, target: ScrapeTarget) -> None:
    """A sample the target stamps 20 s in the past is stale although the query answers."""
    target.set("frozen", 1.0, age=20)
    guard = gauge_guard("frozen", target.instance)
    selector = f'gameday_test_value{{name="frozen",instance="{target.instance}"}}'
    deadline = time.monotonic() + 30
    while not prom.query(selector) and time.monotonic() < deadline:
        time.sleep(0.2)
    sample = take(prom.url, guard)
    assert sample.value == 1.0 and sample.age is not None and sample.age > 15
    verdict = judge("frozen", guard.guard, [sample], stale_after=STALE)
    assert verdict.state == "stale" and verdict.stops, verdict.summary


def test_stopped_target_breaches(prom: PromStack) -> None:
    """Stopping a scraped target makes its guards stale or empty at once, which stops."""
    doomed = prom.add_target()
    prom.set_and_wait(doomed, "doomed", 1.0)
    plain = gauge_guard("doomed", doomed.instance)
    # A windowed expression keeps answering after the target dies: only the inputs'
    # own timestamps show that nothing new arrives.
    windowed = gauge_guard("doomed", doomed.instance, expr="max_over_time(SERIES[30s])")
    assert judge("p", plain.guard, [take(prom.url, plain)], stale_after=STALE).state == "met"
    assert judge("w", windowed.guard, [take(prom.url, windowed)],
                 stale_after=STALE).state == "met"
    doomed.stop()
    stopped = time.monotonic()
    states: dict[str, str] = {}
    while time.monotonic() - stopped < 15 and len(states) < 2:
        for name, guard in (("plain", plain), ("windowed", windowed)):
            verdict = judge(name, guard.guard, [take(prom.url, guard)], stale_after=STALE)
            if verdict.stops:
                states.setdefault(name, verdict.state)
        time.sleep(0.2)
    assert states.get("plain") in ("no_data", "stale"), states
    assert states.get("windowed") == "stale", states


def test_stopped_prometheus_is_an_error_sample(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With Prometheus stopped, a sample is an error (fail closed), not an exception."""
    from tests.guards.conftest import start_prometheus

    own = start_prometheus(tmp_path_factory.mktemp("doomed-prometheus"))
    try:
        guard = gauge_guard("up", "none", expr="vector(1)")
        assert take(own.url, guard).value == 1.0
    finally:
        own.stop()
    sample = take(own.url, guard)
    assert sample.error is not None and "ConnectionError" in sample.error
    assert judge("up", guard.guard, [sample], stale_after=STALE).state == "error"


def test_hung_query_is_an_error_within_the_timeout(silent_server: str) -> None:
    """A server that never answers gives an error sample once the hard timeout passes."""
    guard = gauge_guard("hang", "none")
    started = time.monotonic()
    sample = take(silent_server, guard, timeout=0.5)
    took = time.monotonic() - started
    assert sample.error is not None and "did not answer within 0.5s" in sample.error
    assert took < 1.5


def test_value_range_and_bad_query(prom: PromStack, target: ScrapeTarget) -> None:
    """value() and range() return numbers; a bad query is a GuardError from the library's."""
    prom.set_and_wait(target, "ranged", 4.0)
    time.sleep(2)  # range queries are aligned to whole seconds: let two of them pass
    selector = f'gameday_test_value{{name="ranged",instance="{target.instance}"}}'

    async def run() -> None:
        with Prometheus(prom.url, timeout=2) as client:
            assert await client.value(selector) == 4.0
            assert await client.value('gameday_test_value{name="absent"}') is None
            now = time.time()
            points = await client.range(selector, now - 5, now, 1)
            assert points and all(v == 4.0 for _, v in points)
            with pytest.raises(GuardError, match="failed") as caught:
                await client.value("sum(")
            assert caught.value.__cause__ is not None

    asyncio.run(run())


def test_timeout_is_capped_by_the_guard_interval() -> None:
    """From settings, the query timeout never exceeds the guard interval."""
    settings = PrometheusSettings(url="http://127.0.0.1:9", timeout=5.0)
    with Prometheus.from_settings(settings, guard_interval=1.0) as client:
        assert client.timeout == 1.0
