"""Suggested learnings, derived from what the run recorded (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gameday.report.model import GameDayReport


def learnings(report: GameDayReport) -> tuple[str, ...]:
    """Plain-language findings a team should discuss, most important first."""
    found = []
    if report.faults_may_remain:
        found.append("Rollback could not confirm every fault is gone: check the drivers now "
                     "and find out why revert failed before the next game day.")
    for guard in report.guards_fired:
        found.append(f"Guard `{guard.guard}` stopped severity {guard.severity} "
                     f"({guard.summary}). The service's safety margin ends below this step.")
    for step in report.steps:
        broken = [s for s in step.signals if s.state == "broken"]
        for signal in broken:
            found.append(f"At severity {step.severity} the hypothesis broke: {signal.summary}.")
        for metric in step.metrics:
            if (metric.name == "error rate" and metric.delta is not None and metric.delta > 1
                    and step.held):
                found.append(f"Errors rose by {metric.delta:.2g} points at severity "
                             f"{step.severity} without tripping a guard: is the guard too loose?")
    if report.highest_held is not None and report.highest_held == report.planned_steps and \
            report.outcome == "passed":
        found.append("Every planned step held: consider extending the ladder to find the limit.")
    if report.rollback.recovered is False:
        found.append(f"Recovery exceeded its tolerance: {report.rollback.recovery_detail}.")
    if report.rollback.swept:
        found.append(f"{len(report.rollback.swept)} fault(s) of earlier runs were still in "
                     "place and were swept: an earlier run did not clean up after itself.")
    if report.notifications_dropped:
        found.append(f"{report.notifications_dropped} notification(s) were dropped: check the "
                     "chat integration.")
    return tuple(found)
