"""A mission: one planned run of a scenario in an environment, asked for by someone."""

from __future__ import annotations

from pydantic import Field

from gameday.faults import Strict
from gameday.models.common import Slug
from gameday.units import Duration


class Mission(Strict):
    """One planned run of a scenario in an environment."""

    scenario: Slug
    environment: Slug
    duration: Duration | None = Field(None, description="cap on this run (≤ max_duration)")
    max_severity: int | None = Field(None, ge=1, description="stop the ladder at this step")
    enable: bool = Field(True, description="false refuses the mission")
    requester: str = Field(min_length=1, description="who asks for this run")
