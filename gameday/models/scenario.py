"""A scenario: one fault at one target, its severity ladder, signals, guards and rollback."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from gameday.faults import (
    FAULT_KINDS,
    MAX_BYTES,
    MAX_SLICE,
    Fault,
    Probability,
    Strict,
    with_overrides,
)
from gameday.models.common import Slug, located
from gameday.models.signals import GuardMap, SignalMap
from gameday.models.targets import Target
from gameday.models.trigger import Trigger
from gameday.units import Duration

STEP_FIELDS = ("ms", "jitter_ms", "probability", "status", "kbps", "workers", "load_percent", "mb",
               "count", "percent", "bytes", "size_bytes", "delay_ms")


class Step(Strict):
    """One rung of the severity ladder: magnitude overrides plus how long to hold."""

    dwell: Duration = Field(description="how long this step must hold before the next")
    ms: float | None = Field(None, ge=0, le=600_000)
    jitter_ms: float | None = Field(None, ge=0, le=600_000)
    probability: Probability | None = None
    status: int | None = Field(None, ge=400, le=599)
    kbps: float | None = Field(None, gt=0)
    workers: int | None = Field(None, ge=1, le=64)
    load_percent: float | None = Field(None, gt=0, le=100)
    mb: int | None = Field(None, gt=0, le=65_536)
    count: int | None = Field(None, ge=1)
    percent: float | None = Field(None, gt=0, le=100)
    bytes: int | None = Field(None, ge=0, le=MAX_BYTES)
    size_bytes: int | None = Field(None, ge=1, le=MAX_SLICE)
    delay_ms: float | None = Field(None, ge=0, le=600_000)

    @field_validator("dwell")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("dwell must be longer than 0s")
        return value

    def overrides(self) -> dict[str, Any]:
        """The magnitude fields this step sets."""
        return {k: getattr(self, k) for k in STEP_FIELDS if getattr(self, k) is not None}


class Recovery(Strict):
    """When the service counts as recovered after rollback."""

    timeout: Duration = Field(60.0, description="give up waiting for recovery after this long")
    tolerance_percent: float = Field(
        20.0, ge=0, le=1000, description="signals back within this percent of the baseline"
    )


class Rollback(Strict):
    """What rollback checks after reverting."""

    recovery: Recovery = Field(default_factory=Recovery)


class Scenario(Strict):
    """One catalog entry: a fault at a target, its severity ladder, signals and guards."""

    name: Slug
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1, description="team or person answering for it")
    tags: list[str] = Field(default_factory=list)
    runbook: str | None = Field(None, description="URL or repository path of the runbook")
    suites: list[Slug] = Field(default_factory=list, description="suites, e.g. weekly")
    target: Target
    environments: list[Slug] = Field(min_length=1, description="environments it may run in")
    fault: Fault
    steps: list[Step] = Field(min_length=1, description="severity ladder, mildest first")
    ttl_margin: Duration = Field(10.0, description="each step's fault expires at dwell + this")
    max_duration: Duration = Field(1800.0, description="cap on the whole run")
    trigger: Trigger = Field(default_factory=Trigger)
    signals: SignalMap = Field(default_factory=dict)
    guards: GuardMap = Field(min_length=1, description="safety stops; at least one")
    rollback: Rollback = Field(default_factory=Rollback)

    @model_validator(mode="after")
    def _ladder(self) -> Scenario:
        fault_cls = FAULT_KINDS[self.fault.kind]
        allowed = [f for f in STEP_FIELDS if f in fault_cls.model_fields]
        for index, step in enumerate(self.steps):
            for name in step.overrides():
                if name not in allowed:
                    raise located(
                        ("steps", index, name),
                        f"does not apply to fault kind {self.fault.kind!r} "
                        f"(allowed: {', '.join(allowed)})",
                    )
        faults = []
        for index, step in enumerate(self.steps):
            try:
                faults.append(with_overrides(self.fault, step.overrides()))
            except ValueError as exc:
                raise located(("steps", index), str(exc).splitlines()[-1].strip()) from exc
        for index in range(1, len(faults)):
            before, after = faults[index - 1], faults[index]
            for name, bigger in fault_cls.magnitude.items():
                old, new = getattr(before, name), getattr(after, name)
                if old is None or new is None:
                    continue
                if (new < old) if bigger else (new > old):
                    word = "lower" if bigger else "higher"
                    raise located(
                        ("steps", index, name),
                        f"{name}={new:g} is {word} than step {index}'s {old:g}: each step must "
                        "be at least as severe as the one before",
                    )
        if self.fault.protocols and self.target.dependency is None:
            raise located(
                ("target", "dependency"),
                f"fault kind {self.fault.kind!r} acts on calls: name the dependency",
            )
        total = sum(step.dwell for step in self.steps)
        if total > self.max_duration:
            raise located(
                ("max_duration",),
                f"the steps' dwells add up to {total:g}s, more than max_duration "
                f"{self.max_duration:g}s",
            )
        return self

    @property
    def max_severity(self) -> int:
        """The top of the ladder (severity N is the N-th step)."""
        return len(self.steps)

    def step_fault(self, severity: int) -> Any:
        """The fault as step ``severity`` (1-based) applies it."""
        return with_overrides(self.fault, self.steps[severity - 1].overrides())

    def ttl(self, severity: int) -> float:
        """Seconds after which step ``severity``'s fault expires by itself."""
        return self.steps[severity - 1].dwell + self.ttl_margin
