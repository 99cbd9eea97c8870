"""A scenario: one fault at one target, its severity ladder, signals, guards and rollback."""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import Field, field_validator, model_validator

from gameday.faults import (
    FAULT_KINDS,
    MAX_BYTES,
    MAX_SLICE,
    Fault,
    Probability,
    Strict,
    protocol_problems,
    with_overrides,
)
from gameday.models.alerts import RESERVED_GUARDS, ExpectedAlert
from gameday.models.common import Slug, located
from gameday.models.search import QUANTITIES, Search
from gameday.models.signals import GuardMap, SignalMap
from gameday.models.slo import SLO
from gameday.models.targets import Target
from gameday.models.trigger import Trigger
from gameday.units import Duration

STEP_FIELDS = ("ms", "jitter_ms", "probability", "status", "kbps", "workers", "load_percent", "mb",
               "count", "percent", "bytes", "size_bytes", "delay_ms")


class Step(Strict):
    """One rung of the severity ladder: magnitude overrides plus how long to hold."""

    dwell: Duration = Field(description="how long this step must hold before the next")
    kind: str | None = Field(
        None, description="from this step on, another fault kind (e.g. blackhole, then reset); "
        "the step's fields set it, the fault's direction and match carry over")
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
    search: Search | None = Field(
        None, description="after a guard breach, bisect for the breaking point")
    expected_alerts: list[ExpectedAlert] = Field(
        default_factory=list, description="alerts this scenario is designed to raise: "
        "silenced while it runs, and not an incident")
    slo: SLO | None = Field(None, description="the error budget this scenario keeps; "
                                              "replaces the environment's")

    @model_validator(mode="after")
    def _ladder(self) -> Scenario:
        for name in self.guards:
            if name in RESERVED_GUARDS:
                raise located(("guards", name),
                              f"{name!r} is a guard the kit adds itself; name yours otherwise "
                              f"(reserved: {', '.join(RESERVED_GUARDS)})")
        faults = []
        for index, step in enumerate(self.steps):
            kind = step.kind or self.fault.kind
            if kind not in FAULT_KINDS:
                raise located(("steps", index, "kind"),
                              f"unknown fault kind {kind!r} (allowed: {', '.join(FAULT_KINDS)})")
            fault_cls = FAULT_KINDS[kind]
            if bool(fault_cls.protocols) != bool(self.fault.protocols):
                raise located(("steps", index, "kind"),
                              f"{kind!r} does not act where {self.fault.kind!r} does: a step may "
                              "switch only between kinds that act on calls")
            allowed = [f for f in STEP_FIELDS if f in fault_cls.model_fields]
            for name in step.overrides():
                if name not in allowed:
                    raise located(
                        ("steps", index, name),
                        f"does not apply to fault kind {kind!r} "
                        f"(allowed: {', '.join(allowed) or 'none'})",
                    )
            try:
                faults.append(with_overrides(self.fault, step.overrides(), step.kind))
            except ValueError as exc:
                raise located(("steps", index), str(exc).splitlines()[-1].strip()) from exc
        for index in range(1, len(faults)):
            before, after = faults[index - 1], faults[index]
            if before.kind != after.kind:
                continue  # a new failure mode: its magnitude starts afresh
            for name, bigger in FAULT_KINDS[after.kind].magnitude.items():
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
        if self.search is not None:
            self._search_field(self.search)
        total = sum(step.dwell for step in self.steps)
        if total > self.max_duration:
            raise located(
                ("max_duration",),
                f"the steps' dwells add up to {total:g}s, more than max_duration "
                f"{self.max_duration:g}s",
            )
        return self

    def _search_field(self, search: Search) -> str:
        """The magnitude ``search`` probes: its ``field``, else the one the ladder varies."""
        faults = self.step_faults()
        kinds = [f.kind for f in faults]
        searchable = [name for name in FAULT_KINDS[kinds[-1]].magnitude if name in QUANTITIES]
        if search.field is not None:
            if search.field not in searchable:
                raise located(("search", "field"),
                              f"{search.field!r} is not a magnitude of fault kind {kinds[-1]!r} "
                              f"(allowed: {', '.join(searchable) or 'none'})")
            name = search.field
        else:
            varied = [n for n in searchable
                      if any(a.kind == b.kind == kinds[-1] and getattr(a, n) != getattr(b, n)
                             for a, b in itertools.pairwise(faults))]
            if len(varied) > 1:
                raise located(("search", "field"),
                              f"the ladder varies {' and '.join(varied)}: name the one to search "
                              f"(allowed: {', '.join(searchable)})")
            if not varied and not searchable:
                raise located(("search",), f"fault kind {kinds[-1]!r} has no magnitude to search")
            name = varied[0] if varied else searchable[0]
        if search.resolution.duration and QUANTITIES[name].unit != "ms":
            raise located(("search", "resolution"),
                          f"{search.resolution} is a duration, and {name!r} is in "
                          f"{QUANTITIES[name].unit}: give a number or a share such as 5%")
        return name

    def search_field(self, search: Search) -> str:
        """The magnitude field ``search`` probes on this scenario's ladder."""
        return self._search_field(search)

    @property
    def max_severity(self) -> int:
        """The top of the ladder (severity N is the N-th step)."""
        return len(self.steps)

    def step_fault(self, severity: int) -> Any:
        """The fault as step ``severity`` (1-based) applies it."""
        step = self.steps[severity - 1]
        return with_overrides(self.fault, step.overrides(), step.kind)

    def step_faults(self) -> list[Any]:
        """Every step's fault, mildest first (kinds may differ from step to step)."""
        return [self.step_fault(severity) for severity in range(1, self.max_severity + 1)]

    def protocol_problems(self, protocol: str) -> list[tuple[str, str]]:
        """What an endpoint speaking ``protocol`` cannot inject, of the fault and of every kind
        a step switches to: (field, message) pairs."""
        found: list[tuple[str, str]] = []
        for fault in [self.fault, *self.step_faults()]:
            found += [item for item in protocol_problems(fault, protocol) if item not in found]
        return found

    def ttl(self, severity: int) -> float:
        """Seconds after which step ``severity``'s fault expires by itself."""
        return self.steps[severity - 1].dwell + self.ttl_margin
