"""The run's journal: one JSON line per event, flushed and fsynced as it is written.

The journal is what rollback trusts after a crash: a fault's *intent* is written before the
driver applies it and its handle right after, so :func:`handles_to_revert` finds every fault
that may still be in place. It also holds every guard sample and verdict, the baseline,
signal judgements, reverts and recovery, so a report can be rebuilt from it alone.

Nothing secret is written: values under keys such as ``token`` or ``password`` and the
values of secret-looking environment variables are replaced by ``[redacted]``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gameday.alert_events import (
    AlertSeenEvent,
    BudgetEvent,
    SilenceCreatedEvent,
    SilenceDeletedEvent,
    SilenceRenewedEvent,
)
from gameday.errors import JournalError
from gameday.guards.hold import HoldResult, Recorder
from gameday.guards.queries import GuardQuery
from gameday.guards.rules import Sample, Verdict
from gameday.guards.signals import SignalResult, Window
from gameday.notes import Note, upgrade_note
from gameday.records import Handle, Labels
from gameday.redact import redact, secret_values
from gameday.search_events import (
    ProbeEndedEvent,
    ProbeJudgedEvent,
    ProbeStartedEvent,
    SearchEndedEvent,
    SearchSkippedEvent,
    SearchStartedEvent,
)


class _Event(BaseModel):
    # Infinity and NaN survive the round trip as JSON's non-standard constants.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")
    at: float = Field(default_factory=time.time, description="epoch seconds of the event")


class PlannedStep(BaseModel):
    """One rung of the ladder as planned."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    severity: int = Field(ge=1)
    fault: str = Field(description="one-line fault summary")
    dwell: float
    ttl: float


class PlannedQuery(BaseModel):
    """A guard or signal by name, with the PromQL it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    query: str


class PlanEvent(_Event):
    """The run as planned: who, what, where, and the queries that will watch it."""

    event: Literal["plan"] = "plan"
    run: str
    scenario: str
    environment: str
    requester: str
    max_severity: int
    steps: list[PlannedStep]
    # Lists, not mappings: a guard named like "token_errors" must not be taken for a secret.
    guards: list[PlannedQuery] = Field(default_factory=list)
    signals: list[PlannedQuery] = Field(default_factory=list)


class BaselineEvent(_Event):
    """Every signal measured before the first step."""

    event: Literal["baseline"] = "baseline"
    window: Window


class StepStartedEvent(_Event):
    """A step of the ladder begins."""

    event: Literal["step_started"] = "step_started"
    severity: int
    fault: str
    dwell: float
    ttl: float


class FaultIntentEvent(_Event):
    """A fault is about to be applied: written *before* the driver is called."""

    event: Literal["fault_intent"] = "fault_intent"
    driver: str
    endpoint: str
    labels: Labels
    fault: str
    expires_at: float


class FaultAppliedEvent(_Event):
    """The driver applied a fault and returned its handle."""

    event: Literal["fault_applied"] = "fault_applied"
    handle: Handle


class FaultRevertedEvent(_Event):
    """A fault is gone: reverted by handle, or none found active for its labels."""

    event: Literal["fault_reverted"] = "fault_reverted"
    driver: str
    endpoint: str
    labels: Labels
    handle: Handle | None = None


class RevertFailedEvent(_Event):
    """Reverting failed; the fault may still be in place until its TTL."""

    event: Literal["revert_failed"] = "revert_failed"
    driver: str
    endpoint: str
    labels: Labels
    handle: Handle | None = None
    error: str


class GuardSampleEvent(_Event):
    """One guard sample and the verdict it led to."""

    event: Literal["guard_sample"] = "guard_sample"
    severity: int | None = None
    #: Set for the samples of a breaking-point search's probe (``severity`` is then None).
    probe: int | None = None
    guard: str
    sample: Sample
    verdict: Verdict


class HoldEndedEvent(_Event):
    """A step's hold ended: held for its dwell, or stopped by a guard."""

    event: Literal["hold_ended"] = "hold_ended"
    severity: int
    result: HoldResult


class SignalsJudgedEvent(_Event):
    """A step's expected signals, judged against thresholds and the baseline."""

    event: Literal["signals_judged"] = "signals_judged"
    severity: int
    window: Window
    results: tuple[SignalResult, ...]


class RecoveryEvent(_Event):
    """After rollback: whether and how fast the signals came back to the baseline."""

    event: Literal["recovery"] = "recovery"
    recovered: bool
    seconds: float | None = None
    detail: str = ""


class NotificationDroppedEvent(_Event):
    """A notification was given up on (queue full, deadline passed, sink failing)."""

    event: Literal["notification_dropped"] = "notification_dropped"
    sink: str
    message: str
    reason: str


class RunEndedEvent(_Event):
    """The run is over."""

    event: Literal["run_ended"] = "run_ended"
    outcome: str = Field(description="e.g. completed, breached, aborted, failed")
    highest_held: int | None = None
    first_broken: int | None = None
    summary: str = ""


#: Every line of a journal: a protocol event, or a note (each kind its own class, see
#: :mod:`gameday.notes`).
Event = Annotated[
    PlanEvent | BaselineEvent | StepStartedEvent | FaultIntentEvent | FaultAppliedEvent
    | FaultRevertedEvent | RevertFailedEvent | GuardSampleEvent | HoldEndedEvent
    | SignalsJudgedEvent | RecoveryEvent | NotificationDroppedEvent | RunEndedEvent
    | SearchStartedEvent | ProbeStartedEvent | ProbeEndedEvent | ProbeJudgedEvent
    | SearchEndedEvent | SearchSkippedEvent | SilenceCreatedEvent | SilenceRenewedEvent
    | SilenceDeletedEvent | AlertSeenEvent | BudgetEvent | Note,
    Field(discriminator="event"),
]
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


# --- writing and reading ------------------------------------------------------------------


class Journal:
    """Appends events to a JSON-lines file; each line is on disk before ``write`` returns.

    Opening an existing journal appends to it (a revert hook in another process may add to a
    crashed run's journal); a torn last line left by a crash is closed off first.
    """

    def __init__(self, path: Path | str, *, secrets: Iterable[str] = (),
                 fsync: bool = True) -> None:
        self.path = Path(path)
        self._secrets = list(secrets)
        self._fsync = fsync
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if created:
            _fsync_dir(self.path.parent)  # the new file's name must survive a crash too
        elif _ends_torn(self.path):
            self._append(b"\n")

    def write(self, event: Event) -> None:
        """Append one event, redacted; flushed and fsynced before returning."""
        # The environment is read at every write: a token exported mid-run is hidden too.
        data = redact(event.model_dump(mode="json"), [*self._secrets, *secret_values()])
        line = json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"
        self._append(line.encode())

    def guard_recorder(self, severity: int | None = None, probe: int | None = None
                       ) -> Recorder:
        """A ``record`` callback for ``hold`` that journals every sample and verdict, of a
        step (``severity``) or of a search's probe."""

        def record(guard: GuardQuery, sample: Sample, verdict: Verdict) -> None:
            self.write(GuardSampleEvent(severity=severity, probe=probe, guard=guard.name,
                                        sample=sample, verdict=verdict))

        return record

    def _append(self, data: bytes) -> None:
        with self._lock:
            if self._fd is None:
                raise JournalError(f"journal {self.path} is closed")
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            if self._fsync:
                os.fsync(self._fd)

    def close(self) -> None:
        """Close the file; later writes raise ``JournalError``."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: Path | str) -> list[Event]:
    """Every event of a journal, in order.

    Lines that are not JSON are torn writes of a crashed writer and are skipped; a JSON line
    that is not a known event raises ``JournalError`` naming the file and line.
    """
    events: list[Event] = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            try:
                events.append(_EVENT.validate_python(upgrade_note(data)))
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                raise JournalError(f"{path}:{number}: not a journal event: {where}: "
                                   f"{first['msg']}") from exc
    return events


@dataclass(frozen=True)
class Leftover:
    """A fault that may still be in place: applied (``handle`` set) or only intended.

    An intended fault has no handle: its driver finds it by ``labels`` through ``active``.
    """

    driver: str
    endpoint: str
    labels: Labels
    fault: str
    expires_at: float
    handle: Handle | None = None

    def expired(self, now: float | None = None) -> bool:
        """Whether the fault's own TTL has passed."""
        return (time.time() if now is None else now) >= self.expires_at


def handles_to_revert(events: Iterable[Event]) -> list[Leftover]:
    """Faults intended or applied with no matching revert afterwards, in journal order.

    A revert with a handle clears that handle (and its intent); a revert without one means
    "nothing active for these labels" and clears every fault journaled under them.
    """
    pending: dict[tuple[str, str, Labels, str | None], Leftover] = {}
    for event in events:
        if isinstance(event, FaultIntentEvent):
            pending[(event.driver, event.endpoint, event.labels, None)] = Leftover(
                event.driver, event.endpoint, event.labels, event.fault, event.expires_at)
        elif isinstance(event, FaultAppliedEvent):
            h = event.handle
            pending.pop((h.driver, h.endpoint, h.labels, None), None)
            pending[(h.driver, h.endpoint, h.labels, h.id)] = Leftover(
                h.driver, h.endpoint, h.labels, h.fault, h.expires_at, h)
        elif isinstance(event, FaultRevertedEvent):
            place = (event.driver, event.endpoint, event.labels)
            if event.handle is not None:
                pending.pop((*place, event.handle.id), None)
                pending.pop((*place, None), None)
            else:
                for key in [k for k in pending if k[:3] == place]:
                    del pending[key]
    return list(pending.values())


def _ends_torn(path: Path) -> bool:
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        if file.tell() == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) != b"\n"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
