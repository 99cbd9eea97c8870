"""The reaper's automations as defined (no server): what they watch and what they do."""

from __future__ import annotations

import uuid
from datetime import timedelta

from orchestration.reaper import reaper, zombies


def test_reaper_sweeps_crashed_game_day_runs() -> None:
    """A game-day run entering Crashed runs the sweep deployment with that run's ID."""
    sweep = uuid.uuid4()
    automation = reaper(sweep)
    trigger = automation.trigger
    assert trigger.expect == {"prefect.flow-run.Crashed"}  # type: ignore[union-attr]
    (action,) = automation.actions
    assert action.deployment_id == sweep  # type: ignore[union-attr]
    parameters = action.parameters  # type: ignore[union-attr]
    assert parameters["run"] == {"__prefect_kind": "jinja", "template": "{{ flow_run.id }}"}


def test_zombie_rule_watches_deployed_game_days_for_60_seconds() -> None:
    """Silence for 60 s after a heartbeat of a deployed game-day run marks it Crashed."""
    automation = zombies()
    trigger = automation.trigger
    assert trigger.within == timedelta(seconds=60)  # type: ignore[union-attr]
    assert trigger.after == {"prefect.flow-run.heartbeat"}  # type: ignore[union-attr]
    related = trigger.match_related  # type: ignore[union-attr]
    assert isinstance(related, list)
    roles = {spec.model_dump().get("prefect.resource.role") for spec in related}
    assert roles == {"flow", "deployment"}
    (action,) = automation.actions
    assert action.state.value == "CRASHED"  # type: ignore[union-attr]
