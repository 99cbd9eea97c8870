"""Spans as OTLP JSON (the OTLP/HTTP JSON encoding: hex ids, nanoseconds as strings) and back.

The same document goes to a collector's ``/v1/traces`` and, one per line, into the trace
files, so ``read`` and any OTLP tool read what the kit wrote. Decoding yields
:class:`SpanRecord` values: plain typed records the report can use without OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

AttributeValue = str | bool | int | float | list[Any]

#: OTLP span kinds, by the SDK's ``SpanKind`` names.
_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_KIND_NAMES = {number: name.lower() for name, number in _KINDS.items()}
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """An event on a span: its name, time (ns since the epoch) and attributes."""

    name: str
    time_ns: int
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span, as read back from OTLP JSON."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    error: bool = False

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def faulted(self) -> bool:
        return self.attributes.get("chaos.faulted") is True


# --- encoding -------------------------------------------------------------------------------

def encode(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` in OTLP JSON for ``spans`` (grouped by resource and
    instrumentation scope, as the protocol wants)."""
    by_resource: dict[int, tuple[Any, dict[tuple[str, str], list[dict[str, Any]]]]] = {}
    for span in spans:
        resource = span.resource
        _, scopes = by_resource.setdefault(id(resource), (resource, {}))
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "") if scope is not None else ("", "")
        scopes.setdefault(key, []).append(_span(span))
    return {"resourceSpans": [
        {"resource": {"attributes": attribute_list(resource.attributes)},
         "scopeSpans": [{"scope": {"name": name, "version": version}, "spans": items}
                        for (name, version), items in scopes.items()]}
        for resource, scopes in by_resource.values()]}


def _span(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    parent = span.parent
    out: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}" if context else "",
        "spanId": f"{context.span_id:016x}" if context else "",
        "name": span.name,
        "kind": _KINDS.get(span.kind.name, 1),
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": attribute_list(span.attributes or {}),
    }
    if parent is not None:
        out["parentSpanId"] = f"{parent.span_id:016x}"
    if span.events:
        out["events"] = [{"name": event.name, "timeUnixNano": str(event.timestamp),
                          "attributes": attribute_list(event.attributes or {})}
                         for event in span.events]
    status = _STATUS.get(span.status.status_code.name, 0)
    if status:
        out["status"] = {"code": status, "message": span.status.description or ""}
    return out


def attribute_list(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Attributes in OTLP JSON's ``[{"key": …, "value": {…}}]`` shape."""
    # The SDK's BoundedAttributes iterates its items through the Mapping ABC, one lookup
    # per key; its copy() is a plain dict at once, a third of the cost of encoding a span.
    plain = attributes.copy() if hasattr(attributes, "copy") else attributes
    return [{"key": key, "value": _value(value)} for key, value in plain.items()]


def _value(value: Any) -> dict[str, Any]:
    # bool before int: True is an int in Python. OTLP JSON carries 64-bit ints as strings.
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    return {"stringValue": str(value)}


# --- decoding -------------------------------------------------------------------------------

def decode(document: Mapping[str, Any]) -> Iterator[SpanRecord]:
    """The spans of one OTLP JSON ``ExportTraceServiceRequest``; malformed spans are skipped
    (a file cut short by a crash must not hide the spans before it)."""
    for resource_spans in document.get("resourceSpans") or ():
        resource = _decoded(resource_spans.get("resource", {}).get("attributes"))
        service = str(resource.get("service.name", "unknown"))
        for scope_spans in resource_spans.get("scopeSpans") or ():
            for raw in scope_spans.get("spans") or ():
                try:
                    yield _record(raw, service)
                except (KeyError, TypeError, ValueError):
                    continue


def _record(raw: Mapping[str, Any], service: str) -> SpanRecord:
    events = tuple(SpanEvent(str(event["name"]), int(event.get("timeUnixNano", 0)),
                             _decoded(event.get("attributes")))
                   for event in raw.get("events") or ())
    return SpanRecord(
        trace_id=str(raw["traceId"]).lower(), span_id=str(raw["spanId"]).lower(),
        parent_id=str(raw.get("parentSpanId") or "").lower(), name=str(raw["name"]),
        service=service, kind=_KIND_NAMES.get(int(raw.get("kind", 1)), "internal"),
        start_ns=int(raw["startTimeUnixNano"]), end_ns=int(raw["endTimeUnixNano"]),
        attributes=_decoded(raw.get("attributes")), events=events,
        error=int((raw.get("status") or {}).get("code", 0)) == 2)


def _decoded(items: Any) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for item in items or ():
        if isinstance(item, Mapping) and "key" in item:
            out[str(item["key"])] = _plain(item.get("value") or {})
    return out


def _plain(value: Mapping[str, Any]) -> AttributeValue:
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_plain(item) for item in (value["arrayValue"] or {}).get("values") or ()]
    return str(value.get("stringValue", ""))
