"""How a run ended, from what each phase returned (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from gameday.protocol.escalate import Escalation
from gameday.protocol.observe import Observation
from gameday.protocol.rollback import RollbackResult


@dataclass(frozen=True)
class Outcome:
    """The run's end: passed, aborted, failed, cancelled or rollback_failed."""

    outcome: str
    highest_held: int | None
    first_broken: int | None
    summary: str


def decide(escalation: Escalation | None, observation: Observation | None,
           rollback: RollbackResult | None, error: str | None = None,
           cancelled: bool = False, by: str = "", breaking_point: str | None = None
           ) -> Outcome:
    """Rollback failure outranks everything; then cancellation, failure, guard abort, pass.

    ``by`` says what cancelled the run, in words ("signal SIGTERM during step 2"); without a
    rollback (``None``) nothing was injected. ``breaking_point`` is the search's bracket in
    words, added to the summary of a run that found one.
    """
    held = observation.highest_held if observation else None
    broken = observation.first_broken if observation else None
    if observation is None and escalation is not None:
        held = max((s.severity for s in escalation.steps if s.held), default=None)
        stop = escalation.stopped
        broken = stop.severity if stop else None
    how = f"cancelled by {by}" if by else "cancelled"
    if rollback is not None and not rollback.clean:
        left = [*rollback.failed, *rollback.remaining]
        failure = f"rollback failed, faults may remain: {'; '.join(left)}"
        return Outcome("rollback_failed", held, broken,
                       f"{how}; {failure}" if cancelled else failure)
    if cancelled:
        done = "every fault was reverted" if rollback is not None else "nothing was injected"
        return Outcome("cancelled", held, broken, f"{how}; {done}")
    if error is not None:
        return Outcome("failed", held, broken, f"failed: {error}; every fault was reverted")
    stop = escalation.stopped if escalation else None
    if stop is not None:
        reason = (f"guard {stop.hold.guard}: {stop.hold.verdict.summary}"
                  if stop.hold is not None and stop.hold.verdict is not None
                  else stop.problem or "stopped")
        found = f"; breaking point: {breaking_point}" if breaking_point else ""
        return Outcome("aborted", held, broken,
                       f"aborted at severity {stop.severity}: {reason}{found}")
    top = f"highest severity held: {held}" if held else "no step held its signals"
    if broken is not None:
        return Outcome("passed", held, broken, f"guards held; hypothesis broke at severity "
                       f"{broken}; {top}")
    return Outcome("passed", held, broken, f"every step held; {top}")
