"""The journal events of a run's dealings with Alertmanager and its error budget.

A silence is journaled as a fault is: its intent before Alertmanager is asked (so a crash
between the two still leaves a trace the sweep can follow), its id once created, and its
deletion. :func:`silences_to_delete` reads what a dead run may have left.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")
    at: float = Field(default_factory=time.time, description="epoch seconds of the event")


class SilenceCreatedEvent(_Event):
    """A silence of the run's expected alerts now exists in Alertmanager."""

    event: Literal["silence_created"] = "silence_created"
    id: str
    url: str = Field(description="the Alertmanager that holds it")
    matchers: str = Field(description='as Alertmanager writes them: {alertname=~"A|B", …}')
    ends_at: float
    comment: str = ""


class SilenceRenewedEvent(_Event):
    """Alertmanager gave the renewed silence a new id (it does when it cannot extend one)."""

    event: Literal["silence_renewed"] = "silence_renewed"
    old_id: str
    id: str
    ends_at: float


class SilenceDeletedEvent(_Event):
    """The silence was expired in Alertmanager, or could not be (``error``)."""

    event: Literal["silence_deleted"] = "silence_deleted"
    id: str
    error: str | None = None
    #: When a silence that could not be deleted ends by itself.
    ends_at: float | None = None

    @property
    def deleted(self) -> bool:
        """Whether Alertmanager confirmed the deletion."""
        return self.error is None


class AlertSeenEvent(_Event):
    """An alert of the environment was firing while the run watched (first sighting)."""

    event: Literal["alert_seen"] = "alert_seen"
    alertname: str
    labels: dict[str, str]
    starts_at: float | None = None
    expected: bool = False
    incident: bool = False
    silenced: bool = False


class BudgetEvent(_Event):
    """The error budget left, before the first fault or after rollback."""

    event: Literal["budget"] = "budget"
    moment: Literal["before", "after"]
    left: float | None = Field(description="share of the budget left; None when unknown")
    objective: float
    min_left: float
    query: str
    error: str | None = None


AlertEvent = (SilenceCreatedEvent | SilenceRenewedEvent | SilenceDeletedEvent | AlertSeenEvent
              | BudgetEvent)


def silences_to_delete(events: Iterable[object]) -> dict[str, str]:
    """Silences a run created and did not delete, id → the Alertmanager URL holding it."""
    live: dict[str, str] = {}
    for event in events:
        if isinstance(event, SilenceCreatedEvent):
            live[event.id] = event.url
        elif isinstance(event, SilenceRenewedEvent):
            url = live.pop(event.old_id, None)
            if url is not None:
                live[event.id] = url
        elif isinstance(event, SilenceDeletedEvent) and event.deleted:
            live.pop(event.id, None)
    return live
