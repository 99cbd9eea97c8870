"""Tracing of the demo's own services, with OpenTelemetry's official instrumentations.

``start(service)`` runs first in a part's process (``python -m gameday.demo PART``). When the
stack asked for spans (``GAMEDAY_TRACE_DIR``, see :mod:`gameday.tracing`) and OpenTelemetry and
the instrumentations are installed, it sets up the process's tracer provider and the rest of
this module starts doing something:

- server spans from the plain ASGI ``OpenTelemetryMiddleware`` (named by route, plumbing paths
  left out, no per-message ``receive``/``send`` spans);
- a client span per HTTP attempt (httpx), per Redis command, per PostgreSQL query, each child
  of the span current when it starts, and the ``traceparent`` sent on;
- ``exemplar()``: the current trace's id for the latency histograms, when it is sampled;
- ``breaker_rejected()``, ``breaker_state()``: what a breaker decided, on the current span;
- ``untraced()``: probes made in an unsampled trace, so that they record nothing anywhere.

Otherwise every function here returns at once and OpenTelemetry is never imported: the demo
runs, and prints, exactly as without tracing. (Unlike ``configure``, a missing package is not
reported: the stack always offers a trace folder, and a demo without the packages is no
mistake.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from gameday.extras import module_found
from gameday.tracing import wanted

if TYPE_CHECKING:
    import httpx
    import redis.asyncio
    from starlette.middleware import Middleware
    from starlette.routing import BaseRoute

log = logging.getLogger(__name__)

#: What a traced demo needs: the SDK and the instrumentations; without one, it runs untraced.
PACKAGES = (
    "opentelemetry.sdk",
    "opentelemetry.instrumentation.asgi",
    "opentelemetry.instrumentation.httpx",
    "opentelemetry.instrumentation.asyncpg",
    "opentelemetry.instrumentation.redis",
)

#: The retry number of the HTTP attempt being sent (0: the first try), for its span's hook.
_resending: ContextVar[int] = ContextVar("gameday_demo_resend_count", default=0)

#: ``trace.get_current_span`` once tracing is on; None while it is off.
_current_span: Callable[[], Any] | None = None
_asyncpg_done = False


def _installed() -> bool:
    return all(module_found(name) for name in PACKAGES)


def start(service: str) -> bool:
    """Trace this process as ``service`` when the environment asks for spans; whether it does."""
    global _current_span
    if _current_span is not None:
        return True
    if not wanted() or not _installed():
        return False
    from gameday.tracing.setup import configure

    tracing = configure(service)
    if tracing is None:
        return False
    log.info("tracing as %s to %s", tracing.service, ", ".join(tracing.destinations))
    from opentelemetry import trace

    _current_span = trace.get_current_span
    return True


def enabled() -> bool:
    """Whether this process traces."""
    return _current_span is not None


def exemplar() -> dict[str, str] | None:
    """``{"trace_id": <32 hex>}`` of the current span when its trace is sampled, else None:
    an exemplar must name a trace that is in the files."""
    if _current_span is None:
        return None
    context = _current_span().get_span_context()
    if not context.trace_flags.sampled:
        return None
    return {"trace_id": f"{context.trace_id:032x}"}


def breaker_rejected(dependency: str) -> None:
    """Mark the current span: ``dependency``'s breaker refused the call (event ``breaker.open``)."""
    if _current_span is None:
        return
    span = _current_span()
    if span.is_recording():
        span.add_event("breaker.open", {"dependency": dependency})


def breaker_state(state: str) -> None:
    """``breaker.state`` on the current span: the state of the breaker that decided the call."""
    if _current_span is None:
        return
    span = _current_span()
    if span.is_recording():
        span.set_attribute("breaker.state", state)


@contextlib.contextmanager
def resend(retry: int) -> Iterator[None]:
    """Within, HTTP requests are retry number ``retry`` of a call: their spans say so
    (``http.request.resend_count``), which is how a trace tells retries from new calls."""
    token = _resending.set(retry)
    try:
        yield
    finally:
        _resending.reset(token)


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Within, calls are made in a trace that is not sampled: no span records, here or
    downstream (the ``traceparent`` sent says so, and the proxies and services follow it).
    For readiness probes, which would otherwise start a trace each."""
    if _current_span is None:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    ids = RandomIdGenerator()
    unsampled = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), is_remote=False,
                            trace_flags=TraceFlags(TraceFlags.DEFAULT))
    with trace.use_span(NonRecordingSpan(unsampled)):
        yield


def asgi_middleware(routes: Sequence[BaseRoute], uncounted: frozenset[str],
                    provider: Any = None) -> Middleware:
    """The server-span middleware for an app of ``routes``; ``uncounted`` paths get none.
    (``provider``: a tracer provider other than the process's.)"""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette.middleware import Middleware

    # The middleware matches each pattern against the request URL without its query.
    excluded = ",".join(f"{path}$" for path in sorted(uncounted))
    return Middleware(OpenTelemetryMiddleware, excluded_urls=excluded,
                      default_span_details=_span_details(routes), tracer_provider=provider,
                      exclude_spans=["receive", "send"])


def _span_details(routes: Sequence[BaseRoute],
                  ) -> Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]:
    """Server spans named ``GET /users/{user_id}``, not by path: one name per route, as the
    semantic conventions ask, instead of one per user."""
    from starlette.routing import Match

    def details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        method = str(scope.get("method") or "HTTP")
        for route in routes:
            match, _ = route.matches(scope)
            path = getattr(route, "path", None)
            if match == Match.FULL and path:
                return f"{method} {path}", {"http.route": path}
        return method, {}

    return details


def instrument_httpx(client: httpx.AsyncClient, provider: Any = None) -> None:
    """A client span around each request ``client`` sends (``provider``: a tracer provider
    other than the process's, which also instruments while the process does not trace).

    ``instrument_client`` wraps the client's own transport, the outermost one: a fault
    transport there runs inside the span, so what it injects is part of the attempt.
    """
    if _current_span is None and provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider,
                                              request_hook=_resend_count)


async def _resend_count(span: Any, request: Any) -> None:
    retry = _resending.get()
    if retry and span.is_recording():
        span.set_attribute("http.request.resend_count", retry)


def instrument_redis(client: redis.asyncio.Redis) -> None:
    """A client span around each command ``client`` sends."""
    if _current_span is None:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client)


def instrument_asyncpg() -> None:
    """A client span around each asyncpg query of this process (asyncpg has no per-pool hook:
    the instrumentation patches the connection class)."""
    global _asyncpg_done
    if _current_span is None or _asyncpg_done:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    _asyncpg_done = True
