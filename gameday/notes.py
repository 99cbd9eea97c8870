"""Journal notes: what a run wants remembered beyond the protocol's own events.

Every note is a journal line with ``"event": "note"`` and a ``kind`` that names its class, so
one reader decodes each kind into its own typed record. ``message`` is the note in words (the
postmortem's timeline shows it); the other fields are what readers look up.

Journals written before notes were typed carried a free-form ``data`` mapping instead of
fields, and recorded each notice as a note of kind ``notice.<kind>``: :func:`upgrade_note`
turns such a line into the current shape, so old journals still read.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: How urgent a notice is.
Level = Literal["info", "warning", "critical"]
#: Every kind of notice a run sends (``gameday.notify.notices`` has one class for each).
NoticeKind = Literal[
    "start", "step", "breach", "vanished", "probe", "search", "rollback", "rollback_failed",
    "recovery", "summary", "sweep", "signoff_requested", "signoff_granted", "signoff_timed_out",
    "waiting", "warning", "suite",
]


class _Note(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")
    at: float = Field(default_factory=time.time, description="epoch seconds of the note")
    event: Literal["note"] = "note"
    message: str = Field(description="the note in words")


class RefusedNote(_Note):
    """The run was refused before anything was injected; ``message`` gives every reason."""

    kind: Literal["refused"] = "refused"


class LockNote(_Note):
    """The run holds its environment's lock."""

    kind: Literal["lock"] = "lock"


class SweptNote(_Note):
    """A fault of ``run`` was cleaned up: a leftover of an earlier run, or a dead run reaped."""

    kind: Literal["swept"] = "swept"
    run: str


class PreflightNote(_Note):
    """Every guard, signal and the driver answered before the first step."""

    kind: Literal["preflight"] = "preflight"


class PreflightFailedNote(_Note):
    """Preflight found problems; nothing was injected."""

    kind: Literal["preflight_failed"] = "preflight_failed"


class FaultVanishedNote(_Note):
    """The fault of step ``severity`` disappeared before its dwell ended."""

    kind: Literal["fault_vanished"] = "fault_vanished"
    severity: int
    #: Its lease lapsed: the run did not renew it in time (it was frozen, or cut off).
    lease_expired: bool = False


class ObserveFailedNote(_Note):
    """Step ``severity``'s (or a search's ``probe``'s) signals could not be measured."""

    kind: Literal["observe_failed"] = "observe_failed"
    severity: int | None = None
    probe: int | None = None


class SignoffRequestedNote(_Note):
    """The plan hashed ``plan_hash`` waits for a second person."""

    kind: Literal["signoff_requested"] = "signoff_requested"
    plan_hash: str
    severity: int | None = Field(description="the environment's sign-off severity")
    requester: str


class SignoffGrantedNote(_Note):
    """``approver`` approved the plan hashed ``plan_hash``."""

    kind: Literal["signoff_granted"] = "signoff_granted"
    approver: str
    plan_hash: str


class SignoffRefusedNote(_Note):
    """An answer to the sign-off was refused, the plan was rejected, or time ran out."""

    kind: Literal["signoff_refused"] = "signoff_refused"
    approver: str | None = None
    timed_out: bool = False


class ErrorNote(_Note):
    """The ladder failed with an exception; rollback follows."""

    kind: Literal["error"] = "error"


class CancelledNote(_Note):
    """The run was cancelled or interrupted while the ladder ran; rollback follows."""

    kind: Literal["cancelled"] = "cancelled"


class PostmortemNote(_Note):
    """The postmortem was written to ``path``; ``run_url`` is the run's page, if known."""

    kind: Literal["postmortem"] = "postmortem"
    path: str
    run_url: str | None = None


class WarningNote(_Note):
    """Something about the run that someone should fix, though the run goes on."""

    kind: Literal["warning"] = "warning"


class WaitingNote(_Note):
    """The run waits for its environment's concurrency ``limit``."""

    kind: Literal["waiting"] = "waiting"
    limit: str


class SlotNote(_Note):
    """The run holds its environment's concurrency ``limit`` under ``lease`` ("" if unknown)."""

    kind: Literal["slot"] = "slot"
    limit: str
    lease: str = ""


class NoticeNote(_Note):
    """A notice was sent (to whichever sinks it reached); ``message`` is its text."""

    kind: Literal["notice"] = "notice"
    notice: NoticeKind
    level: Level = "info"


class TraceNote(_Note):
    """The run is traced: ``trace_id`` (32 hex digits) names the game day's own trace, whose
    spans went to ``destinations`` (trace files, an OTLP endpoint)."""

    kind: Literal["trace"] = "trace"
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    destinations: list[str] = Field(default_factory=list)


Note = Annotated[
    RefusedNote | LockNote | SweptNote | PreflightNote | PreflightFailedNote
    | FaultVanishedNote | ObserveFailedNote | SignoffRequestedNote | SignoffGrantedNote
    | SignoffRefusedNote | ErrorNote | CancelledNote | PostmortemNote | WarningNote
    | WaitingNote | SlotNote | NoticeNote | TraceNote,
    Field(discriminator="kind"),
]


def upgrade_note(line: Any) -> Any:
    """A decoded journal line in the current shape: an old-style note (``kind`` + ``data``)
    becomes its typed note; anything else is returned as it is."""
    if (not isinstance(line, dict) or line.get("event") != "note"
            or not isinstance(line.get("data"), dict)):
        return line
    old = dict(line)
    data: dict[str, Any] = old.pop("data")
    kind = str(old.get("kind", ""))
    if kind.startswith("notice."):
        return {**old, "kind": "notice", "notice": kind.removeprefix("notice.")}
    if kind == "postmortem":
        return {**old, "path": old.get("message", ""), "run_url": data.get("run_url")}
    return {**data, **old}
