"""The Prometheus metrics of the demo services, named as ``catalog/signals.yaml`` queries them.

Each service process owns one registry. Label ``service`` names the exporting service and
``dependency`` the service it calls. Requests to ``/metrics`` and ``/health`` are not counted,
so scraping does not look like traffic.
"""

from __future__ import annotations

import time

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

from gameday.demo.http import Handler, Request, Response

#: 10 ms steps to 500 ms tell 50, 120 and 250 ms faults apart; coarser steps up to 10 s.
BUCKETS: tuple[float, ...] = (
    0.0025, 0.005,
    *(round(0.01 * step, 2) for step in range(1, 51)),
    0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0,
)

#: Values of ``service_circuit_breaker_state``.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

#: Paths that are plumbing, not service traffic.
UNCOUNTED = frozenset({"/metrics", "/health", "/ready"})

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
        self.breaker_state = Gauge(
            "service_circuit_breaker_state",
            "Circuit breaker towards a dependency: 0 closed, 1 half-open, 2 open.",
            ["service", "dependency"], registry=self.registry)
        self.in_flight.labels(service)
        self.duration.labels(service)

    def exposition(self) -> Response:
        """The registry in Prometheus text format."""
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def instrument(self, handler: Handler) -> Handler:
        """``handler`` with request counts, latency and in-flight tracking, plus ``/metrics``."""
        in_flight = self.in_flight.labels(self.service)
        duration = self.duration.labels(self.service)

        async def wrapped(request: Request) -> Response:
            if request.path == "/metrics":
                return self.exposition()
            if request.path in UNCOUNTED:
                return await handler(request)
            started = time.perf_counter()
            in_flight.inc()
            code = 500
            try:
                response = await handler(request)
                code = response.status
                return response
            finally:
                in_flight.dec()
                duration.observe(time.perf_counter() - started)
                self.requests.labels(self.service, str(code)).inc()

        return wrapped

