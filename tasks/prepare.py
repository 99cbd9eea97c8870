"""Prepare phase: refusals, lock, sweep, preflight, baseline. Never retried: a retry could
turn a refusal into a start. A stop signal ends it at once (its task run ends Cancelled)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from gameday.errors import LockError, RefusedError
from gameday.protocol.context import RunContext
from gameday.protocol.prepare import prepare
from orchestration.signals import stoppable


@dataclass(frozen=True)
class Refusal:
    """Why a game day may not start; nothing was injected."""

    reason: str


@task(name="prepare", cache_policy=NO_CACHE)
async def prepare_phase(ctx: RunContext, lock_wait: float = 0.0,
                        dry_run: bool = False) -> RunContext | Refusal | State[Any]:
    """Everything before the first fault, or the reasons it may not start.

    A refusal is returned, not raised: it is an answer, and it reaches the UI and the command
    line as a message rather than a traceback.
    """
    try:
        return await stoppable(prepare(ctx, lock_wait=lock_wait, dry_run=dry_run))
    except (RefusedError, LockError) as exc:
        return Refusal(str(exc))
