"""The postmortem's breaking point: the search's bracket, its probes and what broke first,
rebuilt from the journal (pure). How it compares with the scenario's previous run is added by
the learn phase, which reads the history (``report.search.trend``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gameday.journal import Event, HoldEndedEvent
from gameday.report.parts import SignalRow
from gameday.search_events import (
    Axis,
    Bracket,
    ProbeEndedEvent,
    ProbeJudgedEvent,
    ProbeStartedEvent,
    Purpose,
    SearchEndedEvent,
    SearchSkippedEvent,
    SearchStartedEvent,
    Verdict,
)

PURPOSE_TEXT = {"bisect": "bisection", "confirm_held": "repeat of the held end",
                "confirm_broken": "repeat of the broken end"}
TrendKind = Literal["regression", "improvement", "no_change", "not_comparable"]


@dataclass(frozen=True)
class ProbeRow:
    """One probe as the postmortem shows it."""

    number: int
    value: float
    value_text: str
    purpose: Purpose
    verdict: Verdict | None
    detail: str
    started: float
    ended: float | None
    #: The guard whose breach ended it, if one did.
    guard: str | None
    signals: tuple[SignalRow, ...] = ()

    @property
    def purpose_text(self) -> str:
        """``bisection``, ``repeat of the held end``, ``repeat of the broken end``."""
        return PURPOSE_TEXT[self.purpose]


@dataclass(frozen=True)
class Trend:
    """This run's bracket against the previous run's of the same scenario and environment."""

    kind: TrendKind
    text: str
    previous_run: str | None = None
    previous_date: str | None = None

    @property
    def regression(self) -> bool:
        """Whether the breaking point fell."""
        return self.kind == "regression"


@dataclass(frozen=True)
class BreakingPoint:
    """A search asked for by the run: its plan, its probes and its bracket (or why none)."""

    axis: Axis
    start: Bracket
    held_severity: int | None
    broken_severity: int
    resolution_text: str
    resolution: float
    budget: int
    dwell: float
    dwell_floor: float
    guards_hash: str
    probes: tuple[ProbeRow, ...]
    #: The final bracket; None when the search did not end (the run crashed or was stopped).
    bracket: Bracket | None
    text: str
    stopped: str
    confirmed: bool = False
    conflict: str | None = None
    #: The guard that broke the probe (or step) at the bracket's broken end.
    first_broke: str | None = None
    #: Expected signals that did not hold there.
    signals_broken: tuple[str, ...] = ()
    trend: Trend | None = None
    #: Where the service may break: the bracket, widened to conflicting values if any.
    span: Bracket | None = None

    @property
    def monotone(self) -> bool:
        """Whether no held value was at least as severe as a broken one."""
        return self.conflict is None

    @property
    def field(self) -> str:
        """The magnitude searched (``ms``, ``probability``, ``kbps``, …)."""
        return self.axis.field


@dataclass(frozen=True)
class SearchSkipped:
    """A search was asked for and ran no probe."""

    reason: str


def breaking_point(events: Sequence[Event]) -> BreakingPoint | SearchSkipped | None:
    """The run's search from its journal; None when it asked for none."""
    started = next((e for e in events if isinstance(e, SearchStartedEvent)), None)
    skipped = next((e for e in events if isinstance(e, SearchSkippedEvent)), None)
    if skipped is not None and not any(isinstance(e, ProbeStartedEvent) for e in events):
        # Planned, then given up before its first probe (the broken step would not go away).
        return SearchSkipped(skipped.reason)
    if started is None:
        return None
    axis = Axis(started.field, started.unit, started.worse_up, started.integer)
    ended = next((e for e in events if isinstance(e, SearchEndedEvent)), None)
    probes = _probes(events, axis)
    bracket = Bracket(ended.held, ended.broken) if ended else None
    guard, signals = _first_broke(events, started, probes, bracket)
    return BreakingPoint(
        axis=axis, start=Bracket(started.held, started.broken),
        held_severity=started.held_severity, broken_severity=started.broken_severity,
        resolution_text=started.resolution_text, resolution=started.resolution,
        budget=started.budget, dwell=started.dwell, dwell_floor=started.dwell_floor,
        guards_hash=started.guards_hash, probes=probes, bracket=bracket,
        text=ended.text if ended else "the search did not finish (the run was stopped)",
        stopped=ended.stopped if ended else "the run ended during the search",
        confirmed=ended.confirmed if ended else False,
        conflict=ended.conflict if ended else None, first_broke=guard,
        signals_broken=signals, span=_span(ended))


def _span(ended: SearchEndedEvent | None) -> Bracket | None:
    if ended is None:
        return None
    return Bracket(ended.held if ended.span_held is None else ended.span_held,
                   ended.broken if ended.span_broken is None else ended.span_broken)


def _probes(events: Sequence[Event], axis: Axis) -> tuple[ProbeRow, ...]:
    starts = {e.probe: e for e in events if isinstance(e, ProbeStartedEvent)}
    ends = {e.probe: e for e in events if isinstance(e, ProbeEndedEvent)}
    judged = {e.probe: e for e in events if isinstance(e, ProbeJudgedEvent)}
    rows = []
    for number in sorted(starts.keys() | ends.keys()):
        start, end = starts.get(number), ends.get(number)
        value = end.value if end else start.value if start else 0.0
        purpose: Purpose = end.purpose if end else start.purpose if start else "bisect"
        signals = tuple(SignalRow(r.name, r.state, r.summary)
                        for r in judged[number].results) if number in judged else ()
        rows.append(ProbeRow(
            number=number, value=value, value_text=axis.text(value), purpose=purpose,
            verdict=end.verdict if end else None,
            detail=end.detail if end else "did not finish",
            started=end.started if end else start.at if start else 0.0,
            ended=end.ended if end else None,
            guard=end.result.guard if end and end.result else None, signals=signals))
    return tuple(rows)


def _first_broke(events: Sequence[Event], started: SearchStartedEvent,
                 probes: tuple[ProbeRow, ...], bracket: Bracket | None
                 ) -> tuple[str | None, tuple[str, ...]]:
    """The guard that broke the bracket's broken end first, and the signals broken there."""
    broken_at = bracket.broken if bracket else started.broken
    for probe in probes:
        if probe.verdict == "broken" and probe.value == broken_at:
            return probe.guard, tuple(s.name for s in probe.signals if s.state != "held")
    step = next((e for e in events if isinstance(e, HoldEndedEvent)
                 and e.severity == started.broken_severity), None)
    return (step.result.guard if step else None), ()
