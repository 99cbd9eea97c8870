"""Rollback: revert every fault of a run, verify nothing of it is active, wait for recovery.

``revert_run`` works from the journal and the drivers only (never from memory), so the flow's
``finally``, its crash and cancellation hooks (which may run in another process), ``chaosctl
stop`` and the reaper all use it. While it runs, SIGINT and SIGTERM are held back: a second
Ctrl-C must not leave half the faults in place.

Rollback fails closed: a place it cannot check (no driver could be built for it, or listing
its faults failed) makes the run not clean, and the journal says which place and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from gameday.drivers.base import Driver
from gameday.errors import DriverError, DriverUnreachable, GuardError
from gameday.journal import (
    Event,
    FaultIntentEvent,
    FaultRevertedEvent,
    Journal,
    PlanEvent,
    RecoveryEvent,
    RevertFailedEvent,
    handles_to_revert,
    read_journal,
)
from gameday.models import Endpoint, Environment
from gameday.paths import journal_path
from gameday.protocol.context import RunContext, endpoint_key
from gameday.protocol.prepare import Drivers, build_drivers
from gameday.records import Handle, Labels

#: Attempts per revert: a revert is idempotent, so retrying cannot hide anything.
REVERT_ATTEMPTS = 3
#: Seconds a driver that does not answer is asked again before its place counts as unchecked:
#: a sidecar restarting during rollback is back within them, and paging on-call for it would
#: be a false alarm. Past them the rollback fails closed.
UNREACHABLE_PATIENCE = 6.0


@dataclass(frozen=True)
class Unchecked:
    """A place rollback could not check, so faults may remain there until their TTL."""

    driver: str
    endpoint: str
    why: str

    def __str__(self) -> str:
        return f"{self.driver} at {self.endpoint} could not be checked: {self.why}"


@dataclass(frozen=True)
class RollbackResult:
    """What rollback did and whether the run is clean."""

    run: str
    reverted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    remaining: tuple[str, ...] = ()
    seconds: float = 0.0
    deferred_signals: tuple[int, ...] = field(default=())
    #: Places no driver could check; each is also in ``failed`` or ``remaining``, in words.
    unchecked: tuple[Unchecked, ...] = ()
    #: Ids of the run's Alertmanager silences deleted (one that could not be is in ``failed``).
    silences: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """Every fault reverted and none left active."""
        return not self.failed and not self.remaining


#: Rollbacks of this process that were not clean. ``chaosctl start`` reads them when a stop
#: signal ends the flow with an exception rather than its result: exit 5 still wins then.
_UNCLEAN: list[RollbackResult] = []


def unclean_rollbacks() -> tuple[RollbackResult, ...]:
    """Every rollback of this process that was not clean, oldest first."""
    return tuple(_UNCLEAN)


@contextlib.contextmanager
def signals_held() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM back for the duration (main thread only; elsewhere a no-op).

    What was held back is returned to the caller (``RollbackResult.deferred_signals``), which
    delivers it once the run's end is recorded.
    """
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, remember)
    except ValueError:  # not the main thread: signals cannot reach us here anyway
        pass
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def revert_run(run: str, environment: Environment, journal: Journal | None = None,
               path: Path | None = None, settle: float = 0.0) -> RollbackResult:
    """Revert every fault of ``run`` known to its journal or to any driver; verify; journal;
    then delete its Alertmanager silences, once the alerts they hold have resolved (waiting
    ``settle`` seconds at most).

    Every place the run faulted (per its journal; without one here, every place of the
    environment) must be checked by a driver, or the run is not clean.
    """
    started = time.monotonic()
    path = path or journal_path(run)
    known = path.exists()  # before opening it here creates it
    own = journal is None
    if own:
        journal = Journal(path)
    assert journal is not None
    with signals_held() as deferred:
        drivers = build_drivers(environment)
        try:
            events = read_journal(path) if known else None
            result = _revert(run, environment, events, drivers, journal)
            result = _unsilence(run, environment, events, journal, result, settle)
        finally:
            drivers.close()
            if own:
                journal.close()
    result = replace(result, seconds=time.monotonic() - started,
                     deferred_signals=tuple(deferred))
    if not result.clean:
        _UNCLEAN.append(result)
    return result


def _revert(run: str, environment: Environment, events: list[Event] | None, built: Drivers,
            journal: Journal) -> RollbackResult:
    """One rollback pass over the built drivers, journaling every revert and every problem."""
    drivers: dict[tuple[str, str], tuple[Endpoint, Driver]] = {
        (e.driver, endpoint_key(e)): (e, d) for e, d in built.built}
    broken: dict[tuple[str, str], str] = {(e.driver, endpoint_key(e)): why
                                          for e, why in built.reasons()}
    leftovers = handles_to_revert(events or [])
    labels = _labels(run, environment, events or [])
    # Fail closed: the journal names every place the run faulted (its intent is written
    # before the driver is called); without the journal, any place of the environment may
    # hold its faults.
    places: list[tuple[str, str]] = (
        list(labels.places) if events is not None
        else [(e.driver, endpoint_key(e)) for e in environment.endpoints])
    unchecked = [Unchecked(kind, place, _missing(kind, place, broken, environment))
                 for kind, place in dict.fromkeys(places)
                 if _driver_at(kind, place, drivers) is None]
    handles: dict[tuple[str, str], Handle] = {}
    for left in leftovers:
        if left.handle is not None:
            handles[(left.handle.driver, left.handle.id)] = left.handle
    for (kind, place), (_endpoint, driver) in drivers.items():
        try:
            for handle in _active(driver, run):
                handles[(handle.driver, handle.id)] = handle
        except DriverError as exc:
            unchecked.append(Unchecked(kind, place, f"cannot list its faults: {exc}"))
    reverted: list[str] = []
    failed: list[str] = []
    told: set[tuple[str, str]] = set()  # places whose failure a handle's event already names
    for handle in handles.values():
        pair = _owner(handle, drivers)
        error: str | None
        if pair is None:
            error = ("no driver for it: "
                     + _missing(handle.driver, handle.endpoint, broken, environment))
        else:
            error = _revert_one(pair[1], handle)
        if error is None:
            reverted.append(f"{handle.fault} at {handle.endpoint}")
            journal.write(FaultRevertedEvent(driver=handle.driver, endpoint=handle.endpoint,
                                             labels=handle.labels, handle=handle))
            continue
        failed.append(f"{handle.fault} at {handle.endpoint}: {error}")
        journal.write(RevertFailedEvent(driver=handle.driver, endpoint=handle.endpoint,
                                        labels=handle.labels, handle=handle, error=error))
        if pair is None:
            told.add((handle.driver, handle.endpoint))
    skip = {(u.driver, u.endpoint) for u in unchecked}
    remaining, unverified = _verify(run, {k: v for k, v in drivers.items() if k not in skip})
    for problem in unchecked:
        if (problem.driver, problem.endpoint) not in told:
            failed.append(str(problem))
            _journal_unchecked(journal, problem, labels)
    for problem in unverified:
        remaining.append(str(problem))
        _journal_unchecked(journal, problem, labels)
    unchecked += unverified
    if not remaining and not unchecked:
        # Intents whose apply never returned: nothing of them is active any more.
        for left in leftovers:
            if left.handle is None:
                journal.write(FaultRevertedEvent(driver=left.driver, endpoint=left.endpoint,
                                                 labels=left.labels))
    return RollbackResult(run=run, reverted=tuple(reverted), failed=tuple(failed),
                          remaining=tuple(remaining), unchecked=tuple(unchecked))


def _unsilence(run: str, environment: Environment, events: list[Event] | None,
               journal: Journal, result: RollbackResult, settle: float) -> RollbackResult:
    """Delete the run's silences. One that cannot be deleted hides alerts until its end, so
    the rollback is not clean (fail closed), and says when it ends by itself."""
    if environment.alertmanager is None:
        return result
    from gameday.protocol.silences import delete_run_silences

    cleanup = delete_run_silences(run, environment.alertmanager, events, journal.write,
                                  settle=settle)
    return replace(result, silences=result.silences + cleanup.deleted,
                   failed=result.failed + cleanup.failed)


def _missing(kind: str, place: str, broken: dict[tuple[str, str], str],
             environment: Environment) -> str:
    """Why no driver reaches ``place``: its endpoint's build error, else that there is none."""
    why = broken.get((kind, place))
    if why is None and kind != "proxy":
        why = next((w for (k, _), w in broken.items() if k == kind), None)
    return why or f"environment {environment.name!r} has no {kind} endpoint there"


@dataclass(frozen=True)
class _Places:
    """The places a run's journal says it faulted, with the labels of its last fault there,
    and labels for a place it does not name."""

    places: dict[tuple[str, str], Labels]
    fallback: Labels | None


def _labels(run: str, environment: Environment, events: list[Event]) -> _Places:
    places = {(e.driver, e.endpoint): e.labels for e in events
              if isinstance(e, FaultIntentEvent)}
    plan = next((e for e in events if isinstance(e, PlanEvent)), None)
    try:
        fallback: Labels | None = Labels(run=run, scenario=plan.scenario if plan else "unknown",
                                         environment=environment.name, step=0)
    except ValidationError:  # a run ID labels cannot carry: the problem stays in the result
        fallback = None
    return _Places(places, fallback)


def _journal_unchecked(journal: Journal, problem: Unchecked, labels: _Places) -> None:
    """A revert failure without a handle: the postmortem names the place and why."""
    found = labels.places.get((problem.driver, problem.endpoint), labels.fallback)
    if found is not None:
        journal.write(RevertFailedEvent(driver=problem.driver, endpoint=problem.endpoint,
                                        labels=found, error=f"could not be checked: "
                                        f"{problem.why}"))


def _owner(handle: Handle, drivers: dict[tuple[str, str], tuple[Endpoint, Driver]]
           ) -> tuple[Endpoint, Driver] | None:
    """The driver that can revert ``handle``."""
    return _driver_at(handle.driver, handle.endpoint, drivers)


#: Driver kinds whose faults only the driver at their own place can reach.
PLACED = frozenset({"proxy", "transport"})


def _driver_at(kind: str, place: str, drivers: dict[tuple[str, str], tuple[Endpoint, Driver]]
               ) -> tuple[Endpoint, Driver] | None:
    """The driver that reaches faults of ``kind`` at ``place``: the one there, else one of
    its kind.

    Proxies and transport rules files are told apart by place (each proxy has its own admin
    API, each service its own rules file); a Chaos Mesh, ConfigMap or stress driver of the
    environment reaches every fault of its kind there.
    """
    exact = drivers.get((kind, place))
    if exact is not None or kind in PLACED:
        return exact
    return next((pair for (k, _), pair in drivers.items() if k == kind), None)


def _revert_one(driver: Driver, handle: Handle) -> str | None:
    error = None
    for attempt in range(REVERT_ATTEMPTS):
        try:
            driver.revert(handle)
            return None
        except DriverError as exc:
            error = str(exc)
            time.sleep(0.2 * (attempt + 1))
    return error


def _active(driver: Driver, run: str) -> list[Handle]:
    """``run``'s faults at ``driver``, asking again for a while when it does not answer."""
    deadline = time.monotonic() + UNREACHABLE_PATIENCE
    pause = 0.2
    while True:
        try:
            return driver.active(run=run)
        except DriverUnreachable:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _verify(run: str, drivers: dict[tuple[str, str], tuple[Endpoint, Driver]]
            ) -> tuple[list[str], list[Unchecked]]:
    """Faults of ``run`` still active, and the places where asking failed."""
    remaining: list[str] = []
    unverified = []
    for (kind, place), (_endpoint, driver) in drivers.items():
        try:
            remaining += [f"{h.fault} at {h.endpoint}" for h in _active(driver, run)]
        except DriverError as exc:
            unverified.append(Unchecked(kind, place, f"cannot verify: {exc}"))
    return remaining, unverified


async def wait_recovery(ctx: RunContext, poll: float | None = None) -> tuple[bool, float | None]:
    """Wait until every signal is back within tolerance of its baseline; journal the result.

    Returns ``(recovered, seconds)``. Signals without a baseline cannot be judged and are
    skipped; with none left, recovery is immediate.
    """
    from gameday.guards import recovered

    recovery = ctx.scenario.rollback.recovery
    interval = poll or ctx.environment.guard_interval
    checks = [(s, ctx.baseline.stats(s.name)) for s in ctx.signals] if ctx.baseline else []
    checks = [(s, b) for s, b in checks if b is not None]
    started = time.time()
    while True:
        pending = []
        for signal_query, base in checks:
            assert base is not None
            try:
                value = await ctx.prometheus.value(signal_query.query)
            except GuardError:
                value = None  # not recovered yet, as far as we can see
            if value is None or math.isnan(value) or not recovered(
                    signal_query, value, base, recovery.tolerance_percent):
                pending.append(signal_query.name)
        elapsed = time.time() - started
        if not pending:
            ctx.journal.write(RecoveryEvent(recovered=True, seconds=elapsed,
                                            detail="signals back within "
                                            f"{recovery.tolerance_percent:g}% of the baseline"))
            return True, elapsed
        if elapsed >= recovery.timeout:
            detail = f"not back after {recovery.timeout:g}s: {', '.join(pending)}"
            ctx.journal.write(RecoveryEvent(recovered=False, seconds=None, detail=detail))
            return False, None
        await asyncio.sleep(interval)
