"""user-service and auth-service on uvicorn against a real Redis and PostgreSQL: the cache and
its breaker, database retries and timeouts, auth timeouts, retries and breaker, the command
lines."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from gameday import procs
from gameday.demo.auth import auth_app, issue_token
from gameday.demo.cache import TTL_SECONDS
from gameday.demo.metrics import ServiceMetrics
from gameday.demo.users import UserService, UserServiceOptions, user_app
from tests.demo.conftest import RunningPostgres, RunningRedis
from tests.demo.servers import eventually, serving

pytestmark = pytest.mark.integration

CATALOG_SIGNALS = Path(__file__).parents[2] / "catalog" / "signals.yaml"
OTHERS = "FROM pg_stat_activity WHERE datname = 'profiles' AND pid <> pg_backend_pid()"
KILL = f"SELECT pg_terminate_backend(pid) {OTHERS}"
BACKENDS = f"SELECT pid {OTHERS}"


@dataclass(frozen=True)
class Backends:
    """The module's PostgreSQL and Redis, Redis emptied for each test."""

    db_url: str
    redis_url: str
    password: str


@pytest.fixture
def backends(postgres: RunningPostgres, redis_server: RunningRedis,
             monkeypatch: pytest.MonkeyPatch) -> Backends:
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return Backends(postgres.dsn("profiles"), redis_server.url, postgres.password)


class ScriptedAuth:
    """The real auth-service behind a script: an int status, or a float delay, per /verify."""

    def __init__(self, script: Sequence[int | float]) -> None:
        self.app = auth_app(ServiceMetrics("auth-service"), work_ms=0)
        self.script = list(script)
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/verify":
            self.calls += 1
            step = self.script.pop(0) if self.script else 200
            if isinstance(step, float):
                await asyncio.sleep(step)
            elif step != 200:
                await JSONResponse({"error": "scripted"}, step)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass
class Case:
    """A running user-service and what a scenario looks at."""

    url: str
    metrics: ServiceMetrics
    auth: ScriptedAuth
    service: UserService
    client: httpx.AsyncClient

    def value(self, name: str, **labels: str) -> float:
        query = {"service": "user-service", **labels}
        return self.metrics.registry.get_sample_value(name, query) or 0.0

    async def user(self, user_id: str, token: str | None = None) -> httpx.Response:
        token = token or issue_token(user_id)
        return await self.client.get(f"{self.url}/users/{user_id}",
                                     headers={"authorization": f"Bearer {token}"})


def run_user_service(backends: Backends, scenario: Callable[[Case], Awaitable[None]],
                     auth_script: Sequence[int | float] = (), **options: Any) -> None:
    """Start auth-service and user-service in-process, run ``scenario`` against them.

    auth-service's timeout is long unless a test is about timeouts: on a busy machine a
    stalled event loop would otherwise turn a scripted answer into a timeout."""

    async def main() -> None:
        auth = ScriptedAuth(auth_script)
        async with serving(auth) as auth_url:
            settings = UserServiceOptions(auth_url, backends.redis_url, backends.db_url,
                                          auth_timeout=2.0, cache_timeout=0.1, backoff=0.001)
            metrics = ServiceMetrics("user-service")
            service = UserService(dataclasses.replace(settings, **options), metrics)
            async with (serving(user_app(service)) as url,
                        httpx.AsyncClient(trust_env=False, timeout=10) as client):
                await scenario(Case(url, metrics, auth, service, client))

    asyncio.run(main())


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        yield int(sock.getsockname()[1])


def test_profile_comes_from_the_database_then_from_redis(backends: Backends) -> None:
    """A miss reads PostgreSQL and fills Redis; the next read is a hit; 404 and 401 answer."""

    async def scenario(case: Case) -> None:
        first = await case.user("3")
        assert first.status_code == 200
        profile = {"id": "3", "name": "User 3", "email": "user3@example.test", "plan": "free"}
        assert first.json() == {"id": "3", "profile": profile}
        assert case.value("service_cache_requests_total", result="miss") == 1
        assert case.value("service_downstream_latency_seconds_count", dependency="postgres") == 1
        cache = redis.asyncio.Redis.from_url(backends.redis_url)
        await eventually(lambda: cache.exists("profile:3"))
        assert json.loads(await cache.get("profile:3")) == profile
        assert 0 < await cache.ttl("profile:3") <= TTL_SECONDS
        await cache.aclose()
        second = await case.user("3")
        assert second.json() == first.json()
        assert case.value("service_cache_requests_total", result="hit") == 1
        assert case.value("service_downstream_latency_seconds_count", dependency="postgres") == 1
        assert (await case.user("999")).status_code == 404
        assert (await case.user("3", token="3.forged")).status_code == 401
        assert case.value("service_requests_total", code="200") == 2
        assert case.value("service_db_pool_wait_seconds_count", dependency="postgres") >= 2
        assert case.value("service_db_pool_connections", state="idle") >= 1
        assert (await case.client.get(f"{case.url}/ready")).status_code == 200
        text = (await case.client.get(f"{case.url}/metrics")).text
        assert 'service_circuit_breaker_state{dependency="redis"' in text
        # Probes and scrapes are not traffic.
        assert case.value("service_requests_total", code="200") == 2

    run_user_service(backends, scenario)


@pytest.mark.parametrize("outage", ["refused", "silent"])
def test_a_cache_outage_falls_back_to_the_database(backends: Backends, outage: str) -> None:
    """Redis gone or mute: every request still 200; errors counted, then the breaker skips."""
    with silent_port() as silent:
        port = closed_port() if outage == "refused" else silent

        async def scenario(case: Case) -> None:
            for n in range(1, 21):
                started = time.perf_counter()
                assert (await case.user(str(n))).status_code == 200
                assert time.perf_counter() - started < 2.0
            reason = "connect" if outage == "refused" else "timeout"
            assert case.value("service_downstream_errors_total", dependency="redis",
                              reason=reason) >= 5
            assert case.value("service_cache_requests_total", result="error") >= 3
            assert case.value("service_cache_requests_total", result="skipped") >= 5
            assert case.value("service_downstream_rejected_total", dependency="redis") >= 5
            assert case.value("service_circuit_breaker_state", dependency="redis") == 2
            assert case.value("service_cache_requests_total", result="hit") == 0
            assert (await case.client.get(f"{case.url}/ready")).status_code == 503

        run_user_service(dataclasses.replace(backends, redis_url=f"redis://127.0.0.1:{port}/0"),
                         scenario)


async def now(db: asyncpg.Connection, query: str) -> Any:
    """``query``'s value on pg_stat_activity as it is now: inside a transaction PostgreSQL reads
    it once and keeps that copy, which would never show a backend that began waiting later."""
    await db.execute("SELECT pg_stat_clear_snapshot()")
    return await db.fetchval(query)


def test_killed_database_connections_are_replaced(backends: Backends) -> None:
    """Idle connections killed: the next requests get new ones. One killed mid-query: the
    read is retried once, on a new connection, and answers."""

    async def scenario(case: Case) -> None:
        assert (await case.user("10")).status_code == 200
        db = await asyncpg.connect(backends.db_url, password=backends.password)
        try:
            killed = {row[0] for row in await db.fetch(BACKENDS)}
            assert len(await db.fetch(KILL)) == len(killed) >= 1
            for n in range(11, 16):
                assert (await case.user(str(n))).status_code == 200

            async def replaced() -> bool:
                return not killed & {row[0] for row in await db.fetch(BACKENDS)}

            await eventually(replaced)
            retries = case.value("service_downstream_retries_total", dependency="postgres")
            errors = case.value("service_downstream_errors_total", dependency="postgres",
                                reason="connect")
            # A lock makes the next query wait in the server, where it is killed.
            async with db.transaction():
                await db.execute("LOCK TABLE profiles IN ACCESS EXCLUSIVE MODE")
                request = asyncio.create_task(case.user("20"))
                waiting = f"{OTHERS} AND wait_event_type = 'Lock'"
                await eventually(lambda: now(db, f"SELECT count(*) > 0 {waiting}"), timeout=30.0)
                # Only the waiting one: the pool's other connections stay good for the retry.
                assert await now(db, f"SELECT count(pg_terminate_backend(pid)) {waiting}") == 1
            response = await request
        finally:
            await db.close()
        assert response.status_code == 200, response.text
        assert response.json()["profile"]["email"] == "user20@example.test"
        assert case.value("service_downstream_retries_total", dependency="postgres") == \
            retries + 1
        assert case.value("service_downstream_errors_total", dependency="postgres",
                          reason="connect") == errors + 1

    run_user_service(backends, scenario, db_timeout=5.0, backoff=0.05)


def test_a_slow_database_times_out_and_recovers(backends: Backends) -> None:
    """A query held past its timeout twice: 504, two timeouts counted; the cancelled queries'
    connections go back to the pool, and the next request is served by it."""

    async def scenario(case: Case) -> None:
        assert (await case.user("30")).status_code == 200
        db = await asyncpg.connect(backends.db_url, password=backends.password)
        try:
            async with db.transaction():
                await db.execute("LOCK TABLE profiles IN ACCESS EXCLUSIVE MODE")
                started = time.perf_counter()
                response = await case.user("31")
                elapsed = time.perf_counter() - started
        finally:
            await db.close()
        assert response.status_code == 504, response.text
        assert 0.6 <= elapsed < 3.0
        assert case.value("service_downstream_errors_total", dependency="postgres",
                          reason="timeout") == 2
        assert case.value("service_downstream_retries_total", dependency="postgres") == 1
        assert (await case.user("31")).status_code == 200
        await eventually(lambda: case.value("service_db_pool_connections", state="used") == 0)

    run_user_service(backends, scenario, db_timeout=0.3)


def test_failed_auth_attempts_are_retried_and_counted(backends: Backends) -> None:
    """Two 503s then success: 200; 2 errors, 2 retries and 3 attempts counted."""

    async def scenario(case: Case) -> None:
        assert (await case.user("1")).status_code == 200
        assert case.auth.calls == 3
        labels = {"dependency": "auth-service"}
        assert case.value("service_downstream_errors_total", reason="status", **labels) == 2
        assert case.value("service_downstream_retries_total", **labels) == 2
        assert case.value("service_downstream_latency_seconds_count", **labels) == 3

    run_user_service(backends, scenario, auth_script=[503, 503])


def test_slow_auth_times_out_on_every_attempt(backends: Backends) -> None:
    """auth-service slower than its timeout three times: 504, three timeouts counted."""

    async def scenario(case: Case) -> None:
        assert (await case.user("1")).status_code == 504
        assert case.value("service_downstream_errors_total", dependency="auth-service",
                          reason="timeout") == 3

    run_user_service(backends, scenario, auth_script=[0.6, 0.6, 0.6], auth_timeout=0.25)


def test_auth_down_is_502_then_the_breaker_answers_503(backends: Backends) -> None:
    """No auth-service: 502 after three connect errors, until the breaker opens: 503."""

    async def scenario(case: Case) -> None:
        for _ in range(10):
            assert (await case.user("1")).status_code == 502
        assert case.value("service_downstream_errors_total", dependency="auth-service",
                          reason="connect") == 30
        assert case.value("service_circuit_breaker_state", dependency="auth-service") == 2
        assert (await case.user("1")).status_code == 503
        assert case.value("service_downstream_rejected_total", dependency="auth-service") == 1
        assert (await case.client.get(f"{case.url}/ready")).status_code == 503

    run_user_service(backends, scenario, auth_url=f"http://127.0.0.1:{closed_port()}")


def test_transport_rules_inject_faults_into_auth_calls(backends: Backends,
                                                        tmp_path: Path) -> None:
    """An abort rule in --transport-rules reaches auth calls without a proxy: 502."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{
        "fault": {"kind": "abort", "status": 503}, "ttl": 60,
        "labels": {"run": "run-1", "scenario": "t", "environment": "demo", "step": 1}}]}))

    async def scenario(case: Case) -> None:
        faults = case.service.auth.faults
        assert faults is not None
        await eventually(faults.active_rules)
        assert (await case.user("1")).status_code == 502
        assert case.auth.calls == 0
        assert case.value("service_downstream_errors_total", dependency="auth-service",
                          reason="status") == 3

    run_user_service(backends, scenario, transport_rules=rules)


def test_catalog_signals_find_their_metrics(backends: Backends) -> None:
    """Every service_* metric catalog/signals.yaml queries is in user-service's /metrics."""
    wanted = set(re.findall(r"\b(service_[a-z_]+)\{", CATALOG_SIGNALS.read_text()))
    assert {"service_requests_total", "service_cache_requests_total"} <= wanted

    async def scenario(case: Case) -> None:
        assert (await case.user("1")).status_code == 200
        text = (await case.client.get(f"{case.url}/metrics")).text
        missing = {name for name in wanted if not re.search(rf"^{name}\{{", text, re.M)}
        assert not missing

    run_user_service(backends, scenario)


def test_the_parts_run_from_their_command_lines(backends: Backends) -> None:
    """The stack's command lines: ready, serving, and SIGTERM ends each with 0 promptly."""
    auth_port, user_port = procs.free_port(), procs.free_port()
    python = [sys.executable, "-m", "gameday.demo"]
    argvs = [
        [*python, "auth-service", "--port", str(auth_port)],
        [*python, "user-service", "--port", str(user_port),
         "--auth-url", f"http://127.0.0.1:{auth_port}", "--redis-url", backends.redis_url,
         "--db-url", backends.db_url],
    ]
    processes = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for argv in argvs]
    base = f"http://127.0.0.1:{user_port}"
    try:
        procs.wait_until(lambda: procs.port_open(user_port), 30, what="user-service")
        procs.wait_until(lambda: httpx.get(f"{base}/ready", trust_env=False).status_code == 200,
                         30, what="user-service ready")
        response = httpx.get(f"{base}/users/5", trust_env=False,
                             headers={"authorization": f"Bearer {issue_token('5')}"})
        assert response.json()["profile"]["email"] == "user5@example.test"
        for process in reversed(processes):
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
            assert time.monotonic() - started < 5
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process in processes:
        _, errors = process.communicate()
        assert backends.password not in errors
