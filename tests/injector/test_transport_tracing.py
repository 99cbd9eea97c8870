"""FaultTransport marks the client's span (the official httpx instrumentation's) with the
fault; when that span does not record, a ``chaos-fault`` span is recorded all the same and the
server is sent a ``traceparent`` naming it. Real OpenTelemetry SDK, spans kept in memory."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from gameday.injector.transport import AsyncFaultTransport, FaultTransport
from gameday.tracing.setup import chaos_sampler
from tests.injector.test_transport import Upstream, rule

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> Iterator[None]:
    # The process-wide provider can be set once; later modules in this worker share it.
    sdk = TracerProvider(sampler=chaos_sampler(1.0))
    sdk.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(sdk)
    yield


@pytest.fixture(autouse=True)
def fresh() -> None:
    EXPORTER.clear()


def test_the_client_span_carries_the_fault() -> None:
    upstream = Upstream()
    client = httpx.Client(transport=FaultTransport(upstream.transport,
                                                   rules=[rule("latency", ms=20)]))
    HTTPXClientInstrumentor.instrument_client(client)
    try:
        assert client.get("http://auth/verify").status_code == 200
    finally:
        client.close()
    [span] = EXPORTER.get_finished_spans()
    attributes = span.attributes or {}
    assert span.kind == trace.SpanKind.CLIENT
    assert attributes["chaos.faulted"] is True
    assert attributes["chaos.injector"] == "transport"
    assert attributes["chaos.run"] == "run-7" and attributes["chaos.step"] == 2
    assert attributes["chaos.rule"] == "r1"
    assert attributes["chaos.delay.requested_ms"] == 20
    assert float(attributes["chaos.delay.applied_ms"]) >= 20  # type: ignore[arg-type]
    assert [event.name for event in span.events] == ["chaos.injected"]
    # The server is the client span's child, as without the fault.
    context = span.get_span_context()
    sent = upstream.seen[0].headers["traceparent"]
    assert sent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert context.trace_flags.sampled


def test_a_faulted_call_in_an_unsampled_trace_is_recorded() -> None:
    asyncio.run(_unsampled())


async def _unsampled() -> None:
    upstream = Upstream()
    transport = AsyncFaultTransport(upstream.transport,
                                    rules=[rule("abort", status=503, rule_id="r9")])
    trace_id, parent_id = int(secrets.token_hex(16), 16), int(secrets.token_hex(8), 16)
    unsampled = NonRecordingSpan(SpanContext(trace_id, parent_id, is_remote=True,
                                             trace_flags=TraceFlags(0)))
    async with httpx.AsyncClient(transport=transport) as client:
        with trace.use_span(unsampled):
            response = await client.get("http://auth/verify")
    assert response.status_code == 503
    [span] = EXPORTER.get_finished_spans()
    assert span.name == "chaos-fault GET"
    assert span.context is not None and span.context.trace_id == trace_id
    assert span.parent is not None and span.parent.span_id == parent_id
    assert (span.attributes or {})["chaos.abort.status"] == 503
    assert (span.attributes or {})["http.response.status_code"] == 503


def test_an_unfaulted_call_leaves_tracing_alone() -> None:
    upstream = Upstream()
    client = httpx.Client(transport=FaultTransport(upstream.transport, rules=[]))
    HTTPXClientInstrumentor.instrument_client(client)
    try:
        client.get("http://auth/verify")
    finally:
        client.close()
    [span] = EXPORTER.get_finished_spans()
    assert "chaos.faulted" not in (span.attributes or {})
