"""Cleaning up after runs that died: revert by run or by environment, close their journals.

Everything here works from journals and drivers (labels), never from a live run's memory, so
the ``sweep`` flow can run anywhere the environment's drivers are reachable: after a crash,
from the reaper automation, or by hand.
"""

from __future__ import annotations

import contextlib
import logging
import time

from gameday.drivers.base import Driver
from gameday.errors import DriverError, GameDayError
from gameday.journal import (
    FaultRevertedEvent,
    Journal,
    NotificationDroppedEvent,
    PlanEvent,
    RunEndedEvent,
    read_journal,
)
from gameday.models import Environment
from gameday.notes import SweptNote
from gameday.notify import (
    JournalSink,
    Notice,
    Notifier,
    RollbackFailedNotice,
    RunLabels,
    RunMetricsSink,
    Sink,
    sinks_for,
)
from gameday.notify.pushgateway import RunState, finish_run
from gameday.paths import journal_path
from gameday.protocol.context import endpoint_key
from gameday.protocol.outcome import decide
from gameday.protocol.prepare import build_drivers
from gameday.protocol.rollback import RollbackResult, Unchecked, revert_run

log = logging.getLogger(__name__)


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
        tell_rollback(run, environment, "", result)
        return result, False
    events = read_journal(path)
    plan = next((e for e in events if isinstance(e, PlanEvent)), None)
    tell_rollback(run, environment, plan.scenario if plan else "", result)
    if any(isinstance(e, RunEndedEvent) for e in events):
        return result, False
    outcome = decide(None, None, result, error=why)
    with Journal(path) as journal:
        journal.write(SweptNote(message=f"the run was cleaned up: {why}", run=run))
        journal.write(RunEndedEvent(outcome=outcome.outcome, summary=outcome.summary))
    return result, True


def tell_rollback(run: str, environment: Environment, scenario: str,
                  result: RollbackResult) -> None:
    """Say what a dead run's own process no longer can: end its run metrics (kept, with
    ``chaos_run_rollback_failed 1``, when the rollback is not clean, so the alert fires) and,
    when not clean, send the rollback-failed notice to its journal and chat."""
    if environment.pushgateway_url:
        with contextlib.suppress(GameDayError):  # unreachable: the notice below still goes
            finish_run(environment.pushgateway_url, RunLabels(run, scenario, environment.name),
                       RunState(rollback_failed=int(not result.clean)))
    if result.clean:
        return
    problems = (*result.failed, *result.remaining)
    notice = RollbackFailedNotice(run=run, text="ROLLBACK FAILED, faults may remain: "
                                  + "; ".join(problems), seconds=result.seconds,
                                  problems=problems)
    path = journal_path(run)
    journal = Journal(path) if path.exists() else None
    sinks: list[Sink] = [JournalSink(journal.write)] if journal else []
    try:
        # The metrics were ended above: a metrics sink only pushes once a run has started.
        sinks += [s for s in sinks_for(environment, run=run, scenario=scenario)
                  if not isinstance(s, RunMetricsSink)]
    except GameDayError as exc:  # e.g. the Slack token is not set in this process
        log.error("run %s: cannot reach chat for the rollback-failed notice: %s", run, exc)

    def dropped(sink: str, lost: Notice, reason: str) -> None:
        if journal is not None:
            journal.write(NotificationDroppedEvent(sink=sink, message=lost.text, reason=reason))

    notifier = Notifier(sinks, on_drop=dropped)
    try:
        notifier.post(notice)
    finally:
        notifier.close(timeout=10.0)
        if journal is not None:
            journal.close()


def revert_environment(environment: Environment) -> RollbackResult:
    """Revert every fault labelled with ``environment`` on every driver, whatever its run.

    Only safe when no game day of the environment is alive (its faults would go too): the
    caller checks. Each revert is also journaled in its run's journal when that is here.
    Fails closed: an endpoint whose driver cannot be built, or cannot list or verify its
    faults, leaves the result not clean.
    """
    started = time.monotonic()
    reverted: list[str] = []
    failed: list[str] = []
    remaining: list[str] = []
    drivers = build_drivers(environment)
    unchecked = [Unchecked(e.driver, endpoint_key(e), why) for e, why in drivers.reasons()]
    failed += [str(u) for u in unchecked]
    try:
        for endpoint, driver in drivers.built:
            problem = _revert_labelled(environment, endpoint_key(endpoint), driver, reverted,
                                       failed, remaining)
            if problem is not None:
                unchecked.append(problem)
    finally:
        drivers.close()
    from gameday.protocol.incidents import sweep_environment_silences

    silences, problems = sweep_environment_silences(environment)
    failed += problems
    return RollbackResult(run="*", silences=tuple(silences), reverted=tuple(reverted),
                          failed=tuple(failed), remaining=tuple(remaining),
                          seconds=time.monotonic() - started, unchecked=tuple(unchecked))


def _revert_labelled(environment: Environment, place: str, driver: Driver,
                     reverted: list[str], failed: list[str], remaining: list[str]
                     ) -> Unchecked | None:
    """Revert the environment's faults one driver reaches; the place if it could not check."""
    try:
        handles = [h for h in driver.active() if h.labels.environment == environment.name]
    except DriverError as exc:
        problem = Unchecked(driver.kind, place, f"cannot list its faults: {exc}")
        failed.append(str(problem))
        return problem
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
                journal.write(FaultRevertedEvent(driver=handle.driver, endpoint=handle.endpoint,
                                                 labels=handle.labels, handle=handle))
    try:
        remaining += [f"{h.fault} at {h.endpoint}" for h in driver.active()
                      if h.labels.environment == environment.name]
    except DriverError as exc:
        problem = Unchecked(driver.kind, place, f"cannot verify: {exc}")
        remaining.append(str(problem))
        return problem
    return None
