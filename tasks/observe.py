"""Observe phase: range queries after the fact, so a retry hides nothing."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation
from gameday.protocol.observe import Observation, observe


@task(name="observe", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
async def observe_phase(ctx: RunContext, escalation: Escalation) -> Observation:
    """Per-step metrics and signal verdicts against the baseline."""
    return await observe(ctx, escalation)
