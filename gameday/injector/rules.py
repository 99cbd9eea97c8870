"""Injection rules: one HTTP fault, the labels of the run that asked for it, and an expiry.

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
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gameday.errors import RuleProblem as RuleProblem  # re-exported: the admin API uses it
from gameday.faults import AbortFault, BandwidthFault, BlackholeFault, LatencyFault, ResetFault
from gameday.models import Target
from gameday.records import Labels

#: The catalog faults that act on HTTP calls, told apart by ``kind``.
HttpFault = Annotated[
    LatencyFault | AbortFault | ResetFault | BlackholeFault | BandwidthFault,
    Field(discriminator="kind"),
]
HTTP_FAULT_KINDS = ("latency", "abort", "reset", "blackhole", "bandwidth")
RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TARGET_PATTERN = r"^[A-Za-z0-9._/:-]{0,127}$"


class Rule(BaseModel):
    """One stored injection rule; it stops applying at ``expires_at`` (epoch seconds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=RULE_ID_PATTERN, description="rule identifier")
    fault: HttpFault
    labels: Labels
    target: str = Field("", pattern=TARGET_PATTERN, description="target name; empty: any")
    expires_at: float = Field(allow_inf_nan=False, description="epoch seconds of expiry")

    def active(self, now: float) -> bool:
        """Whether the rule still applies at ``now``."""
        return now < self.expires_at


class RuleInput(BaseModel):
    """A rule as a client sends it: ``ttl`` or ``expires_at``, ``id`` and ``target`` optional."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["ttl"]}, {"required": ["expires_at"]}]},
    )
    id: str | None = Field(None, pattern=RULE_ID_PATTERN, description="generated when absent")
    fault: HttpFault
    labels: Labels
    target: str | None = Field(None, pattern=TARGET_PATTERN,
                               description="target name; absent: the injector's own")
    ttl: float | None = Field(None, gt=0, allow_inf_nan=False, description="seconds from now")
    expires_at: float | None = Field(None, gt=0, allow_inf_nan=False,
                                     description="absolute expiry, epoch seconds")

    @model_validator(mode="after")
    def _one_expiry(self) -> RuleInput:
        if (self.ttl is None) == (self.expires_at is None):
            raise ValueError("give exactly one of 'ttl' or 'expires_at'")
        return self


def new_rule_id() -> str:
    """A fresh random rule identifier."""
    return "r-" + secrets.token_hex(6)


def target_name(target: Target) -> str:
    """The conventional target name of a catalog target: ``service/dependency``."""
    return f"{target.service}/{target.dependency}" if target.dependency else target.service


def build_rule(item: RuleInput, now: float, *, max_ttl: float | None = None,
               default_target: str = "") -> Rule:
    """Turn input into a stored rule at ``now``; ``RuleProblem`` when the expiry is out of range."""
    if item.ttl is not None:
        if max_ttl is not None and item.ttl > max_ttl:
            raise RuleProblem("ttl", f"{item.ttl:g}s is more than the maximum {max_ttl:g}s")
        expires_at = now + item.ttl
    else:
        expires_at = float(item.expires_at or 0.0)
        if expires_at <= now:
            raise RuleProblem("expires_at", f"{expires_at:.3f} has already passed")
        if max_ttl is not None and expires_at - now > max_ttl:
            raise RuleProblem("expires_at", f"{expires_at - now:.0f}s from now is more than the "
                                            f"maximum {max_ttl:g}s")
    target = item.target if item.target is not None else default_target
    return Rule(id=item.id or new_rule_id(), fault=item.fault, labels=item.labels,
                target=target, expires_at=expires_at)


def problems_of(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[RuleProblem]:
    """One ``RuleProblem`` per pydantic error, located by dotted path (union tags dropped)."""
    found = []
    for error in exc.errors(include_url=False):
        loc = [*prefix, *(part for part in error["loc"] if part not in HTTP_FAULT_KINDS)]
        found.append(RuleProblem(".".join(str(part) for part in loc) or "body", error["msg"]))
    return found


def rule_json(rule: Rule) -> dict[str, Any]:
    """The rule as JSON data (what the admin API answers)."""
    return rule.model_dump(mode="json")
