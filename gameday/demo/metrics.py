"""The Prometheus metrics of the demo services, named as ``catalog/signals.yaml`` queries them.

Each service process owns one registry. Label ``service`` names the exporting service and
``dependency`` what it calls (``auth-service``, ``redis``, ``postgres``). Requests to
``/metrics``, ``/health`` and ``/ready`` are not counted, so scraping and probing do not look
like traffic.

When the process traces, the latency histograms carry exemplars: each bucket keeps the
``trace_id`` of the last sampled request that fell into it. Only the OpenMetrics exposition
can show them, so ``/metrics`` answers OpenMetrics to a scraper that asks for it (Prometheus
does) and the classic text format otherwise. The series are the same in both: a counter
``service_requests`` is ``service_requests_total`` either way, and ``*_created`` is off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gameday.demo.resilience import CircuitBreaker
from gameday.demo.traces import exemplar

#: 10 ms steps to 500 ms tell 50, 120 and 250 ms faults apart; coarser steps up to 10 s.
BUCKETS: tuple[float, ...] = (
    0.0025, 0.005,
    *(round(0.01 * step, 2) for step in range(1, 51)),
    0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0,
)
#: A free pooled connection is handed out in microseconds, an exhausted pool makes callers wait
#: up to their timeout: the request buckets start too late to tell the two apart.
POOL_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05,
    0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)

#: Values of ``service_circuit_breaker_state``.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

#: Paths that are plumbing, not service traffic.
UNCOUNTED = frozenset({"/metrics", "/health", "/ready"})

#: Why a call attempt failed: no answer in time, no usable connection, or an error answer.
ERROR_REASONS = ("timeout", "connect", "status")
#: What a cache read found: ``skipped`` means the cache's breaker was open.
CACHE_RESULTS = ("hit", "miss", "error", "skipped")

# The ``*_created`` series double the series count and nothing here queries them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class ServiceMetrics:
    """The metric families of one demo service, in a registry of their own."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "service_requests", "Requests answered, by HTTP status code.",
            ["service", "code"], registry=self.registry)
        self.duration = Histogram(
            "service_request_duration_seconds", "Time to answer a request.",
            ["service"], buckets=BUCKETS, registry=self.registry)
        self.in_flight = Gauge(
            "service_in_flight_requests", "Requests being answered right now.",
            ["service"], registry=self.registry)
        self.downstream_latency = Histogram(
            "service_downstream_latency_seconds",
            "Time of each call attempt to a dependency, failed attempts included.",
            ["service", "dependency"], buckets=BUCKETS, registry=self.registry)
        self.downstream_errors = Counter(
            "service_downstream_errors",
            "Failed call attempts to a dependency (reason: timeout, status, connect).",
            ["service", "dependency", "reason"], registry=self.registry)
        self.downstream_retries = Counter(
            "service_downstream_retries", "Call attempts that were retries.",
            ["service", "dependency"], registry=self.registry)
        self.downstream_rejected = Counter(
            "service_downstream_rejected",
            "Calls not made because the dependency's circuit breaker was open.",
            ["service", "dependency"], registry=self.registry)
        # Exported so a game day's postmortem can tell which setting the service ran with
        # (``chaosctl demo set`` changes it between runs).
        self.dependency_timeout = Gauge(
            "service_dependency_timeout_seconds",
            "Per-attempt timeout of the calls to a dependency, as configured at start.",
            ["service", "dependency"], registry=self.registry)
        self.breaker_state = Gauge(
            "service_circuit_breaker_state",
            "Circuit breaker towards a dependency: 0 closed, 1 half-open, 2 open.",
            ["service", "dependency"], registry=self.registry)
        self.cache_requests = Counter(
            "service_cache_requests",
            "Cache reads by result: hit, miss, error (fell back to the database), skipped "
            "(the cache's breaker was open).",
            ["service", "result"], registry=self.registry)
        self.db_pool_wait = Histogram(
            "service_db_pool_wait_seconds",
            "Time from asking the database pool for a connection to holding one.",
            ["service", "dependency"], buckets=POOL_BUCKETS, registry=self.registry)
        self.db_connections_opened = Counter(
            "service_db_connections_opened",
            "Database connections the pool opened: at start, and to replace one that broke.",
            ["service", "dependency"], registry=self.registry)
        self.db_pool_connections = Gauge(
            "service_db_pool_connections",
            "Database pool connections, by state: idle or used.",
            ["service", "state"], registry=self.registry)
        self.in_flight.labels(service)
        self.duration.labels(service)

    def export_fault_points(self) -> None:
        """Serve the fault points' counters (``chaos_faults_injected_total`` with ``point``,
        and the rules file's refusals) beside the service's own families: the points count
        in the process's default registry, as in any service that embeds them."""
        from gameday.injector.point_decide import INJECTED
        from gameday.injector.rules_file import ERRORS

        for family in (INJECTED, ERRORS):
            self.registry.register(family)

    def dependency(self, name: str) -> DownstreamMetrics:
        """The call metrics towards dependency ``name``, every series created at zero."""
        return DownstreamMetrics(self, name)

    def cache_result(self, result: str) -> Counter:
        """The counter of cache reads that ended in ``result`` (one of CACHE_RESULTS)."""
        return self.cache_requests.labels(self.service, result)

    def route(self) -> Route:
        """``GET /metrics``: the registry in Prometheus text or OpenMetrics format."""
        return metrics_route(self.registry)


class DownstreamMetrics:
    """The series of one service's calls to one dependency."""

    def __init__(self, metrics: ServiceMetrics, dependency: str) -> None:
        labels = (metrics.service, dependency)
        self.latency = metrics.downstream_latency.labels(*labels)
        self._errors = {reason: metrics.downstream_errors.labels(*labels, reason)
                        for reason in ERROR_REASONS}
        self.retries = metrics.downstream_retries.labels(*labels)
        self.rejected = metrics.downstream_rejected.labels(*labels)
        self._state = metrics.breaker_state.labels(*labels)

    def attempt_took(self, seconds: float) -> None:
        """Time one call attempt, with the current trace as the exemplar."""
        self.latency.observe(seconds, exemplar())

    def error(self, reason: str) -> None:
        """Count one failed attempt (``reason`` one of ERROR_REASONS)."""
        self._errors[reason].inc()

    def watch(self, breaker: CircuitBreaker | None) -> None:
        """Export ``breaker``'s state; a dependency without one shows as closed."""
        if breaker is not None:
            self._state.set_function(lambda: BREAKER_STATES[breaker.state])


def wants_openmetrics(accept: str) -> bool:
    """Whether an ``Accept`` header lists OpenMetrics (whatever its version or weight: a
    scraper that lists it parses it)."""
    return any(item.split(";", 1)[0].strip().lower() == "application/openmetrics-text"
               for item in accept.split(","))


def metrics_route(registry: CollectorRegistry) -> Route:
    """``GET /metrics`` serving ``registry``: OpenMetrics, exemplars included, when asked for,
    else the classic text format."""

    async def exposition(request: Request) -> Response:
        if wants_openmetrics(request.headers.get("accept", "")):
            return Response(openmetrics_latest(registry),  # type: ignore[no-untyped-call]
                            media_type=OPENMETRICS_TYPE)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", exposition, methods=["GET"])


class MetricsMiddleware:
    """Counts, times and tracks in flight every HTTP request but the plumbing paths.

    A plain ASGI middleware: it only watches the response's start message, so it adds no task
    and no body buffering to a request.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self._service = metrics.service
        self._requests = metrics.requests
        self._in_flight = metrics.in_flight.labels(metrics.service)
        self._duration = metrics.duration.labels(metrics.service)
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNCOUNTED:
            await self.app(scope, receive, send)
            return
        # An app that fails before answering is answered 500 by the error middleware outside.
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = self._clock()
        self._in_flight.inc()
        try:
            await self.app(scope, receive, watched)
        finally:
            self._in_flight.dec()
            self._duration.observe(self._clock() - started, exemplar())
            self._requests.labels(self._service, str(status)).inc()
