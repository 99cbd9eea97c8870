"""The game day as a trace: one span per phase and per step, built from the run's journal.

The journal is the run's record, written as it goes and fsynced; the trace is drawn from it
when the run is learnt from, so a run that crashed, or was reaped by another process, gets its
trace too. Its id was chosen at prepare and written to the journal (a ``trace`` note), so the
start notice and the postmortem can name it before and after. Guard breaches, vanished faults
and each revert are events on their step's or the rollback's span.

No OpenTelemetry is needed: the spans are written as OTLP JSON directly, to the trace folder
(one file per run, replaced if learnt again) and to an OTLP endpoint when one is set.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gameday.journal import (
    BaselineEvent,
    Event,
    FaultAppliedEvent,
    FaultRevertedEvent,
    GuardSampleEvent,
    HoldEndedEvent,
    PlanEvent,
    RecoveryEvent,
    RevertFailedEvent,
    RunEndedEvent,
    SignalsJudgedEvent,
    StepStartedEvent,
)
from gameday.notes import FaultVanishedNote, TraceNote
from gameday.tracing import TRACE_DIR_ENV

SERVICE = "gameday"


def new_trace_id() -> str:
    return secrets.token_hex(16)


def destinations(files: str | None) -> list[str]:
    """Where the run's trace goes: the environment's trace folder (else this process's
    ``GAMEDAY_TRACE_DIR``) and the OTLP endpoint of this process's environment."""
    from gameday.tracing.setup import endpoint

    found = []
    folder = files or os.environ.get(TRACE_DIR_ENV)
    if folder:
        found.append(folder)
    url = endpoint()
    if url:
        found.append(url)
    return found


@dataclass
class _Span:
    name: str
    start: float
    end: float
    span_id: str = field(default_factory=lambda: secrets.token_hex(8))
    parent: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    error: bool = False


def spans_of(events: Sequence[Event], now: float | None = None) -> list[_Span]:
    """The run's spans from its journal: the root, prepare, each step, observe, rollback."""
    now = now or time.time()
    if not events:
        return []
    plan = next((e for e in events if isinstance(e, PlanEvent)), None)
    ended = next((e for e in events if isinstance(e, RunEndedEvent)), None)
    root = _Span(f"game day {plan.scenario if plan else ''}".strip(), events[0].at,
                 ended.at if ended else now)
    if plan is not None:
        root.attributes = {"chaos.run": plan.run, "chaos.scenario": plan.scenario,
                           "chaos.environment": plan.environment,
                           "gameday.requester": plan.requester,
                           "gameday.max_severity": plan.max_severity}
    if ended is not None:
        root.attributes["gameday.outcome"] = ended.outcome
        root.error = ended.outcome not in ("completed", "dry_run")
    steps = [e for e in events if isinstance(e, StepStartedEvent)]
    reverts = [e for e in events if isinstance(e, FaultRevertedEvent | RevertFailedEvent)]
    recovery = next((e for e in events if isinstance(e, RecoveryEvent)), None)
    first_step = steps[0].at if steps else (reverts[0].at if reverts else root.end)
    prepare = _Span("prepare", root.start, first_step, parent=root.span_id)
    for event in events:
        if isinstance(event, BaselineEvent):
            prepare.events.append(("baseline", event.at, {}))
    out = [root, prepare]
    holds = {e.severity: e for e in events if isinstance(e, HoldEndedEvent)}
    for index, step in enumerate(steps):
        hold = holds.get(step.severity)
        later = steps[index + 1].at if index + 1 < len(steps) else None
        end = hold.at if hold else (later or (reverts[0].at if reverts else root.end))
        span = _Span(f"step {step.severity}", step.at, end, parent=root.span_id,
                     attributes={"chaos.step": step.severity, "chaos.fault": step.fault,
                                 "gameday.dwell_s": step.dwell})
        if hold is not None:
            span.attributes["gameday.held"] = hold.result.guard is None
            if hold.result.guard is not None:
                span.error = True
                span.events.append(("guard breached", hold.result.breached_at or hold.at,
                                    {"guard": hold.result.guard}))
        out.append(span)
    for event in events:
        owner = _step_at(out, event.at)
        if isinstance(event, FaultAppliedEvent) and owner is not None:
            owner.events.append(("fault applied", event.at, {"chaos.rule": event.handle.id,
                                                             "driver": event.handle.driver}))
        elif isinstance(event, GuardSampleEvent) and event.verdict.state == "breached" \
                and owner is not None:
            owner.events.append(("guard sample breached", event.at,
                                 {"guard": event.guard, "value": event.verdict.value or 0.0}))
        elif isinstance(event, FaultVanishedNote) and owner is not None:
            owner.events.append(("fault vanished", event.at,
                                 {"lease_expired": event.lease_expired}))
    judged = [e for e in events if isinstance(e, SignalsJudgedEvent)]
    if judged:
        out.append(_Span("observe", judged[0].window.start, judged[-1].at,
                         parent=root.span_id))
    if reverts or recovery is not None:
        start = reverts[0].at if reverts else recovery.at  # type: ignore[union-attr]
        rollback = _Span("rollback", start, recovery.at if recovery else reverts[-1].at,
                         parent=root.span_id)
        for event in reverts:
            failed = isinstance(event, RevertFailedEvent)
            rollback.events.append(("revert failed" if failed else "fault reverted", event.at,
                                    {"driver": event.driver, "endpoint": event.endpoint}))
            rollback.error |= failed
        if recovery is not None:
            rollback.events.append(("recovered" if recovery.recovered else "not recovered",
                                    recovery.at, {"detail": recovery.detail}))
        out.append(rollback)
    out.append(_Span("learn", max(s.end for s in out[1:]), now, parent=root.span_id))
    root.end = max(root.end, now if ended is None else root.end)
    return out


def _step_at(spans: list[_Span], at: float) -> _Span | None:
    for span in spans:
        if span.name.startswith("step ") and span.start <= at <= span.end + 0.5:
            return span
    return None


def document(spans: Sequence[_Span], trace_id: str) -> dict[str, Any]:
    """The spans as one OTLP JSON ``ExportTraceServiceRequest``."""
    from gameday.tracing.otlp import attribute_list

    def ns(seconds: float) -> str:
        return str(int(seconds * 1e9))

    items = []
    for span in spans:
        item: dict[str, Any] = {
            "traceId": trace_id, "spanId": span.span_id, "name": span.name, "kind": 1,
            "startTimeUnixNano": ns(span.start), "endTimeUnixNano": ns(max(span.end,
                                                                           span.start)),
            "attributes": attribute_list(span.attributes),
            "events": [{"name": name, "timeUnixNano": ns(at),
                        "attributes": attribute_list(attributes)}
                       for name, at, attributes in span.events]}
        if span.parent:
            item["parentSpanId"] = span.parent
        if span.error:
            item["status"] = {"code": 2, "message": ""}
        items.append(item)
    return {"resourceSpans": [{
        "resource": {"attributes": attribute_list({"service.name": SERVICE})},
        "scopeSpans": [{"scope": {"name": "gameday.protocol", "version": ""},
                        "spans": items}]}]}


def export(run: str, events: Sequence[Event]) -> str | None:
    """Write the run's trace where its ``trace`` note says; its trace id, or None when the
    run is not traced. A destination that fails is skipped: a trace never fails a run."""
    note = next((e for e in events if isinstance(e, TraceNote)), None)
    if note is None:
        return None
    body = document(spans_of(events), note.trace_id)
    for destination in note.destinations:
        try:
            if destination.startswith(("http://", "https://")):
                from gameday.tracing.export import HttpSink
                from gameday.tracing.setup import headers

                HttpSink(destination, headers()).write(body)
            else:
                folder = Path(destination)
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{SERVICE}-{run}.otlp.jsonl"
                temporary = path.with_suffix(".tmp")
                temporary.write_text(json.dumps(body, separators=(",", ":")) + "\n")
                os.replace(temporary, path)
        except OSError:
            continue
    return note.trace_id
