"""The demo's tracing glue without a stack: the httpx span around the fault transport, retry
numbers, unsampled probes, route-named server spans, exemplars, the /metrics format choice
and the trace folder's trimming. Real OpenTelemetry SDK with a provider of the test's own
(the process-wide one is left alone), spans kept in memory."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gameday.demo import traces
from gameday.demo.metrics import UNCOUNTED, ServiceMetrics, wants_openmetrics
from gameday.demo.state import TRACE_MAX_AGE, trim_traces
from gameday.injector.transport import AsyncFaultTransport
from tests.injector.test_transport import Upstream, rule


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    return sdk


@pytest.fixture
def tracing_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process traces, as ``traces.start`` would leave it (without a global provider)."""
    monkeypatch.setattr(traces, "_current_span", trace.get_current_span)
    yield


def _traceparent(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_nothing_happens_while_the_process_does_not_trace() -> None:
    """Without ``start``: no exemplar, no instrumentation, the probes' context untouched."""
    assert not traces.enabled()
    assert traces.exemplar() is None
    client = httpx.AsyncClient()
    traces.instrument_httpx(client)
    assert not getattr(client, "_is_instrumented_by_opentelemetry", False)
    with traces.untraced():
        assert not trace.get_current_span().get_span_context().is_valid
    traces.breaker_rejected("auth-service")  # no span, no error


def test_the_attempt_span_is_current_inside_the_fault_transport(
        provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """The span wraps the client's own (fault) transport: the server is sent the span's
    traceparent, an aborted attempt is a span with the fault's status, retries are numbered."""
    upstream = Upstream()
    passing = httpx.AsyncClient(transport=AsyncFaultTransport(upstream.transport, rules=[]))
    aborting = httpx.AsyncClient(transport=AsyncFaultTransport(
        upstream.transport, rules=[rule("abort", status=503)]))
    for client in (passing, aborting):
        traces.instrument_httpx(client, provider)

    async def calls() -> None:
        assert (await passing.get("http://auth/verify")).status_code == 200
        with traces.resend(2):
            assert (await aborting.get("http://auth/verify")).status_code == 503
        await passing.aclose()
        await aborting.aclose()

    asyncio.run(calls())
    first, aborted = exporter.get_finished_spans()
    assert [request.headers["traceparent"] for request in upstream.seen] == [_traceparent(first)]
    assert first.kind == trace.SpanKind.CLIENT
    assert "http.request.resend_count" not in (first.attributes or {})
    attributes = aborted.attributes or {}
    assert attributes.get("http.status_code", attributes.get("http.response.status_code")) == 503
    assert attributes["http.request.resend_count"] == 2


def test_probes_run_in_an_unsampled_trace(tracing_on: None, provider: TracerProvider,
                                          exporter: InMemorySpanExporter) -> None:
    """``untraced``: nothing records, and the traceparent sent on says not sampled."""
    upstream = Upstream()
    client = httpx.AsyncClient(transport=upstream.transport)
    traces.instrument_httpx(client, provider)

    async def probe() -> None:
        with traces.untraced():
            await client.get("http://auth/health")
        await client.aclose()

    asyncio.run(probe())
    assert exporter.get_finished_spans() == ()
    assert upstream.seen[0].headers["traceparent"].endswith("-00")


def test_server_spans_are_named_by_route_and_plumbing_has_none(
        provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    async def user(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route("/users/{user_id}", user), Route("/metrics", user), Route("/health", user)]
    app = Starlette(routes=routes,
                    middleware=[traces.asgi_middleware(routes, UNCOUNTED, provider)])

    async def calls() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://user-service") as client:
            for path in ("/users/7", "/metrics", "/health", "/nowhere"):
                await client.get(path)

    asyncio.run(calls())
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["GET /users/{user_id}", "GET"]
    assert all(span.kind == trace.SpanKind.SERVER for span in spans)
    assert (spans[0].attributes or {})["http.route"] == "/users/{user_id}"


def test_latency_buckets_name_the_sampled_trace(tracing_on: None,
                                                provider: TracerProvider) -> None:
    """An attempt timed within a sampled span leaves its trace id on the bucket, shown in
    OpenMetrics; within an unsampled one, nothing."""
    metrics = ServiceMetrics("user-service")
    calls = metrics.dependency("auth-service")
    with provider.get_tracer("test").start_as_current_span("request") as span:
        assert traces.exemplar() == {"trace_id": f"{span.get_span_context().trace_id:032x}"}
        calls.attempt_took(0.013)
    with traces.untraced():
        assert traces.exemplar() is None
        calls.attempt_took(0.5)
    text = openmetrics_latest(metrics.registry).decode()
    trace_id = f"{span.get_span_context().trace_id:032x}"
    marked = [line for line in text.splitlines() if "# {" in line]
    assert len(marked) == 1
    assert marked[0].startswith("service_downstream_latency_seconds_bucket{")
    assert f'# {{trace_id="{trace_id}"}} 0.013 ' in marked[0]


@pytest.mark.parametrize(("accept", "wanted"), [
    ("", False),
    ("text/plain;version=0.0.4", False),
    ("*/*", False),
    ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", True),
    ("text/plain;q=0.9, Application/OpenMetrics-Text; version=0.0.1;q=0.1", True),
])
def test_openmetrics_is_served_when_listed(accept: str, wanted: bool) -> None:
    assert wants_openmetrics(accept) is wanted


def _trace_file(folder: Path, name: str, size: int, age: float) -> Path:
    path = folder / f"{name}.otlp.jsonl"
    path.write_bytes(b"x" * size)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_up_trims_old_trace_files_and_keeps_half_the_cap_free(tmp_path: Path) -> None:
    """Files older than a day go; then the oldest, until the rest fit in half the cap.
    Other files are left alone."""
    stale = _trace_file(tmp_path, "user-service-1", 10, TRACE_MAX_AGE + 60)
    old = _trace_file(tmp_path, "user-service-2", 400, 3600)
    middle = _trace_file(tmp_path, "loadgen-3", 300, 1800)
    new = _trace_file(tmp_path, "loadgen-4", 300, 60)
    other = tmp_path / "notes.txt"
    other.write_text("kept")
    os.utime(other, (0, 0))
    removed = trim_traces(tmp_path, max_bytes=1400)
    assert sorted(removed) == sorted([stale, old])
    assert {path.name for path in tmp_path.iterdir()} == {middle.name, new.name, other.name}
    assert trim_traces(tmp_path, max_bytes=1400) == []
