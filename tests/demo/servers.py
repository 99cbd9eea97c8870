"""Demo services on uvicorn inside a test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp

from gameday.demo.web import server


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` on uvicorn on a free port of this loop, stopped as the stop signal would."""
    uvicorn_server = server(app, 0)
    task = asyncio.create_task(uvicorn_server.serve())
    while not uvicorn_server.started:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    port = uvicorn_server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uvicorn_server.should_exit = True
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Awaitable[Any] | Any], timeout: float = 5.0) -> None:
    """Wait until ``check`` (sync or async) is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
