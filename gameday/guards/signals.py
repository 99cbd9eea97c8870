"""Baselines and expected signals: measure over a window, judge against thresholds and baseline.

The statistics and judgements are pure; :func:`measure` only needs something with an async
``range`` query (``Prometheus`` is one), so this module imports no I/O library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gameday.guards.queries import SignalQuery
from gameday.units import compare

SignalState = Literal["held", "broken", "no_data"]
Statistic = Literal["mean", "p50", "p95", "p99", "min", "max"]


class RangeSource(Protocol):
    """Answers range queries (``Prometheus`` is one)."""

    async def range(self, query: str, start: float, end: float,
                    step: float) -> list[tuple[float, float]]:
        """``(time, value)`` points from ``start`` to ``end``."""
        ...


@dataclass(frozen=True)
class Stats:
    """Summary of one signal's values over a window."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    min: float
    max: float

    def get(self, statistic: Statistic) -> float:
        """One statistic by name."""
        value: float = getattr(self, statistic)
        return value


def percentile(ordered: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile of sorted values, linearly interpolated."""
    if not ordered:
        raise ValueError("percentile of no values")
    position = share * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float]) -> Stats | None:
    """Mean, percentiles and extremes of ``values`` (NaNs dropped); None if nothing is left."""
    kept = sorted(v for v in values if not math.isnan(v))
    if not kept:
        return None
    return Stats(count=len(kept), mean=math.fsum(kept) / len(kept), p50=percentile(kept, 0.50),
                 p95=percentile(kept, 0.95), p99=percentile(kept, 0.99), min=kept[0],
                 max=kept[-1])


@dataclass(frozen=True)
class Measured:
    """One signal measured over a window."""

    name: str
    query: str
    unit: str | None
    stats: Stats | None


@dataclass(frozen=True)
class Window:
    """Every signal measured over one window (the baseline, or one step)."""

    start: float
    end: float
    signals: tuple[Measured, ...]

    def stats(self, name: str) -> Stats | None:
        """The statistics of signal ``name``; None if it was not measured or had no data."""
        return next((m.stats for m in self.signals if m.name == name), None)


async def measure(source: RangeSource, signals: Sequence[SignalQuery], start: float,
                  end: float, step: float) -> Window:
    """Measure every signal from ``start`` to ``end`` with one range query each.

    A failing query raises ``GuardError``: a baseline with holes would judge steps wrongly.
    """
    measured = []
    for signal in signals:
        points = await source.range(signal.query, start, end, step)
        measured.append(Measured(name=signal.name, query=signal.query, unit=signal.unit,
                                 stats=summarize([v for _, v in points])))
    return Window(start=start, end=end, signals=tuple(measured))


@dataclass(frozen=True)
class SignalResult:
    """One expected signal judged over one step: against its threshold and the baseline."""

    name: str
    state: SignalState
    op: str
    threshold: float
    statistic: Statistic
    #: The statistic compared with the threshold.
    observed: float | None
    unit: str | None
    stats: Stats | None
    baseline: Stats | None
    #: ``observed`` minus the same statistic of the baseline.
    delta: float | None
    #: ``delta`` as a percentage of the baseline; None when the baseline is 0 or missing.
    delta_percent: float | None
    summary: str

    @property
    def holds(self) -> bool:
        """Whether the hypothesis held (no data is not holding)."""
        return self.state == "held"


def judge_signal(signal: SignalQuery, stats: Stats | None, baseline: Stats | None,
                 statistic: Statistic = "mean") -> SignalResult:
    """Judge one signal: ``statistic`` of the step against the threshold, and its delta."""
    op, threshold = signal.signal.op, signal.signal.threshold
    unit = f" {signal.unit}" if signal.unit else ""
    if stats is None:
        return SignalResult(name=signal.name, state="no_data", op=op, threshold=threshold,
                            statistic=statistic, observed=None, unit=signal.unit, stats=None,
                            baseline=baseline, delta=None, delta_percent=None,
                            summary=f"{signal.name}: no data")
    observed = stats.get(statistic)
    state: SignalState = "held" if compare(observed, op, threshold) else "broken"
    delta = delta_percent = None
    versus = ""
    if baseline is not None:
        before = baseline.get(statistic)
        delta = observed - before
        delta_percent = 100 * delta / abs(before) if before else None
        change = f", {delta_percent:+.0f}%" if delta_percent is not None else ""
        versus = f" (baseline {before:.4g}{unit}{change})"
    return SignalResult(name=signal.name, state=state, op=op, threshold=threshold,
                        statistic=statistic, observed=observed, unit=signal.unit, stats=stats,
                        baseline=baseline, delta=delta, delta_percent=delta_percent,
                        summary=f"{signal.name} {state}: {statistic} {observed:.4g}{unit} "
                        f"{'meets' if state == 'held' else 'misses'} {op} {threshold:g}{versus}")


def judge_window(signals: Sequence[SignalQuery], step: Window, baseline: Window | None,
                 statistic: Statistic = "mean") -> tuple[SignalResult, ...]:
    """Judge every signal measured over one step against thresholds and the baseline."""
    return tuple(judge_signal(s, step.stats(s.name),
                              baseline.stats(s.name) if baseline else None, statistic)
                 for s in signals)


def recovered(signal: SignalQuery, value: float, baseline: Stats, tolerance_percent: float,
              statistic: Statistic = "mean") -> bool:
    """Whether ``value`` is back within ``tolerance_percent`` of the baseline.

    The direction comes from the signal: for ``<``/``<=`` (lower is better) anything at or
    below the baseline counts, for ``>``/``>=`` anything at or above it; ``==``/``!=`` need
    the value near the baseline either way. A baseline of 0 takes the tolerance as a share
    of the signal's threshold instead, so "0 errors before" does not demand exactly 0 after.
    A value the baseline itself reached (up to its p95, or down to its minimum) counts as
    recovered too: a noisy signal must not look unrecovered for what it did before any fault.
    """
    if math.isnan(value):
        return False
    before = baseline.get(statistic)
    scale = abs(before) if before else abs(signal.signal.threshold)
    margin = scale * tolerance_percent / 100
    if signal.signal.op in ("<", "<="):
        return value <= max(before + margin, baseline.p95)
    if signal.signal.op in (">", ">="):
        return value >= min(before - margin, baseline.min)
    return abs(value - before) <= margin
