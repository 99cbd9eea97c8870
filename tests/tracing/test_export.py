"""Spans leave the process without slowing it: a bounded queue that drops and counts, a trace
folder that stops growing at its cap, an unreachable collector that costs only dropped spans.
Real OpenTelemetry SDK spans, real files, a real closed port."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from gameday import procs
from gameday.tracing import read, setup
from gameday.tracing.export import BoundedProcessor, FileSink, HttpSink
from gameday.tracing.otlp import decode
from gameday.tracing.setup import chaos_sampler


def provider(processor: BoundedProcessor, ratio: float = 1.0) -> TracerProvider:
    sdk = TracerProvider(sampler=chaos_sampler(ratio),
                         resource=Resource.create({"service.name": "svc"}),
                         shutdown_on_exit=False)
    sdk.add_span_processor(processor)  # type: ignore[arg-type]
    return sdk


def test_spans_round_trip_through_the_file(tmp_path: Path) -> None:
    processor = BoundedProcessor([FileSink(tmp_path, "svc")])
    tracer = provider(processor).get_tracer("t")
    attributes = {"n": 3, "ok": True, "x": 0.5, "s": "text", "l": ["a", "b"]}
    with tracer.start_as_current_span("parent", attributes=attributes), \
            tracer.start_as_current_span("child") as child:
        child.add_event("chaos.injected", {"chaos.action": "delay"})
    processor.shutdown()
    parent, child_record = read.spans(tmp_path)
    assert parent.service == "svc" and parent.name == "parent"
    assert dict(parent.attributes) == {"n": 3, "ok": True, "x": 0.5, "s": "text",
                                       "l": ["a", "b"]}
    assert child_record.parent_id == parent.span_id
    assert child_record.trace_id == parent.trace_id and len(parent.trace_id) == 32
    assert child_record.events[0].attributes == {"chaos.action": "delay"}
    assert processor.exported == 2 and processor.dropped == 0


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    dropped: list[int] = []
    processor = BoundedProcessor([FileSink(tmp_path, "svc")], on_drop=dropped.append,
                                 max_queue=10, interval=60)
    tracer = provider(processor).get_tracer("t")
    for _ in range(25):
        tracer.start_span("s").end()
    assert processor.dropped == 15 and sum(dropped) == 15
    processor.shutdown()
    assert len(read.spans(tmp_path)) == 10


def test_the_trace_folder_stops_at_its_cap(tmp_path: Path) -> None:
    (tmp_path / "other.otlp.jsonl").write_bytes(b"x" * 1024 * 1024)  # another process's file
    processor = BoundedProcessor([FileSink(tmp_path, "svc", max_mb=1)])
    tracer = provider(processor).get_tracer("t")
    tracer.start_span("s").end()
    processor.shutdown()
    assert processor.dropped == 1 and processor.exported == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.otlp.jsonl"]


def test_an_unreachable_collector_never_delays_the_traced_code() -> None:
    port = procs.free_port()  # nothing listens there
    processor = BoundedProcessor([HttpSink(f"http://127.0.0.1:{port}/v1/traces")])
    tracer = provider(processor).get_tracer("t")
    started = time.monotonic()
    for _ in range(200):
        tracer.start_span("s").end()
    ending = time.monotonic() - started
    processor.shutdown()
    assert processor.dropped == 200 and processor.exported == 0
    # Generous: the spans' own cost on a loaded machine, far below one refused connect each.
    assert ending < 5


def test_unfaulted_roots_follow_the_ratio_and_faulted_ones_are_always_kept(
        tmp_path: Path) -> None:
    processor = BoundedProcessor([FileSink(tmp_path, "svc")])
    tracer = provider(processor, ratio=0.0).get_tracer("t")
    tracer.start_span("plain").end()
    tracer.start_span("faulted", attributes={"chaos.faulted": True}).end()
    processor.shutdown()
    assert [span.name for span in read.spans(tmp_path)] == ["faulted"]


def test_spans_are_posted_to_an_otlp_http_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, OTLP JSON, the configured headers."""
    received: list[tuple[str, dict[str, str], bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT",
                           f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team-token=s3cret%3D")
        url = setup.endpoint()
        assert url == f"http://127.0.0.1:{server.server_port}/v1/traces"
        processor = BoundedProcessor([HttpSink(url, setup.headers())])
        provider(processor).get_tracer("t").start_span("sent").end()
        processor.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    [(path, headers, body)] = received
    assert path == "/v1/traces"
    assert headers["x-team-token"] == "s3cret="
    assert headers["Content-Type"] == "application/json"
    [span] = list(decode(json.loads(body)))
    assert span.name == "sent" and span.service == "svc"
    assert processor.exported == 1 and processor.dropped == 0
