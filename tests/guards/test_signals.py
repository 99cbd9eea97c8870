"""Baseline statistics and signal judgements, with no server."""

from __future__ import annotations

import asyncio
import math

import pytest

from gameday.guards.queries import SignalQuery
from gameday.guards.signals import (
    judge_signal,
    judge_window,
    measure,
    percentile,
    recovered,
    summarize,
)
from gameday.models import Signal


def signal(name: str, text: str, unit: str | None = "ms") -> SignalQuery:
    """A signal as the catalog writes it (``"<= 350"``)."""
    op, threshold = text.split()
    return SignalQuery(name=name, signal=Signal.model_validate({"op": op, "threshold": threshold}),
                       query=f"q_{name}", unit=unit)


def test_summarize_gives_mean_percentiles_and_extremes() -> None:
    """Statistics over 1..100 match the usual linear-interpolation definitions."""
    stats = summarize([float(v) for v in range(1, 101)])
    assert stats is not None
    assert stats.count == 100 and stats.mean == 50.5 and stats.min == 1 and stats.max == 100
    assert stats.p50 == pytest.approx(50.5) and stats.p95 == pytest.approx(95.05)
    assert stats.p99 == pytest.approx(99.01)


def test_summarize_drops_nan_and_handles_nothing() -> None:
    """NaNs are dropped; no values at all gives None."""
    stats = summarize([math.nan, 2.0])
    assert stats is not None and stats.count == 1 and stats.mean == 2.0
    assert summarize([math.nan]) is None and summarize([]) is None
    assert percentile([7.0], 0.99) == 7.0


def test_signal_holds_and_reports_the_delta_to_baseline() -> None:
    """A step's mean meeting the threshold holds; the delta to the baseline is reported."""
    base = summarize([100.0, 100.0])
    step = summarize([150.0, 150.0])
    result = judge_signal(signal("latency_p95_ms", "<= 350"), step, base)
    assert result.state == "held" and result.holds
    assert result.observed == 150 and result.delta == 50 and result.delta_percent == 50
    assert "baseline 100 ms, +50%" in result.summary


def test_signal_broken_and_no_data() -> None:
    """Missing the threshold is broken; no data is its own state and does not hold."""
    broken = judge_signal(signal("p95", "<= 350"), summarize([400.0]), None)
    assert broken.state == "broken" and not broken.holds and broken.delta is None
    empty = judge_signal(signal("p95", "<= 350"), None, summarize([1.0]))
    assert empty.state == "no_data" and not empty.holds


def test_zero_baseline_has_no_percentage() -> None:
    """A baseline of zero gives an absolute delta but no percentage."""
    result = judge_signal(signal("errors", "<= 0.5", "%"), summarize([0.2]), summarize([0.0]))
    assert result.delta == pytest.approx(0.2) and result.delta_percent is None


def test_statistic_can_be_chosen() -> None:
    """The compared statistic is selectable, e.g. the step's p95."""
    step = summarize([float(v) for v in range(1, 101)])
    result = judge_signal(signal("p", "<= 90"), step, None, statistic="p95")
    assert result.state == "broken" and result.observed == pytest.approx(95.05)


class Points:
    """Answers range queries from fixed points, per query."""

    def __init__(self, points: dict[str, list[float]]) -> None:
        self.points = points

    async def range(self, query: str, start: float, end: float,
                    step: float) -> list[tuple[float, float]]:
        """The stored values, stamped one step apart."""
        return [(start + i * step, v) for i, v in enumerate(self.points.get(query, []))]


def test_measure_and_judge_a_window_against_the_baseline() -> None:
    """Measuring a window summarises each signal; judging compares with the baseline window."""
    signals = [signal("a", "<= 10"), signal("b", ">= 1", "req/s")]
    before = asyncio.run(measure(Points({"q_a": [4.0, 6.0], "q_b": [2.0]}), signals, 0, 10, 1))
    during = asyncio.run(measure(Points({"q_a": [12.0, 14.0]}), signals, 10, 20, 1))
    a, b = judge_window(signals, during, before)
    assert a.state == "broken" and a.baseline is not None and a.baseline.mean == 5
    assert a.delta_percent == pytest.approx(160)
    assert b.state == "no_data" and during.stats("b") is None


def test_recovered_follows_the_signals_direction() -> None:
    """Lower-is-better signals recover at or below baseline + tolerance, and vice versa."""
    base = summarize([100.0])
    assert base is not None
    latency = signal("p95", "<= 350")
    assert recovered(latency, 120.0, base, 25) and recovered(latency, 10.0, base, 25)
    assert not recovered(latency, 130.0, base, 25) and not recovered(latency, math.nan, base, 25)
    rate = signal("rps", ">= 1")
    assert recovered(rate, 80.0, base, 25) and not recovered(rate, 70.0, base, 25)


def test_recovered_counts_what_the_baseline_itself_reached() -> None:
    """A noisy baseline (mean 60, p95 81): 80 ms is no sign of an unrecovered service (mean
    + 25 % is only 75), 90 ms is; for a higher-is-better signal, the baseline's minimum is the
    floor."""
    base = summarize([40.0, 50.0, 55.0, 60.0, 60.0, 62.0, 65.0, 70.0, 90.0, 48.0])
    assert base is not None and base.mean == 60 and 80 < base.p95 < 90
    latency = signal("p95", "<= 350")
    assert recovered(latency, 80.0, base, 25) and not recovered(latency, 90.0, base, 25)
    rate = signal("rps", ">= 1")
    assert recovered(rate, 40.0, base, 25) and not recovered(rate, 39.0, base, 25)


def test_recovered_from_zero_baseline_uses_the_threshold_as_scale() -> None:
    """With a zero baseline the tolerance is a share of the signal's threshold."""
    zero = summarize([0.0])
    assert zero is not None
    errors = signal("errors", "<= 0.5", "%")
    assert recovered(errors, 0.1, zero, 25) and not recovered(errors, 0.2, zero, 25)
