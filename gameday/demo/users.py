"""user-service: the demo's front door, and the service game days break.

``GET /users/{id}`` checks the caller's token with auth-service (over HTTP), then reads the
profile from the Redis cache and, on a miss or a cache failure, from PostgreSQL, writing it
back to the cache afterwards. Each dependency is reached through a gameday fault proxy, so a
fault injected there reaches the user-service the way a slow or failing dependency would.
auth-service and the database each have a per-attempt timeout and a retry policy; auth-service
and the cache also sit behind circuit breakers.

Answers: 200 ``{"id", "profile"}``; 401 when the token is missing or rejected; 404 for an
unknown profile; 503 when auth-service's breaker is open; 504 when the last attempt timed out;
502 otherwise. A cache failure alone never fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gameday.demo import traces
from gameday.demo.cache import ProfileCache
from gameday.demo.database import ProfileDatabase
from gameday.demo.metrics import ServiceMetrics
from gameday.demo.resilience import CallPolicy as CallPolicy  # re-exported from its old home
from gameday.demo.resilience import CircuitBreaker, RetryPolicy
from gameday.demo.web import error_response, json_response, service_app
from gameday.errors import DependencyFailed as DependencyFailed  # re-exported from its old home
from gameday.injector.asyncpg_points import point_connection_class
from gameday.injector.points import configure_points
from gameday.injector.redis_points import fault_redis
from gameday.injector.transport import AsyncFaultTransport

log = logging.getLogger(__name__)

SERVICE = "user-service"
AUTH = "auth-service"


class Dependency:
    """HTTP calls to one dependency with timeout, retries and an optional breaker, measured.

    ``transport_rules`` names a gameday rules file: the client's transport then injects the
    faults it lists (:class:`~gameday.injector.transport.AsyncFaultTransport`).
    """

    def __init__(self, name: str, base_url: str, policy: CallPolicy, metrics: ServiceMetrics,
                 rng: random.Random | None = None, transport_rules: Path | None = None) -> None:
        self.name = name
        self.policy = policy
        self.breaker = CircuitBreaker() if policy.breaker else None
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
        self.faults: AsyncFaultTransport | None = None
        if transport_rules is not None:
            self.faults = AsyncFaultTransport(transport, rules_file=transport_rules,
                                              target=f"{SERVICE}/{name}")
            transport = self.faults
        self.client = httpx.AsyncClient(base_url=base_url, trust_env=False,
                                        timeout=httpx.Timeout(30.0), transport=transport)
        # Around the fault transport, so an injected fault happens inside the attempt's span.
        traces.instrument_httpx(self.client)
        self._rng = rng or random.Random()
        #: Each phase of an attempt (connect, send, the answer, a pooled connection) gets the
        #: policy's timeout: a delayed answer times out after it, as the call policy says.
        self._attempt_timeout = httpx.Timeout(policy.timeout)
        self.calls = metrics.dependency(name)
        self.calls.watch(self.breaker)
        metrics.dependency_timeout.labels(metrics.service, name).set(policy.timeout)

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """Status and body of ``GET path``; ``DependencyFailed`` when no attempt succeeded.

        Each attempt is a client span of its own; the breaker's state goes on the current
        (server) span, and a refusal is an event there.
        """
        if self.breaker is not None:
            allowed = self.breaker.allow()
            traces.breaker_state(self.breaker.state)
            if not allowed:
                self.calls.rejected.inc()
                traces.breaker_rejected(self.name)
                raise DependencyFailed(self.name, "circuit_open")
        success = False
        try:
            result = await self._attempts(path, headers)
            success = True
            return result
        finally:
            if self.breaker is not None:
                self.breaker.record(success)

    async def _attempts(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        retry = self.policy.retry
        failure = DependencyFailed(self.name, "connect")
        for attempt in range(retry.attempts):
            if attempt:
                self.calls.retries.inc()
                await asyncio.sleep(retry.delay(attempt, self._rng))
            started = time.perf_counter()
            status: int | None = None
            try:
                # httpx's own timeouts, not a cancellation from outside: httpcore 1.0 can leak
                # a pool slot for each request cancelled mid-flight (encode/httpcore#1093), and
                # a service that times out hundreds of calls would end with a full pool.
                with traces.resend(attempt):
                    response = await self.client.get(path, headers=headers,
                                                     timeout=self._attempt_timeout)
                status = response.status_code
            except httpx.TimeoutException:
                reason = "timeout"
            except httpx.HTTPError:
                reason = "connect"
            else:
                if status < 500:
                    self.calls.attempt_took(time.perf_counter() - started)
                    return status, response.content
                reason = "status"
            self.calls.attempt_took(time.perf_counter() - started)
            self.calls.error(reason)
            failure = DependencyFailed(self.name, reason, status)
        raise failure

    async def healthy(self) -> bool:
        """Whether the dependency's ``/health`` answers 200 (one try, no metrics)."""
        try:
            with traces.untraced():
                response = await self.client.get("/health", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def close(self) -> None:
        """Close pooled connections."""
        await self.client.aclose()


@dataclass(frozen=True)
class UserServiceOptions:
    """Where user-service's dependencies are and how it calls them (times in seconds)."""

    auth_url: str
    redis_url: str
    db_url: str
    transport_rules: Path | None = None
    #: The rules file of the fault points its Redis and PostgreSQL calls pass.
    fault_points: Path | None = None
    auth_timeout: float = 0.2
    auth_retries: int = 2
    db_timeout: float = 0.5
    db_retries: int = 1
    cache_timeout: float = 0.05
    db_pool_size: int = 8
    backoff: float = 0.02
    breakers: bool = True


class UserService:
    """user-service's dependencies and the answer to ``GET /users/{id}``."""

    def __init__(self, options: UserServiceOptions, metrics: ServiceMetrics,
                 rng: random.Random | None = None) -> None:
        self.metrics = metrics
        backoff = options.backoff
        self.auth = Dependency(AUTH, options.auth_url, CallPolicy(
            options.auth_timeout, RetryPolicy(options.auth_retries, backoff, 10 * backoff),
            breaker=options.breakers), metrics, rng, options.transport_rules)
        self.cache = ProfileCache(options.redis_url, options.cache_timeout, metrics,
                                  CircuitBreaker() if options.breakers else None)
        connection_class: type[asyncpg.Connection] = asyncpg.Connection
        if options.fault_points is not None:
            # The ready wrappers: no call site changes; the points read the process's rules.
            configure_points(rules_file=options.fault_points)
            metrics.export_fault_points()
            fault_redis(self.cache.client, point="redis")
            connection_class = point_connection_class("postgres")
        self.db = ProfileDatabase(options.db_url, CallPolicy(
            options.db_timeout, RetryPolicy(options.db_retries, backoff, 10 * backoff)),
            options.db_pool_size, metrics, rng, connection_class)

    async def get_user(self, user_id: str, authorization: str | None) -> Response:
        """The answer to ``GET /users/{user_id}``."""
        if not authorization:
            return error_response(401, "missing bearer token")
        try:
            status, _ = await self.auth.get("/verify", {"authorization": authorization})
            if status in (401, 403):
                return error_response(401, "token rejected by auth-service")
            if status != 200:
                return error_response(502, f"auth-service answered {status}")
            profile = await self.cache.get(user_id)
            if profile is None:
                profile = await self.db.fetch(user_id)
                if profile is None:
                    return error_response(404, f"no user {user_id!r}")
                self.cache.put_later(profile)
        except DependencyFailed as exc:
            status = {"circuit_open": 503, "timeout": 504}.get(exc.reason, 502)
            return error_response(status, f"dependency failed: {exc}")
        return json_response({"id": user_id, "profile": profile.as_json()})

    async def ready(self) -> bool:
        """Whether auth-service, the database and the cache all answer (a second each).

        A check that raises what it did not expect counts as not ready and is logged with its
        traceback: a readiness probe answers 503, never 500.
        """
        checks = await asyncio.gather(self.auth.healthy(), self.db.ping(), self.cache.ping(),
                                      return_exceptions=True)
        for name, check in zip(("auth-service", "database", "cache"), checks, strict=True):
            if isinstance(check, Exception):
                log.error("readiness check of %s failed", name, exc_info=check)
        return all(check is True for check in checks)

    async def start(self) -> None:
        """Open the database pool (the other clients connect on first use)."""
        await self.db.open()

    async def close(self) -> None:
        """Close every client."""
        await self.auth.close()
        await self.cache.close()
        await self.db.close()


def user_app(service: UserService) -> Starlette:
    """user-service's routes, opening and closing its clients with the server."""

    async def get_user(request: Request) -> Response:
        return await service.get_user(request.path_params["user_id"],
                                      request.headers.get("authorization"))

    async def ready(request: Request) -> Response:
        is_ready = await service.ready()
        return json_response({"ready": is_ready}, 200 if is_ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.close()

    return service_app([Route("/users/{user_id}", get_user, methods=["GET"]),
                        Route("/ready", ready, methods=["GET"])], service.metrics, lifespan)
