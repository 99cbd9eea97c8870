"""The hold: all guards every interval in parallel; the first stop ends it at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import pytest

from gameday.guards.hold import HoldResult, hold
from gameday.guards.prometheus import Prometheus
from gameday.guards.queries import GuardQuery, guard_query
from gameday.guards.rules import Sample, Verdict
from gameday.journal import GuardSampleEvent, Journal, read_journal
from gameday.models import Guard, Target
from tests.guards.conftest import SCRAPE_INTERVAL, PromStack
from tests.guards.conftest import Target as ScrapeTarget

STALE = 3 * SCRAPE_INTERVAL


def rule(text: str = "> 5", for_: str = "0s", query: str = "x", on_no_data: str = "breach"
         ) -> GuardQuery:
    """A guard over ``query`` written as the catalog writes it."""
    op, threshold = text.split()
    guard = Guard.model_validate({"op": op, "threshold": threshold, "for": for_,
                                  "query": query, "on_no_data": on_no_data})
    return guard_query(query[:40], guard, Target(service="test"), "4s", {})


def gauge(name: str, target: ScrapeTarget, text: str = "> 5", for_: str = "0s") -> GuardQuery:
    """A guard over one test gauge of ``target``."""
    return rule(text, for_, f'gameday_test_value{{name="{name}",instance="{target.instance}"}}')


class Scripted:
    """Answers each guard from a function of elapsed time; ``None`` means hang forever."""

    def __init__(self, answers: dict[str, float | None], breach_after: float = 0.0) -> None:
        self.answers = answers
        self.breach_after = breach_after
        self.started = time.time()
        self.cancelled = 0

    async def sample(self, guard: GuardQuery) -> Sample:
        """A fresh sample; hung guards wait until cancelled."""
        value = self.answers[guard.name]
        if value is None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        now = time.time()
        shown = value if now - self.started >= self.breach_after else 0.0
        return Sample(query_time=now, value=shown, sample_time=now)


def test_first_breach_ends_the_hold_and_cancels_pending_queries() -> None:
    """A breach ends the hold at once; a guard still waiting on its query is cancelled."""
    guards = [rule(query="hot"), rule(query="hung")]
    sampler = Scripted({"hot": 9.0, "hung": None}, breach_after=0.5)
    result = asyncio.run(hold(30, guards, 0.2, sampler=sampler, stale_after=STALE))
    assert not result.held and result.guard == "hot"
    assert result.verdict is not None and result.verdict.state == "breached"
    assert result.breached_at is not None and result.ended - result.breached_at < 0.5
    assert 0.5 <= result.ended - result.started < 3.0
    assert sampler.cancelled == 1


def test_whole_dwell_held_without_breach() -> None:
    """With every guard met the hold lasts its dwell and samples each interval."""
    guards = [rule(query="a"), rule(query="b")]
    result = asyncio.run(hold(1.0, guards, 0.25, sampler=Scripted({"a": 1.0, "b": 2.0}),
                              stale_after=STALE))
    assert result.held and result.verdict is None and "held" in result.summary
    assert 0.95 <= result.ended - result.started < 3.0
    assert 4 <= result.samples <= 12  # 2 guards x (1 + 1.0 / 0.25) evaluations, unless loaded


def test_failing_sampler_is_an_error_breach() -> None:
    """A sampler that raises is blindness: an error verdict stops the hold."""
    class Broken:
        async def sample(self, guard: GuardQuery) -> Sample:
            raise RuntimeError("boom")

    result = asyncio.run(hold(10, [rule()], 0.2, sampler=Broken(), stale_after=STALE))
    assert result.verdict is not None and result.verdict.state == "error"
    assert "RuntimeError: boom" in result.verdict.summary


def test_hold_ends_even_if_a_sampler_swallows_its_cancellation() -> None:
    """A sampler that eats the cancellation (as 3.11's wait_for can) does not keep the hold."""
    class Stubborn:
        async def sample(self, guard: GuardQuery) -> Sample:
            with contextlib.suppress(asyncio.CancelledError):  # swallowed on purpose
                await asyncio.sleep(0.3)
            now = time.time()
            return Sample(query_time=now, value=1.0, sample_time=now)

    async def timed() -> float:
        began = time.monotonic()
        await asyncio.wait_for(hold(0.5, [rule()], 0.2, sampler=Stubborn(), stale_after=STALE),
                               10)
        return time.monotonic() - began

    assert asyncio.run(timed()) < 3.0


def test_recorder_failure_ends_the_hold_with_its_exception() -> None:
    """A run that cannot journal must not go on: the recorder's exception ends the hold."""
    def record(guard: GuardQuery, sample: Sample, verdict: Verdict) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        asyncio.run(hold(10, [rule()], 0.2, sampler=Scripted({"x": 1.0}), stale_after=STALE,
                         record=record))


# --- against a real Prometheus ----------------------------------------------------------


def run_hold(url: str, dwell: float, guards: list[GuardQuery], interval: float = 1.0,
             journal: Journal | None = None, timeout: float | None = None) -> HoldResult:
    """Hold against the Prometheus at ``url``."""
    async def go() -> HoldResult:
        with Prometheus(url, timeout=timeout or interval) as client:
            return await hold(dwell, guards, interval, sampler=client, stale_after=STALE,
                              record=journal.guard_recorder(1) if journal else None)
    return asyncio.run(go())


@pytest.mark.integration
def test_hold_keeps_its_dwell_when_guards_are_met(prom: PromStack, target: ScrapeTarget,
                                                  tmp_path: Path) -> None:
    """Below their thresholds, guards let the step hold; every sample is journaled."""
    prom.set_and_wait(target, "calm-a", 1.0)
    prom.set_and_wait(target, "calm-b", 2.0)
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        result = run_hold(prom.url, 3.0, [gauge("calm-a", target), gauge("calm-b", target)],
                          journal=journal)
    assert result.held, result.summary
    events = read_journal(path)
    assert len(events) == result.samples and 6 <= result.samples <= 10
    assert all(isinstance(e, GuardSampleEvent) and e.verdict.state == "met" for e in events)


@pytest.mark.integration
def test_hold_ends_within_three_intervals_of_a_visible_breach(prom: PromStack,
                                                              target: ScrapeTarget) -> None:
    """Once a breach is scraped, the hold ends within about one interval (bound: three)."""
    prom.set_and_wait(target, "spike", 1.0)
    guard = gauge("spike", target)
    timer = threading.Timer(2.0, target.set, args=("spike", 50.0))
    timer.start()
    try:
        result = run_hold(prom.url, 60, [guard])
    finally:
        timer.cancel()
    assert result.verdict is not None and result.verdict.state == "breached", result.summary
    set_at = result.started + 2.0
    # The value becomes visible within a scrape interval of being set.
    assert result.ended - set_at <= SCRAPE_INTERVAL + 3 * 1.0, result.summary


@pytest.mark.integration
def test_for_delays_the_breach_until_the_condition_held(prom: PromStack,
                                                        target: ScrapeTarget) -> None:
    """A guard with ``for: 2s`` breaches only after the condition held on samples 2 s apart."""
    prom.set_and_wait(target, "sustained", 50.0)
    result = run_hold(prom.url, 60, [gauge("sustained", target, for_="2s")])
    assert result.verdict is not None and result.verdict.state == "breached"
    assert result.verdict.at - result.verdict.since >= 2.0 - 0.25
    assert 1.7 <= result.ended - result.started <= 2.0 + 3 * 1.0


@pytest.mark.integration
def test_stopping_the_target_stops_the_hold(prom: PromStack) -> None:
    """When a scraped target dies mid-hold, its guard goes blind and the hold stops."""
    doomed = prom.add_target()
    prom.set_and_wait(doomed, "dies", 1.0)
    timer = threading.Timer(2.0, doomed.stop)
    timer.start()
    try:
        result = run_hold(prom.url, 60, [gauge("dies", doomed)])
    finally:
        timer.join()
    assert result.verdict is not None and result.verdict.state in ("no_data", "stale")
    assert result.ended - result.started <= 2.0 + SCRAPE_INTERVAL + 3 * 1.0, result.summary


@pytest.mark.integration
def test_stopping_prometheus_stops_the_hold(tmp_path_factory: pytest.TempPathFactory) -> None:
    """When Prometheus dies mid-hold, the next query errors and the hold stops."""
    from tests.guards.conftest import start_prometheus

    own = start_prometheus(tmp_path_factory.mktemp("dying-prometheus"))
    timer = threading.Timer(2.0, own.stop)
    timer.start()
    try:
        result = run_hold(own.url, 60, [rule("> 5", query="vector(1)")])
    finally:
        timer.join()
        own.stop()
    assert result.verdict is not None and result.verdict.state == "error", result.summary
    # Stopping takes up to its own grace; the hold must follow within a few intervals.
    assert result.ended - result.started <= 2.0 + 5.0 + 3 * 1.0


@pytest.mark.integration
def test_query_hanging_longer_than_the_interval_stops_the_hold_in_time(
        silent_server: str) -> None:
    """A Prometheus that never answers is an error within the interval, ending the hold."""
    result = run_hold(silent_server, 60, [rule()], interval=0.5)
    assert result.verdict is not None and result.verdict.state == "error"
    assert "did not answer" in result.verdict.summary
    assert result.ended - result.started <= 3 * 0.5 + 0.5


@pytest.mark.integration
def test_fifty_guards_are_evaluated_each_interval(prom: PromStack, target: ScrapeTarget) -> None:
    """Fifty guards sampled in parallel keep up with a 1 s interval."""
    prom.set_and_wait(target, "crowd", 1.0)
    guards = [rule(f"> {5 + i}", query=f'gameday_test_value{{name="crowd",instance='
                   f'"{target.instance}"}} + {i} * 0') for i in range(50)]
    result = run_hold(prom.url, 3.0, guards)
    assert result.held, result.summary
    # One round at 0 s, 1 s and 2 s, and usually one at 3 s: every guard every interval.
    assert 150 <= result.samples <= 200
