"""Rollback phase.

Reverting is a plain function, called from the flow's ``finally`` and from its crash and
cancellation hooks: no task engine state (a cancelled run, a terminating process) may refuse
or interrupt it. Waiting for recovery comes after, as a task, once nothing is injected; a stop
signal ends the wait (its task run ends Cancelled).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from gameday.protocol.context import RunContext
from gameday.protocol.rollback import RollbackResult, revert_run, wait_recovery
from orchestration.signals import stoppable

__all__ = ["RollbackResult", "recover_phase", "revert_run"]


@task(name="recover", cache_policy=NO_CACHE)
async def recover_phase(ctx: RunContext) -> tuple[bool, float | None] | State[Any]:
    """Wait for the signals to come back within tolerance of the baseline."""
    return await stoppable(wait_recovery(ctx))
