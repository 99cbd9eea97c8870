"""user-service's profile database: PostgreSQL through an asyncpg pool.

Each read is one attempt or more, each bounded by the policy's timeout (waiting for a pooled
connection included) and retried with backoff when the connection failed. A connection that
failed is terminated before it goes back to the pool, so the pool opens a fresh one for the
retry instead of handing the broken one out again. The password comes from ``PGPASSWORD``,
which asyncpg reads itself: it is never on a command line nor in a log.

The pool is opened at start; when PostgreSQL is not there yet, the first reads open it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from gameday.demo import traces
from gameday.demo.metrics import ServiceMetrics
from gameday.demo.resilience import CallPolicy
from gameday.errors import DependencyFailed

log = logging.getLogger(__name__)

DEPENDENCY = "postgres"
QUERY = "SELECT id, name, email, plan FROM profiles WHERE id = $1"
#: Seconds to open one connection.
CONNECT_TIMEOUT = 1.0

#: What a lost or unusable connection raises; a retry on a new connection may succeed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # ConnectionDoesNotExistError among them
    asyncpg.exceptions.InterfaceError,
    # The server ending the session: pg_terminate_backend, a shutdown, a crash restart.
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    # A connection whose session the server just ended, read before its socket closed: the
    # pool still hands it out, and it refuses the query in this way.
    asyncpg.exceptions.InternalClientError,
    ConnectionResetError,
    OSError,
)


@dataclass(frozen=True)
class Profile:
    """One row of ``profiles``."""

    id: str
    name: str
    email: str
    plan: str

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> Profile:
        """The profile of a ``(id, name, email, plan)`` row; NULL reads as empty."""
        return cls(*("" if value is None else str(value) for value in row))

    def as_json(self) -> dict[str, str]:
        """The profile as a JSON object."""
        return asdict(self)


async def _keep(connection: Any) -> None:
    """The pool's reset on release: nothing to do. asyncpg's default sends RESET ALL and
    friends, a round trip each read would wait for (doubling a slow network's cost); the reads
    here leave no session state to reset."""
    del connection


class ProfileDatabase:
    """Profile reads from PostgreSQL with timeouts and retries, measured.

    The pool opens all its connections at start and keeps them: a connection opened while the
    network is slow pays the delay on every message of its start-up and authentication, so
    a pool that grew on demand would make reads wait for it.
    """

    def __init__(self, dsn: str, policy: CallPolicy, pool_size: int, metrics: ServiceMetrics,
                 rng: random.Random | None = None,
                 connection_class: type[asyncpg.Connection] = asyncpg.Connection) -> None:
        self.dsn = dsn
        #: What the pool's connections are: a fault point's class makes queries pass it.
        self.connection_class = connection_class
        self.policy = policy
        self.pool_size = pool_size
        self._rng = rng or random.Random()
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._releasing: set[asyncio.Task[None]] = set()
        self.calls = metrics.dependency(DEPENDENCY)
        self.calls.watch(None)
        traces.instrument_asyncpg()
        self._pool_wait = metrics.db_pool_wait.labels(metrics.service, DEPENDENCY)
        self._opened_total = metrics.db_connections_opened.labels(metrics.service, DEPENDENCY)
        connections = metrics.db_pool_connections
        connections.labels(metrics.service, "idle").set_function(self._idle)
        connections.labels(metrics.service, "used").set_function(
            lambda: self._size() - self._idle())

    async def _opened(self, connection: Any) -> None:
        """Count each connection the pool opens (a reset connection is replaced by a new one)."""
        del connection
        self._opened_total.inc()

    def _size(self) -> int:
        return int(self._pool.get_size()) if self._pool is not None else 0

    def _idle(self) -> int:
        return int(self._pool.get_idle_size()) if self._pool is not None else 0

    async def open(self) -> None:
        """Open the pool now; a database not up yet is only logged (reads open it later)."""
        try:
            async with asyncio.timeout(2 * CONNECT_TIMEOUT):
                await self._open()
        except (TimeoutError, asyncpg.exceptions.PostgresError, *CONNECTION_ERRORS) as exc:
            log.warning("%s cannot be used yet (%s); the first reads will try again",
                        DEPENDENCY, type(exc).__name__)

    async def _open(self) -> Any:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=self.pool_size, max_size=self.pool_size,
                        max_inactive_connection_lifetime=0, timeout=CONNECT_TIMEOUT,
                        reset=_keep, init=self._opened,
                        connection_class=self.connection_class)
        return self._pool

    async def fetch(self, profile_id: str) -> Profile | None:
        """The profile, or None when there is none; ``DependencyFailed`` when every attempt
        failed."""
        retry = self.policy.retry
        failure = DependencyFailed(DEPENDENCY, "connect")
        for attempt in range(retry.attempts):
            if attempt:
                self.calls.retries.inc()
                await asyncio.sleep(retry.delay(attempt, self._rng))
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.policy.timeout):
                    row = await self._query(QUERY, profile_id)
            except TimeoutError:
                reason, again = "timeout", True
            except CONNECTION_ERRORS:
                reason, again = "connect", True
            except asyncpg.exceptions.PostgresError:
                # The server answered with an error (a missing table, say): asking again
                # gets the same answer.
                reason, again = "status", False
            else:
                self.calls.attempt_took(time.perf_counter() - started)
                return None if row is None else Profile.from_row(row)
            self.calls.attempt_took(time.perf_counter() - started)
            self.calls.error(reason)
            failure = DependencyFailed(DEPENDENCY, reason)
            if not again:
                break
        raise failure

    async def _query(self, query: str, *args: object) -> tuple[object, ...] | None:
        """The first row of ``query``, on a pooled connection that is not reused if it broke."""
        pool = await self._open()
        asked = time.perf_counter()
        connection = await pool.acquire()
        self._pool_wait.observe(time.perf_counter() - asked)
        try:
            row = await connection.fetchrow(query, *args)
        except asyncio.CancelledError:
            # The attempt's time is up. Releasing cancels the query on the server first, which
            # takes a round trip the caller should not wait for; the connection stays checked
            # out until then, as it would in any pool.
            self._release_later(pool, connection)
            raise
        except CONNECTION_ERRORS:
            connection.terminate()
            await pool.release(connection)
            raise
        except BaseException:
            await pool.release(connection)
            raise
        await pool.release(connection)
        return None if row is None else tuple(row)

    def _release_later(self, pool: Any, connection: Any) -> None:
        async def release() -> None:
            # asyncpg terminates a connection it cannot reset; nothing is left to do here.
            with contextlib.suppress(Exception):
                await pool.release(connection, timeout=CONNECT_TIMEOUT)

        task = asyncio.create_task(release())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def ping(self) -> bool:
        """Whether ``SELECT 1`` answers within a second (no retries, no metrics)."""
        try:
            async with asyncio.timeout(1.0):
                with traces.untraced():  # a probe, not traffic: no trace of its own
                    return await self._query("SELECT 1") == (1,)
        except (TimeoutError, asyncpg.exceptions.PostgresError, *CONNECTION_ERRORS):
            return False

    async def close(self) -> None:
        """Close the pool, at most a second's wait for connections still checked out."""
        if self._releasing:
            await asyncio.wait(self._releasing, timeout=CONNECT_TIMEOUT)
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await pool.close()
        except TimeoutError:
            pool.terminate()
