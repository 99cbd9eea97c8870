"""The records and journal events of a breaking-point search (``gameday.protocol.search``).

``Axis`` and ``Bracket`` say what was searched and what was found, in the field's unit; the
report and the history read them as the protocol writes them.

A probe's fault is journaled as a step's is (intent, handle, revert, in ``gameday.journal``),
so rollback finds it after a crash; these events say what the search planned, probed and found,
so the postmortem and the history can be rebuilt from the journal alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gameday.guards.hold import HoldResult
from gameday.guards.signals import SignalResult, Window

Purpose = Literal["bisect", "confirm_held", "confirm_broken"]
Verdict = Literal["held", "broken", "unjudged"]


@dataclass(frozen=True)
class Axis:
    """The magnitude being searched and which way is worse."""

    field: str
    unit: str
    #: A larger value is more severe (latency); False for bandwidth, searched downward.
    worse_up: bool = True
    integer: bool = False

    def worse(self, a: float, b: float) -> bool:
        """Whether ``a`` is at least as severe as ``b``."""
        return a >= b if self.worse_up else a <= b

    def midpoint(self, held: float, broken: float) -> float | None:
        """The value halfway between, or None if there is none to probe (whole numbers)."""
        if not self.integer:
            middle = (held + broken) / 2
            return middle if middle not in (held, broken) else None
        low, high = sorted((held, broken))
        middle = float(math.floor((low + high) / 2))
        return middle if low < middle < high else None

    def text(self, value: float) -> str:
        """``178 ms``, ``12.5 %`` (a probability), ``3 workers``, ``512 kbps``."""
        if self.unit == "share":
            return f"{value * 100:.4g} %"
        if self.integer:
            unit = self.unit[:-1] if value == 1 and self.unit.endswith("s") else self.unit
            return f"{value:.0f} {unit}"
        return f"{value:.4g} {self.unit}"


@dataclass(frozen=True)
class Bracket:
    """The breaking point lies between a value that held and a more severe one that broke."""

    held: float
    broken: float

    @property
    def width(self) -> float:
        """How far apart the two ends are, in the axis' unit."""
        return abs(self.broken - self.held)

    def text(self, axis: Axis) -> str:
        """``holds at 178 ms, breaks at 190 ms``."""
        return f"holds at {axis.text(self.held)}, breaks at {axis.text(self.broken)}"

    def below(self, other: Bracket, axis: Axis) -> bool:
        """Whether this bracket lies wholly at milder values than ``other``: it breaks where
        ``other`` still held, or sooner."""
        return axis.worse(other.held, self.broken)


class _SearchEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")
    at: float = Field(default_factory=time.time, description="epoch seconds of the event")


class SearchStartedEvent(_SearchEvent):
    """The search's plan: the field, the starting bracket, its resolution and budget."""

    event: Literal["search_started"] = "search_started"
    field: str
    unit: str
    worse_up: bool = True
    integer: bool = False
    held: float = Field(description="the starting bracket's held end")
    broken: float = Field(description="the starting bracket's broken end")
    #: The ladder steps the ends come from; None for a held end that injects nothing.
    held_severity: int | None = None
    broken_severity: int
    resolution: float = Field(description="the final bracket's width to reach, in the unit")
    resolution_text: str = Field(description="as the scenario asked, e.g. 10ms or 5%")
    budget: int = Field(description="probes at most")
    dwell: float = Field(description="each probe's hold, seconds")
    #: The shortest dwell the guards allow (longest window and ``for``, two scrapes).
    dwell_floor: float
    #: Identifies the guards (queries, thresholds, ``for``): brackets compare only under equal.
    guards_hash: str


class ProbeStartedEvent(_SearchEvent):
    """A probe begins: its fault is applied next, labelled with step ``label``."""

    event: Literal["probe_started"] = "probe_started"
    probe: int = Field(ge=1)
    value: float
    purpose: Purpose
    fault: str
    dwell: float
    ttl: float
    label: int = Field(description="the step label its fault carries (after the ladder's)")


class ProbeEndedEvent(_SearchEvent):
    """A probe was judged: held or broken by the guards, or not judged, and why."""

    event: Literal["probe_ended"] = "probe_ended"
    probe: int = Field(ge=1)
    value: float
    purpose: Purpose
    verdict: Verdict
    detail: str = ""
    started: float
    ended: float
    result: HoldResult | None = None


class ProbeJudgedEvent(_SearchEvent):
    """A probe's expected signals, judged against thresholds and the baseline (observe)."""

    event: Literal["probe_judged"] = "probe_judged"
    probe: int = Field(ge=1)
    window: Window
    results: tuple[SignalResult, ...]


class SearchEndedEvent(_SearchEvent):
    """The search's answer: the final bracket and whether to trust it."""

    event: Literal["search_ended"] = "search_ended"
    held: float
    broken: float
    text: str = Field(description="e.g. holds at 178 ms, breaks at 190 ms")
    stopped: str = Field(description="why the search ended")
    confirmed: bool = False
    conflict: str | None = None
    probes: int = 0
    #: Where the service may break when the search was not monotone: the bracket widened to
    #: every conflicting value (the bracket itself otherwise).
    span_held: float | None = None
    span_broken: float | None = None


class SearchSkippedEvent(_SearchEvent):
    """A search was asked for and did not run (or ran no probe), and why."""

    event: Literal["search_skipped"] = "search_skipped"
    reason: str
