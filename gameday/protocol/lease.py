"""The run's side of leased faults: a thread that renews them, so they end soon after it stops.

A leased fault ends by itself ``lease`` seconds after its last renewal (see
:mod:`gameday.drivers.base`). The keeper renews every fault it holds each ``lease / 3`` from
its own thread, never from the event loop that waits on Prometheus: a slow query, a blocked
loop or a long guard round must not let a live run's fault lapse. A renewal that fails (the
admin API did not answer) is retried every :data:`RETRY` seconds until it succeeds; only the
driver saying the fault is gone ends it here. A fault the driver reports gone is recorded
(``gone``) and no longer renewed; the step that applied it reads that and ends as "fault
vanished". When the run's process dies or freezes (SIGKILL, SIGSTOP, a paused VM) the thread
dies or freezes with it, and the faults lapse where they are injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gameday.drivers.base import LEASE_EXPIRED, Driver, Gone
from gameday.errors import DriverError
from gameday.records import Handle

#: Seconds between attempts after a renewal failed (within one lease there are several).
RETRY = 0.2


@dataclass(frozen=True)
class LeaseStats:
    """What the keeper did: renewal calls, the failed ones (retried), leases found lapsed."""

    renewals: int
    failures: int
    lapsed: int


class LeaseKeeper:
    """Renews the leases of one run's faults at one driver, from a thread of its own."""

    def __init__(self, driver: Driver, lease: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.driver = driver
        self.lease = lease
        self.period = lease / 3
        self._clock = clock
        self._held: dict[str, Handle] = {}
        self._gone: dict[str, Gone] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._renewals = self._failures = 0

    def hold(self, handle: Handle) -> None:
        """Keep renewing ``handle`` (just applied) until released; no-op without a lease."""
        if handle.lease_s is None:
            return
        with self._lock:
            if self._stopped:
                return
            self._held[handle.id] = handle
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gameday-lease",
                                                daemon=True)
                self._thread.start()

    def release(self, handle: Handle) -> None:
        """Stop renewing ``handle`` (it is being reverted)."""
        with self._lock:
            self._held.pop(handle.id, None)

    def gone(self, handle: Handle) -> Gone | None:
        """Why ``handle``'s fault is gone, if a renewal found it gone."""
        with self._lock:
            return self._gone.get(handle.id)

    def confirm(self, handle: Handle) -> Gone | None:
        """Renew ``handle`` now and say whether it is gone (a step's last look at its fault:
        a run that was frozen past its dwell must not call the step held)."""
        if handle.lease_s is None:
            return None
        with self._lock:
            if handle.id in self._gone or handle.id not in self._held:
                return self._gone.get(handle.id)
        try:
            found = self.driver.renew([handle])
        except DriverError:
            return None  # the thread keeps trying; the watcher sees what it finds
        self._record(found)
        return self.gone(handle)

    def stats(self) -> LeaseStats:
        """Counts so far."""
        with self._lock:
            lapsed = sum(1 for g in self._gone.values() if g.reason == LEASE_EXPIRED)
            return LeaseStats(self._renewals, self._failures, lapsed)

    def stop(self) -> None:
        """Stop renewing (rollback is next, or the run ended); waits for the thread."""
        with self._lock:
            self._stopped = True
            self._held.clear()
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _record(self, found: list[Gone]) -> None:
        with self._lock:
            for gone in found:
                self._gone[gone.handle.id] = gone
                self._held.pop(gone.handle.id, None)

    def _run(self) -> None:
        due = self._clock() + self.period
        while True:
            self._wake.wait(max(0.0, due - self._clock()))
            with self._lock:
                if self._stopped:
                    return
                held = list(self._held.values())
            if not held:
                due = self._clock() + self.period
                continue
            started = self._clock()
            try:
                found = self.driver.renew(held)
            except DriverError:
                with self._lock:
                    self._failures += 1
                due = self._clock() + RETRY
                continue
            with self._lock:
                self._renewals += 1
            self._record(found)
            # From when the call began: the renewal may have taken effect at its start.
            due = started + self.period
