"""A breaking point against the previous run's, and week by week (pure)."""

from __future__ import annotations

from gameday.report.history import Finding, FoundBracket
from gameday.report.trend import compare, previous, weekly
from gameday.search_events import Axis

LATENCY = Axis("ms", "ms")
BANDWIDTH = Axis("kbps", "kbps", worse_up=False)
PROBABILITY = Axis("probability", "share")
GUARDS = "0123456789abcdef"


def found(held: float, broken: float, *, axis: Axis = LATENCY, monotone: bool = True,
          guards: str = GUARDS) -> FoundBracket:
    """A bracket as the history keeps it."""
    return FoundBracket(field=axis.field, unit=axis.unit, worse_up=axis.worse_up,
                        integer=axis.integer, held=held, broken=broken,
                        text=f"holds at {axis.text(held)}, breaks at {axis.text(broken)}",
                        monotone=monotone, confirmed=monotone, guards_hash=guards)


def entry(run: str, date: str, bracket: FoundBracket | None = None, *,
          environment: str = "demo", held: int | None = 2) -> Finding:
    """A finding of the breaking-point scenario."""
    return Finding(date=f"{date}T10:00:00Z", run=run, scenario="auth-latency-breaking-point",
                   environment=environment, outcome="aborted", highest_held=held,
                   first_broken=3, planned_steps=3, postmortem=f"reports/out/{run}/postmortem.md",
                   breaking_point=bracket)


def test_a_bracket_wholly_below_the_previous_is_a_regression() -> None:
    """Breaking at 120 ms where 178 ms held before: the service stands less."""
    trend = compare(found(110, 120), entry("before", "2026-11-24", found(178, 190)))
    assert trend is not None and trend.regression
    assert trend.text == "breaking point fell from 178–190 ms to 110–120 ms since 2026-11-24"
    assert (trend.previous_run, trend.previous_date) == ("before", "2026-11-24")


def test_a_bracket_wholly_above_the_previous_is_an_improvement() -> None:
    """Holding at 178 ms where 120 ms broke before."""
    trend = compare(found(178, 190), entry("before", "2026-11-24", found(110, 120)))
    assert trend is not None and trend.kind == "improvement" and not trend.regression
    assert trend.text == "breaking point rose from 110–120 ms to 178–190 ms since 2026-11-24"


def test_overlapping_brackets_are_no_significant_change() -> None:
    """The search cannot tell 175–188 ms from 178–190 ms apart."""
    trend = compare(found(175, 188), entry("before", "2026-11-24", found(178, 190)))
    assert trend is not None and trend.kind == "no_change"
    assert trend.text == ("no significant change since 2026-11-24 "
                          "(178–190 ms then, 175–188 ms now)")


def test_brackets_found_under_other_guards_are_not_comparable() -> None:
    """Even wholly below, a bracket found under changed guards says nothing of a fall."""
    trend = compare(found(110, 120, guards="fedcba9876543210"),
                    entry("before", "2026-11-24", found(178, 190)))
    assert trend is not None and trend.kind == "not_comparable" and not trend.regression
    assert trend.text == "not comparable: the guards changed since 2026-11-24"


def test_a_bracket_that_is_not_monotone_is_compared_by_its_span() -> None:
    """A flapping service (held at 190 ms after breaking at 170 ms) is compared by the zone it
    may break in, 170–190 ms: a bracket inside or overlapping it is no change; one wholly
    below it is a regression all the same."""
    flapping = found(178, 190, monotone=False).model_copy(
        update={"span_held": 170.0, "span_broken": 190.0})
    for now in (found(172, 180), found(160, 172)):
        trend = compare(now, entry("before", "2026-11-24", flapping))
        assert trend is not None and trend.kind == "no_change", trend
        assert trend.text.startswith("no significant change since 2026-11-24 (")
    trend = compare(found(110, 120), entry("before", "2026-11-24", flapping))
    assert trend is not None and trend.kind == "regression", trend
    noisy_now = found(110, 120, monotone=False).model_copy(
        update={"span_held": 110.0, "span_broken": 182.0})
    trend = compare(noisy_now, entry("before", "2026-11-24", found(178, 190)))
    assert trend is not None and trend.kind == "no_change", trend


def test_bandwidth_falls_when_it_breaks_at_a_higher_rate() -> None:
    """Bandwidth is searched downward: breaking at 768 kbps where 512 kbps held is a fall."""
    before = entry("before", "2026-11-24", found(512, 256, axis=BANDWIDTH))
    trend = compare(found(1024, 768, axis=BANDWIDTH), before)
    assert trend is not None and trend.regression
    assert trend.text == ("breaking point fell from 256–512 kbps to 768–1024 kbps "
                          "since 2026-11-24")
    back = compare(found(512, 256, axis=BANDWIDTH),
                   entry("before", "2026-11-24", found(1024, 768, axis=BANDWIDTH)))
    assert back is not None and back.kind == "improvement"


def test_probabilities_are_shown_as_percentages_with_the_unit_once() -> None:
    """A share of requests reads ``10–20 %``."""
    trend = compare(found(0.05, 0.1, axis=PROBABILITY),
                    entry("before", "2026-11-24", found(0.1, 0.2, axis=PROBABILITY)))
    assert trend is not None
    assert trend.text == "breaking point fell from 10–20 % to 5–10 % since 2026-11-24"


def test_nothing_to_compare_with_gives_no_trend() -> None:
    """A first search, or a previous run without a bracket, has no trend."""
    assert compare(found(110, 120), None) is None
    assert compare(found(110, 120), entry("before", "2026-11-24")) is None


def test_previous_is_the_latest_earlier_bracket_of_the_environment_and_field() -> None:
    """Other environments, other fields, runs without a bracket and this run's own line (a
    retried learn phase) do not count, nor what was recorded after it."""
    right = entry("right", "2026-11-20", found(178, 190))
    findings = [
        entry("older", "2026-11-13", found(150, 160)),
        right,
        entry("elsewhere", "2026-11-21", found(100, 110), environment="staging"),
        entry("bandwidth", "2026-11-22", found(512, 256, axis=BANDWIDTH)),
        entry("no-bracket", "2026-11-23"),
        entry("this", "2026-11-24", found(110, 120)),
        entry("later", "2026-11-25", found(60, 70)),
    ]
    assert previous(findings, "this", "demo", "ms") == right
    assert previous(findings, "new", "demo", "ms") == findings[-1]
    assert previous(findings, "new", "staging", "ms") == findings[2]
    assert previous(findings, "older", "demo", "ms") is None
    assert previous([], "new", "demo", "ms") is None


def test_weekly_rows_count_runs_and_compare_each_week_with_the_one_before() -> None:
    """One row per ISO week of the environment's runs, the week's latest bracket, its highest
    held step and the change against the row before."""
    findings = [
        entry("a", "2026-11-20", found(150, 160), held=1),
        entry("b", "2026-11-24", found(178, 190), held=1),
        entry("c", "2026-11-27", found(180, 190), held=2),
        entry("staging", "2026-11-28", found(10, 20), environment="staging"),
        entry("d", "2026-12-01", found(110, 120), held=2),
        entry("e", "2026-12-31"),
        entry("f", "2027-01-01", found(112, 124), held=2),
        entry("g", "2027-01-04", found(118, 130, guards="fedcba9876543210"), held=2),
    ]
    rows = weekly(findings, "demo")
    assert [(r.week, r.runs, r.bracket_text, r.highest_held, r.change_text) for r in rows] == [
        ("2026-W47", 1, "holds at 150 ms, breaks at 160 ms", 1, "—"),
        ("2026-W48", 2, "holds at 180 ms, breaks at 190 ms", 2, "improvement"),
        ("2026-W49", 1, "holds at 110 ms, breaks at 120 ms", 2, "regression"),
        # 1 January 2027 falls in the last ISO week of 2026; its latest run found a bracket.
        ("2026-W53", 2, "holds at 112 ms, breaks at 124 ms", 2, "no change"),
        ("2027-W01", 1, "holds at 118 ms, breaks at 130 ms", 2, "— (guards changed)"),
    ]
    assert [r.week for r in weekly(findings, "staging")] == ["2026-W48"]
    assert weekly(findings, "production") == []


def test_a_week_without_a_bracket_breaks_the_comparison() -> None:
    """A week whose runs found no bracket shows none, and the next week has nothing to
    compare with."""
    rows = weekly([entry("a", "2026-11-20", found(178, 190)), entry("b", "2026-11-24"),
                   entry("c", "2026-12-01", found(110, 120))], "demo")
    assert [(r.bracket_text, r.highest_held, r.change) for r in rows] == [
        ("holds at 178 ms, breaks at 190 ms", 2, None), ("—", None, None),
        ("holds at 110 ms, breaks at 120 ms", 2, None)]
