"""Retry policy and circuit breaker of the demo's user-service (pure, no servers)."""

from __future__ import annotations

import random

import pytest

from gameday.demo.resilience import CircuitBreaker, RetryPolicy


def state_of(breaker: CircuitBreaker) -> str:
    """The breaker's state, read afresh (the clock may have moved)."""
    return breaker.state


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_within_jitter_and_cap() -> None:
    """Each retry waits base·2^(n-1), capped, scaled into [1-jitter, 1]."""
    policy = RetryPolicy(retries=5, base=0.02, cap=0.1, jitter=0.5)
    rng = random.Random(7)
    for retry, full in ((1, 0.02), (2, 0.04), (3, 0.08), (4, 0.1), (5, 0.1)):
        for _ in range(50):
            assert full * 0.5 <= policy.delay(retry, rng) <= full


def test_expected_counts_follow_the_retry_count() -> None:
    """With failure p and 2 retries: 1+p+p² attempts, p+p²+p³ failures, p+p² retries."""
    attempts, failures, retries = RetryPolicy(retries=2).expected_per_call(0.2)
    assert attempts == pytest.approx(1.24)
    assert failures == pytest.approx(0.248)
    assert retries == pytest.approx(0.24)


def test_invalid_policy_is_refused() -> None:
    """Negative retries or a jitter above 1 are errors."""
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)


def test_breaker_stays_closed_below_the_failure_ratio() -> None:
    """Occasional failures do not open the breaker."""
    breaker = CircuitBreaker(failure_ratio=0.5, window=20, min_calls=10, clock=Clock())
    for n in range(100):
        assert breaker.allow()
        breaker.record(success=n % 5 != 0)
    assert state_of(breaker) == "closed"


def test_breaker_opens_refuses_then_probes_once() -> None:
    """Half the calls failing opens it; after the pause exactly one probe passes."""
    clock = Clock()
    breaker = CircuitBreaker(failure_ratio=0.5, window=20, min_calls=10, open_seconds=5,
                             clock=clock)
    for _ in range(10):
        assert breaker.allow()
        breaker.record(success=False)
    assert state_of(breaker) == "open"
    assert not breaker.allow()
    clock.now += 5
    assert state_of(breaker) == "half_open"
    assert breaker.allow()
    assert not breaker.allow(), "a second call must wait for the probe's outcome"
    breaker.record(success=True)
    assert state_of(breaker) == "closed"
    assert breaker.allow()


def test_failed_probe_opens_the_breaker_again() -> None:
    """A failed half-open probe starts a new open pause."""
    clock = Clock()
    breaker = CircuitBreaker(min_calls=1, window=1, open_seconds=2, clock=clock)
    breaker.record(success=False)
    clock.now += 2
    assert breaker.allow()
    breaker.record(success=False)
    assert state_of(breaker) == "open"
    clock.now += 1.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
