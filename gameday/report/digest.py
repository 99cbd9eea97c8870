"""A finished run's digest for chat, cut from the same report model as the postmortem."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from gameday.report.model import GameDayReport

#: Learnings a digest repeats; the postmortem has them all.
MAX_LEARNINGS = 3
#: Unexpected alerts a digest names; the postmortem has them all.
MAX_ALERTS = 5


class ReportDigest(BaseModel):
    """What chat says about a finished run: outcome, reach, what stopped it, the breaking
    point, the error budget, alerts nobody expected, learnings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: str
    scenario: str
    environment: str
    outcome: str
    outcome_text: str
    #: The postmortem's one-line headline (emoji, scenario, environment, reach).
    headline: str
    summary: str
    highest_held: int | None = None
    first_broken: int | None = None
    planned_steps: int = 0
    #: The guard (or "fault vanished") that ended the ladder early, if one did.
    stopped_by: str | None = None
    faults_may_remain: bool = False
    learnings: tuple[str, ...] = ()
    run_url: str | None = None
    #: The search's bracket as the postmortem words it (``holds at 178 ms, breaks at 190 ms``,
    #: flagged when not monotone or not confirmed); None when no search ran.
    breaking_point: str | None = None
    #: How the bracket compares with the scenario's previous run, if it was compared.
    trend: str | None = None
    #: Whether that comparison found the breaking point fell.
    regression: bool = False
    #: The error budget left before and after the run (``87.5% → 80.1%``); None without an SLO.
    budget: str | None = None
    #: Alerts that fired during the run and were not expected, as the postmortem words them.
    unexpected_alerts: tuple[str, ...] = ()


def digest(report: GameDayReport) -> ReportDigest:
    """The digest of ``report``: the postmortem's own figures and its first learnings."""
    stopped = next((s.stopped_by for s in report.steps if s.held is False and s.stopped_by),
                   None)
    search = report.search
    trend = search.trend if search else None
    alerting = report.alerting
    unexpected = alerting.unexpected[:MAX_ALERTS] if alerting else ()
    return ReportDigest(
        run=report.run, scenario=report.scenario, environment=report.environment,
        outcome=report.outcome, outcome_text=report.outcome_text, headline=report.headline,
        summary=report.summary, highest_held=report.highest_held,
        first_broken=report.first_broken, planned_steps=report.planned_steps,
        stopped_by=stopped, faults_may_remain=report.faults_may_remain,
        learnings=report.learnings[:MAX_LEARNINGS], run_url=report.run_url,
        breaking_point=search.text if search else None,
        trend=trend.text if trend else None, regression=trend.regression if trend else False,
        budget=alerting.budget_change if alerting else None,
        unexpected_alerts=tuple(a.text for a in unexpected))
