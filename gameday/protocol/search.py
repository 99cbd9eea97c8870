"""Search: after a guard of the scenario breached a step, bisect for the breaking point.

Runs only after a breach of the scenario's own guards, never after a safety stop (a guard
that could not see, a fault that vanished, a failed revert), and between the ladder's last
held value and the step that broke, so no probe is more severe than a step the run was
allowed to reach. Each probe is a short step: the same guards, the same driver, lease and
watcher, its fault journaled (intent, handle, revert) as a step's is, so rollback finds it
after a crash; then it is reverted, checked gone at its driver (a probe that cannot be
checked ends the search: fail closed) and the signals are waited for back at the baseline
before the next. A probe lasts at least the longest guard window plus two scrapes, so it
cannot "hold" only because it was too short to be judged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from gameday.errors import DriverError
from gameday.faults import FAULT_KINDS, with_overrides
from gameday.guards import HoldResult
from gameday.guards.queries import guard_window, guards_hash
from gameday.models import QUANTITIES, Search
from gameday.models.alerts import RESERVED_GUARDS
from gameday.notes import FaultVanishedNote
from gameday.notify import ProbeNotice, SearchNotice
from gameday.protocol.bisect import Judgement, Plan, Result, bisect
from gameday.protocol.context import RunContext
from gameday.protocol.escalate import (
    Escalation,
    StepRun,
    hold_fault,
    lease_lapsed,
    recorder,
    revert_fault,
)
from gameday.protocol.rollback import wait_recovery
from gameday.records import FaultSpec, Handle, Labels
from gameday.search_events import (
    Axis,
    Bracket,
    ProbeEndedEvent,
    ProbeStartedEvent,
    Purpose,
    SearchEndedEvent,
    SearchSkippedEvent,
    SearchStartedEvent,
    Verdict,
)


@dataclass(frozen=True)
class ProbeRun:
    """One probe as it ran: when, at what value, and whether the guards let it hold."""

    number: int
    value: float
    started: float
    ended: float
    held: bool


@dataclass(frozen=True)
class SearchRun:
    """The search as run: its answer and each probe's window (observe measures them)."""

    result: Result
    probes: tuple[ProbeRun, ...]

    @property
    def bracket_text(self) -> str:
        """``holds at 178 ms, breaks at 190 ms``, flagged if not monotone or not confirmed."""
        return self.result.text


@dataclass(frozen=True)
class Start:
    """Where a search starts: the plan, the steps its ends come from, the probe dwell."""

    plan: Plan
    broken: StepRun
    held_severity: int | None
    dwell: float
    floor: float
    #: When the ladder's first step began: ``max_duration`` counts from there.
    began: float


def dwell_floor(ctx: RunContext) -> float:
    """The shortest probe the guards can judge: their longest window and ``for``, and two
    scrape intervals for the last samples to arrive."""
    # The kit's own guards (the budget over its SLO window) say nothing of a probe's effect.
    longest = max((guard_window(g) for g in ctx.guards if g.name not in RESERVED_GUARDS),
                  default=0.0)
    return longest + 2 * ctx.environment.prometheus.scrape_interval


def start_of(ctx: RunContext, escalation: Escalation, search: Search) -> Start | str:
    """The search's plan after ``escalation``, or why there is none to run."""
    stop = escalation.stopped
    if stop is None:
        top = escalation.steps[-1].severity if escalation.steps else 0
        return f"every step held up to severity {top}: no breaking point within the run's reach"
    if stop.hold is None or stop.hold.verdict is None:
        why = stop.problem or "no verdict"
        return f"step {stop.severity} ended without a guard's verdict ({why}): a safety stop, " \
            "so no search"
    verdict = stop.hold.verdict
    if verdict.state != "breached":
        return (f"guard {verdict.guard} could not see ({verdict.state}): a safety stop, so no "
                "search")
    scenario = ctx.scenario
    name = scenario.search_field(search)
    broken_fault = scenario.step_fault(stop.severity)
    cls = FAULT_KINDS[broken_fault.kind]
    if name not in cls.magnitude:
        return f"step {stop.severity}'s fault ({broken_fault.kind}) has no {name} to search"
    quantity = QUANTITIES[name]
    axis = Axis(name, quantity.unit, worse_up=cls.magnitude[name], integer=quantity.integer)
    below = stop.severity - 1
    held_severity: int | None = None
    if below >= 1 and scenario.step_fault(below).kind == broken_fault.kind:
        held, held_severity = float(getattr(scenario.step_fault(below), name)), below
    elif quantity.neutral is not None and axis.worse_up:
        held = quantity.neutral
    else:
        return (f"no step below severity {stop.severity} held with the same fault kind, and "
                f"{name} has no value that injects nothing: add a milder first step")
    broken = float(getattr(broken_fault, name))
    if held == broken:
        return f"steps {below} and {stop.severity} have the same {name}: nothing to bisect"
    resolution = search.resolution.absolute(held, broken, quantity.integer)
    floor = dwell_floor(ctx)
    dwell = max(search.dwell or 0.0, floor)
    plan = Plan(axis, Bracket(held, broken), resolution, search.max_probes)
    return Start(plan, stop, held_severity, dwell, floor, escalation.steps[0].started)


async def search(ctx: RunContext, escalation: Escalation) -> SearchRun | None:
    """Bisect for the breaking point if the run asks for it and the ladder allows it."""
    wanted = ctx.request.search
    if wanted is None:
        return None
    start = start_of(ctx, escalation, wanted)
    if isinstance(start, str):
        _skipped(ctx, start)
        return None
    plan = start.plan
    ctx.journal.write(SearchStartedEvent(
        field=plan.axis.field, unit=plan.axis.unit, worse_up=plan.axis.worse_up,
        integer=plan.axis.integer, held=plan.start.held, broken=plan.start.broken,
        held_severity=start.held_severity, broken_severity=start.broken.severity,
        resolution=plan.resolution, resolution_text=str(wanted.resolution),
        budget=plan.budget, dwell=start.dwell, dwell_floor=start.floor,
        guards_hash=guards_hash(ctx.guards)))
    _say(ctx, f"breaking point: searching {plan.start.text(plan.axis)} to "
         f"{plan.axis.text(plan.resolution)}, up to {plan.budget} probes of {start.dwell:g}s")
    # The broken step's fault goes first, and the target must be back before the first probe.
    handle = start.broken.handle
    trouble = await _revert(ctx, handle) if handle is not None else None
    if trouble is None and not (await wait_recovery(ctx))[0]:
        trouble = "the signals did not return to the baseline after the broken step"
    if trouble is not None:
        _skipped(ctx, f"{trouble}: no probe was run")
        return None
    runner = _Prober(ctx, start)
    result = await bisect(plan, runner.judge, runner.room)
    ctx.journal.write(SearchEndedEvent(
        held=result.bracket.held, broken=result.bracket.broken, text=result.text,
        stopped=result.stopped, confirmed=result.confirmed, conflict=result.conflict,
        probes=len(result.probes), span_held=result.span.held,
        span_broken=result.span.broken))
    ctx.notify(SearchNotice(run=ctx.run, text=f"breaking point: {result.text}",
                            bracket=result.text, probes=len(result.probes),
                            stopped=result.stopped))
    return SearchRun(result, tuple(runner.runs))


class _Prober:
    """Runs the probes the bisection asks for, one at a time."""

    def __init__(self, ctx: RunContext, start: Start) -> None:
        self.ctx, self.start = ctx, start
        self.deadline = start.began + ctx.scenario.max_duration
        self.runs: list[ProbeRun] = []

    def room(self) -> str | None:
        """Why there is no time for another probe within the scenario's ``max_duration``."""
        if time.time() + self.start.dwell > self.deadline:
            return f"max_duration {self.ctx.scenario.max_duration:g}s reached"
        return None

    async def judge(self, number: int, value: float, purpose: Purpose) -> Judgement:
        ctx, plan = self.ctx, self.start.plan
        label = ctx.scenario.max_severity + number
        try:
            fault = _probe_fault(ctx, self.start.broken.severity, plan.axis, value)
        except ValueError as exc:
            now = time.time()
            return self._ended(number, value, purpose, "unjudged",
                               f"no valid fault at {plan.axis.text(value)}: {exc}", now, now)
        spec = FaultSpec(fault=fault, target=ctx.scenario.target, labels=Labels(
            run=ctx.run, scenario=ctx.scenario.name, environment=ctx.environment.name,
            step=label))
        dwell = self.start.dwell
        ttl = dwell + ctx.scenario.ttl_margin
        started = time.time()
        ctx.journal.write(ProbeStartedEvent(probe=number, value=value, purpose=purpose,
                                            fault=fault.summary(), dwell=dwell, ttl=ttl,
                                            label=label))
        _say(ctx, f"probe {number}/{plan.budget} ({purpose.replace('_', ' ')}): "
             f"{fault.summary()} for {dwell:g}s")
        try:
            held = await hold_fault(ctx, spec, dwell, ttl, recorder(
                ctx, ctx.journal.guard_recorder(probe=number), f"probe {number}"),
                lambda handle: None)
        except DriverError as exc:
            return self._ended(number, value, purpose, "unjudged", f"the driver failed: {exc}",
                               started, time.time(), end="a driver problem: a safety stop")
        trouble = await _revert(ctx, held.handle)
        # The probe's window ends with its fault: the recovery wait after it is not the probe.
        gone = time.time()
        if held.hold is None:
            reason = held.problem or "the fault vanished"
            ctx.journal.write(FaultVanishedNote(message=reason, severity=label,
                                                lease_expired=lease_lapsed(ctx, held.handle)))
            return self._ended(number, value, purpose, "unjudged", reason, started, gone,
                               end=f"{reason}: a safety stop")
        verdict = held.hold.verdict
        if verdict is None:
            judged = Judgement("held", held.hold.summary)
        elif verdict.state == "breached":
            judged = Judgement("broken", verdict.summary)
        else:
            judged = Judgement("unjudged", verdict.summary)
        end = None
        if trouble is not None:
            end = f"{trouble}: a safety stop"
        elif judged.verdict != "unjudged" and not (await wait_recovery(ctx))[0]:
            end = f"the signals did not return to the baseline after probe {number}"
        return self._ended(number, value, purpose, judged.verdict, judged.detail, started, gone,
                           end=end, result=held.hold, guard=held.hold.guard)

    def _ended(self, number: int, value: float, purpose: Purpose, verdict: Verdict,
               detail: str, started: float, ended: float, end: str | None = None,
               result: HoldResult | None = None, guard: str | None = None) -> Judgement:
        ctx, plan = self.ctx, self.start.plan
        ctx.journal.write(ProbeEndedEvent(probe=number, value=value, purpose=purpose,
                                          verdict=verdict, detail=detail, started=started,
                                          ended=ended, result=result))
        self.runs.append(ProbeRun(number, value, started, ended, verdict == "held"))
        shown = {"held": "held", "broken": "broke", "unjudged": "could not be judged"}[verdict]
        ctx.notify(ProbeNotice(run=ctx.run, text=f"probe {number}/{plan.budget}: "
                               f"{plan.axis.text(value)} {shown} ({detail})", probe=number,
                               budget=plan.budget, fault=plan.axis.text(value), verdict=shown,
                               guard=guard, level="info" if verdict != "unjudged" else "warning"))
        return Judgement(verdict, detail, end)


def _probe_fault(ctx: RunContext, severity: int, axis: Axis, value: float) -> Any:
    """The broken step's fault with the searched field set to ``value``."""
    fault = ctx.scenario.step_fault(severity)
    return with_overrides(fault, {axis.field: int(value) if axis.integer else value})


async def _revert(ctx: RunContext, handle: Handle) -> str | None:
    """Revert one fault and check at its driver that nothing of the run is left; the problem
    in words when either fails (a fault that cannot be checked is not gone)."""
    try:
        await revert_fault(ctx, handle)
    except DriverError as exc:
        return f"reverting {handle.fault} failed: {exc}"
    try:
        left = await asyncio.to_thread(ctx.driver.active, ctx.run)
    except DriverError as exc:
        return f"cannot check that {handle.fault} is gone: {exc}"
    if left:
        return f"still active after its revert: {', '.join(h.fault for h in left)}"
    return None


def _skipped(ctx: RunContext, reason: str) -> None:
    ctx.journal.write(SearchSkippedEvent(reason=reason))
    ctx.notify(SearchNotice(run=ctx.run, text=f"breaking point: not searched: {reason}",
                            stopped=reason))


def _say(ctx: RunContext, line: str) -> None:
    if ctx.progress is not None:
        ctx.progress(line)
