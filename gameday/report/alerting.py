"""The postmortem's alerts and error budget: the run's silences, the alerts that fired while
its guards watched, and the budget before and after (pure, from the journal).

Built only when the run had dealings with Alertmanager or an SLO; the timeline's lines for
those events are worded here too, so the section and the timeline never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gameday.alert_events import (
    AlertEvent,
    AlertSeenEvent,
    BudgetEvent,
    SilenceCreatedEvent,
    SilenceDeletedEvent,
    SilenceRenewedEvent,
)
from gameday.journal import Event
from gameday.report.parts import TimelineEntry

#: The labels of an alert worth showing beside its name (the rest are in Alertmanager).
ALERT_LABELS = ("severity", "service")
MOMENT_TEXT = {"before": "before the first fault", "after": "after recovery"}


def clock(at: float) -> str:
    """``HH:MM:SS UTC``, as the timeline's times are."""
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S UTC")


def percent(share: float, digits: int = 1) -> str:
    """A share as a percentage with ``digits`` decimals, never ``-0.0%``."""
    return f"{round(share * 100, digits) + 0.0:.{digits}f}%"


@dataclass(frozen=True)
class SilenceRow:
    """One silence the run created: its matchers, its ids, how it ended."""

    #: The id Alertmanager last gave it (renewals may change it).
    id: str
    matchers: str
    created: float
    #: When it ends by itself, as last created or renewed.
    ends_at: float
    #: Its earlier ids, oldest first, when renewals gave it new ones.
    previous_ids: tuple[str, ...] = ()
    #: True: deleted; False: could not be deleted; None: no deletion was recorded.
    deleted: bool | None = None
    deleted_at: float | None = None
    error: str | None = None
    #: When one that could not be deleted ends by itself.
    expires_at: float | None = None

    @property
    def ending(self) -> str:
        """How the silence ended, in words."""
        if self.deleted:
            return f"deleted at {clock(self.deleted_at or self.created)}"
        if self.deleted is False:
            return (f"could not be deleted ({self.error}): ends by itself at "
                    f"{clock(self.expires_at or self.ends_at)}")
        return f"no deletion recorded: ends by itself at {clock(self.ends_at)}"


@dataclass(frozen=True)
class AlertRow:
    """An alert of the environment that fired while the run's guards watched."""

    alertname: str
    #: The labels that matter (:data:`ALERT_LABELS`) it carries, in that order.
    labels: tuple[tuple[str, str], ...]
    #: When the run first saw it firing.
    seen: float
    starts_at: float | None
    expected: bool
    incident: bool
    silenced: bool

    @property
    def label_text(self) -> str:
        """``severity=page, service=user-service``, or empty."""
        return ", ".join(f"{k}={v}" for k, v in self.labels)

    @property
    def state(self) -> str:
        """``expected, silenced``, ``INCIDENT, not expected``, ``firing`` …"""
        if self.expected:
            text = "expected, silenced" if self.silenced else "expected, NOT silenced"
        else:
            text = "INCIDENT, not expected" if self.incident else "firing"
            text += ", silenced" if self.silenced else ""
        return text

    @classmethod
    def of(cls, event: AlertSeenEvent) -> AlertRow:
        """The alert an ``AlertSeenEvent`` journaled."""
        return cls(alertname=event.alertname,
                   labels=tuple((k, event.labels[k]) for k in ALERT_LABELS if k in event.labels),
                   seen=event.at, starts_at=event.starts_at, expected=event.expected,
                   incident=event.incident, silenced=event.silenced)

    @property
    def text(self) -> str:
        """The alert in a line: name, labels that matter, state."""
        labels = f" ({self.label_text})" if self.labels else ""
        return f"{self.alertname}{labels}: {self.state}"


@dataclass(frozen=True)
class BudgetReading:
    """The error budget left at one moment of the run."""

    moment: str
    at: float
    left: float | None
    objective: float
    min_left: float
    query: str
    error: str | None = None

    @property
    def left_text(self) -> str:
        """``87.5%``, or ``unknown``."""
        return "unknown" if self.left is None else percent(self.left)

    @property
    def moment_text(self) -> str:
        """``before the first fault`` or ``after recovery``."""
        return MOMENT_TEXT.get(self.moment, self.moment)

    @property
    def rule(self) -> str:
        """``objective 0.99, needs 25%``."""
        return f"objective {self.objective:.4g}, needs {self.min_left * 100:.3g}%"

    @property
    def unknown_because(self) -> str | None:
        """Why the budget left is unknown; None when it is known."""
        if self.left is not None:
            return None
        return f"the query failed: {self.error}" if self.error else \
            "the SLO query returned nothing"

    @property
    def text(self) -> str:
        """``error budget left: 87.5% (objective 0.99, needs 25%)``, or why it is unknown."""
        if self.left is None:
            return f"error budget unknown ({self.unknown_because}; {self.rule})"
        return f"error budget left: {percent(self.left)} ({self.rule})"

    @classmethod
    def of(cls, event: BudgetEvent) -> BudgetReading:
        """The reading a budget event journaled."""
        return cls(moment=event.moment, at=event.at, left=event.left, objective=event.objective,
                   min_left=event.min_left, query=event.query, error=event.error)


@dataclass(frozen=True)
class Alerting:
    """The section: silences, the alerts seen, and the budget before and after."""

    silences: tuple[SilenceRow, ...] = ()
    #: Ids of silences of earlier runs that this run deleted (they outlived their run).
    swept: tuple[str, ...] = ()
    alerts: tuple[AlertRow, ...] = ()
    before: BudgetReading | None = None
    after: BudgetReading | None = None

    @property
    def readings(self) -> tuple[BudgetReading, ...]:
        """The budget readings taken, before then after."""
        return tuple(r for r in (self.before, self.after) if r is not None)

    @property
    def unexpected(self) -> tuple[AlertRow, ...]:
        """The alerts that fired and were not expected."""
        return tuple(a for a in self.alerts if not a.expected)

    @property
    def spent(self) -> float | None:
        """The share of the budget the run spent (before minus after); None if unknown."""
        if self.before is None or self.after is None:
            return None
        if self.before.left is None or self.after.left is None:
            return None
        return self.before.left - self.after.left

    @property
    def budget_change(self) -> str | None:
        """``87.5% → 80.1%``; None when the run kept no SLO."""
        if self.before is None and self.after is None:
            return None
        before = self.before.left_text if self.before else "not measured"
        after = self.after.left_text if self.after else "not measured"
        return f"{before} → {after}"

    @property
    def spent_text(self) -> str:
        """What the run spent of the budget, in words."""
        spent = self.spent
        if spent is None:
            return "not known (the budget was not measured both before and after)"
        if spent <= 0:
            return "nothing measurable (the budget left did not fall)"
        return f"{percent(spent)} of the error budget"


def alerting(events: Sequence[Event]) -> Alerting | None:
    """The section from the journal; None when the run had no alert or budget event."""
    silences: dict[str, SilenceRow] = {}  # by current id
    order: list[str] = []  # first ids, in creation order
    first_id: dict[str, str] = {}  # current id → first id
    swept: list[str] = []
    alerts: list[AlertRow] = []
    readings: dict[str, BudgetReading] = {}
    if not any(isinstance(e, AlertEvent) for e in events):
        return None
    for event in events:
        match event:
            case SilenceCreatedEvent():
                silences[event.id] = SilenceRow(event.id, event.matchers, event.at,
                                                event.ends_at)
                order.append(event.id)
                first_id[event.id] = event.id
            case SilenceRenewedEvent() if event.old_id in silences:
                row = silences.pop(event.old_id)
                silences[event.id] = SilenceRow(
                    event.id, row.matchers, row.created, event.ends_at,
                    (*row.previous_ids, row.id))
                first_id[event.id] = first_id.pop(event.old_id)
            case SilenceDeletedEvent() if event.id in silences:
                row = silences[event.id]
                silences[event.id] = SilenceRow(
                    row.id, row.matchers, row.created, row.ends_at, row.previous_ids,
                    deleted=event.deleted, deleted_at=event.at, error=event.error,
                    expires_at=event.ends_at)
            case SilenceDeletedEvent() if event.deleted:
                swept.append(event.id)
            case AlertSeenEvent():
                alerts.append(AlertRow.of(event))
            case BudgetEvent():
                readings[event.moment] = BudgetReading.of(event)
    by_first = {first_id[current]: row for current, row in silences.items()}
    return Alerting(silences=tuple(by_first[i] for i in order if i in by_first),
                    swept=tuple(swept), alerts=tuple(alerts), before=readings.get("before"),
                    after=readings.get("after"))


def alert_timeline(events: Sequence[Event]) -> list[TimelineEntry]:
    """The timeline's lines for silences, alerts seen and the budget."""
    found = []
    created: set[str] = set()
    for event in events:
        text = None
        match event:
            case SilenceCreatedEvent():
                created.add(event.id)
                text = (f"silence {event.id} created for {event.matchers}, ends by itself at "
                        f"{clock(event.ends_at)} unless renewed")
            case SilenceRenewedEvent():
                created.add(event.id)
                text = (f"silence {event.old_id} renewed with a new id {event.id}, ends by "
                        f"itself at {clock(event.ends_at)} unless renewed")
            case SilenceDeletedEvent():
                text = _deleted(event, event.id in created)
            case AlertSeenEvent():
                text = f"alert {AlertRow.of(event).text}"
            case BudgetEvent():
                reading = BudgetReading.of(event)
                text = f"{reading.text}, {reading.moment_text}"
        if text is not None:
            found.append(TimelineEntry(event.at, text))
    return found


def _deleted(event: SilenceDeletedEvent, ours: bool) -> str:
    whose = "silence" if ours else "silence of an earlier run"
    if event.deleted:
        return f"{whose} {event.id} deleted" + ("" if ours else " (it outlived its run)")
    ends = f"at {clock(event.ends_at)}" if event.ends_at is not None else "at its lease's end"
    return f"{whose} {event.id} could not be deleted ({event.error}): it ends by itself {ends}"
