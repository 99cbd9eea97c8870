"""Guard verdicts from samples, with no server."""

from __future__ import annotations

import math

import pytest

from gameday.guards.rules import Sample, judge, stale_bound, worst
from gameday.models import Guard

T0 = 1_000_000.0
STALE = 3.0


def guard(text: str = "> 5", for_: str = "0s", on_no_data: str = "breach") -> Guard:
    """A guard written as the catalog writes it."""
    op, threshold = text.split()
    return Guard.model_validate({"op": op, "threshold": float(threshold), "for": for_,
                                 "on_no_data": on_no_data})


def ok(value: float, at: float, age: float = 0.5) -> Sample:
    """A fresh sample of ``value`` evaluated at ``T0 + at``."""
    return Sample(query_time=T0 + at, value=value, sample_time=T0 + at - age)


def test_met_below_threshold() -> None:
    """A value on the safe side of the threshold is met and does not stop."""
    verdict = judge("errors", guard("> 5"), [ok(1.0, 0)], stale_after=STALE)
    assert verdict.state == "met" and verdict.clear and not verdict.stops
    assert verdict.value == 1.0 and verdict.threshold == 5 and verdict.op == ">"
    assert "errors met" in verdict.summary


def test_breached_without_for_at_once() -> None:
    """With no ``for``, one sample over the threshold breaches."""
    verdict = judge("errors", guard("> 5"), [ok(7.5, 0)], stale_after=STALE)
    assert verdict.state == "breached" and verdict.stops
    assert verdict.since == T0 and verdict.at == T0
    assert "7.5 > 5" in verdict.summary


@pytest.mark.parametrize(("text", "value", "breached"), [
    ("> 5", 5.0, False), ("> 5", 5.0001, True), (">= 5", 5.0, True), (">= 5", 4.999, False),
    ("< 10", 10.0, False), ("< 10", 9.99, True), ("<= 10", 10.0, True), ("== 0", 0.0, True),
    ("!= 0", 0.0, False), ("!= 0", 1.0, True),
])
def test_threshold_boundaries(text: str, value: float, breached: bool) -> None:
    """Each operator breaches exactly on its side of the threshold."""
    verdict = judge("g", guard(text), [ok(value, 0)], stale_after=STALE)
    assert (verdict.state == "breached") is breached


def test_for_needs_every_sample_across_the_span() -> None:
    """The condition must hold on every sample for ``for``: pending before, breached after."""
    rule = guard("> 5", for_="2s")
    samples = [ok(9, 0), ok(9, 1)]
    pending = judge("g", rule, samples, stale_after=STALE)
    assert pending.state == "met" and pending.pending and not pending.stops
    assert not pending.clear
    assert pending.since == T0 and "pending" in pending.summary
    breached = judge("g", rule, [*samples, ok(9, 2)], stale_after=STALE)
    assert breached.state == "breached" and breached.stops and breached.since == T0


def test_for_restarts_when_one_sample_recovers() -> None:
    """One sample back on the safe side restarts the ``for`` span."""
    rule = guard("> 5", for_="2s")
    samples = [ok(9, 0), ok(9, 1), ok(1, 2), ok(9, 3), ok(9, 4)]
    verdict = judge("g", rule, samples, stale_after=STALE)
    assert verdict.state == "met" and verdict.pending and verdict.since == T0 + 3
    assert judge("g", rule, [*samples, ok(9, 5)], stale_after=STALE).state == "breached"


def test_for_restarts_after_a_blind_sample_that_is_ignored() -> None:
    """An ignored no-data sample is not a sample on which the condition held."""
    rule = guard("> 5", for_="2s", on_no_data="ignore")
    samples = [ok(9, 0), ok(9, 1), Sample(query_time=T0 + 2), ok(9, 3)]
    verdict = judge("g", rule, samples, stale_after=STALE)
    assert verdict.state == "met" and verdict.since == T0 + 3


def test_for_boundary_with_tolerance() -> None:
    """An evaluation a few milliseconds early breaches only with a tolerance."""
    rule = guard("> 5", for_="2s")
    samples = [ok(9, 0), ok(9, 0.998), ok(9, 1.996)]
    assert judge("g", rule, samples, stale_after=STALE).state == "met"
    assert judge("g", rule, samples, stale_after=STALE, tolerance=0.25).state == "breached"


def test_no_data_breaches_at_once_even_with_for() -> None:
    """No data fails closed at once; ``for`` applies only to the condition."""
    verdict = judge("g", guard("> 5", for_="10s"), [Sample(query_time=T0)], stale_after=STALE)
    assert verdict.state == "no_data" and verdict.stops and verdict.value is None
    assert "no data" in verdict.summary


def test_nan_counts_as_no_data() -> None:
    """A NaN (an empty histogram) is no data, never a pass."""
    verdict = judge("g", guard("> 5"), [ok(math.nan, 0)], stale_after=STALE)
    assert verdict.state == "no_data" and verdict.stops


def test_stale_sample_breaches() -> None:
    """A sample older than the bound is stale and stops the run."""
    verdict = judge("g", guard("> 5"), [ok(1.0, 0, age=3.5)], stale_after=STALE)
    assert verdict.state == "stale" and verdict.stops
    assert "3.5s old" in verdict.summary


def test_staleness_boundary() -> None:
    """A sample exactly at the bound is still fresh; just past it is stale."""
    assert judge("g", guard(), [ok(1.0, 0, age=3.0)], stale_after=STALE).state == "met"
    assert judge("g", guard(), [ok(1.0, 0, age=3.001)], stale_after=STALE).state == "stale"


def test_value_without_input_sample_is_stale() -> None:
    """A value whose inputs have no current sample (only a rate window left) is stale."""
    sample = Sample(query_time=T0, value=1.0, sample_time=None)
    verdict = judge("g", guard(), [sample], stale_after=STALE)
    assert verdict.state == "stale" and verdict.stops
    assert "no current sample" in verdict.summary


def test_staleness_uses_the_sample_time_not_the_query_time() -> None:
    """A recent query of an old sample is stale; an old query of a fresh sample is not."""
    old_sample = Sample(query_time=T0 + 100, value=1.0, sample_time=T0)
    assert judge("g", guard(), [old_sample], stale_after=STALE).state == "stale"
    fresh = Sample(query_time=T0 - 100, value=1.0, sample_time=T0 - 100.2)
    assert judge("g", guard(), [fresh], stale_after=STALE).state == "met"


def test_error_breaches() -> None:
    """A query error stops the run and names the error."""
    sample = Sample(query_time=T0, error="timed out after 1s")
    verdict = judge("g", guard("> 5", for_="5s"), [sample], stale_after=STALE)
    assert verdict.state == "error" and verdict.stops
    assert "timed out after 1s" in verdict.summary


@pytest.mark.parametrize("sample", [
    Sample(query_time=T0),
    Sample(query_time=T0, value=1.0, sample_time=T0 - 60),
    Sample(query_time=T0, error="connection refused"),
], ids=["no_data", "stale", "error"])
def test_ignore_keeps_blind_states_from_stopping(sample: Sample) -> None:
    """With ``on_no_data: ignore`` no data, stale data and errors are reported but do not stop."""
    verdict = judge("g", guard(on_no_data="ignore"), [sample], stale_after=STALE)
    assert verdict.state in ("no_data", "stale", "error")
    assert not verdict.fail_closed and not verdict.stops
    assert "ignored" in verdict.summary


def test_ignore_still_breaches_on_the_condition() -> None:
    """``ignore`` concerns blindness only: the condition still breaches."""
    verdict = judge("g", guard(on_no_data="ignore"), [ok(9, 0)], stale_after=STALE)
    assert verdict.state == "breached" and verdict.stops


def test_since_marks_the_start_of_the_current_state() -> None:
    """``since`` is the query time of the first sample in the current streak."""
    samples = [ok(1, 0), Sample(query_time=T0 + 1, error="x"), Sample(query_time=T0 + 2, error="y")]
    assert judge("g", guard(), samples, stale_after=STALE).since == T0 + 1


def test_judge_refuses_no_samples() -> None:
    """Judging nothing is a programming error, not a verdict."""
    with pytest.raises(ValueError, match="at least one sample"):
        judge("g", guard(), [], stale_after=STALE)


def test_sample_cannot_have_value_and_error() -> None:
    """A sample is a value or an error."""
    with pytest.raises(ValueError, match="not both"):
        Sample(query_time=T0, value=1.0, error="boom")


def test_stale_bound_default_is_three_scrape_intervals() -> None:
    """The default staleness bound is three scrape intervals."""
    assert stale_bound(15.0) == 45.0
    assert stale_bound(1.0, intervals=2) == 2.0


@pytest.mark.parametrize(("op", "values", "expected"), [
    (">", [1.0, 9.0, 3.0], 9.0), ("<=", [4.0, 2.0, 8.0], 2.0), ("==", [1.0, 0.0], 0.0),
    (">", [math.nan, 2.0], 2.0), (">", [math.nan], None), ("<", [], None),
])
def test_worst_of_several_series_fails_closed(op: str, values: list[float],
                                              expected: float | None) -> None:
    """Of several series, the one nearest to breaching is judged; NaNs are dropped."""
    assert worst(values, op, 0.0) == expected
