"""The records a report is made of: steps, guards that fired, rollback, timeline, charts.

Frozen dataclasses, built by :mod:`gameday.report.sections` from the journal and by
:func:`gameday.report.model.build_report`; templates read their fields by name.
"""

from __future__ import annotations

from dataclasses import dataclass

OUTCOME_TEXT = {
    "passed": "Passed",
    "aborted": "Aborted by a guard",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "refused": "Refused before anything was injected",
    "rollback_failed": "ROLLBACK FAILED — faults may remain",
    "dry_run": "Dry run: nothing injected",
    "unknown": "Unknown: the run did not record its end",
}


@dataclass(frozen=True)
class MetricRow:
    """One standard metric over a step against the baseline (means over each window)."""

    name: str
    unit: str
    baseline: float | None
    observed: float | None

    @property
    def delta(self) -> float | None:
        """Observed minus baseline."""
        if self.baseline is None or self.observed is None:
            return None
        return self.observed - self.baseline

    @property
    def delta_percent(self) -> float | None:
        """The delta as a percentage of the baseline; None when the baseline is 0 or missing."""
        if self.delta is None or not self.baseline:
            return None
        return 100 * self.delta / abs(self.baseline)


@dataclass(frozen=True)
class SignalRow:
    """One expected signal's verdict for a step."""

    name: str
    state: str
    summary: str


@dataclass(frozen=True)
class ReportStep:
    """One rung of the ladder as it ran, with what the proxies and the service did."""

    severity: int
    fault: str
    dwell: float
    ttl: float
    started: float
    ended: float | None
    held: bool | None
    stopped_by: str | None
    metrics: tuple[MetricRow, ...]
    signals: tuple[SignalRow, ...]
    #: Requests the fault fired on, per second (mean over the step; proxies' counters).
    faults_per_second: float | None = None
    #: Call attempts from the service to the dependency, per second (retries included).
    calls_per_second: float | None = None
    #: Of those, retries per second.
    retries_per_second: float | None = None
    #: Highest circuit breaker state seen during the step (0 closed, 1 half-open, 2 open).
    breaker_peak: float | None = None

    @property
    def ran(self) -> float | None:
        """Seconds the step lasted."""
        return None if self.ended is None else self.ended - self.started

    @property
    def result(self) -> str:
        """How the step ended, in a few words."""
        if self.held:
            return "held"
        if self.stopped_by:
            return f"stopped by {self.stopped_by}"
        return "did not finish"

    def metric(self, name: str) -> MetricRow | None:
        """The metric row called ``name`` (e.g. ``p95 latency``)."""
        return next((m for m in self.metrics if m.name == name), None)


@dataclass(frozen=True)
class GuardFired:
    """A guard that stopped the run."""

    guard: str
    severity: int
    observed: float | None
    op: str
    threshold: float
    state: str
    at: float
    summary: str
    #: Seconds from the step's start (fault onset) to the stopping verdict.
    detect_seconds: float | None
    #: Seconds from the stopping verdict to the fault's revert.
    revert_seconds: float | None


@dataclass(frozen=True)
class TimelineEntry:
    """Something that happened, when."""

    at: float
    text: str


@dataclass(frozen=True)
class Rollback:
    """What rollback did."""

    reverted: tuple[str, ...]
    failed: tuple[str, ...]
    swept: tuple[str, ...]
    #: How rollback checked that nothing of the run is left (its own words), if recorded.
    verification: str
    recovered: bool | None
    recovery_seconds: float | None
    recovery_detail: str


@dataclass(frozen=True)
class NamedQuery:
    """A guard or signal and its PromQL."""

    name: str
    query: str


@dataclass(frozen=True)
class ChartLine:
    """One curve of a chart, with the baseline it is read against."""

    label: str
    series: str
    baseline: float | None


@dataclass(frozen=True)
class Chart:
    """A chart of the postmortem: what it plots, its file name and its Prometheus link."""

    key: str
    title: str
    file: str
    unit: str
    lines: tuple[ChartLine, ...]
    #: Opens the chart's PromQL over the run window in Prometheus; None if its URL is unknown.
    link: str | None
    #: Where the curves came from: ``prometheus`` or ``journal`` (guard samples only).
    source: str
