"""Escalate: climb the ladder step by step, each held under the guards; a breach stops it.

Per step: journal the intent, apply with TTL = dwell + margin, journal the handle, then hold
for the dwell while the guards run and a watcher checks that the fault is still in place (a
restarted proxy silently drops its rules, and a run must not judge a fault that is gone).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

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
from gameday.records import Handle


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


async def watch_fault(ctx: RunContext, handle: Handle, interval: float) -> str:
    """Return (as a reason) once the applied fault is no longer in place at its driver."""
    while True:
        await asyncio.sleep(interval)
        try:
            active = await asyncio.to_thread(ctx.driver.active, ctx.run)
        except DriverError as exc:
            return f"cannot see the fault at its driver any more: {exc}"
        if handle.id not in {h.id for h in active}:
            return (f"the fault vanished from {handle.endpoint} before its dwell ended "
                    "(was the proxy restarted?)")


def _recorder(ctx: RunContext, severity: int) -> Recorder:
    """Journal every sample; also print one line per round of guards when asked to."""
    journal = ctx.journal.guard_recorder(severity)
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
            progress(f"  step {severity} · " + " · ".join(parts))
        latest.clear()

    return record


async def run_step(ctx: RunContext, severity: int) -> StepRun:
    """Apply one step's fault and hold it under the guards."""
    scenario, env = ctx.scenario, ctx.environment
    spec = ctx.spec(severity)
    dwell, ttl = scenario.steps[severity - 1].dwell, scenario.ttl(severity)
    summary = spec.fault.summary()
    started = time.time()
    ctx.journal.write(StepStartedEvent(severity=severity, fault=summary, dwell=dwell, ttl=ttl))
    # The intent is on disk before the driver is called: a crash mid-apply leaves a trace.
    ctx.journal.write(FaultIntentEvent(driver=ctx.endpoint.driver,
                                       endpoint=endpoint_key(ctx.endpoint), labels=spec.labels,
                                       fault=summary, expires_at=started + ttl))
    handle = await asyncio.to_thread(ctx.driver.apply, spec, ttl)
    ctx.journal.write(FaultAppliedEvent(handle=handle))
    ctx.notify(StepNotice(run=ctx.run, text=f"step {severity}/{len(ctx.severities)}: {summary} "
                          f"for {dwell:g}s (expires by itself in {ttl:g}s)", severity=severity,
                          total=len(ctx.severities), fault=summary, dwell=dwell, ttl=ttl))
    guards = asyncio.create_task(hold(
        dwell, ctx.guards, env.guard_interval, sampler=ctx.prometheus,
        stale_after=stale_bound(env.prometheus.scrape_interval),
        scrape_interval=env.prometheus.scrape_interval, record=_recorder(ctx, severity)))
    watcher = asyncio.create_task(watch_fault(ctx, handle, env.guard_interval))
    try:
        done, _ = await asyncio.wait({guards, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (guards, watcher):
            task.cancel()
        await asyncio.gather(guards, watcher, return_exceptions=True)
    if guards in done and not guards.cancelled() and guards.exception() is None:
        result = guards.result()
        ctx.journal.write(HoldEndedEvent(severity=severity, result=result))
        return StepRun(severity, summary, started, time.time(), result, handle=handle)
    if guards in done and guards.exception() is not None:
        raise guards.exception()  # type: ignore[misc]
    reason = watcher.result()
    ctx.journal.write(FaultVanishedNote(message=reason, severity=severity))
    ctx.notify(VanishedNotice(run=ctx.run, text=f"step {severity}: {reason}; aborting",
                              severity=severity))
    return StepRun(severity, summary, started, time.time(), None, problem=reason, handle=handle)


async def escalate(ctx: RunContext) -> Escalation:
    """Climb the planned steps; stop at the first that does not hold."""
    steps: list[StepRun] = []
    for severity in ctx.severities:
        step = await run_step(ctx, severity)
        steps.append(step)
        if step.held:
            if step.handle is not None and severity != ctx.severities[-1]:
                # The next step replaces this one; faults must not stack.
                await asyncio.to_thread(ctx.driver.revert, step.handle)
                ctx.journal.write(FaultRevertedEvent(
                    driver=step.handle.driver, endpoint=step.handle.endpoint,
                    labels=step.handle.labels, handle=step.handle))
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
