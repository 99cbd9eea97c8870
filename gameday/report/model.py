"""The report model: a pure function from a run's journal (and what Prometheus saw) to a
frozen ``GameDayReport``.

One model feeds the markdown postmortem, the Prefect artifacts and the chat summary, so they
can never disagree. Nothing here does I/O: the Prometheus part arrives as an
:class:`~gameday.report.observed.Observed` fetched beforehand (or not at all: the report
then says what is missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gameday.journal import (
    BaselineEvent,
    Event,
    FaultAppliedEvent,
    NotificationDroppedEvent,
    PlanEvent,
    RunEndedEvent,
)
from gameday.models.environment import TracingSettings
from gameday.notes import PostmortemNote, SignoffGrantedNote, TraceNote
from gameday.report.alerting import Alerting, alerting
from gameday.report.breaking import BreakingPoint, SearchSkipped, breaking_point
from gameday.report.learnings import learnings
from gameday.report.links import without_credentials
from gameday.report.observed import (
    BREAKER_STATE,
    ERROR_RATE,
    FAULTS_TOTAL,
    LATENCY_P95,
    LATENCY_P99,
    Observed,
    Series,
)
from gameday.report.parts import (
    OUTCOME_TEXT,
    Chart,
    ChartLine,
    GuardFired,
    MetricRow,
    NamedQuery,
    ReportStep,
    Rollback,
    SignalRow,
    TimelineEntry,
)
from gameday.report.sections import (
    charts,
    fired,
    journal_series,
    rollback,
    steps,
    timeline,
    traffic_baseline,
)
from gameday.report.trace_parts import RunTrace, TraceEvidence

__all__ = ["Chart", "ChartLine", "GameDayReport", "GuardFired", "MetricRow", "NamedQuery",
           "ReportStep", "Rollback", "SignalRow", "TimelineEntry", "build_report", "run_window"]

OUTCOME_MARK = {"passed": "✅", "aborted": "🛑", "failed": "❌", "cancelled": "⏹️",
                "refused": "🚫", "rollback_failed": "🚨", "dry_run": "📝", "unknown": "❔"}


@dataclass(frozen=True)
class GameDayReport:
    """Everything a postmortem says about one run."""

    run: str
    scenario: str
    environment: str
    requester: str
    approver: str | None
    run_url: str | None
    outcome: str
    outcome_text: str
    summary: str
    highest_held: int | None
    first_broken: int | None
    planned_steps: int
    started: float | None
    ended: float | None
    steps: tuple[ReportStep, ...]
    guards: tuple[NamedQuery, ...]
    signals: tuple[NamedQuery, ...]
    guards_fired: tuple[GuardFired, ...]
    rollback: Rollback
    timeline: tuple[TimelineEntry, ...]
    notifications_dropped: int
    learnings: tuple[str, ...]
    runbook: str | None = None
    description: str = ""
    service: str | None = None
    dependency: str | None = None
    #: Faults the proxies injected over the whole run (requests the rules fired on).
    faults_total: float | None = None
    #: Call attempts and retries per second towards the dependency before the first step.
    baseline_calls_per_second: float | None = None
    baseline_retries_per_second: float | None = None
    #: Highest circuit breaker state seen over the run window; None if not measured.
    breaker_peak: float | None = None
    prometheus_url: str | None = None
    #: The span the report looks at: the baseline's start to the run's end.
    window: tuple[float, float] | None = None
    charts: tuple[Chart, ...] = ()
    series: tuple[Series, ...] = ()
    missing: tuple[str, ...] = field(default=())
    #: The game day's own trace, when the run was traced.
    run_trace: RunTrace | None = None
    #: Exemplars and a faulted trace, when the environment names where traces are.
    trace: TraceEvidence | None = None
    #: The breaking-point search, when the run asked for one (or why it ran no probe).
    breaking_point: BreakingPoint | SearchSkipped | None = None
    #: Silences, alerts seen and the error budget, when the run had any of them.
    alerting: Alerting | None = None

    @property
    def search(self) -> BreakingPoint | None:
        """The search that ran, if one did."""
        return self.breaking_point if isinstance(self.breaking_point, BreakingPoint) else None

    @property
    def faults_may_remain(self) -> bool:
        """Whether rollback could not confirm the run is clean."""
        return self.outcome == "rollback_failed"

    @property
    def duration(self) -> float | None:
        """Seconds from the first journal event to the run's end."""
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def latest_expiry(self) -> float | None:
        """When the last fault of the run expires by itself at the latest (its TTL)."""
        return max((s.started + s.ttl for s in self.steps), default=None)

    @property
    def traffic_measured(self) -> bool:
        """Whether any step has injected-fault, call or breaker figures from Prometheus."""
        return any(value is not None for s in self.steps for value in (
            s.faults_per_second, s.calls_per_second, s.retries_per_second, s.breaker_peak))

    @property
    def mark(self) -> str:
        """An emoji for the outcome, for headings and chat."""
        return OUTCOME_MARK.get(self.outcome, "❔")

    @property
    def headline(self) -> str:
        """One line: scenario, environment, outcome, how far the ladder got."""
        reach = (f"held {self.highest_held} of {self.planned_steps}" if self.highest_held
                 else "no step held")
        broke = f", broke at {self.first_broken}" if self.first_broken else ""
        return (f"{self.mark} {self.scenario} in {self.environment}: {self.outcome_text} "
                f"({reach}{broke})")

    def series_named(self, name: str) -> Series | None:
        """The curve ``name`` behind the charts, if any."""
        return next((s for s in self.series if s.name == name), None)

    def step_table(self) -> list[dict[str, str | float | int | None]]:
        """One row per step: fault, dwell, result, metrics with deltas, faults per second."""
        rows: list[dict[str, str | float | int | None]] = []
        for step in self.steps:
            row: dict[str, str | float | int | None] = {
                "severity": step.severity, "fault": step.fault, "dwell_s": step.dwell,
                "ran_s": _round(step.ran), "result": step.result}
            for metric in step.metrics:
                key = metric.name.replace(" latency", "").replace(" ", "_")
                unit = "pct" if metric.unit == "%" else metric.unit
                row[f"{key}_{unit}"] = _round(metric.observed)
                row[f"{key}_baseline_{unit}"] = _round(metric.baseline)
                row[f"{key}_delta_{unit}"] = _round(metric.delta)
            row["faults_per_s"] = _round(step.faults_per_second)
            row["signals"] = ", ".join(f"{s.name} {s.state}" for s in step.signals) or None
            rows.append(row)
        return rows


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def run_window(events: Sequence[Event]) -> tuple[float, float] | None:
    """The span the report looks at: the baseline's start to the run's end (or last event)."""
    if not events:
        return None
    baseline = next((e.window for e in events if isinstance(e, BaselineEvent)), None)
    ended = next((e for e in reversed(events) if isinstance(e, RunEndedEvent)), None)
    start = baseline.start if baseline else events[0].at
    end = ended.at if ended else max(e.at for e in events)
    return start, max(end, start + 1)


def _target(events: Sequence[Event]) -> tuple[str | None, str | None]:
    """``service`` and ``dependency`` as a proxy's handle records them (``a/b``)."""
    for event in events:
        if isinstance(event, FaultAppliedEvent):
            target = event.handle.extra.get("target")
            if isinstance(target, str) and target:
                service, _, dependency = target.partition("/")
                return service, dependency or None
    return None, None


def build_report(events: Sequence[Event], *, run: str | None = None,
                 observed: Observed | None = None,
                 run_url: str | None = None, runbook: str | None = None,
                 description: str = "", service: str | None = None,
                 dependency: str | None = None, prometheus_url: str | None = None,
                 tracing: TracingSettings | None = None, trace: TraceEvidence | None = None
                 ) -> GameDayReport:
    """The report of one run, from its journal and (optionally) what Prometheus saw.

    ``run`` names the run when the journal lost its plan; ``service``/``dependency`` name
    the target (default: as a proxy's handle recorded it);
    ``prometheus_url`` gives chart links when nothing was fetched (``observed`` has its own);
    ``tracing`` links the run's own trace; ``trace`` is the trace evidence, gathered beforehand.
    """
    plan = next((e for e in events if isinstance(e, PlanEvent)), None)
    baseline = next((e.window for e in events if isinstance(e, BaselineEvent)), None)
    ended = next((e for e in reversed(events) if isinstance(e, RunEndedEvent)), None)
    approver = next((e.approver for e in events if isinstance(e, SignoffGrantedNote)), None)
    recorded_url = next((e.run_url for e in events if isinstance(e, PostmortemNote)), None)
    found_service, found_dependency = _target(events)
    service, dependency = service or found_service, dependency or found_dependency
    window = run_window(events)
    url = observed.prometheus_url if observed and observed.prometheus_url else prometheus_url
    url = without_credentials(url) if url else None
    series = _series(events, observed)
    missing = _missing(plan is not None, baseline is not None, ended is not None, observed)
    outcome = ended.outcome if ended else "unknown"
    faults_total = observed.get(FAULTS_TOTAL) if observed else None
    breaker = observed.get(BREAKER_STATE) if observed else None
    calls, retries = traffic_baseline(observed, baseline)
    noted = next((e for e in events if isinstance(e, TraceNote)), None)
    run_trace = RunTrace(noted.trace_id, tracing.link(noted.trace_id) if tracing else None) \
        if noted else None
    report = GameDayReport(
        run=plan.run if plan else run or "?", scenario=plan.scenario if plan else "?",
        environment=plan.environment if plan else "?",
        requester=plan.requester if plan else "?",
        approver=approver or None, run_url=run_url or recorded_url,
        outcome=outcome, outcome_text=OUTCOME_TEXT.get(outcome, outcome),
        summary=ended.summary if ended else "",
        highest_held=ended.highest_held if ended else None,
        first_broken=ended.first_broken if ended else None,
        planned_steps=len(plan.steps) if plan else 0,
        started=events[0].at if events else None, ended=ended.at if ended else None,
        steps=steps(events, baseline, observed),
        guards=tuple(NamedQuery(g.name, g.query) for g in plan.guards) if plan else (),
        signals=tuple(NamedQuery(s.name, s.query) for s in plan.signals) if plan else (),
        guards_fired=fired(events), rollback=rollback(events),
        timeline=timeline(events, observed, dependency),
        notifications_dropped=sum(isinstance(e, NotificationDroppedEvent) for e in events),
        learnings=(), runbook=runbook, description=description, service=service,
        dependency=dependency,
        faults_total=max(v for _, v in faults_total.points) if faults_total else None,
        baseline_calls_per_second=calls, baseline_retries_per_second=retries,
        breaker_peak=max(v for _, v in breaker.points) if breaker else None,
        prometheus_url=url, window=window,
        charts=charts(series, baseline, url, window) if window else (),
        series=series, missing=missing, run_trace=run_trace, trace=trace,
        breaking_point=breaking_point(events), alerting=alerting(events))
    return replace(report, learnings=learnings(report))


def _series(events: Sequence[Event], observed: Observed | None) -> tuple[Series, ...]:
    """The chart curves: Prometheus' where fetched, else the guards' own journaled samples."""
    found = []
    for name in (LATENCY_P95, LATENCY_P99, ERROR_RATE):
        series = (observed.get(name) if observed else None) or journal_series(events, name)
        if series is not None:
            found.append(series)
    return tuple(found)


def _missing(plan: bool, baseline: bool, ended: bool, observed: Observed | None
             ) -> tuple[str, ...]:
    found = []
    if not plan:
        found.append("the plan (the journal has no plan event)")
    if not baseline:
        found.append("the baseline (not measured)")
    if not ended:
        found.append("the run's end (it may have crashed)")
    if observed is None:
        found.append("Prometheus' view of the run (journal only): charts come from guard "
                     "samples, no p95 curve, no injected-fault counts, no retry or circuit "
                     "breaker data")
    else:
        found += observed.missing
    return tuple(found)
