"""The Prometheus shell: guard samples, instant values and range queries, off the event loop.

Every query runs in a worker thread under a hard timeout no longer than the guard interval;
a query that does not answer in time is an ``error`` sample, never a wait. Nothing here
retries: a retry would turn a failing guard into a slow one and defeat fail-closed.
Errors of ``requests`` and ``prometheus-api-client`` become :class:`~gameday.errors.GuardError`
here, chained with ``from exc``.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from gameday.errors import ConfigError, GuardError
from gameday.guards.queries import GuardQuery
from gameday.guards.rules import Sample, worst
from gameday.models import PrometheusSettings

T = TypeVar("T")
Point = tuple[float, float]
#: A guard's value is evaluated this long after its inputs' newest scrape: late enough to
#: include that scrape (stamped in milliseconds), too early for the next one.
AS_OF_MARGIN = 0.001


class Prometheus:
    """Queries one Prometheus server, each query in a worker thread under ``timeout``.

    Nothing connects until the first query. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None,
                 max_workers: int = 64) -> None:
        if timeout <= 0:
            raise ConfigError(f"Prometheus query timeout must be above 0s, got {timeout:g}s")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = dict(headers or {})
        # Own pool: the default executor has a handful of threads, too few for 50 guards
        # queried at once, and a hung query would hold one of them until its timeout.
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="gameday-prometheus")
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    @property
    def headers(self) -> dict[str, str]:
        """The headers every query sends (the bearer token, when set): for a caller that asks
        Prometheus what prometheus-api-client cannot (exemplars). Secrets: never log them."""
        return dict(self._headers)

    @classmethod
    def from_settings(cls, settings: PrometheusSettings,
                      guard_interval: float | None = None) -> Prometheus:
        """A client for an environment's Prometheus; the timeout is capped by the interval."""
        timeout = settings.timeout if guard_interval is None else min(settings.timeout,
                                                                        guard_interval)
        headers = {}
        if settings.token is not None:
            token = settings.token.resolve()
            if not token:
                raise ConfigError(f"prometheus.token: {settings.token.describe()} is not set")
            headers["Authorization"] = f"Bearer {token}"
        return cls(settings.url, timeout=timeout, headers=headers)

    # --- async API --------------------------------------------------------------------------

    async def sample(self, guard: GuardQuery) -> Sample:
        """One guard sample; never raises: failures and timeouts are ``error`` samples."""
        try:
            return await self._run(self._sample_sync, guard)
        except GuardError as exc:
            return Sample(query_time=time.time(), error=str(exc))

    async def value(self, query: str) -> float | None:
        """The value of ``query`` now (several series: the largest); ``GuardError`` on failure."""
        return await self._run(self._value_sync, query)

    async def range(self, query: str, start: float, end: float, step: float) -> list[Point]:
        """``(time, value)`` points of ``query`` from ``start`` to ``end`` (epoch seconds).

        Several series are merged by time (the largest value wins); NaNs are dropped.
        """
        return await self._run(self._range_sync, query, start, end, step)

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the answer, which would keep a finished hold's guard polling.
            async with asyncio.timeout(self.timeout):
                return await loop.run_in_executor(self._pool, call, *args)
        except TimeoutError as exc:
            raise GuardError(f"Prometheus at {self.url} did not answer within "
                             f"{self.timeout:g}s") from exc

    # --- blocking helpers, run in the pool --------------------------------------------------

    def _sample_sync(self, guard: GuardQuery) -> Sample:
        asked = time.time()
        if guard.freshness is None:  # a constant: nothing is scraped, nothing goes stale
            points = _points(self._query(guard.query))
            evaluated = points[0][0] if points else asked
            return _judgeable(guard, points, evaluated, evaluated)
        newest = _points(self._query(guard.freshness))
        if not newest:
            # No input has a current sample: stale if the query still gives a value.
            points = _points(self._query(guard.query))
            return _judgeable(guard, points, points[0][0] if points else asked, None)
        # Ages are measured at the freshness query's evaluation time, on Prometheus' clock.
        evaluated, stamp = newest[0][0], min(v for _, v in newest)
        # The value is computed as of the scrape the stamp names. Evaluated "now", a scrape
        # landing between the two queries would give a newer value under the older stamp,
        # and the guard would then skip the newer sample as already judged.
        points = _points(self._query(guard.query, at=stamp + AS_OF_MARGIN))
        return _judgeable(guard, points, evaluated, stamp)

    def _value_sync(self, query: str) -> float | None:
        values = [v for _, v in _points(self._query(query)) if not math.isnan(v)]
        return max(values) if values else None

    def _range_sync(self, query: str, start: float, end: float, step: float) -> list[Point]:
        try:
            result = self._client().custom_query_range(
                query, start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC), step=f"{step:g}s",
                timeout=self.timeout)
        except Exception as exc:  # every failure of the library is a GuardError
            raise _translate(exc, self.url, query) from exc
        merged: dict[float, float] = {}
        for series in _series(result, query):
            for at, text in series.get("values", []):
                value = float(text)
                if not math.isnan(value):
                    merged[float(at)] = max(value, merged.get(float(at), -math.inf))
        return sorted(merged.items())

    def _query(self, query: str, at: float | None = None) -> Any:
        params = None if at is None else {"time": f"{at:.3f}"}
        try:
            return self._client().custom_query(query, params=params, timeout=self.timeout)
        except Exception as exc:  # every failure of the library is a GuardError
            raise _translate(exc, self.url, query) from exc

    def _client(self) -> Any:
        """This thread's client: sessions are not shared between threads."""
        client = getattr(self._local, "client", None)
        if client is None:
            # Imported on first use, so importing gameday stays light.
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry

            client = PrometheusConnect(url=self.url, headers=self._headers or None,
                                       retry=Retry(total=0, raise_on_status=False),
                                       timeout=self.timeout)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        """Stop the worker threads (without waiting for hung queries) and close sessions."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _judgeable(guard: GuardQuery, points: list[Point], evaluated: float,
               stamp: float | None) -> Sample:
    """The sample an instant query's points give: no data, NaN, or the worst value."""
    if not points:
        return Sample(query_time=evaluated)
    value = worst([v for _, v in points], guard.guard.op, guard.guard.threshold)
    if value is None:
        return Sample(query_time=evaluated, value=math.nan)
    return Sample(query_time=evaluated, value=value, sample_time=stamp)


def _points(result: Any) -> list[Point]:
    """``(time, value)`` of an instant query's answer: a vector or a scalar."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return [(float(result[0]), float(result[1]))]  # a scalar: [time, "value"]
    try:
        return [(float(s["value"][0]), float(s["value"][1])) for s in result]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise GuardError(f"unexpected answer from Prometheus: {str(result)[:200]}") from exc


def _series(result: Any, query: str) -> list[dict[str, Any]]:
    if not isinstance(result, list) or not all(isinstance(s, dict) for s in result):
        raise GuardError(f"unexpected range answer for {query!r}: {str(result)[:200]}")
    return result


def _translate(exc: Exception, url: str, query: str) -> GuardError:
    name = type(exc).__name__
    text = str(exc).splitlines()[0][:300] if str(exc) else name
    short = query if len(query) <= 120 else query[:117] + "..."
    return GuardError(f"query {short!r} to {url} failed: {name}: {text}")
