"""One socket of a proxied TCP connection: the client's or the upstream's.

A side only forwards what asyncio tells it to its connection. What it reads goes to ``out``:
the other socket's ``write`` itself while no rule acts on the stream (nothing runs per chunk
but that call), the stream's ``feed`` while one does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from gameday.injector.proxy.limits import WRITE_HIGH

if TYPE_CHECKING:
    from gameday.injector.tcp.conn import Conn

# Why reading from a side is paused (a bit each, so reasons do not undo each other).
PAUSE_CONNECTING = 1  # the upstream is not connected yet
PAUSE_SINK_FULL = 2  # the other socket's send buffer is over its limit
PAUSE_QUEUED = 4  # the stream holds too much (delayed, throttled, blackholed bytes)


def _nowhere(data: bytes) -> None:
    """Where bytes would go before the connection wires its streams."""


class Side(asyncio.Protocol):
    """One socket of a connection; ``client`` tells which of the two it is."""

    __slots__ = ("client", "closed", "conn", "out", "paused", "transport")

    def __init__(self, conn: Conn, client: bool) -> None:
        self.conn = conn
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.out: Callable[[bytes], None] = _nowhere
        self.paused = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(WRITE_HIGH)  # type: ignore[attr-defined]
        if self.client:
            self.conn.accepted()
        if self.paused:
            # uvloop starts reading only after connection_made returns, undoing a pause asked
            # for before or in it; ask again once it has started. What is read until then
            # waits at the stream's gate.
            self.conn.plane.loop.call_soon(self._repause)

    def _repause(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.out(data)

    def eof_received(self) -> bool:
        return self.conn.eof_from(self)

    def pause_writing(self) -> None:
        self.conn.sink_full(self, True)

    def resume_writing(self) -> None:
        self.conn.sink_full(self, False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.conn.lost(self, exc)

    def pause(self, reason: int, on: bool) -> None:
        """Pause reading for ``reason`` (or lift that reason); reading resumes with none left."""
        before = self.paused
        self.paused = before | reason if on else before & ~reason
        transport = self.transport
        if transport is None or self.closed:
            return
        if self.paused and not before:
            transport.pause_reading()
        elif before and not self.paused:
            transport.resume_reading()
