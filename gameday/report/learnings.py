"""Suggested learnings, derived from what the run recorded and what Prometheus saw (pure).

Each finding names the numbers it comes from, so a team can check it against the tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gameday.report.model import GameDayReport
    from gameday.report.parts import ReportStep

#: Attempts per call (first attempts and retries over first attempts) that count as
#: "retries multiplied the requests": 0.4 retries or more for every call.
RETRY_AMPLIFICATION = 1.4
#: Below this many calls per second there is too little traffic to judge retries by.
MIN_CALLS = 0.5
#: Errors that rose this many percentage points are worth a word even if no guard fired.
ERRORS_WORTH_NOTING = 1.0
#: ``service_circuit_breaker_state`` when open.
BREAKER_OPEN = 2.0


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
        for signal in step.signals:
            if signal.state == "broken":
                found.append(f"At severity {step.severity} the hypothesis broke: "
                             f"{signal.summary}.")
        errors = step.metric("error rate")
        if (errors is not None and errors.delta is not None
                and errors.delta > ERRORS_WORTH_NOTING and step.held):
            found.append(f"Errors rose by {errors.delta:.2g} points at severity "
                         f"{step.severity} without tripping a guard: is the guard too loose?")
    found += _retries(report)
    found += _breaker(report)
    found += _idle_faults(report)
    if (report.highest_held is not None and report.highest_held == report.planned_steps
            and report.outcome == "passed" and report.first_broken is None):
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


def _dependency(report: GameDayReport) -> str:
    return report.dependency or "the dependency"


def _retries(report: GameDayReport) -> list[str]:
    """Retries that multiplied the calls to a dependency already in trouble."""
    worst: ReportStep | None = None
    for step in report.steps:
        if _attempts_per_call(step) >= RETRY_AMPLIFICATION and (
                worst is None or _attempts_per_call(step) > _attempts_per_call(worst)):
            worst = step
    if worst is None or worst.calls_per_second is None or worst.retries_per_second is None:
        return []
    before = report.baseline_calls_per_second
    versus = f"; {before:.3g}/s at the baseline" if before is not None else ""
    return [f"Retries multiplied the requests to {_dependency(report)}: at severity "
            f"{worst.severity} {report.service or 'the service'} made "
            f"{worst.calls_per_second:.3g} calls/s to it, {worst.retries_per_second:.3g}/s of "
            f"them retries ({_attempts_per_call(worst):.2g} attempts per call{versus}). "
            "Retrying into a slow dependency adds load where it hurts: consider a retry "
            "budget, or retrying only errors that fail fast."]


def _attempts_per_call(step: ReportStep) -> float:
    """Call attempts per first attempt: 1.0 without retries, 3.0 when every call retries twice."""
    calls, retries = step.calls_per_second, step.retries_per_second
    if calls is None or retries is None or calls < MIN_CALLS or retries >= calls:
        return 1.0
    return calls / (calls - retries)


def _breaker(report: GameDayReport) -> list[str]:
    """Whether the circuit breaker did its job when the dependency was in trouble."""
    if report.breaker_peak is None:
        return []
    towards = _dependency(report)
    opened = [s for s in report.steps if (s.breaker_peak or 0) >= BREAKER_OPEN]
    if opened:
        step = opened[0]
        return [f"The circuit breaker towards {towards} opened at severity {step.severity}: "
                "it shed load as designed. Check that the service's answers while it was open "
                "(fallback or fast errors) are what users should see."]
    if report.breaker_peak >= BREAKER_OPEN:
        return [f"The circuit breaker towards {towards} opened after the last step had ended, "
                "not while a step's fault was held (see the timeline): find out what it "
                "reacted to."]
    troubled = bool(report.guards_fired) or any(
        (m.delta or 0) > ERRORS_WORTH_NOTING for s in report.steps for m in s.metrics
        if m.name == "error rate")
    if troubled:
        return [f"The circuit breaker towards {towards} never opened, although errors rose: "
                "its thresholds (failure ratio, minimum calls, what counts as a failure) did "
                "not see this fault. Decide whether it should have."]
    return []


def _idle_faults(report: GameDayReport) -> list[str]:
    """Steps whose fault fired on no request tested nothing."""
    idle = [s.severity for s in report.steps if s.faults_per_second == 0]
    if not idle:
        return []
    which = ", ".join(str(s) for s in idle)
    return [f"The fault fired on no request at severity {which} (the proxies counted 0/s): "
            "those steps tested nothing. Check the load and the fault's match rules."]
