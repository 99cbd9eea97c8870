"""Guards: pure verdicts, the Prometheus shell, the hold, baselines and signals.

``prometheus-api-client`` is imported only when the first query runs.
"""

from gameday.guards.hold import HoldResult, Recorder, Sampler, hold
from gameday.guards.prometheus import Prometheus
from gameday.guards.queries import (
    GuardQuery,
    SignalQuery,
    freshness_query,
    guard_query,
    resolve_guards,
    resolve_signals,
)
from gameday.guards.rules import Sample, State, Verdict, judge, stale_bound, worst
from gameday.guards.signals import (
    Measured,
    SignalResult,
    Stats,
    Window,
    judge_signal,
    judge_window,
    measure,
    recovered,
    summarize,
)

__all__ = [
    "GuardQuery",
    "HoldResult",
    "Measured",
    "Prometheus",
    "Recorder",
    "Sample",
    "Sampler",
    "SignalQuery",
    "SignalResult",
    "State",
    "Stats",
    "Verdict",
    "Window",
    "freshness_query",
    "guard_query",
    "hold",
    "judge",
    "judge_signal",
    "judge_window",
    "measure",
    "recovered",
    "resolve_guards",
    "resolve_signals",
    "stale_bound",
    "summarize",
    "worst",
]
