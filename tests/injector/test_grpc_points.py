"""The gRPC fault interceptors, sync and asyncio, in front of a real grpcio server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from gameday.faults import ErrorFault, LatencyFault
from gameday.injector.grpc_points import FaultedRpcError, faulted_channel, status_for
from gameday.injector.points import PointRules, configure_points, reset_points
from gameday.injector.rules import Rule
from gameday.records import Labels
from tests.injector.grpc_server import (
    CHAT,
    COLLECT,
    MODES,
    REPEAT,
    SAY,
    SHAPE_IDS,
    SHAPES,
    SLOW,
    Client,
    EchoServer,
    Shape,
)


def rule(fault: Any, rule_id: str = "r1", points: tuple[str, ...] = ("grpc:*",),
         expires_in: float = 60, run: str = "r1") -> Rule:
    return Rule(id=rule_id, fault=fault, points=points, expires_at=time.time() + expires_in,
                labels=Labels(run=run, scenario="s", environment="test", step=1))


def error(name: str, **fields: Any) -> ErrorFault:
    return ErrorFault(error=name, **fields)


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.stop()


Connect = Callable[..., Client]


@pytest.fixture
def connect(echo: EchoServer) -> Iterator[Connect]:
    """``connect(mode, rules)``: a client of the echo server, closed after the test."""
    echo.reset()
    clients: list[Client] = []

    def make(mode: str, rules: PointRules | None, prefix: str = "grpc:") -> Client:
        clients.append(Client(mode, echo.target, rules, prefix))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def injected(fault: str, point: str, run: str = "r1") -> float:
    return REGISTRY.get_sample_value(
        "chaos_faults_injected_total",
        {"run": run, "scenario": "s", "environment": "test", "fault": fault, "target": "",
         "point": point}) or 0.0


def problems(reason: str) -> float:
    return REGISTRY.get_sample_value("gameday_transport_rules_errors_total",
                                     {"reason": reason}) or 0.0


@pytest.mark.parametrize("name, code", [
    ("UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
    ("timeout", grpc.StatusCode.DEADLINE_EXCEEDED),
    ("resource_exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED),
])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("mode", MODES)
def test_error_ends_the_call_with_its_status(connect: Connect, echo: EchoServer, mode: str,
                                             shape: Shape, name: str, code: grpc.StatusCode
                                             ) -> None:
    """An error rule ends each shape's call with the mapped status; the server sees nothing."""
    client = connect(mode, PointRules([rule(error(name))]))
    failed = client.status(shape)
    assert failed.code() == code
    assert failed.details() == (f"fault injected at grpc:{shape.method}: {name} "
                                f"(rule r1, scenario s)")
    assert echo.calls() == 0


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("mode", MODES)
def test_latency_delays_the_call_then_makes_it(connect: Connect, echo: EchoServer, mode: str,
                                                shape: Shape) -> None:
    """A latency rule waits at least its delay, then the call reaches the server."""
    client = connect(mode, PointRules([rule(LatencyFault(ms=300))]))
    started = time.monotonic()
    assert client.call(shape) == shape.answer
    assert 0.29 <= time.monotonic() - started < SLOW
    assert echo.calls(shape.name) == 1


UNTOUCHED = {
    "another-point": lambda: rule(error("UNAVAILABLE"), points=("grpc:/other.Service/*",)),
    "probability-0": lambda: rule(error("UNAVAILABLE", probability=0.0)),
    "expired": lambda: rule(error("UNAVAILABLE"), expires_in=-1),
    "another-method": lambda: rule(error("UNAVAILABLE"), points=("grpc:/test.Echo/Nothing",)),
}


@pytest.mark.parametrize("case", sorted(UNTOUCHED))
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("mode", MODES)
def test_calls_no_rule_acts_on_are_untouched(connect: Connect, echo: EchoServer, mode: str,
                                             shape: Shape, case: str) -> None:
    """A rule for other points, never rolled, or expired leaves the call as it is."""
    client = connect(mode, PointRules([UNTOUCHED[case]()]))
    assert client.call(shape) == shape.answer
    assert echo.calls(shape.name) == 1


@pytest.mark.parametrize("pattern", ["grpc:/test.Echo/Say", "grpc:/test.Echo/*", "grpc:*"])
def test_rules_name_a_method_or_a_prefix(connect: Connect, echo: EchoServer,
                                         pattern: str) -> None:
    """The point is prefix + full method name; an exact name covers only that method."""
    client = connect("sync", PointRules([rule(error("UNAVAILABLE"), points=(pattern,))]))
    assert client.status(SHAPES[0]).code() == grpc.StatusCode.UNAVAILABLE
    exact = not pattern.endswith("*")
    if exact:
        assert client.call(SHAPES[2]) == b"ab"
    else:
        assert client.status(SHAPES[2]).code() == grpc.StatusCode.UNAVAILABLE
    assert echo.calls() == (1 if exact else 0)


def test_a_prefix_names_the_points(connect: Connect, echo: EchoServer) -> None:
    """``prefix=`` names the points ``payments:/test.Echo/Say``; an invalid one is refused."""
    rules = PointRules([rule(error("UNAVAILABLE"), points=("payments:/test.Echo/Say",))])
    assert connect("sync", rules, prefix="payments:").status(SHAPES[0]).code() == \
        grpc.StatusCode.UNAVAILABLE
    assert connect("aio", rules).call(SHAPES[0]) == b"hi"  # grpc:/test.Echo/Say: no rule
    for bad in ("", "-x:", "grpc :"):
        with pytest.raises(ValueError, match="point prefix"):
            faulted_channel(grpc.insecure_channel(echo.target), rules, prefix=bad)


def test_sync_unary_fails_as_grpcio_does_every_way(connect: Connect, echo: EchoServer) -> None:
    """Blocking, ``.with_call`` and ``.future`` of a unary call, and a stream before its
    first read, give the status as grpcio does for a server's."""
    client = connect("sync", PointRules([rule(error("UNAVAILABLE"))]))
    say = client.channel.unary_unary(SAY)
    with pytest.raises(grpc.RpcError) as raised:
        say.with_call(b"hi", timeout=SLOW)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.trailing_metadata() == ()
    assert "status = StatusCode.UNAVAILABLE" in str(raised.value)
    future = say.future(b"hi", timeout=SLOW)
    assert isinstance(future, grpc.Future) and isinstance(future, grpc.Call)
    assert future.done() and not future.running() and not future.cancelled()
    assert future.code() == grpc.StatusCode.UNAVAILABLE
    assert isinstance(future.exception(), grpc.RpcError)
    done: list[Any] = []
    future.add_done_callback(done.append)
    assert done == [future]
    with pytest.raises(grpc.RpcError):
        future.result()
    stream = client.channel.unary_stream(REPEAT)(b"hi", timeout=SLOW)
    assert stream.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError):
        next(stream)
    assert echo.calls() == 0


def test_aio_calls_give_the_status_every_way(connect: Connect, echo: EchoServer) -> None:
    """``await call.code()`` and the write API of a streaming request give the status too."""
    client = connect("aio", PointRules([rule(error("DEADLINE_EXCEEDED"))]))

    async def calls() -> None:
        call = client.channel.unary_unary(SAY)(b"hi", timeout=SLOW)
        assert await call.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "fault injected at grpc:/test.Echo/Say" in await call.details()
        writer = client.channel.stream_unary(COLLECT)(timeout=SLOW)
        assert await writer.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(asyncio.InvalidStateError):
            await writer.write(b"a")
        chat = client.channel.stream_stream(CHAT)(timeout=SLOW)
        with pytest.raises(grpc.aio.AioRpcError):
            await chat.read()

    client.run(calls())
    assert echo.calls() == 0


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[3]], ids=["Say", "Chat"])
@pytest.mark.parametrize("mode", MODES)
def test_a_delay_counts_against_the_deadline(connect: Connect, echo: EchoServer, mode: str,
                                             shape: Shape) -> None:
    """A delay past the call's timeout ends it with DEADLINE_EXCEEDED when the timeout is up,
    never having reached the server."""
    client = connect(mode, PointRules([rule(LatencyFault(ms=20_000))]))
    started = time.monotonic()
    failed = client.status(shape, timeout=0.5)
    assert 0.45 <= time.monotonic() - started < 15
    assert failed.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert failed.details() == "Deadline Exceeded"
    assert echo.calls() == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_delay_shorter_than_the_timeout_uses_part_of_it(connect: Connect, echo: EchoServer,
                                                          mode: str) -> None:
    """The call goes on with what the delay left of its timeout (its deadline stays put)."""
    client = connect(mode, PointRules([rule(LatencyFault(ms=1_000))]))
    assert client.call(SHAPES[0], timeout=SLOW) == b"hi"
    (left,) = echo.remaining
    assert left is not None and left <= SLOW - 1.0


@pytest.mark.parametrize("mode", MODES)
def test_latency_then_error(connect: Connect, echo: EchoServer, mode: str) -> None:
    """A latency and an error rule: the wait, then the status."""
    client = connect(mode, PointRules([rule(LatencyFault(ms=200), "lat"),
                                       rule(error("connection"), "err")]))
    started = time.monotonic()
    assert client.status(SHAPES[1]).code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started >= 0.19
    assert echo.calls() == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_delay_ends_with_its_rule(connect: Connect, echo: EchoServer, mode: str) -> None:
    """A delay is cut short where its rule expires: the call is made then."""
    client = connect(mode, PointRules([rule(LatencyFault(ms=60_000), expires_in=1.0)]))
    started = time.monotonic()
    assert client.call(SHAPES[0]) == b"hi"
    assert time.monotonic() - started < SLOW
    assert echo.calls() == 1


@pytest.mark.parametrize("mode", MODES)
def test_expiry_stops_injection(connect: Connect, echo: EchoServer, mode: str) -> None:
    """On the rules' clock: faulted until the rule's expiry, untouched from then on."""
    now = [1_000.0]
    expiring = Rule(id="r1", fault=error("UNAVAILABLE"), points=("grpc:*",),
                    expires_at=1_010.0,
                    labels=Labels(run="r1", scenario="s", environment="test", step=1))
    client = connect(mode, PointRules([expiring], clock=lambda: now[0]))
    assert client.status(SHAPES[0]).code() == grpc.StatusCode.UNAVAILABLE
    now[0] = 1_010.0
    for shape in SHAPES:
        assert client.call(shape) == shape.answer
    assert echo.calls() == 4


@pytest.mark.parametrize("mode", MODES)
def test_a_short_ttl_ends_on_the_wall_clock(connect: Connect, mode: str) -> None:
    """A rule with a short TTL faults calls, then stops once it has expired."""
    client = connect(mode, PointRules([rule(error("UNAVAILABLE"), expires_in=1.5)]))
    assert client.status(SHAPES[0]).code() == grpc.StatusCode.UNAVAILABLE
    passes_by(client, time.monotonic() + 10)


def passes_by(client: Client, deadline: float) -> None:
    """Calls until one passes (before ``deadline``), then every later one must."""
    while True:
        try:
            client.call(SHAPES[0])
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline, "the fault never stopped"
            time.sleep(0.02)
    for shape in SHAPES * 3:
        assert client.call(shape) == shape.answer


def write_rules(path: Path, rules: list[Rule], tick: int) -> None:
    """Write a rules file with a distinct mtime (as a ConfigMap update would)."""
    path.write_text(json.dumps({"rules": [r.model_dump(mode="json") for r in rules]}))
    stamp = time.time_ns() + tick * 1_000_000
    os.utime(path, ns=(stamp, stamp))


@pytest.mark.parametrize("mode", MODES)
def test_deleting_the_rule_from_the_file_stops_injection(connect: Connect, tmp_path: Path,
                                                         mode: str) -> None:
    """A rule deleted from the rules file stops faulting the calls made after the change."""
    path = tmp_path / "rules.json"
    write_rules(path, [rule(error("UNAVAILABLE"))], 1)
    rules = PointRules(rules_file=path)
    try:
        client = connect(mode, rules)
        assert client.status(SHAPES[0]).code() == grpc.StatusCode.UNAVAILABLE
        assert client.status(SHAPES[3]).code() == grpc.StatusCode.UNAVAILABLE
        write_rules(path, [], 2)
        passes_by(client, time.monotonic() + 5)
    finally:
        rules.close()


@pytest.mark.parametrize("mode", MODES)
def test_faulted_calls_are_counted_with_their_point(connect: Connect, mode: str) -> None:
    """chaos_faults_injected_total{point="grpc:/test.Echo/Say"} counts each fault that acted."""
    run = f"count-{mode}"
    point = "grpc:/test.Echo/Say"
    before = injected("error", point, run), injected("latency", point, run)
    client = connect(mode, PointRules([rule(LatencyFault(ms=1), "lat", run=run),
                                       rule(error("UNAVAILABLE"), "err", run=run)]))
    for _ in range(2):
        client.status(SHAPES[0])
    assert injected("error", point, run) == before[0] + 2
    assert injected("latency", point, run) == before[1] + 2
    assert injected("error", "grpc:/test.Echo/Chat", run) == 0


@pytest.mark.parametrize("name", ["pool_exhausted", "OK"])
@pytest.mark.parametrize("mode", MODES)
def test_an_unknown_status_injects_nothing(connect: Connect, echo: EchoServer, mode: str,
                                           name: str) -> None:
    """An error that names no status code: calls go through, counted once for the rule."""
    run = f"unknown-{mode}-{name}"
    before, errors = problems("unknown_error"), injected("error", "grpc:/test.Echo/Say", run)
    client = connect(mode, PointRules([rule(error(name), f"u-{mode}-{name}", run=run)]))
    for _ in range(3):
        assert client.call(SHAPES[0]) == b"hi"
    assert echo.calls() == 3
    assert problems("unknown_error") == before + 1
    assert injected("error", "grpc:/test.Echo/Say", run) == errors


class BrokenRules(PointRules):
    """Rules whose decision fails: the interceptor's own bug, as a service would meet it."""

    def decide(self, name: str) -> Any:
        raise RuntimeError("injector bug")


@pytest.mark.parametrize("mode", MODES)
def test_the_interceptors_own_failure_never_breaks_a_call(connect: Connect, mode: str) -> None:
    """An exception in the interceptor's logic: the call goes through, counted as internal."""
    before = problems("internal")
    client = connect(mode, BrokenRules([rule(error("UNAVAILABLE"))]))
    for shape in SHAPES:
        assert client.call(shape) == shape.answer
    assert problems("internal") == before + 4


def test_a_missing_rules_file_never_breaks_a_call(connect: Connect, tmp_path: Path) -> None:
    """No rules file yet: every call goes through."""
    rules = PointRules(rules_file=tmp_path / "absent.json")
    try:
        for mode in MODES:
            client = connect(mode, rules)
            for shape in SHAPES:
                assert client.call(shape) == shape.answer
    finally:
        rules.close()


@pytest.mark.parametrize("mode", MODES)
def test_the_process_rules_apply_by_default(connect: Connect, mode: str) -> None:
    """Without ``rules=`` the interceptors read the process's (configure_points)."""
    try:
        client = connect(mode, None)
        assert client.call(SHAPES[0]) == b"hi"
        configure_points(rules=[rule(error("RESOURCE_EXHAUSTED"))])
        assert client.status(SHAPES[0]).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        reset_points()


def test_status_names() -> None:
    """Status code names in any case, and the two names every fault point knows."""
    assert status_for("Unavailable") is grpc.StatusCode.UNAVAILABLE
    assert status_for("TIMEOUT") is grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_for("connection") is grpc.StatusCode.UNAVAILABLE
    assert status_for("ok") is None and status_for("pool_exhausted") is None
    assert issubclass(FaultedRpcError, grpc.RpcError)


def test_the_bare_injector_does_not_import_grpc() -> None:
    """grpcio is an extra: the injector's package and its fault points import none of it."""
    code = ("import sys, gameday.injector, gameday.injector.points; "
            "assert 'grpc' not in sys.modules, 'grpc imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
