"""The report model: a pure function from a run's journal to a frozen ``GameDayReport``.

One model feeds the markdown postmortem, the Prefect artifacts and the chat summary, so they
can never disagree. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gameday.guards import SignalResult, Stats, Window
from gameday.journal import (
    BaselineEvent,
    Event,
    FaultAppliedEvent,
    FaultRevertedEvent,
    GuardSampleEvent,
    HoldEndedEvent,
    NoteEvent,
    NotificationDroppedEvent,
    PlanEvent,
    RecoveryEvent,
    RevertFailedEvent,
    RunEndedEvent,
    SignalsJudgedEvent,
    StepStartedEvent,
)
from gameday.report.learnings import learnings

OUTCOME_TEXT = {
    "passed": "Passed: every step held",
    "aborted": "Aborted by a guard",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "refused": "Refused before anything was injected",
    "rollback_failed": "ROLLBACK FAILED: faults may remain",
    "unknown": "Unknown: the run did not record its end",
}
METRICS = (("latency_p50_ms", "p50 latency", "ms"), ("latency_p95_ms", "p95 latency", "ms"),
           ("latency_p99_ms", "p99 latency", "ms"), ("error_rate_percent", "error rate", "%"))


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


@dataclass(frozen=True)
class SignalRow:
    """One expected signal's verdict for a step."""

    name: str
    state: str
    summary: str


@dataclass(frozen=True)
class ReportStep:
    """One rung of the ladder as it ran."""

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
    recovered: bool | None
    recovery_seconds: float | None
    recovery_detail: str


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
    highest_held: int | None
    first_broken: int | None
    planned_steps: int
    started: float | None
    ended: float | None
    steps: tuple[ReportStep, ...]
    guards: dict[str, str]
    guards_fired: tuple[GuardFired, ...]
    rollback: Rollback
    timeline: tuple[TimelineEntry, ...]
    notifications_dropped: int
    learnings: tuple[str, ...]
    runbook: str | None = None
    description: str = ""
    missing: tuple[str, ...] = field(default=())

    @property
    def faults_may_remain(self) -> bool:
        """Whether rollback could not confirm the run is clean."""
        return self.outcome == "rollback_failed"


def _mean(window: Window | None, name: str) -> float | None:
    stats: Stats | None = window.stats(name) if window else None
    return stats.mean if stats else None


def build_report(events: Sequence[Event], *, run_url: str | None = None,
                 runbook: str | None = None, description: str = "") -> GameDayReport:
    """The report of one run, from its journal alone."""
    plan = next((e for e in events if isinstance(e, PlanEvent)), None)
    baseline = next((e.window for e in events if isinstance(e, BaselineEvent)), None)
    ended = next((e for e in reversed(events) if isinstance(e, RunEndedEvent)), None)
    approver = next((e.data.get("approver") for e in events
                     if isinstance(e, NoteEvent) and e.kind == "signoff_granted"), None)
    steps, fired, timeline = _steps(events, baseline), _fired(events), _timeline(events)
    rollback = _rollback(events)
    missing = []
    if plan is None:
        missing.append("the plan (the journal has no plan event)")
    if baseline is None:
        missing.append("the baseline (not measured)")
    if ended is None:
        missing.append("the run's end (it may have crashed)")
    outcome = ended.outcome if ended else "unknown"
    report = GameDayReport(
        run=plan.run if plan else "?", scenario=plan.scenario if plan else "?",
        environment=plan.environment if plan else "?",
        requester=plan.requester if plan else "?",
        approver=str(approver) if approver else None, run_url=run_url, outcome=outcome,
        outcome_text=OUTCOME_TEXT.get(outcome, outcome),
        highest_held=ended.highest_held if ended else None,
        first_broken=ended.first_broken if ended else None,
        planned_steps=len(plan.steps) if plan else 0,
        started=events[0].at if events else None, ended=ended.at if ended else None,
        steps=steps, guards={g.name: g.query for g in plan.guards} if plan else {},
        guards_fired=fired,
        rollback=rollback, timeline=timeline,
        notifications_dropped=sum(isinstance(e, NotificationDroppedEvent) for e in events),
        learnings=(), runbook=runbook, description=description, missing=tuple(missing))
    return replace(report, learnings=learnings(report))


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


def _steps(events: Sequence[Event], baseline: Window | None) -> tuple[ReportStep, ...]:
    drafts: dict[int, _StepDraft] = {}
    for event in events:
        if isinstance(event, StepStartedEvent):
            drafts[event.severity] = _StepDraft(event.fault, event.dwell, event.ttl, event.at)
        elif isinstance(event, HoldEndedEvent) and event.severity in drafts:
            draft = drafts[event.severity]
            draft.ended, draft.held = event.result.ended, event.result.held
            draft.stopped_by = event.result.guard
        elif isinstance(event, NoteEvent) and event.kind == "fault_vanished":
            draft_or_none = drafts.get(int(event.data.get("severity") or 0))
            if draft_or_none is not None:
                draft_or_none.ended, draft_or_none.held = event.at, False
                draft_or_none.stopped_by = "fault vanished"
        elif isinstance(event, SignalsJudgedEvent) and event.severity in drafts:
            drafts[event.severity].window = event.window
            drafts[event.severity].results = event.results
    return tuple(
        ReportStep(
            severity=severity, fault=d.fault, dwell=d.dwell, ttl=d.ttl, started=d.started,
            ended=d.ended, held=d.held, stopped_by=d.stopped_by,
            metrics=tuple(MetricRow(label, unit, _mean(baseline, f"metric:{name}"),
                                    _mean(d.window, f"metric:{name}"))
                          for name, label, unit in METRICS),
            signals=tuple(SignalRow(r.name, r.state, r.summary) for r in d.results))
        for severity, d in sorted(drafts.items()))


def _fired(events: Sequence[Event]) -> tuple[GuardFired, ...]:
    fired = []
    started = {e.severity: e.at for e in events if isinstance(e, StepStartedEvent)}
    reverts = [e.at for e in events if isinstance(e, FaultRevertedEvent | RevertFailedEvent)]
    for event in events:
        if not isinstance(event, HoldEndedEvent) or event.result.verdict is None:
            continue
        verdict = event.result.verdict
        at = event.result.breached_at or verdict.at
        later = [r for r in reverts if r >= at]
        onset = started.get(event.severity)
        fired.append(GuardFired(
            guard=verdict.guard, severity=event.severity, observed=verdict.value, op=verdict.op,
            threshold=verdict.threshold, state=verdict.state, at=at, summary=verdict.summary,
            detect_seconds=at - onset if onset else None,
            revert_seconds=min(later) - at if later else None))
    return tuple(fired)


def _rollback(events: Sequence[Event]) -> Rollback:
    swept = tuple(e.message for e in events if isinstance(e, NoteEvent) and e.kind == "swept")
    swept_handles = {e.data.get("run") for e in events if isinstance(e, NoteEvent)
                     and e.kind == "swept"}
    reverted = tuple(f"{e.handle.fault} at {e.endpoint}" for e in events
                     if isinstance(e, FaultRevertedEvent) and e.handle is not None
                     and e.labels.run not in swept_handles)
    failed = tuple(f"{e.handle.fault if e.handle else 'fault'} at {e.endpoint}: {e.error}"
                   for e in events if isinstance(e, RevertFailedEvent))
    recovery = next((e for e in reversed(events) if isinstance(e, RecoveryEvent)), None)
    return Rollback(reverted=reverted, failed=failed, swept=swept,
                    recovered=recovery.recovered if recovery else None,
                    recovery_seconds=recovery.seconds if recovery else None,
                    recovery_detail=recovery.detail if recovery else "not measured")


def _timeline(events: Sequence[Event]) -> tuple[TimelineEntry, ...]:
    out = []
    for event in events:
        text = None
        if isinstance(event, PlanEvent):
            text = f"planned {len(event.steps)} step(s) by {event.requester}"
        elif isinstance(event, BaselineEvent):
            text = "baseline measured"
        elif isinstance(event, StepStartedEvent):
            text = f"step {event.severity}: {event.fault} for {event.dwell:g}s"
        elif isinstance(event, FaultAppliedEvent):
            text = f"fault applied at {event.handle.endpoint} (expires in " \
                   f"{event.handle.expires_at - event.at:.0f}s)"
        elif isinstance(event, HoldEndedEvent):
            text = f"step {event.severity} {event.result.summary}"
        elif isinstance(event, FaultRevertedEvent) and event.handle is not None:
            text = f"reverted {event.handle.fault} (run {event.labels.run})"
        elif isinstance(event, RevertFailedEvent):
            text = f"REVERT FAILED: {event.error}"
        elif isinstance(event, RecoveryEvent):
            text = ("recovered" if event.recovered else "did not recover") + \
                   (f" in {event.seconds:.1f}s" if event.seconds is not None else "") + \
                   (f": {event.detail}" if event.detail else "")
        elif isinstance(event, NoteEvent) and event.kind in {
                "refused", "preflight", "preflight_failed", "swept", "fault_vanished", "error",
                "signoff_granted", "signoff_refused", "cancelled"}:
            text = f"{event.kind.replace('_', ' ')}: {event.message}"
        elif isinstance(event, GuardSampleEvent) and event.verdict.stops:
            text = f"guard {event.guard}: {event.verdict.summary}"
        elif isinstance(event, RunEndedEvent):
            text = f"run ended: {OUTCOME_TEXT.get(event.outcome, event.outcome)}"
        if text:
            out.append(TimelineEntry(event.at, text))
    return tuple(out)
