"""When a game day may start: the time window, the traffic it needs, a random delay."""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from gameday.faults import Strict
from gameday.units import Duration

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Window(Strict):
    """When a game day may start, in a time zone."""

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS), description="weekdays allowed"
    )
    hours: str = Field(
        "00:00-24:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$",
        description="local start-end, e.g. 09:00-17:00",
    )
    timezone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like UTC)") from exc
        return value

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (timezone-aware) falls inside the window."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        start_s, end_s = self.hours.split("-")
        start = time.fromisoformat(start_s)
        end = time.max if end_s == "24:00" else time.fromisoformat(end_s)
        return DAYS[local.weekday()] in self.days and start <= local.time().replace(
            tzinfo=None
        ) < end


class MinLoad(Strict):
    """Traffic that must be flowing before a start, or the experiment shows nothing."""

    query: str = Field(min_length=1, description="PromQL rate; {service}/{dependency} allowed")
    at_least: float = Field(ge=0, description="the query must return at least this")


class Trigger(Strict):
    """Conditions for starting a game day."""

    window: Window = Field(default_factory=Window)
    min_load: MinLoad | None = None
    randomize: Duration = Field(0.0, description="random start delay up to this long")
