"""The contract every driver keeps, and the handle that records an applied fault.

A driver applies and reverts one family of faults (proxy admin API, httpx transport file,
Chaos Mesh, ConfigMap, local stress). The protocol never trusts memory: a handle is written to
the journal *before* ``apply`` and is enough to revert after a crash, and ``active`` finds a
run's faults through the labels they carry even when no journal survived.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gameday.records import FaultSpec, Handle

__all__ = ["Driver"]


@runtime_checkable
class Driver(Protocol):
    """Applies, reverts and lists one family of faults. Every method may raise ``DriverError``."""

    kind: str

    def check(self) -> None:
        """Raise ``DriverUnreachable`` unless the driver's endpoint answers."""

    def apply(self, spec: FaultSpec, ttl: float) -> Handle:
        """Inject ``spec`` so that it expires by itself after ``ttl`` seconds."""

    def revert(self, handle: Handle) -> None:
        """Remove the fault; reverting one that is already gone is not an error."""

    def active(self, run: str | None = None) -> list[Handle]:
        """Faults this kit injected that are still in place, optionally only ``run``'s."""
