"""Learn: the postmortem, its charts and the catalog's history, rebuilt from the journal.

Everything starts from the journal, so a crashed run gets a postmortem too. What Prometheus
saw over the run is fetched when the environment is known; when it is not (or Prometheus is
gone), the report is built from the journal alone and says what is missing. Where the
environment's services are traced, the exemplars of each step and one faulted trace are added;
a trace that cannot be read makes the report say so, never fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from gameday.errors import GameDayError
from gameday.journal import Event, FaultAppliedEvent, Journal, PlanEvent, read_journal
from gameday.models import Environment, Scenario, Target
from gameday.notes import PostmortemNote
from gameday.notify import SummaryNotice
from gameday.paths import journal_path, reports_dir
from gameday.report import GameDayReport, build_report, write_report
from gameday.report.digest import digest
from gameday.report.fetch import observe_run
from gameday.report.history import finding, found_bracket, read_findings, record
from gameday.report.links import flow_run_link, without_credentials
from gameday.report.model import run_window
from gameday.report.observed import Observed
from gameday.report.trace_evidence import WAIT_SECONDS, trace_evidence
from gameday.report.trend import compare, previous
from gameday.tracing import run_trace

T = TypeVar("T")


@dataclass(frozen=True)
class Learned:
    """The report of a run and where its postmortem was written."""

    report: GameDayReport
    path: Path
    #: What Prometheus saw, as fetched (None when built from the journal alone).
    observed: Observed | None = None


def _plan(events: Sequence[Event]) -> PlanEvent | None:
    return next((e for e in events if isinstance(e, PlanEvent)), None)


def _scenario(plan: PlanEvent | None) -> Scenario | None:
    """The run's scenario from the catalog, if it is still there."""
    if plan is None:
        return None
    from gameday.load import load_default

    try:
        return load_default().scenarios.get(plan.scenario)
    except GameDayError:
        return None


def _target(events: Sequence[Event], scenario: Scenario | None) -> Target | None:
    if scenario is not None:
        return scenario.target
    for event in events:  # a proxy's handle names the boundary it sits on: "service/dependency"
        if isinstance(event, FaultAppliedEvent) and event.handle.extra.get("target"):
            service, _, dependency = event.handle.extra["target"].partition("/")
            with contextlib.suppress(ValueError):
                return Target(service=service, dependency=dependency or None)
    return None


def _environment(given: Environment | str | None, plan: PlanEvent | None
                 ) -> tuple[Environment | None, str]:
    """The environment object, loaded by name when needed; else None and why."""
    if isinstance(given, Environment):
        return given, ""
    name = given or (plan.environment if plan else None)
    if name is None:
        return None, "the journal does not name its environment"
    from gameday.environments import load_environment

    try:
        return load_environment(name), ""
    except GameDayError as exc:
        return None, f"environment {name!r} not found ({exc})"


async def observe(events: Sequence[Event], environment: Environment | None,
                  target: Target | None, why_not: str = "") -> Observed | None:
    """What Prometheus saw over the run; an ``Observed`` naming the gap when it cannot ask."""
    window = run_window(events)
    if window is None:
        return None
    if environment is None or target is None:
        why_not = why_not or ("the journal does not name its target" if target is None
                              else "no environment")
        return Observed(None, *window, 1.0,
                        missing=(f"Prometheus' view of the run: {why_not}",))
    return await observe_run(events, environment, target)


async def learn(run: str, *, scenario: Scenario | None = None,
                environment: Environment | str | None = None, run_url: str | None = None,
                runbook: str | None = None, description: str = "", prometheus: bool = True,
                observed: Observed | None = None, out_dir: Path | None = None,
                history: bool = True, charts: bool = True) -> Learned:
    """Build the report of ``run``, write ``postmortem.md`` and its charts, record the finding.

    ``scenario`` and ``environment`` default to the catalog's (found by the journal's plan);
    ``observed`` is what Prometheus saw if already known (a saved copy); else it is fetched,
    unless ``prometheus=False`` builds from the journal alone. ``history=False`` leaves the
    catalog's history and the journal untouched (rebuilding an old report), and the breaking
    point uncompared with the previous run's. ``charts=False`` leaves the charts undrawn
    (drawing them takes a second or two), for a run that must end at once; the report says so.
    Where the environment names trace files or an exemplar histogram, the postmortem gains its
    trace evidence (waiting up to ``WAIT_SECONDS`` for the chosen trace's spans, none without
    charts).
    """
    events = read_journal(journal_path(run))
    # The game day's own trace first, so that it is out even if the report fails.
    run_trace.export(run, events)
    plan = _plan(events)
    scenario = scenario or _scenario(plan)
    target = _target(events, scenario)
    place, why_not = _environment(environment, plan)
    if observed is None and prometheus:
        observed = await observe(events, place, target, why_not)
    url = without_credentials(place.prometheus.url) if place else None
    recorded = next((e.run_url for e in events if isinstance(e, PostmortemNote) and e.run_url),
                    None)
    run_url = run_url or recorded
    if run_url is None and place is not None and place.prefect_api_url:
        run_url = flow_run_link(place.prefect_api_url, run)
    report = build_report(
        events, run=run, observed=observed, run_url=run_url,
        runbook=runbook or (scenario.runbook if scenario else None),
        description=description or (scenario.description if scenario else ""),
        service=target.service if target else None,
        dependency=target.dependency if target else None, prometheus_url=url,
        tracing=place.tracing if place else None)
    if place is not None:
        # A run that must end at once takes the spans the files hold now.
        evidence = await trace_evidence(report, place, prometheus=prometheus,
                                        wait=WAIT_SECONDS if charts else 0.0)
        report = replace(report, trace=evidence)
    if not charts:
        report = replace(report, missing=(*report.missing, "the charts (not drawn, so that the "
                                          f"run could end at once: `chaosctl report {run}` "
                                          "draws them)"))
    if history and plan is not None:
        report = with_trend(report)
    path = write_report(report, out_dir or reports_dir() / run, charts=charts)
    if history and plan is not None:
        record(finding(report, path))
    noted = any(isinstance(e, PostmortemNote) and e.path == str(path) for e in events)
    if history and plan is not None and not noted:
        with Journal(journal_path(run)) as journal:
            journal.write(PostmortemNote(message=f"postmortem written to {path}", path=str(path),
                                         run_url=report.run_url))
    return Learned(report, path, observed)


def with_trend(report: GameDayReport) -> GameDayReport:
    """``report`` with its breaking point compared to the scenario's previous one, from the
    history (read before this run's finding is added to it)."""
    search, current = report.search, found_bracket(report)
    if search is None or current is None:
        return report
    earlier = previous(read_findings(report.scenario), report.run, report.environment,
                       current.field)
    return replace(report, breaking_point=replace(search, trend=compare(current, earlier)))


def summary_notice(learned: Learned) -> SummaryNotice:
    """The run's summary for chat, from the same report model as its postmortem."""
    report = learned.report
    return SummaryNotice(run=report.run, text=f"{report.summary}. Postmortem: {learned.path}",
                         level="info" if report.outcome == "passed" else "warning",
                         digest=digest(report), postmortem=str(learned.path))


def blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end from sync code, inside a running event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from a coroutine (the flow's exception path): a loop of its own, in a thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gameday-learn") as pool:
        return pool.submit(asyncio.run, coro).result()


def write_postmortem(run: str, *, environment: Environment | None = None,
                     runbook: str | None = None, description: str = "",
                     run_url: str | None = None) -> Path:
    """Render ``reports/out/<run>/postmortem.md`` (and charts) from the run's journal.

    ``environment`` is the one the run used, when the caller has it: loading it again by the
    journal's name would find only files, not a block or the file the run was given.
    """
    return blocking(learn(run, environment=environment, runbook=runbook,
                          description=description, run_url=run_url)).path
