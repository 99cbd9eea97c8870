"""The thin I/O shell of a postmortem's trace evidence: exemplars from Prometheus, spans from
the trace files, into a :class:`~gameday.report.trace_parts.TraceEvidence`.

Nothing here fails the report: a Prometheus without exemplars, a missing trace folder or a
trace that never reached the files becomes the reason the section gives instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from gameday.models import Environment
from gameday.models.environment import TracingSettings
from gameday.report.exemplars import fetch_exemplars
from gameday.report.model import GameDayReport
from gameday.report.parts import ReportStep
from gameday.report.trace_parts import Exemplar, StepExemplars, TraceEvidence, TraceStory
from gameday.report.trace_pick import candidates, complete, focus_step, marked, top_exemplars
from gameday.report.trace_story import tell
from gameday.tracing import read
from gameday.tracing.otlp import SpanRecord

#: Seconds the learn phase waits for the chosen trace's spans (they reach the files within
#: a second or so of ending, batched).
WAIT_SECONDS = 10.0
#: Candidates looked at, besides the first, when the first never completes.
MORE_CANDIDATES = 5


def wanted(tracing: TracingSettings) -> bool:
    """Whether the environment gives the postmortem traces to look at."""
    return bool(tracing.files or tracing.exemplars)


def _window(step: ReportStep) -> tuple[float, float]:
    return step.started, step.ended if step.ended is not None else step.started + step.dwell


def _folder_problem(folder: Path) -> str:
    """Why ``folder`` holds no trace to read, or "" when it has files."""
    if not folder.is_dir():
        return f"the trace folder {folder} does not exist"
    files = list(folder.glob(read.PATTERN))
    if not files:
        return f"no trace files ({read.PATTERN}) in {folder}"
    if all(_size(path) == 0 for path in files):
        return f"the trace files in {folder} are empty"
    return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # removed by the folder's cap while we looked
        return 0


async def _exemplars(report: GameDayReport, environment: Environment, prometheus: bool
                     ) -> tuple[list[list[Exemplar] | str], str]:
    """The exemplars of each step (or why not), and why there are none at all."""
    selector = environment.tracing.exemplars
    if not selector:
        return [], "`tracing.exemplars` is not set in the environment"
    if not prometheus:
        return [], "Prometheus was not asked (journal only)"
    if not report.steps:
        return [], "no step ran"
    windows = [_window(step) for step in report.steps]
    answers = await fetch_exemplars(environment.prometheus, selector, windows)
    failures = {a for a in answers if isinstance(a, str)}
    if len(failures) == 1 and all(isinstance(a, str) for a in answers):
        return answers, failures.pop()  # one reason, said once rather than per step
    return answers, ""


def _story(found: Sequence[SpanRecord], report: GameDayReport, step: ReportStep,
           tracing: TracingSettings) -> TraceStory | None:
    return tell(found, link=tracing.link(found[0].trace_id) if found else None,
                severity=step.severity, service=report.service, dependency=report.dependency)


async def _chosen(folder: Path, ids: Sequence[str], wait: float, since: float
                  ) -> tuple[list[SpanRecord], str]:
    """The spans of the first candidate that is complete (the first waited for), or why none."""
    first = await asyncio.to_thread(read.wait_for_trace, folder, ids[0], complete, wait, 0.5,
                                    since)
    if complete(first):
        return first, ""
    rest = set(ids[1:1 + MORE_CANDIDATES])
    if rest:
        others = await asyncio.to_thread(read.spans, folder, lambda s: s.trace_id in rest,
                                         since)
        for trace_id in ids[1:1 + MORE_CANDIDATES]:
            mine = [s for s in others if s.trace_id == trace_id]
            if complete(mine):
                return mine, ""
    within = f"within {wait:g} s" if wait > 0 else "yet (not waited for)"
    if not first:
        return [], f"trace {ids[0]} did not reach the trace files {within}"
    lacking = "its root span" if any(s.faulted for s in first) else "its faulted span"
    return [], f"trace {ids[0]}: {lacking} did not reach the trace files {within}"


async def _seen(folder: Path, report: GameDayReport, kept: Sequence[Sequence[Exemplar]]
                ) -> list[SpanRecord]:
    """The spans of the exemplars' traces, and the run's faulted spans (faulted spans of
    earlier runs in the same folder are of no use here)."""
    listed = {e.trace_id for found in kept for e in found}
    since = int(report.window[0] * 1e9) if report.window else 0

    def keep(span: SpanRecord) -> bool:
        return span.trace_id in listed or (span.faulted and span.start_ns >= since)

    return await asyncio.to_thread(read.spans, folder, keep, since / 1e9)


def _steps(report: GameDayReport, answers: Sequence[list[Exemplar] | str],
           kept: Sequence[tuple[Exemplar, ...]], seen: Sequence[SpanRecord] | None,
           tracing: TracingSettings, exemplars_missing: str) -> tuple[StepExemplars, ...]:
    """Each step's slowest exemplars, marked faulted or not, or why it has none."""
    found = []
    for index, step in enumerate(report.steps):
        mine = marked(kept[index], seen, tracing.link) if index < len(kept) else ()
        answer = answers[index] if index < len(answers) else None
        if isinstance(answer, str):
            why = answer
        elif mine or exemplars_missing:
            why = ""
        else:
            why = "Prometheus kept no exemplar of the histogram over this step"
        found.append(StepExemplars(step.severity, step.fault, mine, why))
    return tuple(found)


async def trace_evidence(report: GameDayReport, environment: Environment, *,
                         prometheus: bool = True, wait: float = WAIT_SECONDS
                         ) -> TraceEvidence | None:
    """Exemplars per step and one faulted trace of the step that broke (or the top step);
    None when the environment names neither trace files nor an exemplar histogram.

    ``prometheus=False`` leaves Prometheus unasked; ``wait`` bounds the wait for the chosen
    trace's spans (0: take what the files hold now).
    """
    tracing = environment.tracing
    if not wanted(tracing):
        return None
    answers, exemplars_missing = await _exemplars(report, environment, prometheus)
    kept = [top_exemplars(a) if isinstance(a, list) else () for a in answers]
    folder = Path(tracing.files).expanduser() if tracing.files else None
    problem = "`tracing.files` is not set: spans cannot be read back" if folder is None \
        else _folder_problem(folder)
    seen = await _seen(folder, report, kept) if folder is not None and not problem else None
    steps = _steps(report, answers, kept, seen, tracing, exemplars_missing)

    focus = focus_step(report.steps, report.first_broken)
    story, unavailable = None, problem
    if focus is None:
        unavailable = unavailable or "no step ran"
    elif folder is not None and seen is not None:
        exemplars = next((s.exemplars for s in steps if s.severity == focus.severity), ())
        ids = candidates(focus, exemplars, seen, report.run)
        if not ids:
            unavailable = (f"no faulted trace of step {focus.severity} in the trace files "
                           f"({folder})")
        else:
            # An exemplar's trace was read whole already: no second pass over the files.
            whole = any(e.trace_id == ids[0] for found in kept for e in found)
            known = [span for span in seen if span.trace_id == ids[0]] if whole else []
            found, unavailable = (known, "") if complete(known) else \
                await _chosen(folder, ids, wait, report.window[0] if report.window else 0.0)
            story = _story(found, report, focus, tracing) if found else None
    return TraceEvidence(steps=steps, exemplars_missing=exemplars_missing, story=story,
                         unavailable=unavailable if story is None else "",
                         severity=focus.severity if focus else None)
