"""A real upstream HTTP server for proxy tests: a tiny ASGI app served by uvicorn.

Routes: ``/hello`` (fixed body), ``/bytes/N`` (N bytes, chunked), ``/echo`` (streams the request
body back), ``/headers`` (the request headers as JSON), ``/count`` (requests seen so far, not
counting ``/count`` itself), ``/slow/MS`` (answers after MS milliseconds).

Run: ``python -m uvicorn tests.injector.upstream:app --host 127.0.0.1 --port P``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_seen = 0


async def _reply(send: Send, status: int, body: bytes, content_type: str = "text/plain") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI application."""
    global _seen
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if path != "/count":
        _seen += 1
    if path == "/hello":
        await _reply(send, 200, b"hello")
    elif path == "/count":
        await _reply(send, 200, json.dumps({"count": _seen}).encode(), "application/json")
    elif path == "/headers":
        headers: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        await _reply(send, 200, json.dumps(headers).encode(), "application/json")
    elif path.startswith("/bytes/"):
        size = int(path.rsplit("/", 1)[1])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        piece = b"x" * 16384
        while True:
            chunk = piece[:size]
            size -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": size > 0})
            if size <= 0:
                break
    elif path == "/echo":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
            await send({"type": "http.response.body", "body": message.get("body", b""),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path.startswith("/slow/"):
        await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
        await _reply(send, 200, b"slow")
    else:
        await _reply(send, 404, b"not found")
