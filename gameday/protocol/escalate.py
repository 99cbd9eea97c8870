"""Escalate: climb the ladder step by step, each held under the guards; a breach stops it.

Per step: journal the intent, apply with TTL = dwell + margin and the environment's lease,
journal the handle, then hold for the dwell while the guards run, the run's lease keeper
renews the fault, and a watcher checks that the fault is still in place (a restarted proxy
silently drops its rules; a run that was frozen finds its lease lapsed; either way a run must
not judge a fault that is gone).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from gameday.drivers.base import LEASE_EXPIRED, Gone, lease_of
from gameday.errors import DriverError
from gameday.guards import GuardQuery, HoldResult, Recorder, Sample, Verdict, hold, stale_bound
from gameday.journal import (
    FaultAppliedEvent,
    FaultIntentEvent,
    FaultRevertedEvent,
    HoldEndedEvent,
    StepStartedEvent,
)
from gameday.notes import FaultVanishedNote
from gameday.notify import BreachNotice, StepNotice, VanishedNotice
from gameday.protocol.context import RunContext, endpoint_key
from gameday.records import FaultSpec, Handle


@dataclass(frozen=True)
class StepRun:
    """One step as it ran."""

    severity: int
    fault: str
    started: float
    ended: float
    hold: HoldResult | None
    #: Why the step ended early without a guard (the fault vanished, the driver failed).
    problem: str | None = None
    handle: Handle | None = None

    @property
    def held(self) -> bool:
        """Whether the step held its whole dwell under the guards."""
        return self.problem is None and self.hold is not None and self.hold.held


@dataclass(frozen=True)
class Escalation:
    """The ladder as climbed."""

    steps: tuple[StepRun, ...]

    @property
    def stopped(self) -> StepRun | None:
        """The step that ended the ladder early, if any."""
        return next((s for s in self.steps if not s.held), None)


#: How often the watcher looks at what the lease keeper found (no I/O: a dict lookup).
LEASE_LOOK = 0.1


def vanished_reason(gone: Gone) -> str:
    """The words a step ends with when a renewal found its fault gone."""
    return f"fault vanished: {gone.reason} at {gone.handle.endpoint}"


async def watch_fault(ctx: RunContext, handle: Handle, interval: float) -> str:
    """Return (as a reason) once the applied fault is no longer in place at its driver."""
    next_list = time.monotonic() + interval
    while True:
        await asyncio.sleep(min(LEASE_LOOK, interval))
        gone = ctx.leases.gone(handle)
        if gone is not None:
            return vanished_reason(gone)
        if time.monotonic() < next_list:
            continue
        next_list = time.monotonic() + interval
        try:
            active = await asyncio.to_thread(ctx.driver.active, ctx.run)
        except DriverError as exc:
            return f"cannot see the fault at its driver any more: {exc}"
        if handle.id not in {h.id for h in active}:
            gone = await asyncio.to_thread(ctx.leases.confirm, handle)
            if gone is not None:
                return vanished_reason(gone)
            return (f"the fault vanished from {handle.endpoint} before its dwell ended "
                    "(was the proxy restarted?)")


def recorder(ctx: RunContext, journal: Recorder, label: str) -> Recorder:
    """Journal every sample; also print one line per round of guards when asked to, headed
    ``label`` ("step 2", "probe 3")."""
    progress = ctx.progress
    if progress is None:
        return journal
    latest: dict[str, Verdict] = {}
    rounds = [0]

    def record(guard: GuardQuery, sample: Sample, verdict: Verdict) -> None:
        journal(guard, sample, verdict)
        latest[guard.name] = verdict
        if len(latest) < len(ctx.guards):
            return
        rounds[0] += 1
        calm = all(v.state == "met" and not v.pending for v in latest.values())
        # Every 5th round while all is calm; every round once anything stirs.
        if not calm or rounds[0] % 5 == 1:
            parts = [f"{name}={'—' if v.value is None else f'{v.value:.3g}'} "
                     f"({v.state}{', pending' if v.pending else ''})"
                     for name, v in sorted(latest.items())]
            progress(f"  {label} · " + " · ".join(parts))
        latest.clear()

    return record


@dataclass(frozen=True)
class Held:
    """A fault held under the guards: how the hold ended, or why it ended without one."""

    hold: HoldResult | None
    #: Why it ended early without a verdict (the fault vanished at its driver).
    problem: str | None
    handle: Handle


async def hold_fault(ctx: RunContext, spec: FaultSpec, dwell: float, ttl: float,
                     record: Recorder, applied: Callable[[Handle], None]) -> Held:
    """Apply ``spec`` (its intent journaled first), then hold it for ``dwell`` while the guards
    run, the lease keeper renews it and the watcher checks it is still in place. ``applied``
    is told the handle as soon as the driver returns it."""
    env = ctx.environment
    # The intent is on disk before the driver is called: a crash mid-apply leaves a trace.
    ctx.journal.write(FaultIntentEvent(driver=ctx.endpoint.driver,
                                       endpoint=endpoint_key(ctx.endpoint), labels=spec.labels,
                                       fault=spec.fault.summary(), expires_at=time.time() + ttl))
    lease = lease_of(ctx.driver, env.fault_lease)
    handle = await asyncio.to_thread(ctx.driver.apply, spec, ttl, lease)
    ctx.leases.hold(handle)
    ctx.journal.write(FaultAppliedEvent(handle=handle))
    applied(handle)
    guards = asyncio.create_task(hold(
        dwell, ctx.guards, env.guard_interval, sampler=ctx.guard_sampler,
        stale_after=stale_bound(env.prometheus.scrape_interval),
        scrape_interval=env.prometheus.scrape_interval, record=record))
    watcher = asyncio.create_task(watch_fault(ctx, handle, env.guard_interval))
    try:
        done, _ = await asyncio.wait({guards, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (guards, watcher):
            task.cancel()
        await asyncio.gather(guards, watcher, return_exceptions=True)
    if guards in done and not guards.cancelled() and guards.exception() is None:
        # A run frozen past its dwell wakes to a hold that "ended": if the lease lapsed
        # meanwhile, the fault was not held, whatever the guards saw.
        gone = await asyncio.to_thread(ctx.leases.confirm, handle)
        if gone is None:
            return Held(guards.result(), None, handle)
        return Held(None, vanished_reason(gone), handle)
    if guards in done and guards.exception() is not None:
        raise guards.exception()  # type: ignore[misc]
    return Held(None, watcher.result(), handle)


def lease_lapsed(ctx: RunContext, handle: Handle) -> bool:
    """Whether the keeper found ``handle``'s fault gone because its lease expired."""
    gone = ctx.leases.gone(handle)
    return gone is not None and gone.reason == LEASE_EXPIRED


async def run_step(ctx: RunContext, severity: int) -> StepRun:
    """Apply one step's fault and hold it under the guards."""
    scenario = ctx.scenario
    spec = ctx.spec(severity)
    dwell, ttl = scenario.steps[severity - 1].dwell, scenario.ttl(severity)
    summary = spec.fault.summary()
    started = time.time()
    ctx.journal.write(StepStartedEvent(severity=severity, fault=summary, dwell=dwell, ttl=ttl))

    def applied(handle: Handle) -> None:
        ends = f"expires by itself in {ttl:g}s" + (
            f", or {handle.lease_s:g}s after the run stops renewing it" if handle.lease_s
            else "")
        ctx.notify(StepNotice(run=ctx.run, text=f"step {severity}/{len(ctx.severities)}: "
                              f"{summary} for {dwell:g}s ({ends})", severity=severity,
                              total=len(ctx.severities), fault=summary, dwell=dwell, ttl=ttl))

    held = await hold_fault(ctx, spec, dwell, ttl, recorder(
        ctx, ctx.journal.guard_recorder(severity), f"step {severity}"), applied)
    if held.hold is not None:
        ctx.journal.write(HoldEndedEvent(severity=severity, result=held.hold))
        return StepRun(severity, summary, started, time.time(), held.hold, handle=held.handle)
    reason = held.problem or "the fault vanished"
    ctx.journal.write(FaultVanishedNote(message=reason, severity=severity,
                                        lease_expired=lease_lapsed(ctx, held.handle)))
    ctx.notify(VanishedNotice(run=ctx.run, text=f"step {severity}: {reason}; aborting",
                              severity=severity))
    return StepRun(severity, summary, started, time.time(), None, problem=reason,
                   handle=held.handle)


async def revert_fault(ctx: RunContext, handle: Handle) -> None:
    """Stop renewing one applied fault, revert it at its driver and journal that it is gone
    (a driver that fails raises ``DriverError``)."""
    ctx.leases.release(handle)
    await asyncio.to_thread(ctx.driver.revert, handle)
    ctx.journal.write(FaultRevertedEvent(driver=handle.driver, endpoint=handle.endpoint,
                                         labels=handle.labels, handle=handle))


async def escalate(ctx: RunContext) -> Escalation:
    """Climb the planned steps; stop at the first that does not hold."""
    steps: list[StepRun] = []
    for severity in ctx.severities:
        step = await run_step(ctx, severity)
        steps.append(step)
        if step.held:
            if step.handle is not None and severity != ctx.severities[-1]:
                # The next step replaces this one; faults must not stack.
                await revert_fault(ctx, step.handle)
            continue
        if step.hold is not None and step.hold.verdict is not None:
            verdict = step.hold.verdict
            observed = "no value" if verdict.value is None else f"{verdict.value:.4g}"
            ctx.notify(BreachNotice(
                run=ctx.run, text=f"guard {step.hold.guard} stopped step {severity}: "
                f"{verdict.summary} (observed {observed}, threshold {verdict.op} "
                f"{verdict.threshold:g})", guard=step.hold.guard or verdict.guard,
                severity=severity, observed=verdict.value,
                threshold=f"{verdict.op} {verdict.threshold:g}"))
        break
    return Escalation(tuple(steps))
