"""Escalate phase: the ladder under the guards. Never retried: a retry would hide a breach."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation, escalate


@task(name="escalate", cache_policy=NO_CACHE)
async def escalate_phase(ctx: RunContext) -> Escalation:
    """Climb the ladder; the first guard breach stops it at once."""
    return await escalate(ctx)
