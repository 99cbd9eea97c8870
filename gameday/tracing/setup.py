"""Tracing for one process: a tracer provider whose spans go where the environment says.

``configure(service)`` reads the standard variables and gameday's own:

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``…/v1/traces`` is appended) or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is): the team's collector, over OTLP/HTTP
  JSON, with ``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k=v``, never logged);
- ``GAMEDAY_TRACE_DIR``: a folder where this process writes OTLP JSON lines to a file of its
  own (``GAMEDAY_TRACE_DIR_MAX_MB`` caps the folder, default 256);
- ``OTEL_TRACES_SAMPLER_ARG``: the share of root traces recorded (default 1.0). A request that
  arrives with a ``traceparent`` follows its parent's decision; a faulted one is always kept;
- ``OTEL_SERVICE_NAME`` overrides ``service``; ``OTEL_SDK_DISABLED=true`` turns it all off.

With none of these set, or without the ``otel`` extra, it returns None and changes nothing.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from gameday.tracing import ENDPOINT_ENV, TRACE_DIR_ENV, TRACES_ENDPOINT_ENV, installed, wanted
from gameday.tracing.chaos import FAULTED

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from gameday.tracing.export import BoundedProcessor


@dataclass
class Tracing:
    """This process's tracing: its provider, its processor (counts of exported and dropped
    spans) and where the spans go."""

    provider: TracerProvider
    processor: BoundedProcessor
    service: str
    destinations: list[str]

    def tracer(self, name: str) -> Any:
        return self.provider.get_tracer(name)

    def shutdown(self) -> None:
        self.provider.shutdown()


_current: Tracing | None = None


def current() -> Tracing | None:
    """The tracing ``configure`` set up in this process, if any."""
    return _current


def configure(service: str, on_drop: Callable[[int], None] | None = None,
              set_global: bool = True) -> Tracing | None:
    """Set up tracing for this process as the environment asks; None when it does not ask, or
    when the ``otel`` extra is missing (said once on stderr, since spans were asked for)."""
    global _current
    if _current is not None:
        return _current
    if not wanted():
        return None
    if not installed():
        print("gameday: tracing was asked for (GAMEDAY_TRACE_DIR or OTEL_EXPORTER_OTLP_"
              "ENDPOINT) but OpenTelemetry is not installed: pip install 'gameday[otel]'",
              file=sys.stderr)
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from gameday.tracing.export import DEFAULT_FOLDER_MB, BoundedProcessor, FileSink, HttpSink

    name = os.environ.get("OTEL_SERVICE_NAME") or service
    sinks: list[Any] = []
    destinations = []
    folder = os.environ.get(TRACE_DIR_ENV)
    if folder:
        max_mb = float(os.environ.get("GAMEDAY_TRACE_DIR_MAX_MB") or DEFAULT_FOLDER_MB)
        sink = FileSink(Path(folder), name, max_mb)
        sinks.append(sink)
        destinations.append(str(sink.path))
    url = endpoint()
    if url:
        sinks.append(HttpSink(url, headers()))
        destinations.append(url)
    processor = BoundedProcessor(sinks, on_drop=on_drop)
    provider = TracerProvider(sampler=chaos_sampler(root_ratio()),
                              resource=Resource.create({"service.name": name}),
                              shutdown_on_exit=False)
    provider.add_span_processor(processor)  # type: ignore[arg-type]
    if set_global:
        trace.set_tracer_provider(provider)
    _current = Tracing(provider, processor, name, destinations)
    atexit.register(provider.shutdown)  # the last spans reach the file at exit
    return _current


def endpoint() -> str | None:
    """The OTLP/HTTP traces URL this process's environment names, if any."""
    full = os.environ.get(TRACES_ENDPOINT_ENV)
    if full:
        return full
    base = os.environ.get(ENDPOINT_ENV)
    return base.rstrip("/") + "/v1/traces" if base else None


def headers() -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` as a mapping (values are secrets: never logged)."""
    headers = {}
    for item in (os.environ.get("OTEL_EXPORTER_OTLP_HEADERS") or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[key.strip()] = unquote(value.strip())
    return headers


def root_ratio() -> float:
    """The share of root traces recorded (``OTEL_TRACES_SAMPLER_ARG``, default 1)."""
    try:
        return min(1.0, max(0.0, float(os.environ.get("OTEL_TRACES_SAMPLER_ARG") or 1.0)))
    except ValueError:
        return 1.0


def chaos_sampler(ratio: float) -> Any:
    """A sampler that keeps every span marked ``chaos.faulted`` and otherwise follows the
    parent's decision (``ratio`` of the root traces)."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )

    class _Chaos(Sampler):
        def __init__(self) -> None:
            self.base = ParentBased(ALWAYS_ON if ratio >= 1 else TraceIdRatioBased(ratio))

        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:
            if attributes and attributes.get(FAULTED):
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
            return self.base.should_sample(parent_context, trace_id, name, kind, attributes,
                                           links, trace_state)

        def get_description(self) -> str:
            base = self.base.get_description()  # type: ignore[no-untyped-call]
            return f"ChaosSampler(faulted: always, else {base})"

    return _Chaos()
