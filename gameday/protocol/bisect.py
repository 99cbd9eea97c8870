"""The breaking-point search as bisection, pure: which value to probe next, and what the probes
found. Nothing here touches a fault; the judge that runs a probe is handed in.

The bracket starts between the ladder's last held value and its first broken one. Each probe
sits at the current bracket's midpoint and moves one end; once the bracket is as narrow as
asked (or the budget is down to two probes), both ends are probed again. So a search takes at
most ``ceil(log2(range / resolution)) + 2`` probes, and its answer is a bracket: it never
claims a precision it did not measure. A service that held above a value at which it broke
(or broke and held at the same value) is not monotone there, and the result says so.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gameday.search_events import Axis, Bracket, Purpose, Verdict

#: Probes kept for confirming the bracket's two ends.
CONFIRMATIONS = 2
#: Relative slack for comparing widths computed by repeated halving.
EPSILON = 1e-9


@dataclass(frozen=True)
class Plan:
    """What to search: the axis, the starting bracket, the resolution and the probe budget."""

    axis: Axis
    start: Bracket
    #: The final bracket's width to reach, in the axis' unit.
    resolution: float
    #: At most this many probes (capped by :attr:`bound`); None: the bound.
    max_probes: int | None = None

    @property
    def bound(self) -> int:
        """``ceil(log2(range / resolution)) + 2``: bisections plus the two confirmations."""
        if self.resolution <= 0:
            return CONFIRMATIONS  # nothing to narrow: only the two ends to repeat
        ratio = self.start.width / self.resolution
        steps = 0 if ratio <= 1 + EPSILON else math.ceil(math.log2(ratio) - EPSILON)
        return steps + CONFIRMATIONS

    def narrow(self, bracket: Bracket) -> bool:
        """Whether ``bracket`` is as narrow as asked (halving 0.32 five times gives
        0.010000000000000009: float noise must not cost a probe)."""
        return bracket.width <= self.resolution * (1 + EPSILON)

    @property
    def budget(self) -> int:
        """Probes this search may take."""
        return self.bound if self.max_probes is None else min(self.max_probes, self.bound)


@dataclass(frozen=True)
class Probe:
    """One probe as it was judged."""

    number: int
    value: float
    purpose: Purpose
    verdict: Verdict
    detail: str = ""


@dataclass(frozen=True)
class Judgement:
    """What a judge says of one probe; ``end`` ends the search after it, even if judged (the
    target did not recover, a safety stop came up)."""

    verdict: Verdict
    detail: str = ""
    end: str | None = None


@dataclass(frozen=True)
class Result:
    """The search's answer: a bracket, how it was found, and whether it is trustworthy."""

    plan: Plan
    bracket: Bracket
    probes: tuple[Probe, ...]
    stopped: str
    #: Both ends were probed again and behaved the same.
    confirmed: bool = False
    #: A held value at least as severe as a broken one, in words; None when monotone.
    conflict: str | None = None

    @property
    def monotone(self) -> bool:
        """Whether every held value is less severe than every broken one."""
        return self.conflict is None

    @property
    def span(self) -> Bracket:
        """Where the service may break: the bracket, widened to every value that broke below
        its held end or held above its broken end (the bracket itself when monotone)."""
        axis = self.plan.axis
        low, high = self.bracket.held, self.bracket.broken
        seen = [(self.plan.start.held, "held"), (self.plan.start.broken, "broken"),
                *((p.value, p.verdict) for p in self.probes)]
        for value, verdict in seen:
            if verdict == "broken" and not axis.worse(value, low):
                low = value
            elif verdict == "held" and axis.worse(value, high):
                high = value
        return Bracket(low, high)

    @property
    def text(self) -> str:
        """The bracket in words, flagged when it is not monotone or not confirmed."""
        words = self.bracket.text(self.plan.axis)
        if self.conflict:
            return f"{words} (not monotone: {self.conflict})"
        return words if self.confirmed else f"{words} (not confirmed: {self.stopped})"


def bracket_of(plan: Plan, probes: Sequence[Probe]) -> Bracket:
    """The bracket after the bisection probes judged so far."""
    held, broken = plan.start.held, plan.start.broken
    for probe in probes:
        if probe.purpose != "bisect":
            continue
        if probe.verdict == "held":
            held = probe.value
        elif probe.verdict == "broken":
            broken = probe.value
    return Bracket(held, broken)


def next_probe(plan: Plan, probes: Sequence[Probe]) -> tuple[float, Purpose] | str:
    """The next probe's value and purpose, or why the search is over."""
    if probes and probes[-1].verdict == "unjudged":
        return f"probe {probes[-1].number} could not be judged: {probes[-1].detail}"
    bracket = bracket_of(plan, probes)
    bisected = sum(p.purpose == "bisect" for p in probes)
    purposes = {p.purpose for p in probes}
    if "confirm_held" not in purposes and "confirm_broken" not in purposes:
        middle = plan.axis.midpoint(bracket.held, bracket.broken)
        if (not plan.narrow(bracket) and middle is not None
                and bisected < plan.budget - CONFIRMATIONS):
            return middle, "bisect"
    ends: tuple[tuple[Purpose, float], ...] = (("confirm_held", bracket.held),
                                               ("confirm_broken", bracket.broken))
    for purpose, value in ends:
        if purpose not in purposes:
            if len(probes) >= plan.budget:
                return f"probe budget spent ({plan.budget} probes)"
            return value, purpose
    return _why_done(plan, bracket, bisected)


def _why_done(plan: Plan, bracket: Bracket, bisected: int) -> str:
    axis = plan.axis
    if plan.narrow(bracket) or axis.midpoint(bracket.held, bracket.broken) is None:
        return (f"resolution reached ({axis.text(bracket.width)} wide, asked "
                f"{axis.text(plan.resolution)})")
    return f"probe budget spent ({bisected} bisections and {CONFIRMATIONS} confirmations)"


def conflict(plan: Plan, probes: Sequence[Probe]) -> str | None:
    """A held value at least as severe as a broken one (the ladder's two ends included)."""
    axis = plan.axis
    seen = [("the ladder", plan.start.held, "held"), ("the ladder", plan.start.broken, "broken"),
            *((f"probe {p.number}", p.value, p.verdict) for p in probes)]
    held = [(who, value) for who, value, verdict in seen if verdict == "held"]
    broke = [(who, value) for who, value, verdict in seen if verdict == "broken"]
    for who_held, value_held in held:
        for who_broke, value_broke in broke:
            if axis.worse(value_held, value_broke):
                return (f"held at {axis.text(value_held)} ({who_held}) but broke at "
                        f"{axis.text(value_broke)} ({who_broke})")
    return None


Judge = Callable[[int, float, Purpose], Awaitable[Judgement]]


async def bisect(plan: Plan, judge: Judge, room: Callable[[], str | None]) -> Result:
    """Probe until the plan is done, a probe cannot be judged, or ``room`` says there is no
    time for another (it returns why, e.g. "max_duration reached")."""
    probes: list[Probe] = []
    stopped = ""
    while True:
        step = next_probe(plan, probes)
        if isinstance(step, str):
            stopped = step
            break
        if (why := room()) is not None:
            stopped = why
            break
        value, purpose = step
        judged = await judge(len(probes) + 1, value, purpose)
        probes.append(Probe(len(probes) + 1, value, purpose, judged.verdict, judged.detail))
        if judged.end is not None:
            stopped = judged.end
            break
    if probes and probes[-1].verdict == "unjudged" and not stopped.startswith("probe "):
        stopped = f"probe {probes[-1].number} could not be judged: {probes[-1].detail}"
    confirmed = {p.purpose for p in probes if p.verdict == {
        "confirm_held": "held", "confirm_broken": "broken"}.get(p.purpose)} == {
        "confirm_held", "confirm_broken"}
    return Result(plan, bracket_of(plan, probes), tuple(probes), stopped, confirmed,
                  conflict(plan, probes))
