"""user-service's profile cache: Redis, read before the database and filled after it.

Key ``profile:{id}`` holds the profile's JSON for :data:`TTL_SECONDS`. The cache is an
optimisation, never a requirement: a read that fails or takes longer than the cache's timeout
counts as an error and the database answers instead; a write-back happens after the answer
left and its failure is only counted. Behind a circuit breaker, an outage costs a few
timeouts and is then skipped until the breaker probes again, instead of adding the timeout to
every request.

No command is retried by the client (``retry=Retry(NoBackoff(), 0)``): one timeout is all a
cache read may cost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gameday.demo import traces
from gameday.demo.database import Profile
from gameday.demo.metrics import CACHE_RESULTS, ServiceMetrics
from gameday.demo.resilience import CircuitBreaker
from gameday.errors import DependencyFailed

DEPENDENCY = "redis"
#: Seconds a cached profile lives: long enough that the misses' write-backs keep the cache
#: full, so LRU eviction (not expiry) decides what stays, as ``maxmemory`` intends.
TTL_SECONDS = 3600
#: Connections to Redis at most; beyond, a call fails at once (and the database answers).
MAX_CONNECTIONS = 64

#: Seconds ``/ready`` waits for ``PING``.
PROBE_TIMEOUT = 1.0

T = TypeVar("T")


def _client(url: str, timeout: float, connections: int) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), health_check_interval=0, max_connections=connections)


def encode(profile: Profile) -> str:
    """A profile as the cache holds it: compact JSON."""
    return json.dumps(profile.as_json(), separators=(",", ":"))


def key_of(profile_id: str) -> str:
    """The cache key of a profile."""
    return f"profile:{profile_id}"


class ProfileCache:
    """Profile reads and write-backs on Redis, measured, behind an optional breaker."""

    def __init__(self, url: str, timeout: float, metrics: ServiceMetrics,
                 breaker: CircuitBreaker | None = None) -> None:
        self.timeout = timeout
        self.client = _client(url, timeout, MAX_CONNECTIONS)
        traces.instrument_redis(self.client)
        # Readiness allows a second, which the request path's timeout would cut short. Its
        # PINGs are not traced: each would be a trace of its own.
        self._probe = _client(url, PROBE_TIMEOUT, 1)
        self.breaker = breaker
        self.calls = metrics.dependency(DEPENDENCY)
        self.calls.watch(breaker)
        self._results = {result: metrics.cache_result(result) for result in CACHE_RESULTS}
        self._writes: set[asyncio.Task[None]] = set()

    async def get(self, profile_id: str) -> Profile | None:
        """The cached profile, or None on a miss, an error, or while the breaker is open."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            self.calls.rejected.inc()
            traces.breaker_rejected(DEPENDENCY)
            self._results["skipped"].inc()
            return None
        success = False
        try:
            raw = await self._call(lambda: self.client.get(key_of(profile_id)))
            success = True
        except DependencyFailed:
            self._results["error"].inc()
            return None
        finally:
            if breaker is not None:
                breaker.record(success)
        if raw is None:
            self._results["miss"].inc()
            return None
        try:
            profile = Profile(**json.loads(raw))
        except (ValueError, TypeError):
            # An entry this service did not write; the database's copy replaces it.
            self._results["error"].inc()
            return None
        self._results["hit"].inc()
        return profile

    def put_later(self, profile: Profile) -> None:
        """Write ``profile`` back in the background; a failure is counted, never raised."""
        breaker = self.breaker
        # A write must not take the half-open breaker's single probe from a read.
        if breaker is not None and breaker.state != "closed":
            self.calls.rejected.inc()
            traces.breaker_rejected(DEPENDENCY)
            return
        value = encode(profile)

        async def write() -> None:
            success = False
            try:
                await self._call(lambda: self.client.set(key_of(profile.id), value,
                                                          ex=TTL_SECONDS))
                success = True
            except DependencyFailed:
                pass  # counted by _call; the next read of this profile misses again
            finally:
                if breaker is not None:
                    breaker.record(success)

        task = asyncio.create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        """One measured command, bounded by the timeout; ``DependencyFailed`` if it failed."""
        started = time.perf_counter()
        try:
            # The socket timeouts bound each connect and read; this bounds their sum.
            async with asyncio.timeout(self.timeout):
                return await command()
        except (TimeoutError, redis.exceptions.TimeoutError):
            reason = "timeout"
        except (redis.exceptions.ConnectionError, OSError):
            reason = "connect"
        except redis.exceptions.RedisError:
            reason = "status"
        finally:
            self.calls.attempt_took(time.perf_counter() - started)
        self.calls.error(reason)
        raise DependencyFailed(DEPENDENCY, reason)

    async def ping(self) -> bool:
        """Whether Redis answers ``PING`` (one try within a second, no metrics)."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                return bool(await self._probe.ping())
        except (TimeoutError, redis.exceptions.RedisError, OSError):
            return False

    async def close(self) -> None:
        """Let write-backs finish (within the timeout), then close the connections."""
        if self._writes:
            await asyncio.wait(self._writes, timeout=self.timeout)
        await self.client.aclose()
        await self._probe.aclose()
