"""What a game day returns: its outcome and, for a dry run, the plan a person checks.

The flow returns a :class:`RunSummary`; ``chaosctl start`` and the weekly suite read it as
attributes, so neither needs Prefect to understand a run's end.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # kept light: ``chaosctl start`` reads a summary without the protocol
    from gameday.protocol.context import RunContext
    from gameday.protocol.outcome import Outcome
    from gameday.report.breaking import BreakingPoint


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlannedStep(_Frozen):
    """One rung of the ladder a dry run would climb."""

    severity: int
    fault: str = Field(description="one-line fault summary")
    dwell: float = Field(description="seconds the step is held")
    ttl: float = Field(description="seconds after which the fault expires by itself")
    orphan_s: float = Field(0.0, description="longest the fault could outlive a run that "
                                             "died as it was applied, in seconds")
    bounded_by: str = Field("ttl", description="what bounds orphan_s: lease or ttl")


class PlannedGuard(_Frozen):
    """A guard, its stop condition and what its query returned at preflight."""

    name: str
    condition: str = Field(description='e.g. "> 5 for 1s"')
    query: str
    unit: str | None = None
    #: None when the query returned no data (only allowed with ``on_no_data: ignore``).
    preflight: float | None = None


class BaselineValue(_Frozen):
    """One signal or standard metric over the baseline window."""

    name: str
    mean: float
    p95: float
    unit: str | None = None


class DryRunPlan(_Frozen):
    """Everything a dry run found: the ladder, the guards, the baseline and leftovers."""

    steps: tuple[PlannedStep, ...]
    guards: tuple[PlannedGuard, ...]
    baseline: tuple[BaselineValue, ...] = ()
    baseline_seconds: float = 0.0
    #: Faults of earlier runs still in place (a real run would sweep them first).
    leftovers: tuple[str, ...] = ()
    #: The breaking-point search after a guard breach, in words; None when none is asked.
    search: str | None = None
    #: The silences a real run would create for its expected alerts, as matchers.
    silences: tuple[str, ...] = ()


class RunSummary(_Frozen):
    """How one game day ended: passed, aborted, failed, cancelled, rollback_failed, refused
    or dry_run."""

    run: str
    scenario: str
    environment: str
    outcome: str
    summary: str
    highest_held: int | None = None
    first_broken: int | None = None
    postmortem: str | None = Field(None, description="path of postmortem.md")
    plan: DryRunPlan | None = Field(None, description="set for dry runs")
    breaking_point: str | None = Field(None, description="the search's bracket, e.g. holds at "
                                       "178 ms, breaks at 190 ms")
    trend: str | None = Field(None, description="the bracket against the previous run's")
    regression: bool = Field(False, description="the breaking point fell since the previous run")

    @classmethod
    def ended(cls, run: str, scenario: str, environment: str, outcome: Outcome,
              postmortem: str | None = None, search: BreakingPoint | None = None
              ) -> RunSummary:
        """The summary of a run that went through the ladder (or stopped on the way), with
        the bracket of its ``search`` and how it compares, when it found one."""
        found = search if search is not None and search.bracket is not None else None
        trend = found.trend if found else None
        return cls(run=run, scenario=scenario, environment=environment,
                   outcome=outcome.outcome, summary=outcome.summary,
                   highest_held=outcome.highest_held, first_broken=outcome.first_broken,
                   postmortem=postmortem, breaking_point=found.text if found else None,
                   trend=trend.text if trend else None,
                   regression=trend.regression if trend else False)

    @classmethod
    def refused(cls, run: str, scenario: str, environment: str, reason: str) -> RunSummary:
        """A run that may not start; nothing was injected."""
        return cls(run=run, scenario=scenario, environment=environment, outcome="refused",
                   summary=reason)


def dry_run_plan(ctx: RunContext) -> DryRunPlan:
    """The plan of a prepared run, with the preflight's guard values and the baseline."""
    from gameday.drivers.base import orphan_bound

    scenario, lease = ctx.scenario, ctx.environment.fault_lease
    steps = tuple(PlannedStep(severity=s, fault=scenario.step_fault(s).summary(),
                              dwell=scenario.steps[s - 1].dwell, ttl=scenario.ttl(s),
                              orphan_s=(bound := orphan_bound(ctx.driver, scenario.ttl(s), lease)),
                              bounded_by="ttl" if bound >= scenario.ttl(s) else "lease")
                  for s in ctx.severities)
    guards = tuple(PlannedGuard(name=g.name, condition=_condition(g.guard.op, g.guard.threshold,
                                                                 g.guard.for_),
                                query=g.query, unit=g.guard.unit,
                                preflight=ctx.preflight.get(g.name))
                   for g in ctx.guards)
    window = ctx.baseline
    # The scenario's signals come first; a standard metric of the same name is the same query.
    shown: dict[str, BaselineValue] = {}
    for m in window.signals if window is not None else ():
        name = m.name.removeprefix("metric:")
        if name not in shown and m.stats is not None and math.isfinite(m.stats.mean):
            shown[name] = BaselineValue(name=name, mean=m.stats.mean, p95=m.stats.p95,
                                        unit=m.unit)
    baseline = tuple(shown.values())
    return DryRunPlan(steps=steps, guards=guards, baseline=baseline,
                      baseline_seconds=window.end - window.start if window else 0.0,
                      leftovers=tuple(ctx.swept), search=_search_plan(ctx),
                      silences=_silence_plan(ctx))


def _silence_plan(ctx: RunContext) -> tuple[str, ...]:
    """The matchers of the silences a real run would create."""
    from gameday.models.alerts import show
    from gameday.protocol.silences import silence_matchers

    settings = ctx.environment.alertmanager
    if settings is None or not ctx.scenario.expected_alerts:
        return ()
    return tuple(show(m) for m in silence_matchers(settings, ctx.scenario.expected_alerts))


def _search_plan(ctx: RunContext) -> str | None:
    """What the search would do after a guard breach, as a dry run can tell it."""
    from gameday.protocol.search import dwell_floor
    from gameday.units import format_duration

    search = ctx.request.search
    if search is None:
        return None
    budget = f"up to {search.max_probes} probes" if search.max_probes else \
        "up to ceil(log2(range / resolution)) + 2 probes"
    dwell = max(search.dwell or 0.0, dwell_floor(ctx))
    return (f"after a guard breach, bisect {ctx.scenario.search_field(search)} between the "
            f"last held and the broken step to {search.resolution}, {budget} of "
            f"{format_duration(dwell)} each")


def _condition(op: str | None, threshold: float, for_: float) -> str:
    if not op:
        return "(no stop condition)"
    return f"{op} {threshold:g}" + (f" for {for_:g}s" if for_ else "")


def plan_lines(summary: RunSummary) -> list[str]:
    """A dry run's plan for a person: the ladder, the guards with their preflight values, the
    baseline and the leftovers, in aligned columns."""
    from gameday.units import format_duration

    plan = summary.plan
    lines = [f"dry run of {summary.scenario} in {summary.environment}: nothing injected "
             f"(run {summary.run})"]
    if plan is None:
        return lines
    lines += ["", f"ladder ({len(plan.steps)} step{'s' if len(plan.steps) != 1 else ''}):"]
    lines += _columns([[f"step {s.severity}", s.fault, f"dwell {format_duration(s.dwell)}",
                        f"TTL {format_duration(s.ttl)}",
                        f"outlives a dead run by at most {_seconds(s.orphan_s)} ({s.bounded_by})"]
                       for s in plan.steps]) or ["  none"]
    lines += ["", "guards:"]
    lines += _columns([[g.name, f"stops the run at {g.condition}",
                        f"preflight {_number(g.preflight)}" + (f" {g.unit}" if g.unit else "")]
                       for g in plan.guards]) or ["  none"]
    window = format_duration(round(plan.baseline_seconds))
    lines += ["", f"baseline (last {window}):"]
    # The names carry their units (latency_p95_ms, error_rate_percent).
    lines += _columns([[b.name, f"mean {_number(b.mean)}", f"p95 {_number(b.p95)}"]
                       for b in plan.baseline]) or ["  no data"]
    if plan.search:
        lines += ["", f"breaking point: {plan.search}"]
    if plan.silences:
        lines += ["", "silences of the expected alerts (created before the first fault, "
                  "deleted at rollback):"]
        lines += [f"  {matchers}" for matchers in plan.silences]
    lines += ["", "leftovers of earlier runs (a real run reverts them first):"]
    lines += [f"  {leftover}" for leftover in plan.leftovers] or ["  none"]
    return lines


def _seconds(value: float) -> str:
    from gameday.units import format_duration

    return f"{value:.2f}s" if value < 60 else format_duration(round(value))


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "no data"
    return f"{value:.4g}"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows if i < len(row))
              for i in range(max((len(r) for r in rows), default=0))]
    return ["  " + "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
            for row in rows]
