"""The error budget: a gate before the first fault, two guards during the run, a figure after.

A run spends its service's error budget; one that is already (nearly) spent must not start,
and one that spends it too fast, or down to the floor, must stop. "No data" for the SLO is a
refusal like "too little left": a gate that cannot see is closed.
"""

from __future__ import annotations

import math
from typing import Literal

from gameday.alert_events import BudgetEvent
from gameday.errors import GuardError, RefusedError
from gameday.guards import Prometheus
from gameday.guards.queries import GuardQuery, freshness_query
from gameday.models import Guard
from gameday.models.alerts import BUDGET_LEFT_GUARD, BURN_RATE_GUARD
from gameday.models.slo import SLO
from gameday.protocol.context import RunContext


def budget_guards(slo: SLO) -> list[GuardQuery]:
    """The guards an SLO adds: the budget left, and the burn rate when it has a burn window."""
    left = slo.budget_left_query()
    found = [GuardQuery(name=BUDGET_LEFT_GUARD, guard=Guard(op="<", threshold=slo.min_budget_left),
                        query=left, freshness=freshness_query(left))]
    burn = slo.burn_rate_query()
    if burn is not None and slo.max_burn_rate is not None:
        found.append(GuardQuery(name=BURN_RATE_GUARD,
                                guard=Guard(op=">", threshold=slo.max_burn_rate),
                                query=burn, freshness=freshness_query(burn)))
    return found


async def read_budget(prometheus: Prometheus, slo: SLO,
                      moment: Literal["before", "after"]) -> BudgetEvent:
    """The budget ``slo`` has left now: unknown when the query fails or gives no number."""
    query = slo.budget_left_query()
    error = None
    try:
        value = await prometheus.value(query)
    except GuardError as exc:
        value, error = None, str(exc)
    if value is not None and not math.isfinite(value):
        value = None  # no traffic in the window: 0/0
    elif value is not None:
        value = round(value, 12) + 0.0  # PromQL's float noise: -8.9e-16 is 0, not "-0.0%"
    return BudgetEvent(moment=moment, left=value, objective=slo.objective,
                       min_left=slo.min_budget_left, query=query, error=error)


async def measure_budget(ctx: RunContext, moment: Literal["before", "after"]) -> BudgetEvent | None:
    """The budget left now, journaled; None when the run keeps no SLO."""
    slo = ctx.request.slo
    if slo is None:
        return None
    event = await read_budget(ctx.prometheus, slo, moment)
    ctx.journal.write(event)
    return event


def budget_refusal(event: BudgetEvent) -> str | None:
    """Why ``event`` (the budget before the run) refuses it; None when it may start."""
    if event.left is None:
        why = (f"the query failed: {event.error}" if event.error
               else "the SLO query returned nothing")
        return (f"error budget unknown ({why}): a run spends budget, and none may start "
                f"without knowing it is there ({event.query})")
    if event.left < event.min_left:
        return (f"error budget spent: {event.left:.1%} left of the {event.objective:.4g} "
                f"objective, needs at least {event.min_left:.0%}")
    return None


async def check_budget(ctx: RunContext) -> None:
    """Refuse when the run's SLO has less budget left than it needs, or gives no answer."""
    event = await measure_budget(ctx, "before")
    reason = budget_refusal(event) if event is not None else None
    if reason is not None:
        raise RefusedError(reason)
