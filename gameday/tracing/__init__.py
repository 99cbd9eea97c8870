"""Tracing: OpenTelemetry spans for faulted traffic and for the game day itself (extra ``otel``).

Nothing here is imported unless tracing is asked for, so a service that embeds the injector
without the extra, or with no trace destination set, behaves exactly as before.

- ``chaos`` — the ``chaos.*`` attribute vocabulary (no OpenTelemetry needed to read it);
- ``setup`` — :func:`~gameday.tracing.setup.configure`: a tracer provider for this process that
  writes OTLP JSON to ``GAMEDAY_TRACE_DIR`` and/or posts it to ``OTEL_EXPORTER_OTLP_ENDPOINT``;
- ``export`` — the bounded span processor and the two sinks (file, OTLP/HTTP JSON);
- ``otlp`` — spans to OTLP JSON and back, as plain typed records;
- ``faults`` — what the proxy, its TCP mode and the httpx transport record for a fault;
- ``read`` — traces read back from the files, for the postmortem.
"""

from __future__ import annotations

import os

from gameday.extras import module_found

#: Where each process of a stack writes its spans, one OTLP JSON lines file per process.
TRACE_DIR_ENV = "GAMEDAY_TRACE_DIR"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def installed() -> bool:
    """Whether the OpenTelemetry SDK (the ``otel`` extra) can be imported."""
    return module_found("opentelemetry.sdk")


def wanted() -> bool:
    """Whether this process was given somewhere to send spans (and tracing is not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(os.environ.get(name) for name in (TRACE_DIR_ENV, ENDPOINT_ENV,
                                                   TRACES_ENDPOINT_ENV))
