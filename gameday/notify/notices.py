"""The notices a run sends: one frozen record per kind, with the fields its sinks read.

``kind`` tells them apart (as ``Notice``, a discriminated union); sinks match on the class.
Every notice has the run, a plain ``text`` (what a console line, a push notification or a
screen reader shows), a level and its time; the rest is the kind's own.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from gameday.notes import Level
from gameday.report.digest import ReportDigest


class _Notice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    run: str
    text: str
    level: Level = "info"
    at: float = Field(default_factory=time.time, description="epoch seconds it was sent")


class BaselineFigure(BaseModel):
    """One standard metric of the target over the baseline window (its mean)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str = Field(description="e.g. latency_p95_ms, error_rate_percent")
    value: float


class StartNotice(_Notice):
    """The ladder is about to start: the plan, and the baseline it is read against."""

    kind: Literal["start"] = "start"
    scenario: str
    environment: str
    requester: str
    service: str
    #: ``service → dependency`` (or the service alone).
    target: str
    #: One line per step: fault and dwell.
    ladder: tuple[str, ...] = ()
    #: One line per guard: name, rule and how long it must hold.
    guards: tuple[str, ...] = ()
    baseline: tuple[BaselineFigure, ...] = ()


class StepNotice(_Notice):
    """Step ``severity`` of ``total`` is in place."""

    kind: Literal["step"] = "step"
    severity: int
    total: int
    fault: str
    dwell: float
    ttl: float


class BreachNotice(_Notice):
    """A guard stopped the ladder."""

    kind: Literal["breach"] = "breach"
    level: Level = "critical"
    guard: str
    severity: int
    observed: float | None = None
    #: The rule it broke, e.g. ``> 5``.
    threshold: str


class VanishedNotice(_Notice):
    """Step ``severity``'s fault disappeared before its dwell ended; the run aborts."""

    kind: Literal["vanished"] = "vanished"
    level: Level = "warning"
    severity: int


class ProbeNotice(_Notice):
    """A breaking-point probe was judged: held, broken, or not judged."""

    kind: Literal["probe"] = "probe"
    probe: int
    budget: int
    fault: str
    verdict: str
    #: The guard that broke it, if one did.
    guard: str | None = None


class SearchNotice(_Notice):
    """The breaking-point search is over: its bracket, or why it found none."""

    kind: Literal["search"] = "search"
    #: ``holds at 178 ms, breaks at 190 ms``; None when the search found no bracket.
    bracket: str | None = None
    probes: int = 0
    stopped: str = ""


class RollbackNotice(_Notice):
    """Rollback reverted every fault and verified none is active."""

    kind: Literal["rollback"] = "rollback"
    seconds: float
    reverted: int


class RollbackFailedNotice(_Notice):
    """Rollback could not confirm the run is clean: faults may remain until their TTL."""

    kind: Literal["rollback_failed"] = "rollback_failed"
    level: Level = "critical"
    seconds: float
    problems: tuple[str, ...]


class RecoveryNotice(_Notice):
    """Whether (and how fast) the signals came back to the baseline after rollback."""

    kind: Literal["recovery"] = "recovery"
    recovered: bool
    seconds: float | None = None


class SummaryNotice(_Notice):
    """The run is over: its digest, from the postmortem's report model."""

    kind: Literal["summary"] = "summary"
    digest: ReportDigest
    #: Where the postmortem is: a file path or a URL.
    postmortem: str


class SweepNotice(_Notice):
    """Leftover faults of earlier runs were reverted before this run started."""

    kind: Literal["sweep"] = "sweep"
    level: Level = "warning"
    count: int


class SignoffRequestedNotice(_Notice):
    """The plan needs a second person's approval before the ladder may start."""

    kind: Literal["signoff_requested"] = "signoff_requested"
    level: Level = "warning"
    severity: int | None = Field(description="the environment's sign-off severity")
    plan_hash: str


class SignoffGrantedNotice(_Notice):
    """A second person approved the plan; the ladder starts."""

    kind: Literal["signoff_granted"] = "signoff_granted"
    approver: str
    severity: int | None = None


class SignoffTimedOutNotice(_Notice):
    """Nobody approved the plan within ``timeout`` seconds; nothing was injected."""

    kind: Literal["signoff_timed_out"] = "signoff_timed_out"
    level: Level = "warning"
    timeout: float


class WaitingNotice(_Notice):
    """The run waits for its environment's concurrency ``limit`` (another run holds it)."""

    kind: Literal["waiting"] = "waiting"
    limit: str


class WarningNotice(_Notice):
    """Something about the run that someone should fix, though the run goes on."""

    kind: Literal["warning"] = "warning"
    level: Level = "warning"


class SuiteRow(BaseModel):
    """One scenario of a suite run: its outcome, or why it was skipped."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    scenario: str
    #: The run's outcome, or ``skipped``.
    outcome: str
    #: The run's summary, or the reason it was skipped.
    note: str = ""
    #: The share of its error budget left before it ran (or was skipped); None if unknown.
    budget_left: float | None = None
    #: Its breaking point, and how it moved since its previous run (``regression``: it fell).
    breaking_point: str | None = None
    trend: str | None = None
    regression: bool = False


class SuiteNotice(_Notice):
    """A suite run (the weekly resilience run) is over: what ran, what was skipped and why."""

    kind: Literal["suite"] = "suite"
    suite: str
    environment: str
    ran: int
    skipped: int
    rows: tuple[SuiteRow, ...] = ()


Notice = Annotated[
    StartNotice | StepNotice | BreachNotice | VanishedNotice | ProbeNotice | SearchNotice
    | RollbackNotice
    | RollbackFailedNotice | RecoveryNotice | SummaryNotice | SweepNotice
    | SignoffRequestedNotice | SignoffGrantedNotice | SignoffTimedOutNotice | WaitingNotice
    | WarningNotice | SuiteNotice,
    Field(discriminator="kind"),
]
#: Every notice class, in the union's order.
NOTICE_TYPES: tuple[type[_Notice], ...] = get_args(get_args(Notice)[0])
