"""The records of a postmortem's trace evidence: exemplars per step and one faulted trace.

Frozen dataclasses, filled by :mod:`gameday.report.trace_evidence` (the I/O) from what
:mod:`gameday.report.trace_pick` and :mod:`gameday.report.trace_story` (pure) make of
Prometheus' exemplars and the trace files; templates read their fields by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Whether an exemplar's request was faulted, as its trace in the files says.
Faulted = Literal["yes", "no", "unknown"]
#: The file the waterfall is drawn into, beside the other charts.
TRACE_CHART = "trace.png"


@dataclass(frozen=True)
class RunTrace:
    """The game day's own trace: its id and, where the environment links traces, its link."""

    trace_id: str
    link: str | None


@dataclass(frozen=True)
class Exemplar:
    """One request Prometheus kept as an exemplar of the latency histogram."""

    trace_id: str
    #: The observed latency, in milliseconds.
    value_ms: float
    #: When it was observed (epoch seconds).
    at: float
    faulted: Faulted = "unknown"
    link: str | None = None


@dataclass(frozen=True)
class StepExemplars:
    """The highest-latency exemplars of one step's window, slowest first."""

    severity: int
    fault: str
    exemplars: tuple[Exemplar, ...]
    #: Why there are none, when there are none ("" when Prometheus answered).
    missing: str = ""


@dataclass(frozen=True)
class WaterfallBar:
    """One span of the drawn trace, in milliseconds from the trace's start."""

    label: str
    service: str
    depth: int
    start_ms: float
    duration_ms: float
    faulted: bool = False
    #: The delay the fault applied inside this span, and where it began.
    injected_start_ms: float | None = None
    injected_ms: float = 0.0
    error: bool = False
    #: Events worth a mark on the bar (a circuit breaker opening): when, and their names.
    marks: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True)
class TraceStory:
    """One faulted trace told in words and drawn as a waterfall."""

    trace_id: str
    link: str | None
    #: The step whose fault the trace shows.
    severity: int | None
    sentence: str
    #: Further sentences: a circuit breaker that opened, a request that failed.
    notes: tuple[str, ...]
    #: Attempts of the faulted call (1 without retries).
    attempts: int
    breaker_open: bool
    bars: tuple[WaterfallBar, ...]
    file: str = TRACE_CHART

    @property
    def text(self) -> str:
        """The sentence and its notes, as one paragraph."""
        return " ".join((self.sentence, *self.notes))


@dataclass(frozen=True)
class TraceEvidence:
    """What the traces say about the run: exemplars per step and one faulted trace."""

    steps: tuple[StepExemplars, ...]
    #: Why no step has exemplars, when none could be asked for ("" otherwise).
    exemplars_missing: str
    story: TraceStory | None
    #: Why no trace is drawn, when none is ("" otherwise).
    unavailable: str
    #: The step the drawn trace was chosen for.
    severity: int | None = None
