"""A suite run (the weekly resilience run): which scenarios run, capped where, skipped why.

A scheduled run has no second person, so nothing may reach the environment's sign-off
severity: a scenario whose ladder reaches it is skipped (or, if asked, run up to the step
below it), and every run's max severity is capped below it. Scenarios outside their trigger
window, or without the traffic their ``min_load`` asks for, are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from gameday.errors import GuardError
from gameday.models import Environment, Scenario, render_query
from gameday.protocol.summary import RunSummary


@dataclass(frozen=True)
class SuiteItem:
    """One scenario of a suite run: the cap it runs under, or why it does not run."""

    scenario: Scenario
    max_severity: int | None = None
    skip: str | None = None


class SuiteResult(BaseModel):
    """One row of a suite run: a scenario's outcome, or why it did not run."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    scenario: str
    outcome: str
    max_severity: int | None = None
    highest_held: int | None = None
    first_broken: int | None = None
    note: str = ""
    run: str | None = None
    postmortem: str | None = None
    breaking_point: str | None = None
    trend: str | None = None
    regression: bool = False

    @classmethod
    def skipped(cls, item: SuiteItem, reason: str) -> SuiteResult:
        """A scenario that was not run, with the reason."""
        return cls(scenario=item.scenario.name, outcome="skipped",
                   max_severity=item.max_severity, note=reason)

    @classmethod
    def ran(cls, item: SuiteItem, summary: RunSummary) -> SuiteResult:
        """A scenario's game day, as its summary tells it."""
        return cls(scenario=item.scenario.name, outcome=summary.outcome,
                   max_severity=item.max_severity, highest_held=summary.highest_held,
                   first_broken=summary.first_broken, note=summary.summary, run=summary.run,
                   postmortem=summary.postmortem, breaking_point=summary.breaking_point,
                   trend=summary.trend, regression=summary.regression)


class SuiteSummary(BaseModel):
    """A whole suite run in one environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    environment: str
    suite: str
    results: tuple[SuiteResult, ...]

    @property
    def regressions(self) -> tuple[SuiteResult, ...]:
        """The scenarios whose breaking point fell since their previous run."""
        return tuple(r for r in self.results if r.regression)

    @property
    def summary(self) -> str:
        """One line: how many ran and were skipped, each scenario's outcome, and the
        regressions of breaking points, if any."""
        ran = [r for r in self.results if r.outcome != "skipped"]
        line = (f"{self.suite} suite in {self.environment}: {len(ran)} ran, "
                f"{len(self.results) - len(ran)} skipped; "
                + ", ".join(f"{r.scenario} {r.outcome}" for r in self.results))
        fell = self.regressions
        if fell:
            line += (f"; {len(fell)} regression{'s' if len(fell) != 1 else ''}: "
                     + "; ".join(f"{r.scenario}: {r.trend}" for r in fell))
        return line


def suite_scenarios(scenarios: Iterable[Scenario], suite: str) -> list[Scenario]:
    """The scenarios in ``suite``, in catalog order."""
    return [s for s in scenarios if suite in s.suites]


def plan_suite(scenarios: Iterable[Scenario], environment: Environment, now: datetime,
               below_sign_off: bool = False) -> list[SuiteItem]:
    """Each scenario with its cap or its reason to skip (pure; ``now`` timezone-aware)."""
    threshold = environment.sign_off_severity
    planned = []
    for scenario in scenarios:
        window = scenario.trigger.window
        cap = scenario.max_severity if threshold is None else min(scenario.max_severity,
                                                                 threshold - 1)
        skip = None
        if environment.name not in scenario.environments:
            skip = f"may not run in {environment.name} (allowed: " \
                   f"{', '.join(scenario.environments)})"
        elif not window.contains(now):
            skip = (f"outside its window ({','.join(window.days)} {window.hours} "
                    f"{window.timezone})")
        elif threshold is not None and cap < 1:
            skip = (f"every step needs a second person (sign-off from severity {threshold}); "
                    "a scheduled run has none")
        elif threshold is not None and scenario.max_severity >= threshold and not below_sign_off:
            skip = (f"its ladder reaches severity {threshold}, which needs a second person; "
                    "a scheduled run has none")
        planned.append(SuiteItem(scenario, None if skip else cap, skip))
    return planned


async def min_load_problem(scenario: Scenario, environment: Environment) -> str | None:
    """Why the scenario's ``min_load`` is not met now, or None (also when it has none)."""
    min_load = scenario.trigger.min_load
    if min_load is None:
        return None
    from gameday.guards import Prometheus

    query = render_query(min_load.query, scenario.target, environment.prometheus.window)
    with Prometheus.from_settings(environment.prometheus) as prometheus:
        try:
            value = await prometheus.value(query)
        except GuardError as exc:
            return f"min_load could not be measured: {exc}"
    if value is None or value < min_load.at_least:
        shown = "no data" if value is None else f"{value:.4g}"
        return f"below min_load: {shown}, needs at least {min_load.at_least:g}"
    return None
