"""Observe: per step, measure the signals and the standard metrics, judge them against their
thresholds and the baseline, and name the highest severity that held and the first that broke.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gameday.errors import GuardError
from gameday.guards import SignalQuery, SignalResult, Window, judge_window, measure
from gameday.journal import SignalsJudgedEvent
from gameday.models import Signal
from gameday.notes import ObserveFailedNote
from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation
from gameday.search_events import ProbeJudgedEvent

if TYPE_CHECKING:
    from gameday.protocol.search import SearchRun


@dataclass(frozen=True)
class StepObservation:
    """One step's measurements and verdicts."""

    severity: int
    window: Window | None
    results: tuple[SignalResult, ...]
    guard_held: bool

    @property
    def held(self) -> bool:
        """Guards never stopped the step and every expected signal held."""
        return self.guard_held and all(r.holds for r in self.results)


@dataclass(frozen=True)
class Observation:
    """The whole ladder, judged."""

    steps: tuple[StepObservation, ...]

    @property
    def highest_held(self) -> int | None:
        """The highest severity that held (every step below it held too)."""
        best = None
        for step in self.steps:
            if not step.held:
                break
            best = step.severity
        return best

    @property
    def first_broken(self) -> int | None:
        """The first severity that broke, by a guard or an expected signal."""
        return next((s.severity for s in self.steps if not s.held), None)


def metric_queries(ctx: RunContext) -> list[SignalQuery]:
    """The standard metrics as signals nobody judges (threshold -inf)."""
    return [SignalQuery(name=f"metric:{name}", signal=Signal(op=">=", threshold=-math.inf),
                        query=query, unit=None) for name, query in ctx.metrics.items()]


async def observe(ctx: RunContext, escalation: Escalation,
                  searched: SearchRun | None = None) -> Observation:
    """Measure and judge every step that ran, and every probe of the search; journal the
    judgements. A probe's signals are its evidence, not its verdict: the guards judged it."""
    queries = [*ctx.signals, *metric_queries(ctx)]
    step_seconds = ctx.environment.prometheus.scrape_interval
    observed = []
    for step in escalation.steps:
        try:
            window = await measure(ctx.prometheus, queries, step.started, step.ended,
                                   step_seconds)
        except GuardError as exc:
            ctx.journal.write(ObserveFailedNote(message=str(exc), severity=step.severity))
            observed.append(StepObservation(step.severity, None, (), step.held))
            continue
        results = judge_window(ctx.signals, window, ctx.baseline)
        ctx.journal.write(SignalsJudgedEvent(severity=step.severity, window=window,
                                             results=results))
        observed.append(StepObservation(step.severity, window, results, step.held))
    for probe in searched.probes if searched else ():
        try:
            window = await measure(ctx.prometheus, queries, probe.started, probe.ended,
                                   step_seconds)
        except GuardError as exc:
            ctx.journal.write(ObserveFailedNote(message=f"probe {probe.number}: {exc}",
                                                probe=probe.number))
            continue
        ctx.journal.write(ProbeJudgedEvent(probe=probe.number, window=window,
                                           results=judge_window(ctx.signals, window,
                                                                ctx.baseline)))
    return Observation(tuple(observed))
