"""Escalate phase: the ladder under the guards. Never retried: a retry would hide a breach.

A stop signal ends it at once, and its task run ends Cancelled (see ``orchestration.signals``).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation, escalate
from orchestration.signals import stoppable


@task(name="escalate", cache_policy=NO_CACHE)
async def escalate_phase(ctx: RunContext) -> Escalation | State[Any]:
    """Climb the ladder; the first guard breach stops it at once, as does a stop signal."""
    return await stoppable(escalate(ctx))
