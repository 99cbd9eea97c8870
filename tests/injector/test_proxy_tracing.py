"""The proxy's spans: a faulted request is always recorded, with the ``chaos.*`` attributes,
as the child of the caller's span; the upstream is sent a ``traceparent`` naming the proxy's
span. Real proxy process, real upstream, spans read back from the OTLP JSON files."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gameday import procs
from gameday.tracing import read
from gameday.tracing.otlp import SpanRecord
from tests.injector.conftest import Proxy, Upstream, rule, start_proxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def traced(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Proxy, Path]]:
    folder = tmp_path_factory.mktemp("traces")
    running = start_proxy(upstream.url, tmp_path_factory.mktemp("proxy") / "proxy.log",
                          env={"GAMEDAY_TRACE_DIR": str(folder),
                               "OTEL_SERVICE_NAME": "auth-proxy"})
    yield running, folder
    procs.stop(running.pid)


def caller(sampled: bool) -> tuple[str, str, str]:
    """A caller's trace id, span id and the ``traceparent`` naming them."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def forwarded(proxy: Proxy, traceparent: str | None) -> tuple[int, str | None]:
    """The status and the ``traceparent`` the upstream received for one request."""
    headers = {"traceparent": traceparent} if traceparent else {}
    response = httpx.get(f"{proxy.url}/headers", headers=headers, timeout=10)
    if response.status_code != 200:
        return response.status_code, None
    values = response.json().get("traceparent")
    assert values is None or len(values) == 1, values  # never the caller's and ours both
    return 200, values[0] if values else None


def spans_of(folder: Path, trace_id: str, count: int = 1) -> list[SpanRecord]:
    found: list[SpanRecord] = []

    def there() -> bool:
        found[:] = read.trace(folder, trace_id)
        return len(found) >= count

    procs.wait_until(there, timeout=15, what=f"{count} span(s) of trace {trace_id}")
    return found


def test_a_faulted_request_is_recorded_though_its_caller_was_not_sampled(
        traced: tuple[Proxy, Path]) -> None:
    proxy, folder = traced
    proxy.put(rule("latency", ms=80))
    try:
        trace_id, parent, traceparent = caller(sampled=False)
        status, sent_on = forwarded(proxy, traceparent)
    finally:
        proxy.put()
    assert status == 200
    [span] = spans_of(folder, trace_id)
    assert span.service == "auth-proxy"
    assert span.parent_id == parent
    assert span.faulted
    attributes = span.attributes
    assert attributes["chaos.run"] == "run-1"
    assert attributes["chaos.scenario"] == "slow-payments"
    assert attributes["chaos.environment"] == "dev"
    assert attributes["chaos.step"] == 1
    assert attributes["chaos.fault"] == "latency"
    assert attributes["chaos.delay.requested_ms"] == 80
    assert 80 <= float(attributes["chaos.delay.applied_ms"]) < 80 * 10  # type: ignore[arg-type]
    assert str(attributes["chaos.rule"]).startswith("r-")
    assert attributes["http.response.status_code"] == 200
    assert [event.name for event in span.events] == ["chaos.injected"]
    assert span.duration_ms >= 80
    # The upstream is the proxy span's child, and is told to record (the proxy did).
    assert sent_on == f"00-{trace_id}-{span.span_id}-01"


def test_an_abort_is_recorded_with_its_status(traced: tuple[Proxy, Path]) -> None:
    proxy, folder = traced
    proxy.put(rule("abort", status=503))
    try:
        trace_id, _, traceparent = caller(sampled=True)
        status, _ = forwarded(proxy, traceparent)
    finally:
        proxy.put()
    assert status == 503
    [span] = spans_of(folder, trace_id)
    assert span.attributes["chaos.abort.status"] == 503
    assert span.attributes["http.response.status_code"] == 503
    assert span.error


def test_an_unfaulted_request_follows_its_callers_sampling(traced: tuple[Proxy, Path]) -> None:
    proxy, folder = traced
    unsampled_trace, _, unsampled = caller(sampled=False)
    assert forwarded(proxy, unsampled) == (200, unsampled)  # untouched, not recorded
    sampled_trace, parent, sampled = caller(sampled=True)
    status, sent_on = forwarded(proxy, sampled)
    assert status == 200
    [span] = spans_of(folder, sampled_trace)
    assert span.parent_id == parent and not span.faulted
    assert sent_on == f"00-{sampled_trace}-{span.span_id}-01"
    # Both requests were answered before the sampled one's span was read: had the unsampled
    # one been recorded, it would be in the files by now too (same batch or an earlier one).
    assert read.trace(folder, unsampled_trace) == []


def test_without_a_trace_destination_the_proxy_passes_traceparent_on(proxy: Proxy) -> None:
    proxy.put(rule("latency", ms=1))
    try:
        _, _, traceparent = caller(sampled=True)
        assert forwarded(proxy, traceparent) == (200, traceparent)
    finally:
        proxy.put()
    assert not proxy.events("tracing")
