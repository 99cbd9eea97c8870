"""The sections of a report, each built from the journal and what Prometheus saw (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gameday.guards import SignalResult, Stats, Window
from gameday.journal import (
    BaselineEvent,
    Event,
    FaultAppliedEvent,
    FaultRevertedEvent,
    GuardSampleEvent,
    HoldEndedEvent,
    NotificationDroppedEvent,
    PlanEvent,
    RecoveryEvent,
    RevertFailedEvent,
    RunEndedEvent,
    SignalsJudgedEvent,
    StepStartedEvent,
)
from gameday.notes import (
    CancelledNote,
    ErrorNote,
    FaultVanishedNote,
    NoticeNote,
    ObserveFailedNote,
    PreflightFailedNote,
    PreflightNote,
    RefusedNote,
    SignoffGrantedNote,
    SignoffRefusedNote,
    SweptNote,
)
from gameday.report.alerting import alert_timeline
from gameday.report.breaking import PURPOSE_TEXT
from gameday.report.links import graph_link
from gameday.report.observed import (
    BREAKER_STATE,
    CALLS_PER_SECOND,
    ERROR_RATE,
    FAULTS_PER_SECOND,
    LATENCY_P95,
    LATENCY_P99,
    RETRIES_PER_SECOND,
    Observed,
    Series,
)
from gameday.report.parts import (
    OUTCOME_TEXT,
    Chart,
    ChartLine,
    GuardFired,
    MetricRow,
    ReportStep,
    Rollback,
    SignalRow,
    TimelineEntry,
)
from gameday.search_events import (
    ProbeEndedEvent,
    ProbeStartedEvent,
    SearchEndedEvent,
    SearchSkippedEvent,
    SearchStartedEvent,
)

#: The standard metrics of every step: (signal template name, label, unit).
METRICS = (("latency_p50_ms", "p50 latency", "ms"), ("latency_p95_ms", "p95 latency", "ms"),
           ("latency_p99_ms", "p99 latency", "ms"), ("error_rate_percent", "error rate", "%"))
#: Notes worth a line in the timeline (notice notes repeat other events).
TIMELINE_NOTES = (RefusedNote, PreflightNote, PreflightFailedNote, SweptNote, FaultVanishedNote,
                  ErrorNote, SignoffGrantedNote, SignoffRefusedNote, CancelledNote,
                  ObserveFailedNote)
#: Circuit breaker transitions shown in the timeline, at most (a flapping breaker is noisy).
MAX_BREAKER_LINES = 8
BREAKER_WORDS = {0.0: "closed", 1.0: "half-open", 2.0: "opened"}


def _mean(window: Window | None, name: str) -> float | None:
    stats: Stats | None = window.stats(name) if window else None
    return stats.mean if stats else None


@dataclass
class _StepDraft:
    fault: str
    dwell: float
    ttl: float
    started: float
    ended: float | None = None
    held: bool | None = None
    stopped_by: str | None = None
    window: Window | None = None
    results: tuple[SignalResult, ...] = ()


def steps(events: Sequence[Event], baseline: Window | None,
          observed: Observed | None) -> tuple[ReportStep, ...]:
    """Every step that started, with its metrics against the baseline and its traffic."""
    drafts: dict[int, _StepDraft] = {}
    for event in events:
        if isinstance(event, StepStartedEvent):
            drafts[event.severity] = _StepDraft(event.fault, event.dwell, event.ttl, event.at)
        elif isinstance(event, HoldEndedEvent) and event.severity in drafts:
            draft = drafts[event.severity]
            draft.ended, draft.held = event.result.ended, event.result.held
            draft.stopped_by = event.result.guard
        elif isinstance(event, FaultVanishedNote):
            vanished = drafts.get(event.severity)
            if vanished is not None:
                vanished.ended, vanished.held = event.at, False
                vanished.stopped_by = "fault vanished: lease expired" if event.lease_expired \
                    else "fault vanished"
        elif isinstance(event, SignalsJudgedEvent) and event.severity in drafts:
            drafts[event.severity].window = event.window
            drafts[event.severity].results = event.results
    built = []
    for severity, d in sorted(drafts.items()):
        start, end = d.started, d.ended if d.ended is not None else d.started

        def over(name: str, peak: bool = False, start: float = start, end: float = end
                 ) -> float | None:
            series = observed.get(name) if observed else None
            if series is None:
                return None
            return series.peak(start, end) if peak else series.mean(start, end)

        built.append(ReportStep(
            severity=severity, fault=d.fault, dwell=d.dwell, ttl=d.ttl, started=d.started,
            ended=d.ended, held=d.held, stopped_by=d.stopped_by,
            metrics=tuple(MetricRow(label, unit, _mean(baseline, f"metric:{name}"),
                                    _mean(d.window, f"metric:{name}"))
                          for name, label, unit in METRICS),
            signals=tuple(SignalRow(r.name, r.state, r.summary) for r in d.results),
            faults_per_second=over(FAULTS_PER_SECOND), calls_per_second=over(CALLS_PER_SECOND),
            retries_per_second=over(RETRIES_PER_SECOND),
            breaker_peak=over(BREAKER_STATE, peak=True)))
    return tuple(built)


def fired(events: Sequence[Event]) -> tuple[GuardFired, ...]:
    """Guards whose verdict stopped a step, with detection and revert times."""
    found = []
    started = {e.severity: e.at for e in events if isinstance(e, StepStartedEvent)}
    reverts = [e.at for e in events if isinstance(e, FaultRevertedEvent | RevertFailedEvent)]
    for event in events:
        if not isinstance(event, HoldEndedEvent) or event.result.verdict is None:
            continue
        verdict = event.result.verdict
        at = event.result.breached_at or verdict.at
        later = [r for r in reverts if r >= at]
        onset = started.get(event.severity)
        found.append(GuardFired(
            guard=verdict.guard, severity=event.severity, observed=verdict.value, op=verdict.op,
            threshold=verdict.threshold, state=verdict.state, at=at, summary=verdict.summary,
            detect_seconds=at - onset if onset else None,
            revert_seconds=min(later) - at if later else None))
    return tuple(found)


def rollback(events: Sequence[Event]) -> Rollback:
    """What rollback reverted and verified, what failed, what was swept, and recovery."""
    swept = tuple(e.message for e in events if isinstance(e, SweptNote))
    swept_runs = {e.run for e in events if isinstance(e, SweptNote)}
    last_step = max((e.at for e in events if isinstance(e, StepStartedEvent | ProbeStartedEvent)),
                    default=0.0)
    # A revert before the last step (or probe) began only made room for the next one.
    reverted = tuple(f"{e.handle.fault} at {e.endpoint}" for e in events
                     if isinstance(e, FaultRevertedEvent) and e.handle is not None
                     and e.labels.run not in swept_runs and e.at >= last_step)
    failed = tuple(f"{e.handle.fault if e.handle else 'fault'} at {e.endpoint}: {e.error}"
                   for e in events if isinstance(e, RevertFailedEvent))
    verification = next((e.message for e in reversed(events) if isinstance(e, NoticeNote)
                         and e.notice in ("rollback", "rollback_failed")), "")
    recovery = next((e for e in reversed(events) if isinstance(e, RecoveryEvent)), None)
    return Rollback(reverted=reverted, failed=failed, swept=swept, verification=verification,
                    recovered=recovery.recovered if recovery else None,
                    recovery_seconds=recovery.seconds if recovery else None,
                    recovery_detail=recovery.detail if recovery else "not measured")


def _line(event: Event, pending_seen: set[tuple[str, int | None]]) -> str | None:
    """The timeline's words for one journal event, or None when it is not worth a line."""
    text: str | None = None
    match event:
        case PlanEvent():
            text = f"planned {len(event.steps)} step(s), requested by {event.requester}"
        case BaselineEvent():
            text = f"baseline measured over {event.window.end - event.window.start:.0f}s"
        case StepStartedEvent():
            text = f"step {event.severity}: {event.fault} for {event.dwell:g}s"
        case FaultAppliedEvent():
            lease = event.handle.lease_s
            text = (f"fault applied at {event.handle.endpoint} (expires by itself in "
                    f"{event.handle.expires_at - event.at:.0f}s"
                    + (f", leased for {lease:g}s)" if lease else ")"))
        case GuardSampleEvent() if event.verdict.pending:
            key = (event.guard, event.severity)
            if key not in pending_seen:
                pending_seen.add(key)
                text = f"guard {event.guard}: {event.verdict.summary}"
        case GuardSampleEvent() if event.verdict.stops:
            text = f"guard {event.guard}: {event.verdict.summary}"
        case HoldEndedEvent():
            text = f"step {event.severity} {event.result.summary}"
        case SearchStartedEvent():
            text = (f"breaking-point search: {event.held:g} to {event.broken:g} {event.unit}, "
                    f"to {event.resolution_text}, up to {event.budget} probes of "
                    f"{event.dwell:g}s")
        case ProbeStartedEvent():
            text = f"probe {event.probe} ({PURPOSE_TEXT[event.purpose]}): {event.fault}"
        case ProbeEndedEvent():
            text = f"probe {event.probe} {event.verdict}: {event.detail}"
        case SearchEndedEvent():
            text = f"breaking point: {event.text} ({event.stopped})"
        case SearchSkippedEvent():
            text = f"breaking-point search not run: {event.reason}"
        case FaultRevertedEvent() if event.handle is not None:
            text = f"reverted {event.handle.fault} (run {event.labels.run})"
        case RevertFailedEvent():
            text = f"REVERT FAILED: {event.error}"
        case RecoveryEvent():
            text = (("recovered" if event.recovered else "did not recover")
                    + (f" in {event.seconds:.1f}s" if event.seconds is not None else "")
                    + (f": {event.detail}" if event.detail else ""))
        case _ if isinstance(event, TIMELINE_NOTES):
            text = f"{event.kind.replace('_', ' ')}: {event.message}"
        case NotificationDroppedEvent():
            text = f"notification to {event.sink} dropped: {event.reason}"
        case RunEndedEvent():
            text = f"run ended: {OUTCOME_TEXT.get(event.outcome, event.outcome)}"
    return text


def timeline(events: Sequence[Event], observed: Observed | None,
             dependency: str | None) -> tuple[TimelineEntry, ...]:
    """Phases, steps, guard verdicts, reverts, recovery, silences, alerts, the error budget
    and circuit breaker moves, in order."""
    pending_seen: set[tuple[str, int | None]] = set()
    found = [TimelineEntry(e.at, text) for e in events
             if (text := _line(e, pending_seen)) is not None]
    found += alert_timeline(events)
    breaker = observed.get(BREAKER_STATE) if observed else None
    if breaker is not None:
        towards = f" towards {dependency}" if dependency else ""
        moves = breaker.changes()[1:]  # the first point is the state before anything moved
        for at, state in moves[:MAX_BREAKER_LINES]:
            word = BREAKER_WORDS.get(state, f"state {state:g}")
            found.append(TimelineEntry(at, f"circuit breaker{towards} {word} (Prometheus)"))
        if len(moves) > MAX_BREAKER_LINES:
            found.append(TimelineEntry(moves[MAX_BREAKER_LINES][0], "circuit breaker kept "
                                       f"moving: {len(moves) - MAX_BREAKER_LINES} more changes"))
    return tuple(sorted(found, key=lambda entry: entry.at))


def journal_series(events: Sequence[Event], name: str) -> Series | None:
    """A guard's own samples as a curve (when Prometheus cannot be asked any more)."""
    plan = next((e for e in events if isinstance(e, PlanEvent)), None)
    query = next((g.query for g in plan.guards if g.name == name), "") if plan else ""
    points = {e.sample.query_time: e.sample.value for e in events
              if isinstance(e, GuardSampleEvent) and e.guard == name
              and e.sample.value is not None and not math.isnan(e.sample.value)}
    if not points:
        return None
    return Series(name=name, query=query, points=tuple(sorted(points.items())),
                  source="journal")


def traffic_baseline(observed: Observed | None, baseline: Window | None
                     ) -> tuple[float | None, float | None]:
    """Call attempts and retries per second towards the dependency over the baseline."""
    if observed is None or baseline is None:
        return None, None
    calls, retries = observed.get(CALLS_PER_SECOND), observed.get(RETRIES_PER_SECOND)
    return (calls.mean(baseline.start, baseline.end) if calls else None,
            retries.mean(baseline.start, baseline.end) if retries else None)


def charts(series: Sequence[Series], baseline: Window | None, prometheus_url: str | None,
           window: tuple[float, float]) -> tuple[Chart, ...]:
    """The latency and error-rate charts, for the curves that have points."""
    by_name = {s.name: s for s in series}
    wanted = (("latency", "p95 and p99 latency", "ms",
               (("p95", LATENCY_P95), ("p99", LATENCY_P99))),
              ("errors", "Error rate", "%", (("error rate", ERROR_RATE),)))
    found = []
    for key, title, unit, lines in wanted:
        present = [(label, name) for label, name in lines if name in by_name]
        if not present:
            continue
        queries = [by_name[name].query for _, name in present if by_name[name].query]
        sources = {by_name[name].source for _, name in present}
        found.append(Chart(
            key=key, title=title, file=f"{key}.png", unit=unit,
            lines=tuple(ChartLine(label, name, _mean(baseline, f"metric:{name}"))
                        for label, name in present),
            link=graph_link(prometheus_url, queries, *window) if prometheus_url and queries
            else None,
            source="prometheus" if sources == {"prometheus"} else "journal"))
    return tuple(found)

