"""The records of a fault: its labels, what to inject, and the handle of an applied fault.

Plain data shared by the injector, the drivers, the journal and the report, so none of them
needs another's module to read a fault. Nothing here does I/O.
"""

from __future__ import annotations

import time

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
    lease_s: float | None = Field(
        None, description="seconds the fault lives unless its run renews it; None: TTL only")
    extra: dict[str, str] = Field(default_factory=dict, description="driver-specific locators")

    def expired(self, now: float | None = None) -> bool:
        """Whether the fault's own TTL has passed."""
        return (time.time() if now is None else now) >= self.expires_at
