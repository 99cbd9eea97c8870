"""Resilience policies of the demo's user-service: retries with backoff and a circuit breaker.

Both are plain state machines with an injectable clock and random source, so their
behaviour is tested without servers and a game day's expectations can be computed from them.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a failed call up to ``retries`` times, waiting with exponential backoff and jitter.

    The n-th retry waits ``min(cap, base * 2**(n-1))`` scaled by a random factor in
    ``[1 - jitter, 1]``, so callers that failed together do not retry together.
    """

    retries: int = 2
    base: float = 0.02
    cap: float = 0.2
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base < 0 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("retries, base and cap must be >= 0 and jitter within 0..1")

    @property
    def attempts(self) -> int:
        """Calls made at most: the first plus the retries."""
        return 1 + self.retries

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        draw = rng.random() if rng is not None else random.random()
        backoff = min(self.cap, self.base * 2 ** (retry - 1))
        return float(backoff * (1 - self.jitter * draw))

    def expected_per_call(self, failure: float) -> tuple[float, float, float]:
        """Attempts, failed attempts and retries per call when each attempt fails with ``failure``.

        With ``p = failure`` and ``r`` retries: attempts ``1 + p + … + p**r``, failures
        ``p + … + p**(r+1)``, retries ``p + … + p**r``.
        """
        attempts = sum(failure**k for k in range(self.retries + 1))
        return attempts, failure * attempts, attempts - 1


@dataclass(frozen=True)
class CallPolicy:
    """How a service calls one dependency: per-attempt timeout (seconds), retries, breaker."""

    timeout: float
    retry: RetryPolicy
    breaker: bool = False


class CircuitBreaker:
    """Stop calling a dependency that keeps failing, and probe it again after a pause.

    Closed: calls pass; the outcomes of the last ``window`` calls are kept, and once at least
    ``min_calls`` are known and ``failure_ratio`` of them failed, the breaker opens. Open: calls
    are refused for ``open_seconds``. Half-open: one probe call passes; its success closes the
    breaker, its failure opens it again. One *call* is the whole retried operation, so retries
    that end in success do not count against the dependency.
    """

    def __init__(self, failure_ratio: float = 0.5, window: int = 20, min_calls: int = 10,
                 open_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < failure_ratio <= 1 or window < 1 or not 1 <= min_calls <= window:
            raise ValueError("need 0 < failure_ratio <= 1 and 1 <= min_calls <= window")
        self.failure_ratio = failure_ratio
        self.min_calls = min_calls
        self.open_seconds = open_seconds
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker turns half-open once its pause is over)."""
        if self._state == "open" and self._clock() - self._opened_at >= self.open_seconds:
            self._state = "half_open"
            self._probing = False
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only the single probe may."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, success: bool) -> None:
        """Record the outcome of a call that :meth:`allow` let through."""
        state = self.state
        if state == "half_open":
            self._probing = False
            if success:
                self._state = "closed"
                self._outcomes.clear()
            else:
                self._open()
            return
        if state == "open":
            return  # a call that started before the breaker opened; its outcome is old news
        self._outcomes.append(success)
        failures = self._outcomes.count(False)
        if (len(self._outcomes) >= self.min_calls
                and failures >= self.failure_ratio * len(self._outcomes)):
            self._open()

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._outcomes.clear()
