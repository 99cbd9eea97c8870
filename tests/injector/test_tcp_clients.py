"""Real clients through TCP mode: redis-cli to redis-server, psql to PostgreSQL.

With and without faults: results are correct, the added delay is what the client measures
(psql's ``\\timing``, wall time around redis-cli), and a reset or a limit shows up in the client
as the error it would meet in production. Skipped, naming the package, where redis-server or
PostgreSQL is not installed (``make install`` installs both).
"""

from __future__ import annotations

import re
import socket
import statistics
import time
from collections.abc import Iterator

import pytest

from gameday import procs
from tests.injector.conftest import Proxy, rule
from tests.injector.tcp_servers import (
    postgres_server,
    psql,
    redis_cli,
    redis_server,
    start_tcp_proxy,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """redis-server and a TCP proxy in front of it."""
    folder = tmp_path_factory.mktemp("redis")
    with redis_server(folder) as server:
        proxy = start_tcp_proxy(server, folder / "proxy.log")
        try:
            yield proxy
        finally:
            procs.stop(proxy.pid)


@pytest.fixture(scope="module")
def pg_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """PostgreSQL and a TCP proxy in front of it."""
    with postgres_server() as server:
        proxy = start_tcp_proxy(server, tmp_path_factory.mktemp("pg") / "proxy.log")
        try:
            yield proxy
        finally:
            procs.stop(proxy.pid)


@pytest.fixture
def redis(redis_proxy: Proxy) -> Iterator[Proxy]:
    """The Redis proxy with no rules before and after the test."""
    redis_proxy.put()
    yield redis_proxy
    redis_proxy.put()


@pytest.fixture
def pg(pg_proxy: Proxy) -> Iterator[Proxy]:
    """The PostgreSQL proxy with no rules before and after the test."""
    pg_proxy.put()
    yield pg_proxy
    pg_proxy.put()


# -- Redis --------------------------------------------------------------------------------------


def test_redis_cli_through_the_proxy(redis: Proxy) -> None:
    """SET, GET and a 1 MB value pass unchanged."""
    assert redis_cli(redis.port, "SET", "greeting", "hello").stdout.strip() == "OK"
    assert redis_cli(redis.port, "GET", "greeting").stdout.strip() == "hello"
    big = "v" * 1_000_000
    assert redis_cli(redis.port, "SET", "big", stdin=big).stdout.strip() == "OK"
    assert redis_cli(redis.port, "STRLEN", "big").stdout.strip() == "1000000"
    assert redis_cli(redis.port, "GET", "big").stdout.strip() == big


def _timed_pings(port: int, count: int) -> float:
    started = time.perf_counter()
    result = redis_cli(port, "-r", str(count), "-i", "0", "PING")
    assert result.stdout.split() == ["PONG"] * count, result
    return time.perf_counter() - started


def test_redis_latency_as_the_client_sees_it(redis: Proxy) -> None:
    """200 ms downstream adds ~200 ms to each of five PINGs on one connection."""
    unfaulted = statistics.median(_timed_pings(redis.port, 5) for _ in range(3))
    redis.put(rule("latency", ms=200))
    faulted = _timed_pings(redis.port, 5)
    assert 5 * 0.2 - 0.02 <= faulted - unfaulted < 5 * 0.2 + 0.8, (unfaulted, faulted)


def test_redis_open_connection_meets_a_new_rule(redis: Proxy) -> None:
    """A client connected before the rule: its next command is delayed, then fast again."""
    with socket.create_connection(("127.0.0.1", redis.port), timeout=10) as sock:

        def ping() -> float:
            started = time.perf_counter()
            sock.sendall(b"PING\r\n")
            assert sock.recv(64) == b"+PONG\r\n"
            return time.perf_counter() - started

        before = statistics.median(ping() for _ in range(5))
        stored = redis.put(rule("latency", ms=150, direction="upstream"))[0]
        assert ping() - before >= 0.14
        with redis.admin() as admin:
            admin.delete(f"/rules/{stored['id']}")
        assert ping() < before + 0.05


def test_redis_reset_and_recovery(redis: Proxy) -> None:
    """A reset rule: redis-cli meets a reset; the rule deleted, it works again."""
    stored = redis.put(rule("reset"))[0]
    result = redis_cli(redis.port, "PING")
    assert "PONG" not in result.stdout
    assert re.search(r"reset|closed|Connection", result.stdout + result.stderr), result
    with redis.admin() as admin:
        admin.delete(f"/rules/{stored['id']}")
    assert redis_cli(redis.port, "PING").stdout.strip() == "PONG"


def test_redis_limit_data_cuts_a_large_reply(redis: Proxy) -> None:
    """limit_data 1000 downstream: a 100 kB GET never completes; small replies still do."""
    assert redis_cli(redis.port, "SET", "large", stdin="L" * 100_000).stdout.strip() == "OK"
    redis.put(rule("limit_data", bytes=1000))
    result = redis_cli(redis.port, "GET", "large")
    assert "L" * 100_000 not in result.stdout


# -- PostgreSQL ---------------------------------------------------------------------------------


def _query_ms(port: int, sql: str) -> tuple[str, float]:
    """The result of ``sql`` and psql's own measure of it (``\\timing``), in ms."""
    result = psql(port, "\\timing on", sql)
    lines = [line for line in result.stdout.strip().splitlines()
             if not line.startswith(("Timing is", "Time:"))]
    found = re.search(r"Time: ([\d.]+) ms", result.stdout)
    assert found, result.stdout
    return lines[0], float(found.group(1))


def test_psql_through_the_proxy(pg: Proxy) -> None:
    """Queries, a large result and DDL come back right."""
    assert psql(pg.port, "select count(*) from generate_series(1, 100000)").stdout.strip() \
        == "100000"
    assert psql(pg.port, "select length(repeat('x', 2000000))").stdout.strip() == "2000000"
    assert len(psql(pg.port, "select repeat('y', 1000000)").stdout.strip()) == 1_000_000
    psql(pg.port, "create table if not exists t (id int primary key, name text)")
    psql(pg.port, "insert into t values (1, 'one') on conflict do nothing")
    assert psql(pg.port, "select name from t where id = 1").stdout.strip() == "one"


def test_psql_latency_as_the_client_sees_it(pg: Proxy) -> None:
    """100 ms downstream: psql's \\timing of one query grows by ~100 ms, the answer stays."""
    unfaulted = statistics.median(_query_ms(pg.port, "select 42")[1] for _ in range(3))
    pg.put(rule("latency", ms=100))
    answer, faulted = _query_ms(pg.port, "select 42")
    assert answer == "42"
    assert 95 <= faulted - unfaulted < 600, (unfaulted, faulted)


def test_psql_large_result_under_latency(pg: Proxy) -> None:
    """A 5 MB result under 100 ms downstream is late by about the delay, not per chunk."""
    _, unfaulted = _query_ms(pg.port, "select length(string_agg(repeat('z', 100), '')) "
                                      "from generate_series(1, 50000)")
    _, plain = _query_ms(pg.port, "select repeat('z', 5000000)")
    pg.put(rule("latency", ms=100))
    _, faulted = _query_ms(pg.port, "select repeat('z', 5000000)")
    assert faulted - plain < 100 + 900, (unfaulted, plain, faulted)


def test_psql_meets_a_reset_then_recovers(pg: Proxy) -> None:
    """A reset on every connection: psql fails to connect; after the rule it connects."""
    stored = pg.put(rule("reset"))[0]
    result = psql(pg.port, "select 1", check=False)
    assert result.returncode != 0
    assert re.search(r"reset|closed|terminated", result.stderr), result.stderr
    with pg.admin() as admin:
        admin.delete(f"/rules/{stored['id']}")
    assert psql(pg.port, "select 1").stdout.strip() == "1"


def test_psql_under_a_slicer_still_reads_whole_messages(pg: Proxy) -> None:
    """Responses cut into 7-byte pieces: the protocol reassembles them, results are right."""
    pg.put(rule("slicer", size_bytes=7, size_variation=3, delay_ms=0, direction="both"))
    assert psql(pg.port, "select string_agg(g::text, ',') from generate_series(1, 50) g"
                ).stdout.strip() == ",".join(str(i) for i in range(1, 51))
