"""Planning a suite run without a second person (caps and reasons to skip), and its summary
flagging fallen breaking points (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from gameday.protocol.outcome import Outcome
from gameday.protocol.suite import (
    SuiteItem,
    SuiteResult,
    SuiteSummary,
    plan_suite,
    suite_scenarios,
)
from gameday.protocol.summary import RunSummary
from gameday.report.breaking import BreakingPoint, Trend, breaking_point
from gameday.search_events import SearchEndedEvent, SearchStartedEvent
from tests.protocol.test_checks import environment, scenario

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # a Friday


def test_ladders_reaching_sign_off_are_skipped_or_capped() -> None:
    """With sign-off from 2, a two-step ladder is skipped, or run to step 1 when asked."""
    two_steps = scenario()
    one_step = scenario(name="one-step", steps=[{"ms": 50, "dwell": "10s"}])
    place = environment(sign_off_severity=2)
    skipped, ran = plan_suite([two_steps, one_step], place, NOW)
    assert skipped.skip is not None and "second person" in skipped.skip
    assert ran.skip is None and ran.max_severity == 1
    (capped,) = plan_suite([two_steps], place, NOW, below_sign_off=True)
    assert capped.skip is None and capped.max_severity == 1


def test_sign_off_from_the_first_step_skips_everything() -> None:
    """Nothing runs when every step needs a second person."""
    (item,) = plan_suite([scenario()], environment(sign_off_severity=1), NOW, True)
    assert item.skip is not None and "every step" in item.skip


def test_out_of_window_and_other_environments_are_skipped_with_the_reason() -> None:
    """A Monday-only scenario on a Friday, or one not meant for the environment, is skipped."""
    monday = scenario(trigger={"window": {"days": ["mon"]}})
    elsewhere = scenario(environments=["staging"])
    first, second = plan_suite([monday, elsewhere], environment(), NOW)
    assert first.skip is not None and "outside its window" in first.skip
    assert second.skip is not None and "may not run in demo" in second.skip


def test_suite_members_keep_catalog_order() -> None:
    """Only scenarios in the suite, in the order given."""
    weekly = [scenario(name="b", suites=["weekly"]), scenario(name="a", suites=["weekly"])]
    chosen = suite_scenarios([*weekly, scenario(name="c")], "weekly")
    assert [s.name for s in chosen] == ["b", "a"]


def test_a_fallen_breaking_point_is_flagged_in_the_suite_summary() -> None:
    """The run's search reaches its summary and the suite's row; the suite names regressions."""
    search = breaking_point([
        SearchStartedEvent(at=1.0, field="ms", unit="ms", held=120.0, broken=250.0,
                           held_severity=2, broken_severity=3, resolution=10.0,
                           resolution_text="10ms", budget=6, dwell=6.0, dwell_floor=4.0,
                           guards_hash="0123456789abcdef"),
        SearchEndedEvent(at=2.0, held=110.0, broken=120.0,
                         text="holds at 110 ms, breaks at 120 ms", stopped="narrow enough",
                         confirmed=True, probes=5)])
    assert isinstance(search, BreakingPoint)
    fell = "breaking point fell from 178–190 ms to 110–120 ms since 2026-11-24"
    outcome = Outcome("aborted", 2, 3, "aborted at severity 3")
    ran = RunSummary.ended("r1", "auth-latency-breaking-point", "demo", outcome,
                           search=replace(search, trend=Trend("regression", fell)))
    assert (ran.breaking_point, ran.trend, ran.regression) == (
        "holds at 110 ms, breaks at 120 ms", fell, True)
    steady = RunSummary.ended("r2", "auth-latency-ladder", "demo", outcome, search=replace(
        search, trend=Trend("no_change", "no significant change since 2026-11-24")))
    plain = RunSummary.ended("r3", "auth-aborts", "demo", outcome)
    assert (plain.breaking_point, plain.trend, plain.regression) == (None, None, False)
    results = tuple(SuiteResult.ran(SuiteItem(scenario(name=s.scenario)), s)
                    for s in (ran, steady, plain))
    assert results[0].trend == fell and results[0].regression and not results[1].regression
    done = SuiteSummary(environment="demo", suite="weekly", results=results)
    assert done.regressions == results[:1]
    assert done.summary.endswith(
        "auth-aborts aborted; 1 regression: auth-latency-breaking-point: " + fell)
    assert "regression" not in SuiteSummary(environment="demo", suite="weekly",
                                            results=results[1:]).summary
