"""Where a breaking-point search starts after the ladder, and how long each probe holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest
import yaml

from gameday.guards import GuardQuery, HoldResult, Verdict, guard_query
from gameday.guards.queries import guard_window, guards_hash, longest_range
from gameday.guards.rules import State
from gameday.models import Environment, Guard, Scenario, Search
from gameday.protocol.checks import Request
from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation, StepRun
from gameday.protocol.search import Start, dwell_floor, start_of
from gameday.search_events import Axis, Bracket
from tests.catalog.cases import GOOD_SCENARIO

LATENCY_LADDER: dict[str, Any] = {
    "fault": {"kind": "latency", "ms": 50},
    "steps": [{"ms": 50, "dwell": "10s"}, {"ms": 120, "dwell": "10s"},
              {"ms": 250, "dwell": "10s"}],
}
BANDWIDTH_LADDER: dict[str, Any] = {
    "fault": {"kind": "bandwidth", "kbps": 1000},
    "steps": [{"kbps": 1000, "dwell": "10s"}, {"kbps": 50, "dwell": "10s"}],
}
CPU_LADDER: dict[str, Any] = {
    "target": {"service": "user-service"},
    "fault": {"kind": "cpu", "load_percent": 50},
    "steps": [{"workers": 1, "dwell": "10s"}, {"workers": 8, "dwell": "10s"}],
}


def scenario(**changes: Any) -> Scenario:
    return Scenario.model_validate(yaml.safe_load(GOOD_SCENARIO) | changes)


def environment(scrape_interval: str = "1s") -> Environment:
    return Environment.model_validate({
        "name": "demo",
        "prometheus": {"url": "http://127.0.0.1:9", "scrape_interval": scrape_interval},
        "allowed_targets": ["user-service"],
        "endpoints": [{"service": "user-service", "dependency": "auth-service",
                       "driver": "proxy", "admin_url": "http://127.0.0.1:9"}]})


def guard(name: str = "error_rate_percent", query: str = "rate(errors_total[4s])",
          threshold: float = 5, for_: str = "2s") -> GuardQuery:
    rule = Guard.model_validate({"query": query, "op": ">", "threshold": threshold,
                                 "for": for_})
    return guard_query(name, rule, scenario().target, "4s", {})


@dataclass
class FakeRun:
    """The parts of a RunContext start_of and dwell_floor read; the rest of a real one (driver,
    journal, Prometheus) has nothing to do with planning."""

    request: Request
    guards: list[GuardQuery]

    @property
    def scenario(self) -> Scenario:
        return self.request.scenario

    @property
    def environment(self) -> Environment:
        return self.request.environment


def context(s: Scenario, guards: list[GuardQuery] | None = None,
            scrape_interval: str = "1s") -> RunContext:
    request = Request(s, environment(scrape_interval), "alice", find_breaking_point=True)
    return cast(RunContext, FakeRun(request, [guard()] if guards is None else guards))


def verdict(state: State) -> Verdict:
    return Verdict(guard="error_rate_percent", state=state,
                   value=9.0 if state == "breached" else None, op=">", threshold=5, for_=2,
                   since=1000.0, at=1002.0, summary=f"error_rate_percent {state}")


def held(severity: int) -> StepRun:
    started = 1000.0 + 10 * severity
    return StepRun(severity, f"step {severity}", started, started + 10,
                   HoldResult(started, started + 10, 10, 1))


def stopped(severity: int, state: State = "breached") -> StepRun:
    started = 1000.0 + 10 * severity
    hold = HoldResult(started, started + 4, 10, 1, guard="error_rate_percent",
                      verdict=verdict(state), breached_at=started + 4)
    return StepRun(severity, f"step {severity}", started, started + 4, hold)


def climbed(broke_at: int | None, top: int) -> Escalation:
    """Steps 1.. held up to the one that broke (or all ``top`` of them)."""
    last = top if broke_at is None else broke_at - 1
    steps = [held(s) for s in range(1, last + 1)]
    if broke_at is not None:
        steps.append(stopped(broke_at))
    return Escalation(tuple(steps))


def start(ctx: RunContext, escalation: Escalation, search: Search) -> Start:
    found = start_of(ctx, escalation, search)
    assert isinstance(found, Start), found
    return found


TEN_MS = Search.model_validate({"resolution": "10ms"})


# --- the starting bracket -------------------------------------------------------------------


def test_a_breach_at_step_3_brackets_steps_2_and_3() -> None:
    """Step 2 (120 ms) held, step 3 (250 ms) broke: the bracket runs between them."""
    escalation = climbed(3, 3)
    found = start(context(scenario(**LATENCY_LADDER)), escalation, TEN_MS)
    assert found.plan.axis == Axis("ms", "ms", worse_up=True, integer=False)
    assert found.plan.start == Bracket(120, 250)
    assert found.plan.resolution == 10
    assert found.plan.max_probes is None
    assert (found.held_severity, found.broken.severity) == (2, 3)
    assert found.broken is escalation.steps[-1]
    # max_duration counts from the ladder's first step, not from the breach.
    assert found.began == escalation.steps[0].started


def test_a_breach_at_step_1_of_a_latency_ladder_starts_from_no_fault() -> None:
    """No step held, but 0 ms injects nothing: it is the held end."""
    found = start(context(scenario(**LATENCY_LADDER)), climbed(1, 3), TEN_MS)
    assert found.plan.start == Bracket(0, 50)
    assert found.held_severity is None


def test_a_relative_resolution_is_of_the_starting_bracket() -> None:
    """5 % of 120 ms (the smaller end) is 6 ms."""
    found = start(context(scenario(**LATENCY_LADDER)), climbed(3, 3), Search())
    assert found.plan.resolution == pytest.approx(6.0)


def test_max_probes_reaches_the_plan() -> None:
    search = Search.model_validate({"resolution": "10ms", "max_probes": 4})
    found = start(context(scenario(**LATENCY_LADDER)), climbed(3, 3), search)
    assert found.plan.max_probes == 4 and found.plan.budget == 4


def test_a_bandwidth_breach_after_a_held_step_is_searched_downward() -> None:
    found = start(context(scenario(**BANDWIDTH_LADDER)), climbed(2, 2), Search())
    assert found.plan.axis == Axis("kbps", "kbps", worse_up=False, integer=False)
    assert found.plan.start == Bracket(1000, 50)
    assert found.plan.resolution == pytest.approx(2.5)


def test_a_breach_at_step_1_of_a_bandwidth_ladder_has_no_held_end() -> None:
    """No kbps injects nothing (full speed is no number), so there is nothing to start from."""
    reason = start_of(context(scenario(**BANDWIDTH_LADDER)), climbed(1, 2), Search())
    assert reason == ("no step below severity 1 held with the same fault kind, and kbps has "
                      "no value that injects nothing: add a milder first step")


def test_a_cpu_ladder_bisects_whole_workers() -> None:
    found = start(context(scenario(**CPU_LADDER)), climbed(2, 2), Search())
    assert found.plan.axis == Axis("workers", "workers", worse_up=True, integer=True)
    assert found.plan.start == Bracket(1, 8)
    assert found.plan.resolution == 1.0  # 5 % of 1 worker, rounded up to a whole one


def test_the_same_value_on_both_steps_is_nothing_to_bisect() -> None:
    """A ladder that raises only the share keeps ms: a search on ms has no range."""
    s = scenario(steps=[{"ms": 100, "probability": 0.5, "dwell": "10s"},
                        {"ms": 100, "probability": 1.0, "dwell": "10s"}])
    reason = start_of(context(s), climbed(2, 2), Search.model_validate({"field": "ms"}))
    assert reason == "steps 1 and 2 have the same ms: nothing to bisect"


# --- no search ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["no_data", "stale", "error"])
def test_a_blind_guard_is_a_safety_stop(state: State) -> None:
    escalation = Escalation((held(1), stopped(2, state)))
    reason = start_of(context(scenario(**LATENCY_LADDER)), escalation, TEN_MS)
    assert reason == (f"guard error_rate_percent could not see ({state}): a safety stop, so "
                      "no search")


def test_a_vanished_fault_is_a_safety_stop() -> None:
    problem = "fault vanished: deleted at proxy:auth-service"
    gone = StepRun(2, "step 2", 1020.0, 1023.0, None, problem=problem)
    reason = start_of(context(scenario(**LATENCY_LADDER)), Escalation((held(1), gone)), TEN_MS)
    assert reason == (f"step 2 ended without a guard's verdict ({problem}): a safety stop, so "
                      "no search")


def test_every_step_held_is_no_breaking_point() -> None:
    reason = start_of(context(scenario(**LATENCY_LADDER)), climbed(None, 3), TEN_MS)
    assert reason == ("every step held up to severity 3: no breaking point within the run's "
                      "reach")


# --- the probes' dwell ----------------------------------------------------------------------


def test_dwell_floor_is_the_longest_window_and_for_plus_two_scrapes() -> None:
    """[4s] and for 2s, at 1 s scrapes: 4 + 2 + 2 × 1 = 8 s."""
    assert dwell_floor(context(scenario(), [guard()])) == 8


def test_dwell_floor_takes_the_slowest_guard() -> None:
    guards = [guard(), guard("latency_p99_ms", "histogram_quantile(0.99, rate(b[30s]))",
                             for_="5s")]
    assert dwell_floor(context(scenario(), guards, scrape_interval="5s")) == 30 + 5 + 10


def test_dwell_floor_without_guards_is_two_scrapes() -> None:
    assert dwell_floor(context(scenario(), [], scrape_interval="15s")) == 30


@pytest.mark.parametrize(("asked", "dwell"), [(None, 8), ("3s", 8), ("20s", 20)])
def test_probe_dwell_is_never_below_the_floor(asked: str | None, dwell: float) -> None:
    """A shorter dwell is raised to the floor, so a probe cannot "hold" only because it was
    too short to be judged; a longer one is kept."""
    search = Search.model_validate({"resolution": "10ms", "dwell": asked})
    found = start(context(scenario(**LATENCY_LADDER)), climbed(3, 3), search)
    assert (found.dwell, found.floor) == (dwell, 8)


# --- the guards' windows and identity -------------------------------------------------------


@pytest.mark.parametrize(("query", "seconds"), [
    ("rate(errors_total[4s])", 4),
    ("increase(errors_total[1m30s])", 90),
    ("max_over_time(rate(errors_total[30s])[5m:1m])", 300),
    ("rate(a[10s]) / rate(b[2m])", 120),
    ("rate(a[500ms])", 0.5),
    ("rate(a[5m] offset 1h)", 300),  # an offset shifts the window, it does not widen it
    ("up", 0),
])
def test_longest_range(query: str, seconds: float) -> None:
    assert longest_range(query) == pytest.approx(seconds)


def test_guard_window_adds_for() -> None:
    assert guard_window(guard(query="rate(x[1m])", for_="10s")) == 70


def test_guards_hash_equal_for_equal_guards() -> None:
    one = [guard(), guard("latency_p99_ms", "p99[1m]", threshold=1500)]
    again = [guard(), guard("latency_p99_ms", "p99[1m]", threshold=1500)]
    assert guards_hash(one) == guards_hash(again)
    # The order guards come in is not part of what they are.
    assert guards_hash(one) == guards_hash(list(reversed(again)))


@pytest.mark.parametrize("changed", [
    guard(threshold=6),
    guard(for_="3s"),
    guard(query="rate(errors_total[5s])"),
    guard(name="other"),
])
def test_guards_hash_differs_when_a_guard_changes(changed: GuardQuery) -> None:
    assert guards_hash([changed]) != guards_hash([guard()])
