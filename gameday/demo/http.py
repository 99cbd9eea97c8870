"""A small asyncio HTTP/1.1 server for the demo services.

Enough HTTP for services that answer JSON and Prometheus text: keep-alive, ``Content-Length``
bodies, no TLS, no chunked uploads. Each service is one ``Handler``; :func:`serve` binds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gameday.errors import BadRequest as _BadRequest

log = logging.getLogger(__name__)

#: Longest request head accepted (request line plus headers).
MAX_HEAD = 64 * 1024
#: Largest request body accepted.
MAX_BODY = 1024 * 1024
#: An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 75.0


@dataclass(frozen=True)
class Request:
    """One parsed request; header names are lowercase."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not)."""
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Response:
    """One response to write back."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response."""
    return Response(status, json.dumps(data, separators=(",", ":")).encode())


def error_response(status: int, message: str) -> Response:
    """A JSON error body ``{"error": message}``."""
    return json_response({"error": message}, status)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise _BadRequest(400, "malformed request line") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    return method.upper(), target, version, headers


async def _read_request(reader: asyncio.StreamReader) -> tuple[Request, bool] | None:
    """The next request and whether the client wants the connection kept; None at EOF."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        return None
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest(431, "request head too large") from exc
    method, target, version, headers = _parse_head(head[:-4])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest(411, "chunked request bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise _BadRequest(400, "bad Content-Length") from exc
    if not 0 <= length <= MAX_BODY:
        raise _BadRequest(413, "request body too large")
    body = await reader.readexactly(length) if length else b""
    parts = urlsplit(target)
    connection = headers.get("connection", "").lower()
    keep = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
    request = Request(method, parts.path or "/", dict(parse_qsl(parts.query)), headers, body)
    return request, keep


def _encode(response: Response, keep: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep else 'close'}",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


async def _connection(handler: Handler, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                parsed = await _read_request(reader)
            except _BadRequest as exc:
                writer.write(_encode(error_response(exc.status, str(exc)), keep=False))
                await writer.drain()
                return
            except asyncio.IncompleteReadError:
                return
            if parsed is None:
                return
            request, keep = parsed
            try:
                response = await handler(request)
            except Exception:
                # A bug in one handler must not take the server down; the client sees a 500.
                log.exception("handler failed for %s %s", request.method, request.path)
                response = error_response(500, "internal error")
            if request.method == "HEAD":
                response = Response(response.status, b"", response.content_type, response.headers)
            writer.write(_encode(response, keep))
            await writer.drain()
            if not keep:
                return
    except ConnectionError:
        return
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Start serving ``handler`` on ``host:port``; the caller keeps the server running."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Connection tasks are cancelled at shutdown; Python 3.11's stream callback would log
        # each cancellation as an error, so the task ends quietly instead.
        with contextlib.suppress(asyncio.CancelledError):
            await _connection(handler, reader, writer)

    return await asyncio.start_server(on_connect, host, port, limit=MAX_HEAD, backlog=512)
