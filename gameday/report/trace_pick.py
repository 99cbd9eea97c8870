"""Which traces a postmortem shows, from exemplars and spans alone (pure): the slowest
exemplars of each step, whether each was faulted, and the faulted trace worth drawing.

Nothing here reads a file, asks Prometheus or imports OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from gameday.report.parts import ReportStep
from gameday.report.trace_parts import Exemplar, Faulted
from gameday.tracing import chaos
from gameday.tracing.otlp import SpanRecord

#: Exemplars kept per step, the slowest.
TOP_EXEMPLARS = 5
#: Seconds after a step's end that its faulted requests may still start (clock skew, a rule
#: reverted a moment after the step ended).
STEP_SLACK = 1.0


# --- exemplars --------------------------------------------------------------------------------

def top_exemplars(found: Sequence[Exemplar], limit: int = TOP_EXEMPLARS) -> tuple[Exemplar, ...]:
    """The ``limit`` slowest exemplars, one per trace (a trace can be kept by several buckets
    or series: its slowest observation counts)."""
    slowest: dict[str, Exemplar] = {}
    for exemplar in found:
        kept = slowest.get(exemplar.trace_id)
        if kept is None or exemplar.value_ms > kept.value_ms:
            slowest[exemplar.trace_id] = exemplar
    ranked = sorted(slowest.values(), key=lambda e: (-e.value_ms, e.at))
    return tuple(ranked[:limit])


def faulted_state(trace_id: str, spans: Sequence[SpanRecord] | None) -> Faulted:
    """``yes`` when any span of the trace was faulted, ``no`` when the trace is there without
    one, ``unknown`` when there are no spans to look at or the trace is not among them."""
    if spans is None:
        return "unknown"
    mine = [span for span in spans if span.trace_id == trace_id]
    if not mine:
        return "unknown"
    return "yes" if any(span.faulted for span in mine) else "no"


def marked(exemplars: Sequence[Exemplar], spans: Sequence[SpanRecord] | None,
           link: Callable[[str], str | None]) -> tuple[Exemplar, ...]:
    """``exemplars`` with whether each was faulted and its link."""
    return tuple(replace(e, faulted=faulted_state(e.trace_id, spans), link=link(e.trace_id))
                 for e in exemplars)


# --- choosing the trace ---------------------------------------------------------------------

def focus_step(steps: Sequence[ReportStep], first_broken: int | None) -> ReportStep | None:
    """The step the drawn trace is for: the one that broke, else the highest that ran."""
    broken = next((s for s in steps if s.severity == first_broken), None)
    return broken or max(steps, key=lambda s: s.severity, default=None)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _of_run(span: SpanRecord, run: str) -> bool:
    runs = span.attributes.get(chaos.RUN)
    return not run or runs is None or run in str(runs).split(",")


def candidates(step: ReportStep, exemplars: Sequence[Exemplar],
               faulted_spans: Sequence[SpanRecord], run: str = "") -> list[str]:
    """Trace ids worth drawing for ``step``, best first: its slowest faulted exemplars, then
    the traces whose faulted span belongs to the step (longest first, requests before TCP
    connections), then exemplars whose trace has not been seen in the files yet."""
    start = step.started * 1e9
    end = ((step.ended if step.ended is not None else step.started + step.dwell)
           + STEP_SLACK) * 1e9
    found = [e.trace_id for e in exemplars if e.faulted == "yes"]
    mine = [s for s in faulted_spans if s.faulted and start <= s.start_ns <= end
            and _int(s.attributes.get(chaos.STEP)) in (step.severity, None) and _of_run(s, run)]
    mine.sort(key=lambda s: (s.attributes.get(chaos.INJECTOR) == "proxy-tcp", -s.duration_ms))
    found += [s.trace_id for s in mine]
    found += [e.trace_id for e in exemplars if e.faulted == "unknown"]
    return list(dict.fromkeys(found))


def complete(spans: Sequence[SpanRecord]) -> bool:
    """Whether a trace has arrived far enough to be told: its root span and a faulted one."""
    return any(not s.parent_id for s in spans) and any(s.faulted for s in spans)
