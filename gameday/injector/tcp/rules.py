"""TCP mode's rules: the faults a TCP proxy injects, on the rule base both modes share.

A stored TCP rule always names its ``direction`` (``downstream`` when the input left it out),
so what the admin API lists is what the data plane does. ``match`` is refused: a TCP stream
has no requests to match.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from gameday.faults import (
    DEFAULT_DIRECTION,
    BandwidthFault,
    BlackholeFault,
    LatencyFault,
    LimitDataFault,
    Match,
    ResetFault,
    SlicerFault,
    TimeoutFault,
    kinds_for,
)
from gameday.injector.rules import RuleBase, RuleFormat, RuleInputBase

#: The catalog faults a TCP proxy injects, told apart by ``kind``.
TcpFault = Annotated[
    LatencyFault | BandwidthFault | ResetFault | BlackholeFault | TimeoutFault | SlicerFault
    | LimitDataFault,
    Field(discriminator="kind"),
]
TCP_FAULT_KINDS = tuple(kinds_for("tcp"))


def no_match(fault: Any) -> Any:
    """``fault`` unless it narrows by ``match`` (HTTP only): a TCP rule's check."""
    match = getattr(fault, "match", None)
    if match is not None and match != Match():
        raise ValueError("'match' applies to HTTP proxies only: a TCP rule acts on whole "
                         "connections")
    return fault


class TcpRule(RuleBase):
    """One stored TCP injection rule; it stops applying at ``expires_at`` (epoch seconds)."""

    fault: TcpFault

    @field_validator("fault")
    @classmethod
    def _tcp_only(cls, value: Any) -> Any:
        fault = no_match(value)
        if fault.direction is None:
            return fault.model_copy(update={"direction": DEFAULT_DIRECTION})
        return fault


class TcpRuleInput(RuleInputBase):
    """A TCP rule as a client sends it (``ttl`` or ``expires_at``; ``id``, ``target`` optional)."""

    fault: TcpFault

    @field_validator("fault")
    @classmethod
    def _tcp_only(cls, value: Any) -> Any:
        return no_match(value)


TCP_RULES = RuleFormat("tcp", TcpRule, TcpRuleInput, TCP_FAULT_KINDS)
