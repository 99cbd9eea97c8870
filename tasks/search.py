"""Search phase: the breaking-point bisection after a guard breach. Never retried: a retry
would probe again what was already judged. A stop signal ends it at once (its task run ends
Cancelled); the flow's rollback then reverts the probe in place."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation
from gameday.protocol.search import SearchRun, search
from orchestration.signals import stoppable


@task(name="search", cache_policy=NO_CACHE)
async def search_phase(ctx: RunContext, escalation: Escalation) -> SearchRun | State[Any] | None:
    """Probe between the last held and the first broken value until the bracket is narrow."""
    return await stoppable(search(ctx, escalation))
