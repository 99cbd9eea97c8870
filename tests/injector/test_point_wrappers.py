"""The ready fault-point wrappers on real servers: redis-py (sync and asyncio) and asyncpg.

A redis-server and a PostgreSQL are started for the module (tests/injector/tcp_servers.py) and
stopped by PID. Each fault is checked from both ends: what the service's call sees (the
library's own exception, a delay, the real answer) and what the server got (a command under an
error rule never reaches it, read back with a clean client). Time is bounded below only, with
upper bounds of seconds: the suite runs on two busy cores.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import asyncpg.exceptions
import pytest
import redis
import redis.asyncio
import redis.exceptions
from prometheus_client import REGISTRY

from gameday.faults import ErrorFault, LatencyFault
from gameday.injector.asyncpg_points import (
    connect_faulted,
    create_faulted_pool,
    point_connection_class,
)
from gameday.injector.points import PointRules
from gameday.injector.redis_points import fault_redis
from gameday.injector.rules import Rule
from gameday.records import Labels
from tests.injector.tcp_servers import postgres_server, psql, redis_server
from tests.injector.test_transport import replace, settled

pytestmark = pytest.mark.integration

T = TypeVar("T")
LABELS = Labels(run="run-wrappers", scenario="client-points", environment="test", step=1)
#: Lower bounds of a delay allow for timer granularity; upper bounds for a loaded machine.
EARLY = 0.005
SLOW = 10.0
#: How long a rule's end may take to show in calls polled every 10 ms (it is checked by the
#: clock on every call; this is scheduling slack on two busy cores, not the injector's).
ENDS_WITHIN = 2.0


def point_rule(fault: ErrorFault | LatencyFault, points: tuple[str, ...] = ("redis",),
               expires_in: float = 60, rule_id: str = "r1") -> Rule:
    """A point rule expiring ``expires_in`` seconds from now."""
    return Rule(id=rule_id, fault=fault, labels=LABELS, expires_at=time.time() + expires_in,
                points=points)


def given(*rules: Rule) -> PointRules:
    """Rules given directly (no file), seeded."""
    return PointRules(rules=list(rules), seed=7)


def injected(point: str, kind: str) -> float:
    """``chaos_faults_injected_total`` for this module's labels at ``point``."""
    return REGISTRY.get_sample_value("chaos_faults_injected_total", {
        "run": LABELS.run, "scenario": LABELS.scenario, "environment": LABELS.environment,
        "fault": kind, "target": "", "point": point}) or 0.0


def write_file(path: Path, *rules: Rule, tick: int) -> None:
    """The rules file the transport driver writes, swapped in whole with a distinct mtime."""
    document = {"rules": [rule.model_dump(mode="json") for rule in rules]}
    replace(path, json.dumps(document).encode(), tick)


def until_passes(call: Callable[[], object], error: type[BaseException]) -> float:
    """Call every 10 ms until a call does not raise ``error``: the time it passed."""
    deadline = time.monotonic() + SLOW
    while True:
        try:
            call()
        except error:
            assert time.monotonic() < deadline, "the fault never stopped"
            time.sleep(0.01)
            continue
        return time.time()


# -- redis ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server for the module."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.port


@pytest.fixture
def plain(redis_port: int) -> Iterator[redis.Redis]:
    """A clean, unwrapped client on an empty database: what the server really holds."""
    client = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=30)
    client.flushdb()
    yield client
    client.close()


@dataclass
class Client:
    """A wrapped client, sync or asyncio, driven from the test's sync code."""

    redis: Any
    loop: asyncio.AbstractEventLoop | None

    def done(self, result: Any) -> Any:
        """``result``, awaited on the client's loop for an asyncio client."""
        return self.loop.run_until_complete(result) if self.loop is not None else result

    def __call__(self, command: str, *args: Any) -> Any:
        return self.done(getattr(self.redis, command)(*args))

    def timed(self, command: str, *args: Any) -> tuple[Any, float]:
        started = time.monotonic()
        result = self(command, *args)
        return result, time.monotonic() - started


@pytest.fixture(params=["sync", "asyncio"])
def wrap(request: pytest.FixtureRequest, redis_port: int,
         plain: redis.Redis) -> Iterator[Callable[..., Client]]:
    """``wrap(rules, point="redis")``: a new client of the kind the test runs for, faulted."""
    loop = asyncio.new_event_loop() if request.param == "asyncio" else None
    made: list[Client] = []

    def make(rules: PointRules, point: str = "redis") -> Client:
        kind = redis.asyncio.Redis if loop is not None else redis.Redis
        client = Client(fault_redis(kind(host="127.0.0.1", port=redis_port, socket_timeout=30),
                                    point, rules), loop)
        made.append(client)
        return client

    yield make
    for client in made:
        if loop is not None:
            loop.run_until_complete(client.redis.aclose())
        else:
            client.redis.close()
    if loop is not None:
        loop.close()


@pytest.mark.parametrize(("error", "raised"), [
    ("connection", redis.exceptions.ConnectionError),
    ("timeout", redis.exceptions.TimeoutError),
])
def test_an_error_rule_raises_redis_own_exception_and_sends_nothing(
        wrap: Callable[..., Client], plain: redis.Redis, error: str,
        raised: type[Exception]) -> None:
    """The command raises what redis-py raises; the server never got it; it is counted."""
    client = wrap(given(point_rule(ErrorFault(error=error))))
    before = injected("redis", "error")
    with pytest.raises(raised, match="fault injected at redis"):
        client("set", "greeting", "hello")
    with pytest.raises(raised):
        client("get", "greeting")
    assert plain.get("greeting") is None
    assert plain.dbsize() == 0
    assert injected("redis", "error") == before + 2


def test_latency_delays_the_command_which_then_succeeds(wrap: Callable[..., Client],
                                                       plain: redis.Redis) -> None:
    """A 300 ms latency rule: at least 300 ms, then the command reaches the server."""
    client = wrap(given(point_rule(LatencyFault(ms=300))))
    before = injected("redis", "latency")
    result, elapsed = client.timed("set", "greeting", "hello")
    assert result is True
    assert 0.3 - EARLY <= elapsed < SLOW
    assert plain.get("greeting") == b"hello"
    assert client("get", "greeting") == b"hello"
    assert injected("redis", "latency") == before + 2


def test_a_pipeline_passes_the_point_once(wrap: Callable[..., Client],
                                          plain: redis.Redis) -> None:
    """Three queued commands, one pass: one delay, one count; an error sends none of them and
    leaves the pipeline empty (as a failed execute does in redis-py)."""
    slow = wrap(given(point_rule(LatencyFault(ms=200))))
    before = injected("redis", "latency")
    pipe = slow.redis.pipeline()
    for key in ("a", "b", "c"):
        pipe.set(key, key)
    started = time.monotonic()
    assert slow.done(pipe.execute()) == [True, True, True]
    assert 0.2 - EARLY <= time.monotonic() - started < SLOW
    assert injected("redis", "latency") == before + 1
    assert plain.mget("a", "b", "c") == [b"a", b"b", b"c"]

    failing = wrap(given(point_rule(ErrorFault(error="connection"))))
    pipe = failing.redis.pipeline()
    pipe.set("d", "d").incr("counter")
    with pytest.raises(redis.exceptions.ConnectionError):
        failing.done(pipe.execute())
    assert len(pipe) == 0
    assert plain.exists("d", "counter") == 0


def test_watch_sends_its_commands_through_the_point(wrap: Callable[..., Client],
                                                    plain: redis.Redis) -> None:
    """WATCH and the reads after it are sent at once, not by execute: they pass the point."""
    client = wrap(given(point_rule(ErrorFault(error="timeout"))))
    pipe = client.redis.pipeline()
    with pytest.raises(redis.exceptions.TimeoutError):
        client.done(pipe.watch("balance"))
    client.done(pipe.reset())


def test_probability_zero_and_other_points_leave_commands_alone(wrap: Callable[..., Client],
                                                               plain: redis.Redis) -> None:
    """Rules that never fire, or that name other points, change nothing and count nothing."""
    before = injected("redis", "error"), injected("redis", "latency")
    never = wrap(given(point_rule(ErrorFault(error="connection", probability=0.0)),
                       point_rule(LatencyFault(ms=10_000, probability=0.0), rule_id="r2")))
    others = wrap(given(point_rule(ErrorFault(error="connection"),
                                   points=("postgres", "redis.sessions", "red"))))
    for client, key in ((never, "one"), (others, "two")):
        started = time.monotonic()
        for _ in range(20):
            assert client("set", key, key) is True
        assert time.monotonic() - started < SLOW / 2
        assert plain.get(key) == key.encode()
        pipe = client.redis.pipeline()
        pipe.incr(f"{key}:n").incr(f"{key}:n")
        assert client.done(pipe.execute()) == [1, 2]
    assert (injected("redis", "error"), injected("redis", "latency")) == before


def test_a_named_point_and_a_prefix_pattern(wrap: Callable[..., Client],
                                            plain: redis.Redis) -> None:
    """``point=`` names the point; a rule's ``cache.*`` covers it."""
    client = wrap(given(point_rule(ErrorFault(error="connection"), points=("cache.*",))),
                  "cache.sessions")
    before = injected("cache.sessions", "error")
    with pytest.raises(redis.exceptions.ConnectionError, match=re.escape("at cache.sessions")):
        client("set", "session", "s")
    assert injected("cache.sessions", "error") == before + 1
    assert plain.get("session") is None


def test_wrapping_twice_faults_once_and_the_last_wrap_wins(wrap: Callable[..., Client],
                                                          plain: redis.Redis) -> None:
    """A second wrap replaces the first: one count per command, for the last point only."""
    rules = given(point_rule(LatencyFault(ms=1), points=("first", "second")))
    client = wrap(rules, "first")
    assert fault_redis(client.redis, "first", rules) is client.redis
    before = injected("first", "latency")
    client("set", "k", "v")
    pipe = client.redis.pipeline()
    client.done(pipe.get("k").execute())
    assert injected("first", "latency") == before + 2

    fault_redis(client.redis, "second", rules)
    first, second = injected("first", "latency"), injected("second", "latency")
    client("get", "k")
    assert (injected("first", "latency"), injected("second", "latency")) == (first, second + 1)


def test_an_expired_rule_stops_at_once(wrap: Callable[..., Client], plain: redis.Redis) -> None:
    """An error rule 0.3 s from its end: calls fail until it ends, then every call passes."""
    rule = point_rule(ErrorFault(error="connection"), expires_in=0.3)
    client = wrap(given(rule))
    passed = until_passes(lambda: client("set", "k", "v"), redis.exceptions.ConnectionError)
    assert rule.expires_at <= passed < rule.expires_at + ENDS_WITHIN
    for _ in range(20):
        assert client("incr", "n") is not None
    assert plain.get("n") == b"20"


def test_a_rule_deleted_from_the_rules_file_stops_at_once(
        wrap: Callable[..., Client], plain: redis.Redis, tmp_path: Path) -> None:
    """The file's rule faults calls; once it is deleted from the file, every call passes."""
    path = tmp_path / "rules.json"
    write_file(path, point_rule(ErrorFault(error="timeout")), tick=1)
    rules = PointRules(rules_file=path)
    try:
        client = wrap(rules)

        def faulted() -> bool:
            try:
                client("ping")
            except redis.exceptions.TimeoutError:
                return True
            return False

        settled(faulted, "the file's rule")
        write_file(path, tick=2)
        deleted = time.time()
        passed = until_passes(lambda: client("set", "k", "v"), redis.exceptions.TimeoutError)
        assert passed - deleted < ENDS_WITHIN
        for _ in range(20):
            client("incr", "n")
        assert plain.get("n") == b"20"
    finally:
        rules.close()


@pytest.mark.parametrize("content", [None, b"{not json", b'{"rules": [{"id": 1}]}'])
def test_a_bad_rules_file_never_breaks_a_command(wrap: Callable[..., Client],
                                                 plain: redis.Redis, tmp_path: Path,
                                                 content: bytes | None) -> None:
    """Missing, unreadable or invalid: nothing is injected, every command works."""
    path = tmp_path / "rules.json"
    if content is not None:
        path.write_bytes(content)
    rules = PointRules(rules_file=path)
    try:
        client = wrap(rules)
        assert client("set", "k", "v") is True
        assert client("get", "k") == b"v"
    finally:
        rules.close()


# -- asyncpg ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL for the module, with table ``items``."""
    with postgres_server() as server:
        psql(server.port, "create table items (id int primary key, name text)")
        yield f"postgresql://postgres@127.0.0.1:{server.port}/postgres?sslmode=disable"


@pytest.fixture
def dsn(pg_dsn: str) -> str:
    """The module's PostgreSQL, ``items`` emptied."""
    run(plain_query(pg_dsn, "truncate items"))
    return pg_dsn


def run(awaitable: Awaitable[T]) -> T:
    """Run one coroutine on a fresh loop."""
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


async def plain_query(dsn: str, query: str, *args: Any) -> Any:
    """``fetch`` on a clean connection of its own: what the server really holds."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def rows(dsn: str) -> list[tuple[int, str]]:
    return [tuple(row) for row in await plain_query(dsn, "select id, name from items "
                                                         "order by id")]


def pg_rule(fault: ErrorFault | LatencyFault, **fields: Any) -> Rule:
    return point_rule(fault, points=fields.pop("points", ("postgres",)), **fields)


@pytest.mark.parametrize(("error", "raised"), [
    ("connection", asyncpg.exceptions.ConnectionDoesNotExistError),
    ("timeout", TimeoutError),
])
def test_asyncpg_error_rules_fault_every_query_method_and_send_nothing(
        dsn: str, error: str, raised: type[Exception], tmp_path: Path) -> None:
    """Each query method raises what asyncpg raises; no row reaches PostgreSQL."""
    klass = point_connection_class(rules=given(pg_rule(ErrorFault(error=error))))
    calls: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "execute": lambda c: c.execute("insert into items values (1, 'a')"),
        "executemany": lambda c: c.executemany("insert into items values ($1, $2)",
                                               [(2, "b"), (3, "c")]),
        "fetch": lambda c: c.fetch("insert into items values (4, 'd') returning id"),
        "fetchrow": lambda c: c.fetchrow("insert into items values (5, 'e') returning id"),
        "fetchval": lambda c: c.fetchval("insert into items values (6, 'f') returning id"),
        "fetchmany": lambda c: c.fetchmany("insert into items values ($1, $2)", [(7, "g")]),
        "prepare": lambda c: c.prepare("select 1"),
        "copy_records_to_table": lambda c: c.copy_records_to_table("items",
                                                                   records=[(8, "h")]),
        "copy_to_table": lambda c: c.copy_to_table("items", source=io.BytesIO(b"9\ti\n")),
        "copy_from_table": lambda c: c.copy_from_table("items", output=io.BytesIO()),
        "copy_from_query": lambda c: c.copy_from_query("select 1", output=io.BytesIO()),
    }

    async def main() -> None:
        conn = await asyncpg.connect(dsn, connection_class=klass)
        try:
            before = injected("postgres", "error")
            for name, call in calls.items():
                with pytest.raises(raised, match="fault injected at postgres"):
                    await call(conn)
                assert injected("postgres", "error") == before + 1, name
                before += 1
            assert not conn.is_closed()
        finally:
            await conn.close()
        assert await rows(dsn) == []

    run(main())


def test_asyncpg_latency_delays_then_returns_the_real_row(dsn: str) -> None:
    """Connection level: 300 ms at least, then PostgreSQL's own answer."""
    async def main() -> None:
        conn = await connect_faulted(dsn, rules=given(pg_rule(LatencyFault(ms=300))))
        try:
            started = time.monotonic()
            row = await conn.fetchrow("select $1::int + 1 as answer, "
                                      "current_setting('server_version_num') as version", 41)
            assert 0.3 - EARLY <= time.monotonic() - started < SLOW
        finally:
            await conn.close()
        assert row is not None and row["answer"] == 42
        assert row["version"].startswith("15")

    run(main())


def test_asyncpg_untouched_queries_return_the_real_rows(dsn: str) -> None:
    """Probability 0 and another point's rule: the inserted row is read back as it is."""
    rules = given(pg_rule(ErrorFault(error="connection", probability=0.0)),
                  pg_rule(ErrorFault(error="connection"), points=("redis", "postgres.x"),
                          rule_id="r2"))
    before = injected("postgres", "error")

    async def main() -> None:
        conn = await connect_faulted(dsn, rules=rules)
        try:
            await conn.execute("insert into items values (1, 'one')")
            assert tuple(await conn.fetchrow("select id, name from items")) == (1, "one")
        finally:
            await conn.close()
        assert await rows(dsn) == [(1, "one")]

    run(main())
    assert injected("postgres", "error") == before


@pytest.mark.parametrize(("error", "raised"), [
    ("connection", asyncpg.exceptions.ConnectionDoesNotExistError),
    ("timeout", TimeoutError),
])
def test_asyncpg_pool_queries_pass_the_point_and_release_is_untouched(
        dsn: str, error: str, raised: type[Exception]) -> None:
    """``pool.fetch()`` and an acquired connection raise; giving the connection back (the
    pool's reset) is not faulted, so the pool keeps it."""
    async def main() -> None:
        rules = given(pg_rule(ErrorFault(error=error)))
        async with create_faulted_pool(dsn, rules=rules, min_size=1, max_size=1) as pool:
            with pytest.raises(raised):
                await pool.execute("insert into items values (1, 'a')")
            with pytest.raises(raised):
                await pool.fetchval("select 1")
            async with pool.acquire() as conn:
                with pytest.raises(raised):
                    await conn.fetch("insert into items values (2, 'b') returning id")
                held = conn._con  # the real connection behind the pool's proxy
            async with pool.acquire() as conn:
                assert conn._con is held and not held.is_closed()
        assert await rows(dsn) == []

    run(main())


def test_asyncpg_pool_latency_and_real_rows(dsn: str) -> None:
    """Pool level: a delay per query, then PostgreSQL's own rows."""
    async def main() -> None:
        rules = given(pg_rule(LatencyFault(ms=250)))
        before = injected("postgres", "latency")
        async with create_faulted_pool(dsn, rules=rules, min_size=1, max_size=2) as pool:
            started = time.monotonic()
            await pool.execute("insert into items values (1, 'one'), (2, 'two')")
            assert 0.25 - EARLY <= time.monotonic() - started < SLOW
            async with pool.acquire() as conn:
                started = time.monotonic()
                found = [tuple(row) for row in await conn.fetch("select id, name from items "
                                                                "order by id")]
                assert 0.25 - EARLY <= time.monotonic() - started < SLOW
        assert found == [(1, "one"), (2, "two")]
        assert injected("postgres", "latency") == before + 2

    run(main())


def test_asyncpg_transaction_control_is_not_faulted(dsn: str) -> None:
    """BEGIN and ROLLBACK pass untouched (asyncpg sends them): the faulted insert is rolled
    back and the connection is left out of the transaction, as after a real failed query."""
    async def main() -> None:
        conn = await connect_faulted(dsn, rules=given(pg_rule(ErrorFault(error="connection"))))
        try:
            transaction = conn.transaction()
            await transaction.start()
            assert conn.is_in_transaction()
            with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
                await conn.execute("insert into items values (1, 'a')")
            await transaction.rollback()
            assert not conn.is_in_transaction()
            with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
                async with conn.transaction():
                    await conn.execute("insert into items values (2, 'b')")
            assert not conn.is_in_transaction()
        finally:
            await conn.close()
        assert await rows(dsn) == []

    run(main())


def test_asyncpg_a_class_over_a_faulted_class_faults_once(dsn: str) -> None:
    """The outer point acts; the inner one is not passed again."""
    rules = given(pg_rule(LatencyFault(ms=1), points=("inner", "outer")))
    klass = point_connection_class("outer", rules,
                                   base=point_connection_class("inner", rules))
    counts = injected("inner", "latency"), injected("outer", "latency")

    async def main() -> None:
        conn = await asyncpg.connect(dsn, connection_class=klass)
        try:
            assert await conn.fetchval("select 7") == 7
            assert isinstance(conn, asyncpg.Connection)
        finally:
            await conn.close()

    run(main())
    assert (injected("inner", "latency"), injected("outer", "latency")) == \
        (counts[0], counts[1] + 1)
    with pytest.raises(TypeError):
        point_connection_class(base=dict)


def test_asyncpg_an_expired_rule_stops_at_once(dsn: str) -> None:
    """An error rule 0.3 s from its end: queries fail until it ends, then all pass."""
    rule = pg_rule(ErrorFault(error="connection"), expires_in=0.3)

    async def main() -> None:
        conn = await connect_faulted(dsn, rules=given(rule))
        try:
            deadline = time.monotonic() + SLOW
            while True:
                try:
                    await conn.fetchval("select 1")
                    break
                except asyncpg.exceptions.ConnectionDoesNotExistError:
                    assert time.monotonic() < deadline, "the fault never stopped"
                    await asyncio.sleep(0.01)
            passed = time.time()
            assert rule.expires_at <= passed < rule.expires_at + ENDS_WITHIN
            for n in range(20):
                assert await conn.fetchval("select $1::int", n) == n
        finally:
            await conn.close()

    run(main())


def test_asyncpg_a_rule_deleted_from_the_rules_file_stops_at_once(dsn: str,
                                                                  tmp_path: Path) -> None:
    """Pool level, rules from a file: faulted while the rule is there, clean once deleted."""
    path = tmp_path / "rules.json"
    write_file(path, pg_rule(ErrorFault(error="timeout")), tick=1)
    rules = PointRules(rules_file=path)

    async def main() -> None:
        async with create_faulted_pool(dsn, rules=rules, min_size=1, max_size=1) as pool:
            deadline = time.monotonic() + SLOW
            while True:  # the watcher's first read
                try:
                    await pool.fetchval("select 1")
                except TimeoutError:
                    break
                assert time.monotonic() < deadline, "the file's rule never acted"
                await asyncio.sleep(0.01)
            write_file(path, tick=2)
            deleted, deadline = time.time(), time.monotonic() + SLOW
            while True:
                try:
                    await pool.fetchval("select 1")
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "the fault never stopped"
                    await asyncio.sleep(0.01)
            assert time.time() - deleted < ENDS_WITHIN
            for n in range(20):
                assert await pool.fetchval("select $1::int", n) == n

    try:
        run(main())
    finally:
        rules.close()
