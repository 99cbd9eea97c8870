"""The reaper: two Prefect automations that clean up after a game day that died.

- **gameday-reaper**: a ``game-day`` flow run enters ``Crashed`` → run the ``sweep``
  deployment for it, which reverts its faults from its journal and the drivers (by label) and
  releases its environment's slot.
- **gameday-zombies**: a ``game-day`` deployment run sent a heartbeat and then nothing for
  60 s (its machine died with its worker) → mark it ``Crashed``, which fires the reaper.

Faults still expire by their TTL whatever happens; the reaper makes the clean-up immediate.
Heartbeats need ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (30 s, set in ``prefect.yaml``).
Installing is idempotent: automations are found by name and replaced.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.automations import (
    AutomationCore,
    ChangeFlowRunState,
    EventTrigger,
    Posture,
    RunDeployment,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.schemas.events import ResourceSpecification

REAPER = "gameday-reaper"
ZOMBIES = "gameday-zombies"
#: The flow whose runs are watched, and the deployment that cleans up.
FLOW = "game-day"
SWEEP_DEPLOYMENT = "sweep/sweep"
#: No heartbeat for this long means the run's process is gone.
ZOMBIE_AFTER = timedelta(seconds=60)


def _template(text: str) -> dict[str, Any]:
    # A plain Jinja value renders to a string. A bare "{{ flow_run.id }}" would be wrapped in
    # "| tojson" by the server, which cannot serialise a UUID.
    return {"__prefect_kind": "jinja", "template": text}


def _game_day_runs() -> tuple[ResourceSpecification, ResourceSpecification]:
    return (ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            ResourceSpecification({"prefect.resource.role": "flow",
                                   "prefect.resource.name": FLOW}))


def reaper(sweep_deployment_id: Any) -> AutomationCore:
    """On a game-day run entering Crashed: sweep it."""
    match, related = _game_day_runs()
    return AutomationCore(
        name=REAPER,
        description="A game-day run crashed: revert its faults and free its environment.",
        trigger=EventTrigger(expect={"prefect.flow-run.Crashed"}, match=match,
                             match_related=related, posture=Posture.Reactive, threshold=1,
                             within=timedelta(0)),
        actions=[RunDeployment(
            source="selected", deployment_id=sweep_deployment_id,
            parameters={"run": _template("{{ flow_run.id }}"),
                        "environment": _template("{{ flow_run.parameters.environment }}")})])


def zombies() -> AutomationCore:
    """On a deployed game-day run silent for ``ZOMBIE_AFTER`` after a heartbeat: mark it
    Crashed. Only deployment runs: they beat every 30 s (``prefect.yaml``), while a run
    started elsewhere may keep Prefect's default of 180 s and would be taken for dead."""
    match, related = _game_day_runs()
    deployed = ResourceSpecification({"prefect.resource.role": "deployment"})
    return AutomationCore(
        name=ZOMBIES,
        description="A game-day run stopped sending heartbeats: it is dead; mark it Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed"},
            match=match, match_related=[related, deployed], for_each={"prefect.resource.id"},
            posture=Posture.Proactive, threshold=1, within=ZOMBIE_AFTER),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message=f"no heartbeat for {ZOMBIE_AFTER.seconds} s: the run's process is gone")])


async def install() -> list[str]:
    """Create or replace both automations; their names. Needs the ``sweep`` deployment."""
    async with get_client() as client:
        sweep = await client.read_deployment_by_name(SWEEP_DEPLOYMENT)
        for wanted in (reaper(sweep.id), zombies()):
            existing = await client.read_automations_by_name(wanted.name)
            if existing:
                await client.update_automation(existing[0].id, wanted)
                for duplicate in existing[1:]:
                    await client.delete_automation(duplicate.id)
            else:
                await client.create_automation(wanted)
    return [REAPER, ZOMBIES]
