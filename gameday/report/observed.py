"""What Prometheus saw over a run: the part of a report the journal cannot hold (pure).

The journal keeps what the protocol decided (samples of its guards, each step's means); the
curves behind the charts, the proxies' count of injected faults, retries towards the
dependency and the circuit breaker's state live in Prometheus. A thin I/O function
(:func:`gameday.report.fetch.fetch_observed`) fills an :class:`Observed` with range queries
over the run window, so building the report stays a pure function of its inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydantic import TypeAdapter

Point = tuple[float, float]

# Names of the series a report knows how to read.
LATENCY_P95 = "latency_p95_ms"
LATENCY_P99 = "latency_p99_ms"
ERROR_RATE = "error_rate_percent"
FAULTS_PER_SECOND = "faults_injected_per_second"
FAULTS_TOTAL = "faults_injected_total"
CALLS_PER_SECOND = "downstream_calls_per_second"
RETRIES_PER_SECOND = "downstream_retries_per_second"
BREAKER_STATE = "circuit_breaker_state"

#: Values of ``service_circuit_breaker_state``.
BREAKER_OPEN = 2.0


@dataclass(frozen=True)
class Series:
    """One query's values over the run window, oldest first."""

    name: str
    query: str
    points: tuple[Point, ...]
    #: Where the points came from: ``prometheus``, or ``journal`` (guard samples).
    source: str = "prometheus"

    def values(self, start: float, end: float) -> list[float]:
        """Values with a timestamp in ``[start, end]``, NaNs dropped."""
        return [v for t, v in self.points if start <= t <= end and not math.isnan(v)]

    def mean(self, start: float, end: float) -> float | None:
        """Mean over ``[start, end]``; None without points there."""
        found = self.values(start, end)
        return math.fsum(found) / len(found) if found else None

    def peak(self, start: float, end: float) -> float | None:
        """Largest value over ``[start, end]``; None without points there."""
        found = self.values(start, end)
        return max(found) if found else None

    def changes(self) -> list[Point]:
        """``(time, value)`` at the first point and every point whose value differs."""
        found: list[Point] = []
        for at, value in self.points:
            if not found or value != found[-1][1]:
                found.append((at, value))
        return found


@dataclass(frozen=True)
class Observed:
    """Every series fetched for one run, and what could not be fetched (with why)."""

    prometheus_url: str | None
    start: float
    end: float
    step: float
    series: tuple[Series, ...] = ()
    missing: tuple[str, ...] = field(default=())

    def get(self, name: str) -> Series | None:
        """The series ``name``, if it was fetched and has points."""
        return next((s for s in self.series if s.name == name and s.points), None)


_OBSERVED: TypeAdapter[Observed] = TypeAdapter(Observed)


def observed_to_json(observed: Observed) -> str:
    """``observed`` as JSON (to keep what Prometheus said beyond its retention)."""
    return _OBSERVED.dump_json(observed, indent=1).decode()


def observed_from_json(text: str) -> Observed:
    """An :class:`Observed` saved by :func:`observed_to_json`."""
    return _OBSERVED.validate_json(text)
