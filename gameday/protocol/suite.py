"""A suite run (the weekly resilience run): which scenarios run, capped where, skipped why.

A scheduled run has no second person, so nothing may reach the environment's sign-off
severity: a scenario whose ladder reaches it is skipped (or, if asked, run up to the step
below it), and every run's max severity is capped below it. Scenarios outside their trigger
window, without the traffic their ``min_load`` asks for, or whose error budget is (nearly)
spent or cannot be measured, are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from gameday.errors import GameDayError, GuardError
from gameday.models import Environment, Scenario, render_query
from gameday.notes import Level
from gameday.notify import Notifier, sinks_for
from gameday.notify.notices import SuiteNotice, SuiteRow
from gameday.protocol.summary import RunSummary

#: How long the suite's notice may take to reach chat before it is given up.
NOTICE_DRAIN = 10.0
#: Outcomes that make the suite's notice a warning (a rollback that failed: critical).
_WORRYING = frozenset({"aborted", "failed", "cancelled"})


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
    #: The share of the scenario's error budget left before it ran (or was skipped); None
    #: without an SLO, or when it could not be measured.
    budget_left: float | None = None
    #: Whether it was skipped for its error budget (too little left, or unknown).
    budget_skip: bool = False

    @classmethod
    def skipped(cls, item: SuiteItem, reason: str, budget_left: float | None = None,
                budget_skip: bool = False) -> SuiteResult:
        """A scenario that was not run, with the reason (and the budget left, if measured)."""
        return cls(scenario=item.scenario.name, outcome="skipped",
                   max_severity=item.max_severity, note=reason, budget_left=budget_left,
                   budget_skip=budget_skip)

    @classmethod
    def ran(cls, item: SuiteItem, summary: RunSummary,
            budget_left: float | None = None) -> SuiteResult:
        """A scenario's game day, as its summary tells it, with the budget left before it."""
        return cls(scenario=item.scenario.name, outcome=summary.outcome,
                   max_severity=item.max_severity, highest_held=summary.highest_held,
                   first_broken=summary.first_broken, note=summary.summary, run=summary.run,
                   postmortem=summary.postmortem, breaking_point=summary.breaking_point,
                   trend=summary.trend, regression=summary.regression, budget_left=budget_left)


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
    def ran(self) -> int:
        """How many scenarios ran."""
        return sum(r.outcome != "skipped" for r in self.results)

    @property
    def headline(self) -> str:
        """``weekly suite in demo: 3 ran, 1 skipped``."""
        return (f"{self.suite} suite in {self.environment}: {self.ran} ran, "
                f"{len(self.results) - self.ran} skipped")

    @property
    def summary(self) -> str:
        """One line: how many ran and were skipped, each scenario's outcome, the scenarios
        skipped for their error budget and why, and the regressions of breaking points."""
        line = f"{self.headline}; " + ", ".join(f"{r.scenario} {r.outcome}"
                                               for r in self.results)
        for result in self.results:
            if result.budget_skip:
                line += f"; {result.scenario} skipped: {result.note}"
        fell = self.regressions
        if fell:
            line += (f"; {len(fell)} regression{'s' if len(fell) != 1 else ''}: "
                     + "; ".join(f"{r.scenario}: {r.trend}" for r in fell))
        return line

    def notice(self, run: str) -> SuiteNotice:
        """The suite's notice for chat, from the suite's own flow run ``run``."""
        outcomes = {r.outcome for r in self.results}
        level: Level = ("critical" if "rollback_failed" in outcomes
                        else "warning" if outcomes & _WORRYING or self.regressions else "info")
        return SuiteNotice(
            run=run, text=self.summary, level=level, suite=self.suite,
            environment=self.environment, ran=self.ran, skipped=len(self.results) - self.ran,
            rows=tuple(SuiteRow(scenario=r.scenario, outcome=r.outcome, note=r.note,
                                budget_left=r.budget_left, breaking_point=r.breaking_point,
                                trend=r.trend, regression=r.regression)
                       for r in self.results))


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


@dataclass(frozen=True)
class Readiness:
    """Whether a planned scenario may run now: why not, and its error budget left."""

    skip: str | None = None
    budget_left: float | None = None
    #: Whether the reason to skip is its error budget (too little left, or unknown).
    budget_skip: bool = False


async def readiness(item: SuiteItem, environment: Environment) -> Readiness:
    """The plan's reason to skip, else the traffic's (``min_load``), else the error
    budget's; the budget is measured only for a scenario that would otherwise run."""
    if item.skip is not None:
        return Readiness(item.skip)
    load = await min_load_problem(item.scenario, environment)
    if load is not None:
        return Readiness(load)
    reason, left = await budget_problem(item.scenario, environment)
    return Readiness(reason, left, reason is not None)


async def budget_problem(scenario: Scenario, environment: Environment
                         ) -> tuple[str | None, float | None]:
    """Why the scenario's error budget forbids a run now (or None), and the share left.

    The SLO is the scenario's, else the environment's (as a run's ``Request.slo``); without
    one there is nothing to measure: ``(None, None)``. Too little left, no data and a failed
    query are each a reason to skip, worded as prepare's refusal would word them.
    """
    slo = scenario.slo or environment.slo
    if slo is None:
        return None, None
    from gameday.guards import Prometheus
    from gameday.protocol.budget import budget_refusal, read_budget

    with Prometheus.from_settings(environment.prometheus) as prometheus:
        reading = await read_budget(prometheus, slo, "before")
    return budget_refusal(reading), reading.left


def tell_suite(done: SuiteSummary, environment: Environment, run: str,
               drain: float = NOTICE_DRAIN) -> list[str]:
    """Send the suite's notice once, through the environment's sinks (Slack, run metrics),
    from the suite's own flow run ``run``; wait up to ``drain`` seconds for delivery.

    Blocks (call it from a thread in async code) and never raises: what went wrong (a sink
    that cannot be built, a notice dropped) comes back in words.
    """
    try:
        sinks = sinks_for(environment, run=run, scenario=f"suite:{done.suite}")
    except GameDayError as exc:  # a Slack token referenced but not set, say
        return [f"not sent: {exc}"]
    if not sinks:
        return []
    notifier = Notifier(sinks)
    notifier.post(done.notice(run))
    notifier.close(timeout=drain)
    return [f"dropped by {sink}: {reason}" for sink, _notice, reason in notifier.dropped]
