"""Traces for the report's tests: spans built as records and written as the services write
them (OTLP JSON lines, one file per service), without OpenTelemetry."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gameday.tracing.otlp import AttributeValue, SpanEvent, SpanRecord

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
RULE = "r-1f2e"
#: Milliseconds, as nanoseconds, from an arbitrary origin (set per trace by ``at``).
MS = 1_000_000
_KIND = {"internal": 1, "server": 2, "client": 3}


def span(span_id: str, parent: str, service: str, name: str, kind: str, start_ms: float,
         end_ms: float, *, trace: str = TRACE, at: float = 1_700_000_000.0,
         attributes: Mapping[str, AttributeValue] | None = None,
         events: Sequence[SpanEvent] = (), error: bool = False) -> SpanRecord:
    """A span of ``trace`` lasting ``start_ms``…``end_ms`` after epoch second ``at``."""
    origin = int(at * 1e9)
    return SpanRecord(trace_id=trace, span_id=span_id.rjust(16, "0"),
                      parent_id=parent.rjust(16, "0") if parent else "", name=name,
                      service=service, kind=kind, start_ns=origin + int(start_ms * MS),
                      end_ns=origin + int(end_ms * MS), attributes=dict(attributes or {}),
                      events=tuple(events), error=error)


def faulted_attributes(delay_ms: float = 250.0, step: int = 3, run: str = "run-1",
                       abort: int | None = None) -> dict[str, AttributeValue]:
    """The ``chaos.*`` attributes the proxy puts on a request it faulted."""
    found: dict[str, AttributeValue] = {
        "chaos.faulted": True, "chaos.injector": "proxy", "chaos.run": run,
        "chaos.scenario": "auth-latency-ladder", "chaos.environment": "demo",
        "chaos.step": step, "chaos.rule": RULE,
        "chaos.fault": "abort" if abort else "latency",
        "http.request.method": "POST", "url.path": "/verify"}
    if delay_ms:
        found["chaos.delay.requested_ms"] = delay_ms
        found["chaos.delay.applied_ms"] = delay_ms
    if abort:
        found["chaos.abort.status"] = abort
    return found


def request(*, trace: str = TRACE, at: float = 1_700_000_000.0, delay_ms: float = 250.0,
            step: int = 3, run: str = "run-1", attempts: int = 1, breaker: bool = False,
            prefix: str = "") -> list[SpanRecord]:
    """One demo request: loadgen → user-service (Redis, then auth-service through the auth
    proxy, which delays it; ``attempts`` calls when the service retries; a circuit breaker
    that rejects the last one when ``breaker``)."""
    p = prefix
    attempt_ms = delay_ms + 1.0
    calls = attempts - 1 if breaker else attempts
    server_end = 6.0 + attempts * (attempt_ms + 1.0) + 5.0
    server_events = [SpanEvent("breaker.open", int(at * 1e9) + int((server_end - 4) * MS),
                               {"dependency": "auth-service"})] if breaker else []
    found = [
        span(f"{p}a1", "", "loadgen", "GET", "client", 0.0, server_end + 1.0, trace=trace,
             at=at, attributes={"http.request.method": "GET"}),
        span(f"{p}b1", f"{p}a1", "user-service", "GET /users/{user_id}", "server", 0.5,
             server_end, trace=trace, at=at, events=server_events,
             attributes={"http.request.method": "GET", "url.path": "/users/17",
                         "http.route": "/users/{user_id}",
                         "http.response.status_code": 503 if breaker else 200},
             error=breaker),
        span(f"{p}c1", f"{p}b1", "user-service", "GET", "client", 1.0, 3.0, trace=trace,
             at=at, attributes={"db.system": "redis", "db.statement": "GET ?",
                                "net.peer.name": "127.0.0.1", "net.peer.port": 6379}),
    ]
    begin = 4.0
    for number in range(calls):
        client, proxy, server = f"{p}d{number}", f"{p}e{number}", f"{p}f{number}"
        found += [
            span(client, f"{p}b1", "user-service", "POST", "client", begin, begin + attempt_ms,
                 trace=trace, at=at, attributes={"http.request.method": "POST",
                                                 "server.address": "127.0.0.1",
                                                 "server.port": 18081}),
            span(proxy, client, "auth-proxy", "chaos-proxy POST", "server", begin + 0.2,
                 begin + attempt_ms - 0.2, trace=trace, at=at,
                 attributes=faulted_attributes(delay_ms, step, run),
                 events=[SpanEvent("chaos.injected", int(at * 1e9) + int((begin + 0.3) * MS),
                                   {"chaos.action": "delay"})]),
            span(server, proxy, "auth-service", "POST /verify", "server",
                 begin + delay_ms + 0.3, begin + attempt_ms - 0.3, trace=trace, at=at),
        ]
        begin += attempt_ms + 1.0
    return found


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in attributes.items()]


def document(spans: Iterable[SpanRecord]) -> dict[str, Any]:
    """An OTLP JSON ``ExportTraceServiceRequest`` of ``spans``, grouped by service."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for item in spans:
        raw: dict[str, Any] = {
            "traceId": item.trace_id, "spanId": item.span_id, "name": item.name,
            "kind": _KIND[item.kind], "startTimeUnixNano": str(item.start_ns),
            "endTimeUnixNano": str(item.end_ns), "attributes": _attributes(item.attributes),
            "events": [{"name": e.name, "timeUnixNano": str(e.time_ns),
                        "attributes": _attributes(e.attributes)} for e in item.events]}
        if item.parent_id:
            raw["parentSpanId"] = item.parent_id
        if item.error:
            raw["status"] = {"code": 2}
        by_service.setdefault(item.service, []).append(raw)
    return {"resourceSpans": [
        {"resource": {"attributes": _attributes({"service.name": service})},
         "scopeSpans": [{"scope": {"name": "test"}, "spans": items}]}
        for service, items in by_service.items()]}


def write_spans(folder: Path, spans: Iterable[SpanRecord], name: str = "test") -> Path:
    """Append ``spans`` as one line to ``folder/<name>.otlp.jsonl``, as a process would."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.otlp.jsonl"
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(document(spans)) + "\n")
    return path
