"""The demo services in one process: user-service's timeouts, retries and breaker, the load
generator's open model, and the small HTTP server under them."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from gameday.demo.auth import auth_handler, issue_token
from gameday.demo.http import Handler, Request, Response, error_response, serve
from gameday.demo.load import LoadGenerator, load_handler
from gameday.demo.metrics import ServiceMetrics
from gameday.demo.profiles import open_store, profile_handler
from gameday.demo.resilience import RetryPolicy
from gameday.demo.users import CallPolicy, Dependency, user_handler


async def _start(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


class Scripted:
    """A dependency that answers from a script: an int status, or a float delay then 200."""

    def __init__(self, script: list[int | float], real: Handler) -> None:
        self.script = list(script)
        self.real = real
        self.calls = 0

    async def __call__(self, request: Request) -> Response:
        if request.path == "/health":
            return await self.real(request)
        self.calls += 1
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, float):
            await asyncio.sleep(step)
        elif step != 200:
            return error_response(step, "scripted failure")
        return await self.real(request)


Scenario = Callable[[str, ServiceMetrics, Scripted], Awaitable[None]]


def run_user_service(tmp_path: Path, auth_script: list[int | float],
                     scenario: Scenario, breaker: bool = True) -> None:
    """Start auth, profiles and user-service in-process and run ``scenario`` against them."""

    async def main() -> None:
        db: sqlite3.Connection = open_store(tmp_path / "p.db", users=10)
        auth = Scripted(auth_script, auth_handler(ServiceMetrics("auth-service"), work_ms=0))
        auth_server, auth_url = await _start(auth)
        store_server, store_url = await _start(profile_handler(ServiceMetrics("profile-store"), db))
        metrics = ServiceMetrics("user-service")
        fast = RetryPolicy(retries=2, base=0.001, cap=0.002)
        deps = [Dependency("auth-service", auth_url, CallPolicy(0.1, fast, breaker), metrics),
                Dependency("profile-store", store_url, CallPolicy(0.5, fast), metrics)]
        user_server, user_url = await _start(user_handler(metrics, *deps))
        servers = [auth_server, store_server, user_server]
        try:
            await scenario(user_url, metrics, auth)
        finally:
            for dep in deps:
                await dep.close()
            for server in servers:
                server.close()
            db.close()

    asyncio.run(main())


def _value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"service": "user-service", **labels}) or 0.0


def _bearer(user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {issue_token(user)}"}


async def _get(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.get(url, headers=headers)


def test_a_valid_request_returns_the_profile(tmp_path: Path) -> None:
    """Auth then profile: 200 with the profile, one call to each dependency measured."""

    async def scenario(url: str, metrics: ServiceMetrics, auth: Scripted) -> None:
        response = await _get(f"{url}/users/3", _bearer("3"))
        assert response.status_code == 200
        assert response.json()["profile"]["email"] == "user3@example.test"
        assert _value(metrics, "service_requests_total", code="200") == 1
        for dependency in ("auth-service", "profile-store"):
            assert _value(metrics, "service_downstream_latency_seconds_count",
                          dependency=dependency) == 1
        assert (await _get(f"{url}/users/99", _bearer("99"))).status_code == 404
        assert (await _get(f"{url}/users/3", {"authorization": "Bearer 3.forged"})).status_code \
            == 401
        text = (await _get(f"{url}/metrics")).text
        assert 'service_circuit_breaker_state{dependency="auth-service"' in text

    run_user_service(tmp_path, [], scenario)


def test_failed_auth_attempts_are_retried_and_counted(tmp_path: Path) -> None:
    """Two 503s then success: the user sees 200; 2 errors and 2 retries are counted."""

    async def scenario(url: str, metrics: ServiceMetrics, auth: Scripted) -> None:
        response = await _get(f"{url}/users/1", _bearer("1"))
        assert response.status_code == 200
        assert auth.calls == 3
        assert _value(metrics, "service_downstream_errors_total", dependency="auth-service",
                      reason="status") == 2
        assert _value(metrics, "service_downstream_retries_total",
                      dependency="auth-service") == 2
        assert _value(metrics, "service_downstream_latency_seconds_count",
                      dependency="auth-service") == 3

    run_user_service(tmp_path, [503, 503], scenario)


def test_slow_auth_times_out_on_every_attempt(tmp_path: Path) -> None:
    """Auth slower than its timeout on all three attempts: 504, three timeouts counted."""

    async def scenario(url: str, metrics: ServiceMetrics, auth: Scripted) -> None:
        response = await _get(f"{url}/users/1", _bearer("1"))
        assert response.status_code == 504
        assert _value(metrics, "service_downstream_errors_total", dependency="auth-service",
                      reason="timeout") == 3

    run_user_service(tmp_path, [0.3, 0.3, 0.3], scenario)


def test_breaker_opens_and_answers_fast(tmp_path: Path) -> None:
    """After ten failed auth calls the breaker opens: 503 without calling auth-service."""

    async def scenario(url: str, metrics: ServiceMetrics, auth: Scripted) -> None:
        for _ in range(10):
            assert (await _get(f"{url}/users/1", _bearer("1"))).status_code == 502
        calls = auth.calls
        response = await _get(f"{url}/users/1", _bearer("1"))
        assert response.status_code == 503
        assert auth.calls == calls
        assert _value(metrics, "service_circuit_breaker_state", dependency="auth-service") == 2
        assert _value(metrics, "service_downstream_rejected_total",
                      dependency="auth-service") == 1

    run_user_service(tmp_path, [503] * 30, scenario)


def test_load_leaves_on_schedule_while_answers_lag(tmp_path: Path) -> None:
    """Open model: against a 1 s target, 0.5 s at 40 req/s still sends about 20 requests."""

    async def slow(request: Request) -> Response:
        if request.path == "/ready":
            return Response(200, b"{}")
        await asyncio.sleep(1.0)
        return Response(200, b"{}")

    async def main() -> list[dict[str, Any]]:
        server, url = await _start(slow)
        generator = LoadGenerator(url, rate=40, users=5)
        control, control_url = await _start(load_handler(generator))
        await generator.wait_ready(5)
        runner = asyncio.create_task(generator.run())
        await asyncio.sleep(0.5)
        sent_while_waiting = generator.outstanding
        await asyncio.sleep(1.2)
        runner.cancel()
        samples: list[dict[str, Any]] = (
            await _get(f"{control_url}/samples?since=0")).json()["samples"]
        metrics = (await _get(f"{control_url}/metrics")).text
        await generator.close()
        server.close()
        control.close()
        assert 12 <= sent_while_waiting <= 22
        assert "loadgen_request_duration_seconds_bucket" in metrics
        return samples

    samples = asyncio.run(main())
    assert len(samples) >= 15
    assert all(s["code"] == "200" and s["ms"] >= 1000 for s in samples)
    assert samples == sorted(samples, key=lambda s: s["t"])


def test_server_keeps_connections_and_rejects_bad_requests() -> None:
    """Two requests share one connection; a chunked upload gets 411 and a closed connection."""

    async def echo(request: Request) -> Response:
        return Response(200, request.path.encode(), "text/plain")

    async def main() -> None:
        server, url = await _start(echo)
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in ("/a", "/b"):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert await reader.readexactly(2) == path.encode()
        writer.write(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        assert (await reader.read()).startswith(b"HTTP/1.1 411")
        writer.close()
        server.close()

    asyncio.run(main())
