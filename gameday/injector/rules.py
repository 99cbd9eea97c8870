"""Injection rules: one fault, the labels of the run that asked for it, and an expiry.

Each proxy mode has its rule models (here for HTTP, :mod:`gameday.injector.tcp.rules` for TCP)
on one base, and a :class:`RuleFormat` naming them, so the admin API, the rule store and the
metrics serve both modes.

A rule is what the proxy's admin API stores and what a transport's rules file lists. Input
takes either a relative ``ttl`` (seconds) or an absolute ``expires_at`` (epoch seconds); the
stored rule always carries ``id`` and ``expires_at``::

    {"id": "r-1f2e", "fault": {"kind": "latency", "ms": 100},
     "labels": {"run": "r42", "scenario": "slow-payments", "environment": "staging", "step": 1},
     "target": "payments", "expires_at": 1767225600.0}
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gameday.errors import RuleProblem as RuleProblem  # re-exported: the admin API uses it
from gameday.faults import (
    FAULT_KINDS,
    AbortFault,
    BandwidthFault,
    BlackholeFault,
    ErrorFault,
    LatencyFault,
    Match,
    ResetFault,
)
from gameday.models import Target
from gameday.models.targets import PointPattern
from gameday.records import Labels

#: The catalog faults that act on HTTP calls, told apart by ``kind``.
HttpFault = Annotated[
    LatencyFault | AbortFault | ResetFault | BlackholeFault | BandwidthFault | ErrorFault,
    Field(discriminator="kind"),
]
HTTP_FAULT_KINDS = ("latency", "abort", "reset", "blackhole", "bandwidth")
#: The faults a fault point acts on (a rule of a rules file with ``points``).
POINT_FAULT_KINDS = ("latency", "error")
RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TARGET_PATTERN = r"^[A-Za-z0-9._/:-]{0,127}$"


class RuleBase(BaseModel):
    """What a stored rule has in every proxy mode; each mode's rule narrows ``fault``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=RULE_ID_PATTERN, description="rule identifier")
    fault: Any
    labels: Labels
    target: str = Field("", pattern=TARGET_PATTERN, description="target name; empty: any")
    expires_at: float = Field(allow_inf_nan=False, description="epoch seconds of expiry")
    lease: float | None = Field(None, gt=0, allow_inf_nan=False,
                                description="seconds the rule lives unless renewed; absent: "
                                            "until expires_at")

    def active(self, now: float) -> bool:
        """Whether the rule still applies at ``now``."""
        return now < self.expires_at


class RuleInputBase(BaseModel):
    """A rule as a client sends it, in every proxy mode: ``ttl`` or ``expires_at``."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["ttl"]}, {"required": ["expires_at"]}]},
    )
    id: str | None = Field(None, pattern=RULE_ID_PATTERN, description="generated when absent")
    fault: Any
    labels: Labels
    target: str | None = Field(None, pattern=TARGET_PATTERN,
                               description="target name; absent: the injector's own")
    ttl: float | None = Field(None, gt=0, allow_inf_nan=False, description="seconds from now")
    expires_at: float | None = Field(None, gt=0, allow_inf_nan=False,
                                     description="absolute expiry, epoch seconds")
    lease: float | None = Field(None, gt=0, allow_inf_nan=False,
                                description="seconds the rule lives unless renewed (it still "
                                            "ends at its expiry)")

    @model_validator(mode="after")
    def _one_expiry(self) -> RuleInputBase:
        if (self.ttl is None) == (self.expires_at is None):
            raise ValueError("give exactly one of 'ttl' or 'expires_at'")
        return self


def http_only(fault: Any) -> Any:
    """``fault`` unless it sets a field that only a TCP proxy acts on (an HTTP rule's check)."""
    for name in fault.tcp_fields:
        if getattr(fault, name) is not None:
            raise ValueError(f"'{name}' applies to TCP proxies only (this injector speaks HTTP)")
    return fault


def points_fit(fault: Any, points: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``fault`` suits where the rule acts: a rule for fault points
    (``points`` given) takes a point fault without ``match``; an ``error`` needs points."""
    if points:
        if fault.kind not in POINT_FAULT_KINDS:
            raise ValueError(f"a rule for fault points takes {' or '.join(POINT_FAULT_KINDS)} "
                             f"faults, not {fault.kind!r}")
        if getattr(fault, "match", Match()) != Match():
            raise ValueError("a fault point has no requests to match: leave 'match' out")
    elif fault.kind not in HTTP_FAULT_KINDS:
        raise ValueError(f"{fault.kind!r} acts at fault points only: name them in 'points'")


_POINTS = Field(default=(), max_length=64,
                description="the fault points (names, or prefixes ending in *) the rule acts "
                            "at, in a service's rules file; empty: HTTP calls")


class Rule(RuleBase):
    """One stored HTTP injection rule; it stops applying at ``expires_at`` (epoch seconds).

    A rule with ``points`` acts at those fault points of the service (calls wrapped with
    :func:`gameday.injector.points.fault_point`), never on HTTP calls.
    """

    fault: HttpFault
    points: tuple[PointPattern, ...] = _POINTS

    @field_validator("fault")
    @classmethod
    def _http_only(cls, value: Any) -> Any:
        return http_only(value)

    @model_validator(mode="after")
    def _points_fit(self) -> Rule:
        points_fit(self.fault, self.points)
        return self


class RuleInput(RuleInputBase):
    """An HTTP rule as a client sends it: ``ttl`` or ``expires_at``; ``id``, ``target`` optional."""

    fault: HttpFault
    points: tuple[PointPattern, ...] = _POINTS

    @field_validator("fault")
    @classmethod
    def _http_only(cls, value: Any) -> Any:
        return http_only(value)

    @model_validator(mode="after")
    def _points_fit(self) -> RuleInput:
        points_fit(self.fault, self.points)
        return self


StoredRule = TypeVar("StoredRule", bound=RuleBase)


@dataclass(frozen=True)
class RuleFormat(Generic[StoredRule]):
    """One proxy mode's rules: what the admin API reads and stores, and the kinds they take."""

    protocol: str
    rule: type[StoredRule]
    input: type[RuleInputBase]
    kinds: tuple[str, ...]

    def build(self, item: RuleInputBase, now: float, *, max_ttl: float | None = None,
              default_target: str = "") -> StoredRule:
        """Input as a stored rule at ``now``; ``RuleProblem`` when the expiry is out of range."""
        if getattr(item, "points", ()):
            # A proxy sees requests, not the service's own calls.
            raise RuleProblem("points", "fault points live in a service's rules file (the "
                                        "transport driver), not in a proxy: leave 'points' out")
        expires_at = expiry_of(item, now, max_ttl)
        target = item.target if item.target is not None else default_target
        if item.lease is not None and max_ttl is not None and item.lease > max_ttl:
            raise RuleProblem("lease", f"{item.lease:g}s is more than the maximum {max_ttl:g}s")
        return self.rule(id=item.id or new_rule_id(), fault=item.fault, labels=item.labels,
                         target=target, expires_at=expires_at, lease=item.lease)


def new_rule_id() -> str:
    """A fresh random rule identifier."""
    return "r-" + secrets.token_hex(6)


def target_name(target: Target) -> str:
    """The conventional target name of a catalog target: ``service/dependency``."""
    return f"{target.service}/{target.dependency}" if target.dependency else target.service


def expiry_of(item: RuleInputBase, now: float, max_ttl: float | None) -> float:
    """The epoch second a rule given at ``now`` expires; ``RuleProblem`` when out of range."""
    if item.ttl is not None:
        if max_ttl is not None and item.ttl > max_ttl:
            raise RuleProblem("ttl", f"{item.ttl:g}s is more than the maximum {max_ttl:g}s")
        return now + item.ttl
    expires_at = float(item.expires_at or 0.0)
    if expires_at <= now:
        raise RuleProblem("expires_at", f"{expires_at:.3f} has already passed")
    if max_ttl is not None and expires_at - now > max_ttl:
        raise RuleProblem("expires_at", f"{expires_at - now:.0f}s from now is more than the "
                                        f"maximum {max_ttl:g}s")
    return expires_at


HTTP_RULES = RuleFormat("http", Rule, RuleInput, HTTP_FAULT_KINDS)


def build_rule(item: RuleInput, now: float, *, max_ttl: float | None = None,
               default_target: str = "") -> Rule:
    """HTTP input as a stored rule at ``now``; ``RuleProblem`` when the expiry is out of range."""
    return HTTP_RULES.build(item, now, max_ttl=max_ttl, default_target=default_target)


def problems_of(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[RuleProblem]:
    """One ``RuleProblem`` per pydantic error, located by dotted path (union tags dropped)."""
    found = []
    for error in exc.errors(include_url=False):
        loc = [*prefix, *(part for part in error["loc"] if part not in FAULT_KINDS)]
        found.append(RuleProblem(".".join(str(part) for part in loc) or "body", error["msg"]))
    return found


def rule_json(rule: RuleBase) -> dict[str, Any]:
    """The rule as JSON data (what the admin API answers)."""
    return rule.model_dump(mode="json")
