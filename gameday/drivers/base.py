"""The contract every driver keeps, and the handle that records an applied fault.

A driver applies and reverts one family of faults (proxy admin API, httpx transport file,
Chaos Mesh, ConfigMap, local stress). The protocol never trusts memory: a handle is written to
the journal *before* ``apply`` and is enough to revert after a crash, and ``active`` finds a
run's faults through the labels they carry even when no journal survived.

A driver whose faults can be **leased** (``lease_slack`` is not None) also takes a ``lease``
at ``apply``: the fault ends by itself when the run stops renewing it, within ``lease`` plus
``lease_slack`` seconds, so a dead or frozen run leaves it that long and not until its TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gameday.records import FaultSpec, Handle

__all__ = ["Driver", "Gone", "lease_of", "orphan_bound"]

#: Why a leased fault is gone, as ``renew`` reports it.
LEASE_EXPIRED = "lease expired"


@dataclass(frozen=True)
class Gone:
    """A fault ``renew`` found no longer in place, and why (``LEASE_EXPIRED``, or other)."""

    handle: Handle
    reason: str


@runtime_checkable
class Driver(Protocol):
    """Applies, reverts and lists one family of faults. Every method may raise ``DriverError``."""

    kind: str
    #: Seconds a lapsed lease may still act before the driver's enforcement ends it (its
    #: polling period); None when the driver has no leases and its faults live to their TTL.
    lease_slack: float | None

    def check(self) -> None:
        """Raise ``DriverUnreachable`` unless the driver's endpoint answers."""

    def apply(self, spec: FaultSpec, ttl: float, lease: float | None = None) -> Handle:
        """Inject ``spec`` so that it expires by itself after ``ttl`` seconds, and sooner when
        ``lease`` is given and the lease is not renewed within it (a driver without leases
        ignores ``lease``; its handle's ``lease_s`` stays None)."""

    def renew(self, handles: Sequence[Handle]) -> list[Gone]:
        """Renew the leases of ``handles`` (one call for all of them where the driver can),
        returning those that are gone: a lapsed lease is never brought back. Raises
        ``DriverError`` when it could not tell (the caller retries within the lease)."""

    def revert(self, handle: Handle) -> None:
        """Remove the fault; reverting one that is already gone is not an error."""

    def active(self, run: str | None = None) -> list[Handle]:
        """Faults this kit injected that are still in place, optionally only ``run``'s."""


def lease_of(driver: Driver, lease: float) -> float | None:
    """The lease ``apply`` is given on ``driver``: None when its faults are not leased."""
    return lease if driver.lease_slack is not None else None


def orphan_bound(driver: Driver, ttl: float, lease: float) -> float:
    """How long a fault applied now could outlive a run that died at once, in seconds."""
    if driver.lease_slack is None:
        return ttl
    return min(ttl, lease + driver.lease_slack)
