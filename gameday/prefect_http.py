"""Plain HTTP to a Prefect server, retried the way Prefect's own client retries.

A Prefect server on SQLite answers 503 while its database is locked, and any server may answer
429 or 502 under load. Prefect's client (``PrefectHttpxAsyncClient``) retries those, and 408,
up to ``PREFECT_CLIENT_MAX_RETRIES`` (5) times: it waits what ``Retry-After`` asks (at least
that, plus up to 20 % jitter), else 2, 4, 8 … seconds with ±20 % jitter; it also retries
timeouts and broken connections, but not a refused connection before the first answer, so a
wrong URL fails at once. The kit's few raw calls (``use_api``'s health check, the demo's
readiness wait) and the tests' REST client keep to that policy without importing Prefect,
which the engine must not.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

#: Answers worth another try: timeout, rate limit, bad gateway, unavailable (a locked DB).
RETRY_STATUS = frozenset({408, 429, 502, 503})
#: Prefect's default ``PREFECT_CLIENT_MAX_RETRIES``.
MAX_RETRIES = 5
#: Prefect's default ``PREFECT_CLIENT_RETRY_JITTER_FACTOR``.
JITTER = 0.2
#: Transport errors Prefect's client retries (a refused connection only after an answer).
RETRY_ERRORS: tuple[type[httpx.HTTPError], ...] = (
    httpx.ReadTimeout, httpx.PoolTimeout, httpx.ConnectTimeout, httpx.ReadError,
    httpx.WriteError, httpx.RemoteProtocolError, httpx.LocalProtocolError)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds; None if unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_delay(attempt: int, retry_after: str | None = None, jitter: float = JITTER,
                draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
    asked = retry_after_seconds(retry_after)
    if asked is not None:  # never sooner than the server asked
        return asked * (1 + jitter * draw())
    return float(2**attempt) * (1 + jitter * (2 * draw() - 1))


def request(method: str, url: str, *, max_retries: int = MAX_RETRIES,
            budget: float | None = None, client: httpx.Client | None = None,
            sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> httpx.Response:
    """Send one request, retrying as Prefect's client does; the last response.

    ``budget`` caps the seconds spent waiting between tries: a retry that would overrun it is
    not made (the last answer, or error, stands). Statuses are not raised; ``kwargs`` go to
    httpx (``trust_env`` defaults to False: the server is reached directly, never by proxy).
    """
    kwargs.setdefault("timeout", 15.0)
    send = client.request if client is not None else httpx.request
    if client is None:
        kwargs.setdefault("trust_env", False)
    answered = False
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        try:
            response = send(method, url, **kwargs)
        except httpx.HTTPError as exc:
            retryable = isinstance(exc, RETRY_ERRORS) or (
                answered and isinstance(exc, httpx.ConnectError))
            delay = retry_delay(attempt)
            if not retryable or attempt > max_retries or _over(budget, waited, delay):
                raise
        else:
            answered = True
            if response.status_code not in RETRY_STATUS:
                return response
            delay = retry_delay(attempt, response.headers.get("Retry-After"))
            if attempt > max_retries or _over(budget, waited, delay):
                return response
        sleep(delay)
        waited += delay


def _over(budget: float | None, waited: float, delay: float) -> bool:
    return budget is not None and waited + delay > budget
