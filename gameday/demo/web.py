"""What the demo's Starlette services share: JSON answers, the plumbing routes, the server.

Every part answers JSON, errors included (``{"error": message}``), serves ``/metrics`` and
``/health``, and runs on uvicorn bound to 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Lifespan

from gameday.demo import traces
from gameday.demo.metrics import UNCOUNTED, MetricsMiddleware, ServiceMetrics, metrics_route

HOST = "127.0.0.1"
#: Seconds in-flight requests get to finish once a stop signal arrived.
GRACEFUL_SECONDS = 1


def json_response(data: Any, status: int = 200) -> JSONResponse:
    """A JSON answer."""
    return JSONResponse(data, status)


def error_response(status: int, message: str) -> JSONResponse:
    """A JSON error body ``{"error": message}``."""
    return JSONResponse({"error": message}, status)


async def health(request: Request) -> Response:
    """``GET /health``: the process is up (what it depends on is ``/ready``'s business)."""
    return json_response({"status": "ok"})


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and wrong methods answer JSON like everything else.
    if not isinstance(exc, HTTPException):
        raise exc
    response = error_response(exc.status_code, str(exc.detail).lower())
    response.headers.update(exc.headers or {})
    return response


def service_app(routes: Sequence[BaseRoute], metrics: ServiceMetrics,
                lifespan: Lifespan[Starlette] | None = None) -> Starlette:
    """A demo service: ``routes`` plus ``/metrics`` and ``/health``, every request measured
    (and, when the process traces, a server span around each, so that the measurement's
    exemplar names its trace)."""
    every = [metrics_route(metrics.registry), Route("/health", health), *routes]
    middleware = [Middleware(MetricsMiddleware, metrics=metrics)]
    if traces.enabled():
        middleware.insert(0, traces.asgi_middleware(every, UNCOUNTED))
    return Starlette(routes=every, middleware=middleware,
                     exception_handlers={HTTPException: _http_error}, lifespan=lifespan)


def plain_app(routes: Sequence[BaseRoute], lifespan: Lifespan[Starlette] | None = None
              ) -> Starlette:
    """A part that is not a measured service (the load generator), with JSON errors."""
    return Starlette(routes=[Route("/health", health), *routes],
                     exception_handlers={HTTPException: _http_error}, lifespan=lifespan)


def uvloop_available() -> bool:
    """Whether uvloop is installed (it is lighter on CPU than the default loop)."""
    return importlib.util.find_spec("uvloop") is not None


def server(app: ASGIApp, port: int) -> uvicorn.Server:
    """A uvicorn server for ``app`` on 127.0.0.1:``port`` (0: any free port)."""
    config = uvicorn.Config(
        app, host=HOST, port=port, loop="uvloop" if uvloop_available() else "asyncio",
        access_log=False, log_level="warning", lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        # Longer than httpx's 5 s keep-alive expiry: the client drops an idle connection before
        # the server does, so no request is sent on a connection the server is closing.
        timeout_keep_alive=75)
    return uvicorn.Server(config)

