"""A faulted call at a fault point marks the current span (chaos.point, chaos.fault,
chaos.error, a chaos.injected event at the fault's start); in an unsampled trace a
``chaos-fault <point>`` span records it. Real OpenTelemetry SDK, spans kept in memory: the
provider and exporter of test_transport_tracing (the process-wide provider is set once)."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from gameday.injector.points import PointRules, fault_point
from tests.injector.test_points import SLACK, no_process_rules, point_rule
from tests.injector.test_transport_tracing import EXPORTER, fresh, provider

__all__ = ["fresh", "no_process_rules", "provider"]  # autouse fixtures of other modules

TRACER = trace.get_tracer("tests.points")


def finished(name: str) -> ReadableSpan:
    """The one finished span called ``name``."""
    [span] = [span for span in EXPORTER.get_finished_spans() if span.name == name]
    return span


def test_an_error_marks_the_current_span() -> None:
    rule = point_rule("error", ("cache.get",), error="timeout")
    rules = PointRules([rule])

    @fault_point("cache.get", rules=rules)
    def get() -> str:
        return "value"

    with TRACER.start_as_current_span("handler"), pytest.raises(TimeoutError):
        get()
    span = finished("handler")
    attributes = dict(span.attributes or {})
    assert attributes["chaos.faulted"] is True
    assert attributes["chaos.injector"] == "point"
    assert attributes["chaos.point"] == "cache.get"
    assert attributes["chaos.fault"] == "error"
    assert attributes["chaos.error"] == "timeout"
    assert attributes["chaos.rule"] == rule.id
    assert attributes["chaos.run"] == "run-p" and attributes["chaos.step"] == 1
    [event] = span.events
    assert event.name == "chaos.injected"
    assert dict(event.attributes or {}) == {"chaos.action": "error", "chaos.point": "cache.get",
                                            "exception.type": "TimeoutError"}
    assert [s.name for s in EXPORTER.get_finished_spans()] == ["handler"]  # no span of its own


def test_a_delay_marks_the_span_with_the_event_at_its_start() -> None:
    rules = PointRules([point_rule("latency", ("db.fetch",), ms=200)])

    async def handler() -> int:
        with TRACER.start_as_current_span("handler"):
            before = time.time_ns()
            async with fault_point("db.fetch", rules=rules):
                return before

    before = asyncio.run(handler())
    span = finished("handler")
    attributes = dict(span.attributes or {})
    assert attributes["chaos.fault"] == "latency" and attributes["chaos.point"] == "db.fetch"
    assert attributes["chaos.delay.requested_ms"] == 200
    assert float(attributes["chaos.delay.applied_ms"]) >= 200 - SLACK * 1000  # type: ignore[arg-type]
    assert "chaos.error" not in attributes
    [event] = span.events
    assert (event.attributes or {})["chaos.action"] == "delay"
    # The event is when the fault began acting: before the 200 ms, not after them.
    assert span.end_time is not None
    assert before - 5_000_000 <= event.timestamp <= span.end_time - 150_000_000


def test_a_faulted_call_in_an_unsampled_trace_gets_a_span_of_its_own() -> None:
    rules = PointRules([point_rule("latency", ("grpc:/shop.Payments/Charge",), ms=100)])
    trace_id, parent_id = int(secrets.token_hex(16), 16), int(secrets.token_hex(8), 16)
    unsampled = NonRecordingSpan(SpanContext(trace_id, parent_id, is_remote=True,
                                             trace_flags=TraceFlags(0)))
    with trace.use_span(unsampled):
        fault_point("grpc:/shop.Payments/Charge", rules=rules).check()
    span = finished("chaos-fault grpc:/shop.Payments/Charge")
    assert span.context is not None and span.context.trace_id == trace_id
    assert span.parent is not None and span.parent.span_id == parent_id
    assert (span.attributes or {})["chaos.point"] == "grpc:/shop.Payments/Charge"
    assert span.kind == trace.SpanKind.INTERNAL
    assert span.start_time is not None and span.end_time is not None
    assert span.end_time - span.start_time >= 100_000_000 - SLACK * 1e9  # it spans the delay
    assert [event.name for event in span.events] == ["chaos.injected"]


def test_an_error_that_cannot_be_raised_is_not_marked() -> None:
    rules = PointRules([point_rule("latency", ("queue.put",), ms=1),
                        point_rule("error", ("queue.put",), error="not_registered_here")])
    with TRACER.start_as_current_span("handler"):
        assert fault_point("queue.put", rules=rules)(lambda: 5)() == 5
    attributes = dict(finished("handler").attributes or {})
    assert attributes["chaos.fault"] == "latency"  # the delay only: no error was raised
    assert "chaos.error" not in attributes


def test_an_unfaulted_call_leaves_tracing_alone() -> None:
    rules = PointRules([point_rule("error", ("other",), error="timeout"),
                        point_rule("error", ("cache.get",), error="timeout", probability=0.0)])
    with TRACER.start_as_current_span("handler"):
        fault_point("cache.get", rules=rules).check()
        fault_point("cache.miss", rules=rules).check()
    span = finished("handler")
    assert not any(key.startswith("chaos.") for key in span.attributes or {})
    assert not span.events
    assert [s.name for s in EXPORTER.get_finished_spans()] == ["handler"]


def test_a_grpc_status_marks_the_span_with_the_status() -> None:
    """The interceptor's fault says it came from gRPC and which status ended the call."""
    import grpc

    from tests.injector.grpc_server import SAY, SHAPES, Client, EchoServer

    server = EchoServer()
    rules = PointRules([point_rule("error", ("grpc:*",), error="connection")])
    client = Client("sync", server.target, rules, "grpc:")
    try:
        with TRACER.start_as_current_span("caller"), pytest.raises(grpc.RpcError):
            client.call(SHAPES[0])
    finally:
        client.close()
        server.stop()
    attributes = dict(finished("caller").attributes or {})
    assert attributes["chaos.injector"] == "grpc"
    assert attributes["chaos.point"] == f"grpc:{SAY}"
    assert attributes["chaos.error"] == "UNAVAILABLE"
    assert server.calls() == 0
