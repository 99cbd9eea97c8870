"""user-service: the demo's front door, and the service game days break.

``GET /users/{id}`` checks the caller's token with auth-service, then reads the profile from
profile-store. Both calls go through gameday fault proxies, so faults injected there reach the
user-service the way a slow or failing dependency would. Each dependency has its own per-attempt
timeout and retry policy; the auth call also sits behind a circuit breaker.

Answers: 200 with the profile; 401 when auth-service rejects the token; 404 for an unknown
profile; 503 when a breaker is open; 504 when the last attempt timed out; 502 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass

import httpx

from gameday.demo.http import Handler, Request, Response, error_response, json_response
from gameday.demo.metrics import BREAKER_STATES, ServiceMetrics
from gameday.demo.resilience import CircuitBreaker, RetryPolicy
from gameday.errors import DependencyFailed as DependencyFailed  # re-exported from its old home

SERVICE = "user-service"


@dataclass(frozen=True)
class CallPolicy:
    """How user-service calls one dependency."""

    timeout: float
    retry: RetryPolicy
    breaker: bool = False


class Dependency:
    """Calls to one dependency with timeout, retries and an optional breaker, all measured."""

    def __init__(self, name: str, base_url: str, policy: CallPolicy, metrics: ServiceMetrics,
                 rng: random.Random | None = None) -> None:
        self.name = name
        self.policy = policy
        self.breaker = CircuitBreaker() if policy.breaker else None
        self.client = httpx.AsyncClient(
            base_url=base_url, trust_env=False, timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
        self._rng = rng or random.Random()
        labels = (SERVICE, name)
        self._latency = metrics.downstream_latency.labels(*labels)
        self._errors = {reason: metrics.downstream_errors.labels(*labels, reason)
                        for reason in ("timeout", "status", "connect")}
        self._retries = metrics.downstream_retries.labels(*labels)
        self._rejected = metrics.downstream_rejected.labels(*labels)
        state = metrics.breaker_state.labels(*labels)
        if self.breaker is not None:
            breaker = self.breaker
            state.set_function(lambda: BREAKER_STATES[breaker.state])

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """Status and body of ``GET path``; ``DependencyFailed`` when no attempt succeeded."""
        if self.breaker is not None and not self.breaker.allow():
            self._rejected.inc()
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
                self._retries.inc()
                await asyncio.sleep(retry.delay(attempt, self._rng))
            started = time.perf_counter()
            status: int | None = None
            try:
                async with asyncio.timeout(self.policy.timeout):
                    response = await self.client.get(path, headers=headers)
                status = response.status_code
            except TimeoutError:
                reason = "timeout"
            except httpx.HTTPError:
                reason = "connect"
            else:
                if status < 500:
                    self._latency.observe(time.perf_counter() - started)
                    return status, response.content
                reason = "status"
            self._latency.observe(time.perf_counter() - started)
            self._errors[reason].inc()
            failure = DependencyFailed(self.name, reason, status)
        raise failure

    async def healthy(self) -> bool:
        """Whether the dependency's ``/health`` answers 200 (one try, no metrics)."""
        try:
            async with asyncio.timeout(1.0):
                response = await self.client.get("/health")
        except (TimeoutError, httpx.HTTPError):
            return False
        return response.status_code == 200

    async def close(self) -> None:
        """Close pooled connections."""
        await self.client.aclose()


def _failure_response(exc: DependencyFailed) -> Response:
    status = {"circuit_open": 503, "timeout": 504}.get(exc.reason, 502)
    return error_response(status, f"dependency failed: {exc}")


def user_handler(metrics: ServiceMetrics, auth: Dependency, profiles: Dependency) -> Handler:
    """The user-service's routes."""

    async def get_user(request: Request, user_id: str) -> Response:
        token = request.headers.get("authorization")
        if not token:
            return error_response(401, "missing bearer token")
        try:
            status, body = await auth.get("/verify", {"authorization": token})
            if status in (401, 403):
                return error_response(401, "token rejected by auth-service")
            if status != 200:
                return error_response(502, f"auth-service answered {status}")
            status, body = await profiles.get(f"/profiles/{user_id}", {})
        except DependencyFailed as exc:
            return _failure_response(exc)
        if status == 404:
            return error_response(404, f"no user {user_id!r}")
        if status != 200:
            return error_response(502, f"profile-store answered {status}")
        return json_response({"id": user_id, "profile": json.loads(body)})

    async def handler(request: Request) -> Response:
        if request.path == "/health":
            return json_response({"status": "ok"})
        if request.path == "/ready":
            ready = all(await asyncio.gather(auth.healthy(), profiles.healthy()))
            return json_response({"ready": ready}, 200 if ready else 503)
        prefix, _, user_id = request.path.rpartition("/")
        if prefix == "/users" and user_id and request.method in ("GET", "HEAD"):
            return await get_user(request, user_id)
        return error_response(404, "not found")

    return metrics.instrument(handler)
