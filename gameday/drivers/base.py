"""The contract every driver keeps, and the handle that records an applied fault.

A driver applies and reverts one family of faults (proxy admin API, httpx transport file,
Chaos Mesh, ConfigMap, local stress). The protocol never trusts memory: a handle is written to
the journal *before* ``apply`` and is enough to revert after a crash, and ``active`` finds a
run's faults through the labels they carry even when no journal survived.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from gameday.faults import Fault
from gameday.models import Target


class Labels(BaseModel):
    """Labels every fault carries, so leftovers can be found by run, scenario or environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    run: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    scenario: str = Field(min_length=1, max_length=63)
    environment: str = Field(min_length=1, max_length=63)
    step: int = Field(ge=0)


class FaultSpec(BaseModel):
    """What to inject: one step's fault at one target, with the run's labels."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    fault: Fault
    target: Target
    labels: Labels


class Handle(BaseModel):
    """Frozen, JSON-serialisable record of an applied fault: enough to revert it anywhere."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    driver: str = Field(description="driver kind: proxy, transport, chaos_mesh, configmap, stress")
    id: str = Field(description="the fault's identifier where it lives (rule id, object name)")
    endpoint: str = Field(description="where it lives: admin URL, namespace/kind, file path")
    labels: Labels
    fault: str = Field(description="one-line summary of the fault")
    expires_at: float = Field(description="epoch seconds at which it expires by itself")
    extra: dict[str, str] = Field(default_factory=dict, description="driver-specific locators")

    def expired(self, now: float | None = None) -> bool:
        """Whether the fault's own TTL has passed."""
        return (time.time() if now is None else now) >= self.expires_at


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


def handle_json(handle: Handle) -> dict[str, Any]:
    """The handle as plain JSON data, for the journal."""
    return handle.model_dump(mode="json")
