"""Prepare: refuse what may not run, sweep leftovers, preflight, baseline, lock.

Nothing is injected here. Every refusal names its reason; all reasons are given at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from gameday.drivers import driver_for
from gameday.drivers.base import Driver
from gameday.errors import DriverError, GameDayError, GuardError, RefusedError
from gameday.guards import (
    Prometheus,
    Window,
    measure,
    resolve_guards,
    resolve_signals,
    stale_bound,
)
from gameday.journal import (
    BaselineEvent,
    FaultRevertedEvent,
    Journal,
    PlanEvent,
    PlannedQuery,
    PlannedStep,
    RunEndedEvent,
)
from gameday.models import Endpoint, Environment, SignalTemplate, render_query
from gameday.models.alerts import AlertmanagerSettings
from gameday.notes import (
    LockNote,
    PreflightFailedNote,
    PreflightNote,
    RefusedNote,
    SweptNote,
    TraceNote,
)
from gameday.notify import (
    BaselineFigure,
    ConsoleSink,
    JournalSink,
    Notifier,
    Sink,
    StartNotice,
    SweepNotice,
    run_url,
    sinks_for,
)
from gameday.paths import journal_path
from gameday.protocol.checks import Request, refusals, severities
from gameday.protocol.context import RunContext
from gameday.protocol.lock import EnvironmentLock
from gameday.records import Handle
from gameday.tracing import run_trace

#: The report's standard metrics for the target service, by signal template name.
STANDARD_METRICS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "error_rate_percent")


def baseline_seconds(environment: Environment) -> float:
    """How far back the baseline reaches: ten scrapes, between 10 s and 5 min."""
    return min(300.0, max(10.0, 10 * environment.prometheus.scrape_interval))


def open_run(run: str, request: Request, templates: Mapping[str, SignalTemplate],
             extra_sinks: list[Sink] | None = None, console: bool | None = None) -> RunContext:
    """Check the request (refusing with every reason), and open the run's journal and clients."""
    environment, scenario = request.environment, request.scenario
    journal = Journal(journal_path(run))
    reasons = refusals(request, datetime.now(UTC))
    if reasons:
        journal.write(RefusedNote(message="; ".join(reasons)))
        journal.write(RunEndedEvent(outcome="refused", summary="; ".join(reasons)))
        journal.close()
        raise RefusedError("refused, nothing injected:\n" + "\n".join(f"  - {r}" for r in reasons))
    endpoint = environment.endpoint_for(scenario.target)
    assert endpoint is not None  # refusals() checked it
    from gameday.journal import NotificationDroppedEvent

    def dropped(sink: str, notice: object, reason: str) -> None:
        journal.write(NotificationDroppedEvent(sink=sink, message=getattr(notice, "text", ""),
                                               reason=reason))

    show = environment.notify.console if console is None else console
    sinks: list[Sink] = [JournalSink(journal.write)]
    if show:
        sinks.append(ConsoleSink())
    sinks += extra_sinks or []
    window = environment.prometheus.window
    metrics = {name: render_query(templates[name].query, scenario.target, window)
               for name in STANDARD_METRICS if name in templates}
    try:
        sinks += sinks_for(environment, run=run, scenario=scenario.name)
        driver = driver_for(endpoint, environment)
        prometheus = Prometheus.from_settings(environment.prometheus, environment.guard_interval)
    except GameDayError:
        journal.close()
        raise
    guards = resolve_guards(scenario, templates, environment)
    if request.slo is not None:
        from gameday.protocol.budget import budget_guards

        guards += budget_guards(request.slo)
    ctx = RunContext(
        run=run, request=request, severities=severities(request), guards=guards,
        signals=resolve_signals(scenario, templates, environment),
        metrics=metrics, endpoint=endpoint, driver=driver, journal=journal,
        notifier=Notifier(sinks, on_drop=dropped), prometheus=prometheus,
        requester=request.requester or "unknown")
    if environment.alertmanager is not None:
        _watch_alerts(ctx, environment.alertmanager)
    return ctx


def _watch_alerts(ctx: RunContext, settings: AlertmanagerSettings) -> None:
    """Add the incident guard, sampled from Alertmanager, to the run's guards."""
    from gameday.guards.alertmanager import AlertReader, AlertSampler, incident_guard
    from gameday.protocol.incidents import watcher

    expected = ctx.scenario.expected_alerts
    ctx.guards.append(incident_guard(settings))
    ctx.sampler = AlertSampler(AlertReader(settings), expected, ctx.prometheus,
                               watch=watcher(ctx, settings, expected))


def take_lock(ctx: RunContext, wait: float = 0.0) -> None:
    """One game day per environment: take its lock or raise ``LockError``."""
    lock = EnvironmentLock(ctx.environment.name)
    lock.acquire(ctx.run, wait=wait)
    ctx.lock = lock
    ctx.journal.write(LockNote(message=f"holding {ctx.environment.name!r}"))


@dataclass(frozen=True)
class Drivers:
    """The drivers built for an environment (one per place), and the endpoints none could be
    built for, each with the error that stopped it."""

    built: tuple[tuple[Endpoint, Driver], ...]
    broken: tuple[tuple[Endpoint, Exception], ...]

    def reasons(self) -> list[tuple[Endpoint, str]]:
        """Each endpoint none could be built for, with why in words."""
        return [(e, str(exc) if isinstance(exc, GameDayError) else f"{type(exc).__name__}: {exc}")
                for e, exc in self.broken]

    def close(self) -> None:
        """Close every driver that holds connections."""
        for _endpoint, driver in self.built:
            close = getattr(driver, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()


def build_drivers(environment: Environment) -> Drivers:
    """Try to build a driver for every endpoint of the environment (deduplicated by place).

    A failure does not stop the others: rollback has to know every place it cannot check.
    """
    from gameday.protocol.context import endpoint_key

    seen: set[tuple[str, str]] = set()
    built: list[tuple[Endpoint, Driver]] = []
    broken: list[tuple[Endpoint, Exception]] = []
    for endpoint in environment.endpoints:
        key = (endpoint.driver, endpoint_key(endpoint))
        if key in seen:
            continue
        seen.add(key)
        try:
            built.append((endpoint, driver_for(endpoint, environment)))
        # Any failure, not only the kit's own errors (a driver module whose client library
        # is missing, say): the caller must learn of the place, not lose the whole rollback.
        except Exception as exc:
            broken.append((endpoint, exc))
    return Drivers(tuple(built), tuple(broken))


def all_drivers(environment: Environment) -> list[tuple[Endpoint, Driver]]:
    """A driver for every endpoint of the environment (deduplicated by place); raises the
    first endpoint's error when one cannot be built."""
    drivers = build_drivers(environment)
    if drivers.broken:
        drivers.close()
        raise drivers.broken[0][1]
    return list(drivers.built)


def sweep(ctx: RunContext) -> list[Handle]:
    """Revert faults of earlier runs of this environment, found through every driver.

    We hold the environment's lock, so no other run of it is alive: any fault labelled with
    this environment and another run is a leftover (its run crashed before its TTL).
    """
    swept = []
    for _endpoint, driver in all_drivers(ctx.environment):
        for handle in driver.active():
            labels = handle.labels
            if labels.environment != ctx.environment.name or labels.run == ctx.run:
                continue
            driver.revert(handle)
            swept.append(handle)
            ctx.journal.write(FaultRevertedEvent(driver=handle.driver, endpoint=handle.endpoint,
                                                 labels=labels, handle=handle))
            ctx.journal.write(SweptNote(message=f"reverted {handle.fault} left by run "
                                        f"{labels.run}", run=labels.run))
    from gameday.protocol.incidents import sweep_dead_silences

    silences = sweep_dead_silences(ctx)
    ctx.swept = [f"{h.fault} (run {h.labels.run})" for h in swept]
    ctx.swept += [f"silence {id}" for id in silences]
    if swept or silences:
        what = f"reverted {len(swept)} leftover fault(s)" + (
            f" and deleted {len(silences)} silence(s)" if silences else "")
        ctx.notify(SweepNotice(run=ctx.run, text=f"{what} of earlier runs",
                               count=len(swept) + len(silences)))
    return swept


#: Tries of preflight's first query: one slow answer from a busy Prometheus is no reason to
#: refuse, three in a row are (the guards' own queries are never retried).
REACH_TRIES = 3


async def _reachable(ctx: RunContext) -> None:
    for attempt in range(1, REACH_TRIES + 1):
        try:
            await ctx.prometheus.value("vector(1)")
            return
        except GuardError as exc:
            if attempt == REACH_TRIES:
                raise RefusedError(f"preflight: Prometheus is not reachable ({REACH_TRIES} "
                                   f"tries): {exc}") from exc
            await asyncio.sleep(0.5)


async def preflight(ctx: RunContext) -> None:
    """Prometheus answers, every guard and signal returns a fresh number, targets and drivers
    are up, and no guard is already breached. Raises ``RefusedError`` with every problem."""
    problems: list[str] = []
    stale_after = stale_bound(ctx.environment.prometheus.scrape_interval)
    await _reachable(ctx)
    samples = await asyncio.gather(*(ctx.guard_sampler.sample(g) for g in ctx.guards))
    ctx.preflight = {g.name: s.value for g, s in zip(ctx.guards, samples, strict=True)}
    for guard, sample in zip(ctx.guards, samples, strict=True):
        if sample.error:
            problems.append(f"guard {guard.name}: query failed: {sample.error}")
        elif sample.value is None or math.isnan(sample.value):
            if guard.guard.on_no_data == "breach":
                problems.append(f"guard {guard.name}: no data for {guard.query}")
        elif sample.age is None or sample.age > stale_after:
            problems.append(f"guard {guard.name}: data is stale")
        elif guard.guard.op and _breached(sample.value, guard.guard.op, guard.guard.threshold):
            problems.append(f"guard {guard.name} is already breached before any fault "
                            f"({sample.value:.4g} {guard.guard.op} {guard.guard.threshold:g})")
    for signal in ctx.signals:
        try:
            value = await ctx.prometheus.value(signal.query)
        except GuardError as exc:
            problems.append(f"signal {signal.name}: query failed: {exc}")
            continue
        if value is None:
            problems.append(f"signal {signal.name}: no data for {signal.query}")
    if ctx.endpoint.driver in ("chaos_mesh", "configmap"):
        from gameday.drivers.cluster import preflight_cluster

        try:
            await asyncio.to_thread(preflight_cluster, ctx.environment, ctx.scenario)
        except RefusedError as exc:
            problems.append(f"cluster: {exc}")
    try:
        await asyncio.to_thread(ctx.driver.check)
    except DriverError as exc:
        problems.append(f"driver {ctx.endpoint.driver}: {exc}")
    if ctx.endpoint.health_url:
        problems += await _health(ctx.endpoint.health_url)
    if problems:
        ctx.journal.write(PreflightFailedNote(message="; ".join(problems)))
        raise RefusedError("preflight failed, nothing injected:\n"
                           + "\n".join(f"  - {p}" for p in problems))
    ctx.journal.write(PreflightNote(message="all guards, signals and the driver answered"))


def _breached(value: float, op: str, threshold: float) -> bool:
    from gameday.units import compare

    return compare(value, op, threshold)


async def _health(url: str) -> list[str]:
    try:
        async with httpx.AsyncClient(timeout=3.0) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return [f"target health {url}: {exc}"]
    return [] if response.status_code < 400 else [f"target health {url}: {response.status_code}"]


async def check_min_load(ctx: RunContext) -> None:
    """Refuse when the scenario's ``min_load`` is not met: without traffic nothing is learnt."""
    min_load = ctx.scenario.trigger.min_load
    if min_load is None:
        return
    query = render_query(min_load.query, ctx.scenario.target, ctx.environment.prometheus.window)
    try:
        value = await ctx.prometheus.value(query)
    except GuardError as exc:
        raise RefusedError(f"min_load: query failed: {exc}") from exc
    if value is None or value < min_load.at_least:
        shown = "no data" if value is None else f"{value:.4g}"
        raise RefusedError(f"min_load not met: {query} is {shown}, needs at least "
                           f"{min_load.at_least:g}")


async def measure_baseline(ctx: RunContext) -> Window:
    """Every signal and standard metric over the baseline window, journaled."""
    from gameday.protocol.observe import metric_queries

    end = time.time()
    start = end - baseline_seconds(ctx.environment)
    window = await measure(ctx.prometheus, [*ctx.signals, *metric_queries(ctx)], start, end,
                           ctx.environment.prometheus.scrape_interval)
    ctx.baseline = window
    ctx.journal.write(BaselineEvent(window=window))
    return window


def journal_plan(ctx: RunContext) -> None:
    """Write the plan: who, what, where, and the queries that watch it."""
    scenario = ctx.scenario
    steps = [PlannedStep(severity=s, fault=scenario.step_fault(s).summary(),
                         dwell=scenario.steps[s - 1].dwell, ttl=scenario.ttl(s))
             for s in ctx.severities]
    ctx.journal.write(PlanEvent(
        run=ctx.run, scenario=scenario.name, environment=ctx.environment.name,
        requester=ctx.requester, max_severity=max(ctx.severities, default=0), steps=steps,
        guards=[PlannedQuery(name=g.name, query=g.query) for g in ctx.guards],
        signals=[PlannedQuery(name=s.name, query=s.query) for s in ctx.signals]))
    traced_to = run_trace.destinations(ctx.environment.tracing.files)
    if traced_to:
        ctx.journal.write(TraceNote(message="the game day is traced",
                                    trace_id=run_trace.new_trace_id(), destinations=traced_to))


async def prepare(ctx: RunContext, lock_wait: float = 0.0, dry_run: bool = False) -> RunContext:
    """Everything before the first fault, in order; raises ``RefusedError``/``LockError``.

    A dry run changes nothing: no lock, no sweep (leftovers are only listed), no notice.
    """
    journal_plan(ctx)
    from gameday.drivers.chaos_mesh import refuse_invalid_plan

    # Offline and first: an object Chaos Mesh's CRD schema would refuse stops the run here.
    refuse_invalid_plan(ctx.driver, [(ctx.spec(s), ctx.scenario.ttl(s)) for s in ctx.severities])
    if dry_run:
        ctx.swept = await asyncio.to_thread(leftovers, ctx)
    else:
        take_lock(ctx, wait=lock_wait)
        await asyncio.to_thread(sweep, ctx)
    from gameday.protocol.budget import check_budget
    from gameday.protocol.incidents import check_incidents, open_silences

    await check_incidents(ctx)
    await check_budget(ctx)
    await check_min_load(ctx)
    await preflight(ctx)
    await measure_baseline(ctx)
    if not dry_run:
        # Last: once created, only rollback removes them, and nothing after this refuses.
        await asyncio.to_thread(open_silences, ctx, run_url(ctx.environment, ctx.run))
        ctx.notify(start_notice(ctx))
    return ctx


def start_notice(ctx: RunContext) -> StartNotice:
    """The start notice, for chat and run metrics: the plan and the baseline."""
    scenario, target = ctx.scenario, ctx.scenario.target
    ladder = " → ".join(scenario.step_fault(s).summary() for s in ctx.severities)
    baseline = []
    for name in ("latency_p95_ms", "error_rate_percent"):
        stats = ctx.baseline.stats(f"metric:{name}") if ctx.baseline else None
        if stats is not None and math.isfinite(stats.mean):
            baseline.append(BaselineFigure(metric=name, value=stats.mean))
    return StartNotice(
        run=ctx.run, text=f"game day {scenario.name} in {ctx.environment.name} by "
        f"{ctx.requester}: {ladder}; guards: {', '.join(g.name for g in ctx.guards)}",
        scenario=scenario.name, environment=ctx.environment.name, requester=ctx.requester,
        service=target.service,
        target=target.service + (f" → {target.dependency}" if target.dependency else ""),
        ladder=tuple(f"{scenario.step_fault(s).summary()} · {scenario.steps[s - 1].dwell:g}s"
                     for s in ctx.severities),
        guards=tuple(f"{g.name} {g.guard.op} {g.guard.threshold:g}"
                     + (f" for {g.guard.for_:g}s" if g.guard.for_ else "") for g in ctx.guards),
        baseline=tuple(baseline))


def leftovers(ctx: RunContext) -> list[str]:
    """Faults of other runs of this environment still in place (listed, not reverted)."""
    return [f"{h.fault} (run {h.labels.run})" for _e, driver in all_drivers(ctx.environment)
            for h in driver.active() if h.labels.environment == ctx.environment.name
            and h.labels.run != ctx.run]
