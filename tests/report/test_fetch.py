"""Observed metrics: the queries a report asks Prometheus, and their JSON round trip."""

from __future__ import annotations

from gameday.models import Target
from gameday.report import observed_from_json, observed_to_json
from gameday.report.fetch import report_queries
from gameday.report.observed import (
    BREAKER_STATE,
    CALLS_PER_SECOND,
    FAULTS_PER_SECOND,
    LATENCY_P95,
    RETRIES_PER_SECOND,
)
from tests.report.conftest import journal, observed

TARGET = Target(service="user-service", dependency="auth-service")


def test_queries_cover_faults_retries_and_the_breaker() -> None:
    """The run's injected faults, retries and breaker towards the dependency are asked for."""
    queries = report_queries("run-1", TARGET, "4s")
    assert queries[FAULTS_PER_SECOND] == 'sum(rate(chaos_faults_injected_total{run="run-1"}[4s]))'
    assert 'service_downstream_retries_total{service="user-service", dependency="auth-service"}' \
        in queries[RETRIES_PER_SECOND]
    assert 'dependency="auth-service"' in queries[CALLS_PER_SECOND]
    assert queries[BREAKER_STATE].startswith("max(service_circuit_breaker_state{")


def test_queries_reuse_what_the_baseline_measured() -> None:
    """The standard metrics use the exact PromQL the run's baseline measured."""
    events = journal("aborted")
    baseline = next(e for e in events if e.event == "baseline")
    measured = baseline.window.stats  # type: ignore[union-attr]
    assert measured("metric:latency_p95_ms") is not None
    query = next(m.query for m in baseline.window.signals  # type: ignore[union-attr]
                 if m.name == "metric:latency_p95_ms")
    assert report_queries("x", TARGET, "1m", events)[LATENCY_P95] == query


def test_no_dependency_no_downstream_queries() -> None:
    """A target without a dependency (CPU pressure) asks nothing about calls or breakers."""
    queries = report_queries("r", Target(service="redis"), "1m")
    assert not {CALLS_PER_SECOND, RETRIES_PER_SECOND, BREAKER_STATE} & set(queries)


def test_observed_round_trips_through_json() -> None:
    """What Prometheus saw can be saved and loaded unchanged."""
    seen = observed("aborted")
    assert observed_from_json(observed_to_json(seen)) == seen
