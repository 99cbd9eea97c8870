"""Observe phase: range queries after the fact, so a retry hides nothing. A stop signal ends
it (its task run ends Cancelled)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation
from gameday.protocol.observe import Observation, observe
from gameday.protocol.search import SearchRun
from orchestration.signals import stoppable


@task(name="observe", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
async def observe_phase(ctx: RunContext, escalation: Escalation,
                        searched: SearchRun | None = None) -> Observation | State[Any]:
    """Per-step (and per-probe) metrics and signal verdicts against the baseline."""
    return await stoppable(observe(ctx, escalation, searched))
