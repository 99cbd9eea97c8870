"""TCP mode records one span per faulted connection, from the rule's firing to the
connection's end, with the ``chaos.*`` attributes; an unfaulted connection records nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday import procs
from gameday.tracing import read
from gameday.tracing.otlp import SpanRecord
from tests.injector.conftest import Proxy, rule, start_proxy
from tests.injector.tcp_client import connect, read_to_end, round_trip
from tests.injector.tcp_servers import start_echo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, Path]]:
    folder = tmp_path_factory.mktemp("tcp-traced")
    traces = folder / "traces"
    echo = start_echo(folder)
    try:
        proxy = start_proxy(echo.address, folder / "proxy.log", args=("--mode", "tcp"),
                            env={"GAMEDAY_TRACE_DIR": str(traces),
                                 "OTEL_SERVICE_NAME": "db-proxy"})
        try:
            yield proxy, traces
        finally:
            procs.stop(proxy.pid)
    finally:
        procs.stop(echo.pid)


def connection_spans(folder: Path, count: int) -> list[SpanRecord]:
    found: list[SpanRecord] = []

    def there() -> bool:
        found[:] = read.spans(folder) if folder.exists() else []
        return len(found) >= count

    procs.wait_until(there, timeout=15, what=f"{count} connection span(s)")
    return found


def test_a_faulted_connection_is_one_span(traced: tuple[Proxy, Path]) -> None:
    proxy, folder = traced
    proxy.put()
    with connect(proxy) as sock:
        round_trip(sock, b"unfaulted")
    proxy.put(rule("latency", ms=30, direction="downstream"))
    try:
        with connect(proxy) as sock:
            round_trip(sock, b"first")
            round_trip(sock, b"second")
    finally:
        proxy.put()
    [span] = connection_spans(folder, 1)
    assert span.service == "db-proxy" and span.name == "chaos-proxy tcp"
    assert span.faulted
    assert span.attributes["chaos.injector"] == "proxy-tcp"
    assert span.attributes["chaos.fault"] == "latency"
    assert span.attributes["chaos.run"] == "run-1"
    assert span.attributes["chaos.step"] == 1
    assert span.attributes["network.transport"] == "tcp"
    assert span.attributes["chaos.outcome"] == "closed"
    assert [event.name for event in span.events] == ["chaos.injected"]
    assert span.duration_ms >= 30  # open through both delayed echoes
    assert not span.error


def test_a_reset_connection_is_reset_and_recorded(traced: tuple[Proxy, Path]) -> None:
    """Tracing never stands between a rule and its effect: the reset happens, and its span
    says so."""
    proxy, folder = traced
    before = len(read.spans(folder)) if folder.exists() else 0
    proxy.put(rule("reset"))
    try:
        with connect(proxy) as sock:
            assert read_to_end(sock) == (b"", "reset")
    except ConnectionResetError:
        pass  # reset before connect() returned
    finally:
        proxy.put()
    spans = connection_spans(folder, before + 1)[before:]
    assert [s.attributes["chaos.fault"] for s in spans] == ["reset"]
    assert spans[0].attributes["chaos.outcome"] == "reset" and spans[0].error
