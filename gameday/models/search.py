"""A breaking-point search: after a guard breach, how finely to bracket the severity a target
stands, with how many probes at most, on which magnitude of the fault.

Pure data. The bisection itself is :mod:`gameday.protocol.bisect`; running its probes,
:mod:`gameday.protocol.search`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from gameday.faults import Strict
from gameday.units import Duration, parse_duration


@dataclass(frozen=True)
class Quantity:
    """What a magnitude field measures: its unit, whether it counts whole things, and the value
    that injects nothing (a held end when no step of the ladder held), if there is one."""

    unit: str
    integer: bool = False
    neutral: float | None = None


#: Every field a search may probe. A field missing here has no magnitude to search.
QUANTITIES: dict[str, Quantity] = {
    "ms": Quantity("ms", neutral=0.0),
    "delay_ms": Quantity("ms", neutral=0.0),
    "probability": Quantity("share", neutral=0.0),
    "kbps": Quantity("kbps"),
    "workers": Quantity("workers", integer=True),
    "load_percent": Quantity("%"),
    "mb": Quantity("MB", integer=True),
    "count": Quantity("pods", integer=True),
    "percent": Quantity("% of pods"),
    "bytes": Quantity("bytes", integer=True),
    "size_bytes": Quantity("bytes", integer=True),
}

_RESOLUTION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|ms|s)?\s*$")
RESOLUTION_FORMS = "a number in the field's unit (2, 0.01), a duration for ms fields (10ms), " \
    "or a share of the bracket (5%)"


@dataclass(frozen=True)
class Resolution:
    """How narrow the final bracket must be: absolute in the field's unit, or relative."""

    amount: float
    relative: bool = False
    #: Given as a duration (``10ms``): only fields in milliseconds take it.
    duration: bool = False

    def absolute(self, held: float, broken: float, integer: bool) -> float:
        """The width in the field's unit. A share is of the smaller non-zero end of the
        starting bracket, so the final bracket is within it of every value it contains."""
        if self.relative:
            ends = [abs(v) for v in (held, broken) if v]
            width = self.amount / 100 * min(ends) if ends else 0.0
        else:
            width = self.amount
        return max(width, 1.0) if integer else width

    def __str__(self) -> str:
        if self.relative:
            return f"{self.amount:g}%"
        return f"{self.amount:g}ms" if self.duration else f"{self.amount:g}"


def parse_resolution(value: Any) -> Resolution:
    """``10ms``, ``0.5s``, ``5%``, or a bare number (the field's own unit)."""
    if isinstance(value, Resolution):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected {RESOLUTION_FORMS}")
    if isinstance(value, int | float):
        amount, unit = float(value), None
    elif isinstance(value, str) and (match := _RESOLUTION.match(value)):
        amount, unit = float(match.group(1)), match.group(2)
    else:
        raise ValueError(f"expected {RESOLUTION_FORMS}")
    if amount <= 0:
        raise ValueError("a resolution must be more than 0")
    if unit == "%":
        if amount >= 100:
            raise ValueError("a relative resolution must be under 100%")
        return Resolution(amount, relative=True)
    if unit in ("ms", "s"):
        return Resolution(parse_duration(f"{amount:g}{unit}") * 1000, duration=True)
    return Resolution(amount)


ResolutionField = Annotated[
    Resolution,
    BeforeValidator(parse_resolution),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(%|ms|s)?\s*$"},
                              {"type": "number", "exclusiveMinimum": 0}],
                    "description": f"final bracket width: {RESOLUTION_FORMS}"}),
]


class Search(Strict):
    """Search for the breaking point once a guard breached a step (``search:`` in a scenario)."""

    resolution: ResolutionField = Field(
        default_factory=lambda: Resolution(5.0, relative=True),
        description="stop once the bracket is this narrow")
    max_probes: int | None = Field(
        None, ge=3, le=40, description="probe budget, two of them the confirmations "
        "(default and cap: ceil(log2(range / resolution)) + 2)")
    field: str | None = Field(
        None, description="the magnitude to search (default: the one the ladder varies)")
    dwell: Duration | None = Field(
        None, description="each probe's hold; never shorter than the longest guard window plus "
        "two scrape intervals, which is the default")
