"""The fault injector: one pure decision core in two shells.

* :mod:`gameday.injector.decide` — rules + request + seeded RNG → what to do (pure);
* :mod:`gameday.injector.rules` — the rule model shared by both shells;
* :mod:`gameday.injector.proxy` — the sidecar HTTP proxy with its admin API (``chaosctl proxy``);
* :mod:`gameday.injector.tcp` — the proxy's TCP mode (``chaosctl proxy --mode tcp``): TCP
  faults on any protocol, through the same admin API;
* :mod:`gameday.injector.transport` — ``FaultTransport`` / ``AsyncFaultTransport`` for httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gameday.injector.decide import Decision, Request, decide
from gameday.injector.rules import Rule, RuleInput, build_rule, target_name

if TYPE_CHECKING:
    from gameday.injector.transport import AsyncFaultTransport, FaultTransport

__all__ = [
    "AsyncFaultTransport",
    "Decision",
    "FaultTransport",
    "Request",
    "Rule",
    "RuleInput",
    "build_rule",
    "decide",
    "target_name",
]


def __getattr__(name: str) -> Any:
    # The transports import httpx; the proxy process does not need it.
    if name in ("FaultTransport", "AsyncFaultTransport"):
        from gameday.injector import transport

        return getattr(transport, name)
    raise AttributeError(name)
