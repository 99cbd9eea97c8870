"""The thin I/O shell of reports: range queries over a run window, into an ``Observed``.

Every query is asked once (a report is not a guard, but a retry loop would only hide a
Prometheus that is gone); a failing or empty query becomes a line in ``Observed.missing``
so the report can say what it lacks instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from gameday.errors import GameDayError, GuardError
from gameday.guards.signals import RangeSource
from gameday.journal import BaselineEvent, Event, PlanEvent
from gameday.models import Environment, Target, render_query
from gameday.report.links import without_credentials
from gameday.report.model import run_window
from gameday.report.observed import (
    BREAKER_STATE,
    CALLS_PER_SECOND,
    ERROR_RATE,
    FAULTS_PER_SECOND,
    FAULTS_TOTAL,
    LATENCY_P95,
    LATENCY_P99,
    RETRIES_PER_SECOND,
    Observed,
    Series,
)

#: PromQL of every observed series; ``{run}`` is the run id, the rest as in signals.yaml.
QUERIES = {
    LATENCY_P95: "1000 * histogram_quantile(0.95, sum by (le) "
                 '(rate(service_request_duration_seconds_bucket{service="{service}"}[{window}])))',
    LATENCY_P99: "1000 * histogram_quantile(0.99, sum by (le) "
                 '(rate(service_request_duration_seconds_bucket{service="{service}"}[{window}])))',
    ERROR_RATE: '100 * (sum(rate(service_requests_total{service="{service}", code=~"5.."}'
                '[{window}])) or vector(0)) / sum(rate(service_requests_total'
                '{service="{service}"}[{window}]))',
    FAULTS_PER_SECOND: 'sum(rate(chaos_faults_injected_total{run="{run}"}[{window}]))',
    FAULTS_TOTAL: 'sum(chaos_faults_injected_total{run="{run}"})',
    CALLS_PER_SECOND: "sum(rate(service_downstream_latency_seconds_count"
                      '{service="{service}", dependency="{dependency}"}[{window}]))',
    # A counter that has never counted has no series: zero while calls are seen, else nothing.
    RETRIES_PER_SECOND: "sum(rate(service_downstream_retries_total"
                        '{service="{service}", dependency="{dependency}"}[{window}])) or '
                        "0 * sum(rate(service_downstream_latency_seconds_count"
                        '{service="{service}", dependency="{dependency}"}[{window}]))',
    BREAKER_STATE: 'max(service_circuit_breaker_state{service="{service}", '
                   'dependency="{dependency}"})',
}
#: What each series is, for "missing" lines.
WHAT = {LATENCY_P95: "p95 latency", LATENCY_P99: "p99 latency", ERROR_RATE: "error rate",
        FAULTS_PER_SECOND: "faults injected per second", FAULTS_TOTAL: "faults injected",
        CALLS_PER_SECOND: "calls to the dependency", RETRIES_PER_SECOND: "retries",
        BREAKER_STATE: "circuit breaker state"}
#: Series that only make sense towards a dependency.
DOWNSTREAM = (CALLS_PER_SECOND, RETRIES_PER_SECOND, BREAKER_STATE)
#: At most this many points per series: a long run is drawn coarser, not heavier.
MAX_POINTS = 600
#: Seconds per query: range queries over a run take longer than a guard's instant query.
QUERY_TIMEOUT = 15.0


def report_queries(run: str, target: Target, window: str,
                   events: Sequence[Event] = ()) -> dict[str, str]:
    """The PromQL of every observed series for ``run`` at ``target``.

    Where the run's baseline measured a standard metric, its exact query is reused, so the
    charts show what the run judged.
    """
    measured = {m.name.removeprefix("metric:"): m.query for e in events
                if isinstance(e, BaselineEvent) for m in e.window.signals}
    queries = {}
    for name, text in QUERIES.items():
        if name in DOWNSTREAM and not target.dependency:
            continue
        queries[name] = measured.get(name) or render_query(
            text.replace("{run}", run), target, window)
    return queries


async def fetch_observed(source: RangeSource, queries: Mapping[str, str], start: float,
                         end: float, step: float, prometheus_url: str | None) -> Observed:
    """Ask ``source`` for every query over ``[start, end]``; never raises for a query."""
    step = max(step, (end - start) / MAX_POINTS)

    async def one(name: str, query: str) -> Series | str:
        try:
            points = await source.range(query, start, end, step)
        except GuardError as exc:
            return f"{WHAT.get(name, name)}: {_short(str(exc))}"
        return Series(name=name, query=query, points=tuple(points))

    answers = await asyncio.gather(*(one(n, q) for n, q in queries.items()))
    series = tuple(a for a in answers if isinstance(a, Series))
    failed = [a for a in answers if isinstance(a, str)]
    empty = [WHAT.get(s.name, s.name) for s in series if not s.points]
    missing = []
    if failed and not series:
        where = f" at {prometheus_url}" if prometheus_url else ""
        missing.append(f"Prometheus' view of the run: every query to Prometheus{where} failed "
                       f"({failed[0]})")
    else:
        missing += failed
        if empty:
            missing.append(f"no data in Prometheus for: {', '.join(empty)}")
    return Observed(prometheus_url=prometheus_url, start=start, end=end, step=step,
                    series=series, missing=tuple(missing))


def _short(error: str, limit: int = 160) -> str:
    """The cause of a query error without the query (the report lists queries elsewhere)."""
    _, found, cause = error.partition(" failed: ")
    text = cause if found else error
    return text if len(text) <= limit else text[:limit - 1] + "…"


async def observe_run(events: Sequence[Event], environment: Environment,
                      target: Target) -> Observed | None:
    """What the environment's Prometheus saw over the run; None for an empty journal."""
    from gameday.guards.prometheus import Prometheus

    window = run_window(events)
    if window is None:
        return None
    settings = environment.prometheus
    run = next((e.run for e in events if isinstance(e, PlanEvent)), "")
    queries = report_queries(run, target, settings.window, events)
    url = without_credentials(settings.url)
    try:
        prometheus = Prometheus.from_settings(
            settings.model_copy(update={"timeout": max(settings.timeout, QUERY_TIMEOUT)}))
    except GameDayError as exc:  # a token that is not set, a bad URL
        return Observed(url, *window, settings.scrape_interval, missing=(str(exc),))
    with prometheus:
        return await fetch_observed(prometheus, queries, *window, settings.scrape_interval,
                                    url)
