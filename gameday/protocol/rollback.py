"""Rollback: revert every fault of a run, verify nothing of it is active, wait for recovery.

``revert_run`` works from the journal and the drivers only (never from memory), so the flow's
``finally``, its crash and cancellation hooks (which may run in another process), ``chaosctl
stop`` and the reaper all use it. While it runs, SIGINT and SIGTERM are held back: a second
Ctrl-C must not leave half the faults in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from gameday.drivers.base import Driver
from gameday.errors import DriverError, GuardError
from gameday.journal import (
    FaultRevertedEvent,
    Journal,
    RecoveryEvent,
    RevertFailedEvent,
    handles_to_revert,
    read_journal,
)
from gameday.models import Endpoint, Environment
from gameday.paths import journal_path
from gameday.protocol.context import RunContext, endpoint_key
from gameday.records import Handle

#: Attempts per revert: a revert is idempotent, so retrying cannot hide anything.
REVERT_ATTEMPTS = 3


@dataclass(frozen=True)
class RollbackResult:
    """What rollback did and whether the run is clean."""

    run: str
    reverted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    remaining: tuple[str, ...] = ()
    seconds: float = 0.0
    deferred_signals: tuple[int, ...] = field(default=())

    @property
    def clean(self) -> bool:
        """Every fault reverted and none left active."""
        return not self.failed and not self.remaining


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


def _drivers(environment: Environment) -> dict[tuple[str, str], tuple[Endpoint, Driver]]:
    from gameday.drivers import driver_for

    found: dict[tuple[str, str], tuple[Endpoint, Driver]] = {}
    for endpoint in environment.endpoints:
        key = (endpoint.driver, endpoint_key(endpoint))
        if key not in found:
            with contextlib.suppress(DriverError):
                found[key] = (endpoint, driver_for(endpoint, environment))
    return found


def revert_run(run: str, environment: Environment, journal: Journal | None = None,
               path: Path | None = None) -> RollbackResult:
    """Revert every fault of ``run`` known to its journal or to any driver; verify; journal."""
    started = time.monotonic()
    path = path or journal_path(run)
    own = journal is None
    if own:
        journal = Journal(path)
    assert journal is not None
    with signals_held() as deferred:
        drivers = _drivers(environment)
        try:
            leftovers = handles_to_revert(read_journal(path)) if path.exists() else []
            handles: dict[tuple[str, str], Handle] = {}
            for left in leftovers:
                if left.handle is not None:
                    handles[(left.handle.driver, left.handle.id)] = left.handle
            reverted, failed = [], []
            for (_kind, _place), (_endpoint, driver) in drivers.items():
                try:
                    for handle in driver.active(run=run):
                        handles[(handle.driver, handle.id)] = handle
                except DriverError as exc:
                    failed.append(f"{driver.kind}: cannot list faults: {exc}")
            for handle in handles.values():
                pair = _owner(handle, drivers)
                if pair is None:
                    failed.append(f"{handle.fault} at {handle.endpoint}: no driver for it in "
                                  f"environment {environment.name!r}")
                    journal.write(RevertFailedEvent(driver=handle.driver,
                                                    endpoint=handle.endpoint,
                                                    labels=handle.labels, handle=handle,
                                                    error="no driver for this endpoint"))
                    continue
                error = _revert(pair[1], handle)
                if error is None:
                    reverted.append(f"{handle.fault} at {handle.endpoint}")
                    journal.write(FaultRevertedEvent(driver=handle.driver,
                                                     endpoint=handle.endpoint,
                                                     labels=handle.labels, handle=handle))
                else:
                    failed.append(f"{handle.fault} at {handle.endpoint}: {error}")
                    journal.write(RevertFailedEvent(driver=handle.driver,
                                                    endpoint=handle.endpoint,
                                                    labels=handle.labels, handle=handle,
                                                    error=error))
            remaining = _verify(run, drivers, failed)
            if not remaining:
                # Intents whose apply never returned: nothing of them is active any more.
                for left in leftovers:
                    if left.handle is None:
                        journal.write(FaultRevertedEvent(driver=left.driver,
                                                         endpoint=left.endpoint,
                                                         labels=left.labels))
            result = RollbackResult(run=run, reverted=tuple(reverted), failed=tuple(failed),
                                    remaining=tuple(remaining),
                                    seconds=time.monotonic() - started,
                                    deferred_signals=tuple(deferred))
        finally:
            for _endpoint, driver in drivers.values():
                close = getattr(driver, "close", None)
                if callable(close):
                    with contextlib.suppress(Exception):
                        close()
            if own:
                journal.close()
    return result


def _owner(handle: Handle, drivers: dict[tuple[str, str], tuple[Endpoint, Driver]]
           ) -> tuple[Endpoint, Driver] | None:
    """The driver that can revert ``handle``: the one at its place, else one of its kind.

    Only proxies are told apart by place (each has its own admin API); a Chaos Mesh, ConfigMap
    or stress driver of the environment reaches every fault of its kind there.
    """
    exact = drivers.get((handle.driver, handle.endpoint))
    if exact is not None or handle.driver == "proxy":
        return exact
    return next((pair for (kind, _), pair in drivers.items() if kind == handle.driver), None)


def _revert(driver: Driver, handle: Handle) -> str | None:
    error = None
    for attempt in range(REVERT_ATTEMPTS):
        try:
            driver.revert(handle)
            return None
        except DriverError as exc:
            error = str(exc)
            time.sleep(0.2 * (attempt + 1))
    return error


def _verify(run: str, drivers: dict[tuple[str, str], tuple[Endpoint, Driver]],
            failed: list[str]) -> list[str]:
    remaining = []
    for _endpoint, driver in drivers.values():
        try:
            remaining += [f"{h.fault} at {h.endpoint}" for h in driver.active(run=run)]
        except DriverError as exc:
            remaining.append(f"{driver.kind}: cannot verify: {exc}")
    return remaining


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
