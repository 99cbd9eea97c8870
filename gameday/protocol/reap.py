"""Cleaning up after runs that died: revert by run or by environment, close their journals.

Everything here works from journals and drivers (labels), never from a live run's memory, so
the ``sweep`` flow can run anywhere the environment's drivers are reachable: after a crash,
from the reaper automation, or by hand.
"""

from __future__ import annotations

import time

from gameday.errors import DriverError
from gameday.journal import (
    FaultRevertedEvent,
    Journal,
    NoteEvent,
    PlanEvent,
    RunEndedEvent,
    read_journal,
)
from gameday.models import Environment
from gameday.paths import journal_path
from gameday.protocol.outcome import decide
from gameday.protocol.prepare import all_drivers
from gameday.protocol.rollback import RollbackResult, revert_run


def journaled_environment(run: str) -> str | None:
    """The environment a run's journal names in its plan, if the journal is here."""
    path = journal_path(run)
    if not path.exists():
        return None
    plan = next((e for e in read_journal(path) if isinstance(e, PlanEvent)), None)
    return plan.environment if plan else None


def reap_run(run: str, environment: Environment, why: str) -> tuple[RollbackResult, bool]:
    """Revert every fault of ``run`` (journal and drivers) and end its journal if it has no
    end yet; the rollback and whether the journal was ended here."""
    result = revert_run(run, environment)
    path = journal_path(run)
    if not path.exists():
        return result, False
    if any(isinstance(e, RunEndedEvent) for e in read_journal(path)):
        return result, False
    outcome = decide(None, None, result, error=why)
    with Journal(path) as journal:
        journal.write(NoteEvent(kind="swept", message=f"the run was cleaned up: {why}",
                                data={"run": run}))
        journal.write(RunEndedEvent(outcome=outcome.outcome, summary=outcome.summary))
    return result, True


def revert_environment(environment: Environment) -> RollbackResult:
    """Revert every fault labelled with ``environment`` on every driver, whatever its run.

    Only safe when no game day of the environment is alive (its faults would go too): the
    caller checks. Each revert is also journaled in its run's journal when that is here.
    """
    started = time.monotonic()
    reverted, failed, remaining = [], [], []
    for _endpoint, driver in all_drivers(environment):
        try:
            handles = [h for h in driver.active() if h.labels.environment == environment.name]
        except DriverError as exc:
            failed.append(f"{driver.kind}: cannot list faults: {exc}")
            continue
        for handle in handles:
            try:
                driver.revert(handle)
            except DriverError as exc:
                failed.append(f"{handle.fault} at {handle.endpoint}: {exc}")
                continue
            reverted.append(f"{handle.fault} at {handle.endpoint} (run {handle.labels.run})")
            path = journal_path(handle.labels.run)
            if path.exists():
                with Journal(path) as journal:
                    journal.write(FaultRevertedEvent(driver=handle.driver,
                                                     endpoint=handle.endpoint,
                                                     labels=handle.labels, handle=handle))
        try:
            remaining += [f"{h.fault} at {h.endpoint}" for h in driver.active()
                          if h.labels.environment == environment.name]
        except DriverError as exc:
            remaining.append(f"{driver.kind}: cannot verify: {exc}")
    return RollbackResult(run="*", reverted=tuple(reverted), failed=tuple(failed),
                          remaining=tuple(remaining), seconds=time.monotonic() - started)
