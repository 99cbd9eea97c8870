"""Faults on the demo's proxies move user-service's signals by what the fault and the retry
policy predict."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gameday.demo.resilience import RetryPolicy
from tests.demo_stack import DemoStack

pytestmark = pytest.mark.integration

P95_MS = ('1000 * histogram_quantile(0.95, sum by (le) (rate('
          'service_request_duration_seconds_bucket{{service="user-service"}}[{window}s])))')
AUTH = 'service="user-service", dependency="auth-service"'


@pytest.fixture
def faults(demo_stack: DemoStack) -> Iterator[DemoStack]:
    """The session stack with no faults before and after the test, at the default rate."""
    demo_stack.clear_faults()
    try:
        yield demo_stack
    finally:
        demo_stack.clear_faults()
        demo_stack.set_rate(20)


def test_auth_latency_raises_p95_by_the_added_delay(faults: DemoStack) -> None:
    """120 ms on every auth call moves user-service's p95 up by 120 ms ± 50 %.

    The bound is wide because both p95s are read on two shared cores: a baseline read in a
    moment of contention and a faulted window read in a calm one differ by tens of ms more
    than the delay does. The per-request samples below carry the precise claim."""
    window = 8
    # The baseline window must not reach back into the stack's first, slower requests.
    time.sleep(max(0.0, faults.state.created + window + 3 - time.time()))
    faults.wait_for("sum(rate(service_requests_total{service=\"user-service\"}[8s]))",
                    lambda rate: rate > 5, timeout=20)
    # A calm baseline: a p95 inflated by a moment of contention on two shared cores (another
    # test's CPU fault, say) would hide part of the delay that is added next.
    faults.wait_for(P95_MS.format(window=window), lambda p95: p95 < 50, timeout=90)
    baseline = faults.query(P95_MS.format(window=window))
    assert baseline is not None
    began = time.time()
    faults.add_fault("auth-service", {"kind": "latency", "ms": 120}, run="test-latency", ttl=60)
    # The whole window must lie inside the fault, plus a scrape and an evaluation.
    time.sleep(window + 2.5)
    faulted = faults.query(P95_MS.format(window=window))
    assert faulted is not None
    assert faulted >= 115, (baseline, faulted)
    assert 60 <= faulted - baseline <= 180, (baseline, faulted)
    slowed = [s for s in faults.samples(since=began + 1) if s["code"] == "200"]
    assert slowed and min(s["ms"] for s in slowed) >= 115


def _auth_counters(stack: DemoStack, at: float) -> dict[str, float]:
    queries = {
        "requests": 'sum(service_requests_total{service="user-service"})',
        "attempts": f"sum(service_downstream_latency_seconds_count{{{AUTH}}})",
        # The aborts' errors: an attempt that a busy machine made time out is not one.
        "errors": f'sum(service_downstream_errors_total{{{AUTH}, reason="status"}})',
        "retries": f"sum(service_downstream_retries_total{{{AUTH}}})",
        "failed": 'sum(service_requests_total{service="user-service", code=~"5.."}) or vector(0)',
    }
    values = {name: stack.query(query, at=at) for name, query in queries.items()}
    assert all(v is not None for v in values.values()), values
    return {name: float(v or 0) for name, v in values.items()}


def test_auth_aborts_cost_errors_and_retries_as_the_policy_predicts(faults: DemoStack) -> None:
    """20 % aborts: errors and retries per request match 2 retries' prediction ± 25 %."""
    probability = 0.2
    faults.set_rate(40)  # more requests, less sampling noise in a short window
    faults.add_fault("auth-service", {"kind": "abort", "status": 503,
                                      "probability": probability}, run="test-aborts", ttl=60)
    time.sleep(2.5)
    start = time.time()
    time.sleep(15)
    end = time.time()
    time.sleep(2)  # let Prometheus scrape the samples at `end`
    first, last = _auth_counters(faults, start), _auth_counters(faults, end)
    delta = {name: last[name] - first[name] for name in first}
    assert delta["requests"] > 300, delta
    attempts, failures, retries = RetryPolicy(retries=2).expected_per_call(probability)
    per_request = {name: delta[name] / delta["requests"] for name in delta}
    assert per_request["attempts"] == pytest.approx(attempts, rel=0.25), per_request
    assert per_request["errors"] == pytest.approx(failures, rel=0.25), per_request
    assert per_request["retries"] == pytest.approx(retries, rel=0.25), per_request
    # Retries hide the aborts: users see only the calls that failed three times (p³).
    assert per_request["failed"] < 0.03, per_request
    assert faults.query(f"service_circuit_breaker_state{{{AUTH}}}") == 0
