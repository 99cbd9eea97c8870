"""Upstream side of the data plane: keep-alive connections to the upstream and their pool.

One ``UpstreamConn`` carries one request at a time for the client connection attached to it,
parses the response head and finds the end of the body (length, chunked, or connection
close) while the bytes themselves go on to the client untouched. Idle connections wait in a
LIFO pool (the most recently used one is the least likely to have been closed by the server).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gameday.injector.proxy.http1 import MAX_HEAD, ChunkedScanner, ParseError, parse_response
from gameday.injector.proxy.limits import WRITE_HIGH

if TYPE_CHECKING:
    from gameday.injector.proxy.client import ClientConn

# Why reading from the upstream is paused (a bit each, so reasons do not undo each other).
PAUSE_CLIENT_FULL = 1
PAUSE_THROTTLE = 2

_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE, _TUNNEL = range(5)


class UpstreamConn(asyncio.Protocol):
    """One keep-alive connection to the upstream."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.client: ClientConn | None = None
        self.buffer = b""
        self.mode = _HEAD
        self.remaining = 0
        self.scanner: ChunkedScanner | None = None
        self.method = b"GET"
        self.websocket = False
        self.reusable = True
        self.closed = False
        self.used = 0
        self.got_bytes = False
        self.paused = 0
        self.idle_ticks = 0

    # -- asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(WRITE_HIGH)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        client, self.client = self.client, None
        if client is None:
            return
        if self.mode == _HEAD:
            client.upstream_failed(self, exc)
        elif self.mode == _UNTIL_CLOSE:
            self.reusable = False
            client.response_end(self)
        elif self.mode == _TUNNEL:
            client.tunnel_end()
        else:
            client.upstream_truncated()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_for_upstream(True)

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.pause_for_upstream(False)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            # Bytes nobody asked for: the connection's framing can no longer be trusted.
            self.close()
            return
        self.got_bytes = True
        head = b""
        if self.mode == _HEAD:
            head, data = self._head(client, data)
            if self.mode == _HEAD:
                return
        mode = self.mode
        if mode == _LENGTH:
            remaining = self.remaining
            if len(data) < remaining:
                self.remaining = remaining - len(data)
                client.response_body(data, head)
                return
            if len(data) > remaining:
                self.reusable = False
                data = data[:remaining]
            self.remaining = 0
            client.response_body(data, head)
            self._finish(client)
        elif mode == _CHUNKED:
            scanner = self.scanner
            assert scanner is not None
            try:
                body = scanner.feed(data)
            except ParseError:
                self.client = None
                self.close()
                if head:
                    # Nothing was sent yet: the client can still be told properly.
                    client.upstream_failed(self, None, bad=True)
                else:
                    client.upstream_truncated()
                return
            if not scanner.done:
                client.response_body(body, head)
                return
            if scanner.rest:
                self.reusable = False
            client.response_body(body, head)
            self._finish(client)
        else:
            client.response_body(data, head)

    # -- helpers --------------------------------------------------------------------------------

    def _head(self, client: ClientConn, data: bytes) -> tuple[bytes, bytes]:
        """Parse the response head: the head to send on and the body bytes after it.

        ``mode`` stays ``_HEAD`` while the head is incomplete (or was invalid).
        """
        while True:
            buf = self.buffer + data if self.buffer else data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._bad(client)
                    return b"", b""
                self.buffer = buf
                return b"", b""
            self.buffer = b""
            try:
                head = parse_response(buf[:end + 4], self.method)
            except ParseError:
                self._bad(client)
                return b"", b""
            data = buf[end + 4:]
            if head.status < 200:
                if head.status == 101:
                    if self.websocket and head.websocket:
                        self.mode = _TUNNEL
                        self.reusable = False
                        return client.tunnel_head(head), buf[end + 4:]
                    # Any other upgrade was stripped on the way in: a switch would desync us.
                    self._bad(client)
                    return b"", b""
                client.interim(buf[:end + 4])
                if not data:
                    return b"", b""
                continue
            break
        if not head.keep_alive:
            self.reusable = False
        if head.chunked:
            self.mode = _CHUNKED
            self.scanner = ChunkedScanner()
        elif head.length is not None:
            self.mode = _LENGTH
            self.remaining = head.length
        else:
            self.mode = _UNTIL_CLOSE
            self.reusable = False
        return client.response_head(head), data

    def _bad(self, client: ClientConn) -> None:
        self.client = None
        self.close()
        client.upstream_failed(self, None, bad=True)

    def _finish(self, client: ClientConn) -> None:
        self.client = None
        self.mode = _HEAD
        self.scanner = None
        client.response_end(self)

    @property
    def responding(self) -> bool:
        """Whether the response head has come (its bytes may be on their way to the client)."""
        return self.mode != _HEAD

    def attach(self, client: ClientConn, method: bytes, websocket: bool = False) -> None:
        """Start carrying one request for ``client`` (a WebSocket handshake if ``websocket``)."""
        self.client = client
        self.method = method
        self.websocket = websocket
        self.mode = _HEAD
        self.buffer = b""
        self.got_bytes = False
        self.used += 1

    def pause(self, reason: int, on: bool) -> None:
        """Pause or resume reading for ``reason``."""
        before = self.paused
        self.paused = before | reason if on else before & ~reason
        if self.transport is None or self.closed:
            return
        if self.paused and not before:
            self.transport.pause_reading()
        elif before and not self.paused:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        """Send request bytes."""
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def write_eof(self) -> None:
        """Half-close: no more bytes will be sent (a tunnel's client closed its side)."""
        if self.transport is not None and not self.closed and self.transport.can_write_eof():
            self.transport.write_eof()

    def close(self) -> None:
        """Close the connection (not back to the pool)."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections to one upstream ``host:port``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int,
                 max_idle: int = 1024) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.idle: list[UpstreamConn] = []

    def take(self) -> UpstreamConn | None:
        """An idle connection, if there is one."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.idle_ticks = 0
                return conn
        return None

    async def open(self) -> UpstreamConn:
        """A new connection; ``OSError`` when the upstream does not accept."""
        _, conn = await self.loop.create_connection(lambda: UpstreamConn(self), self.host,
                                                    self.port)
        return conn

    def put(self, conn: UpstreamConn) -> None:
        """Return ``conn`` after a complete exchange (closed instead if it cannot be reused)."""
        if conn.closed or not conn.reusable or len(self.idle) >= self.max_idle:
            conn.close()
            return
        if conn.paused:
            conn.pause(conn.paused, False)
        self.idle.append(conn)

    def discard(self, conn: UpstreamConn) -> None:
        """Forget a connection that closed."""
        if self.idle and conn in self.idle:
            self.idle.remove(conn)

    def sweep(self, max_ticks: int) -> None:
        """Close connections that stayed idle for ``max_ticks`` sweeps."""
        for conn in list(self.idle):
            conn.idle_ticks += 1
            if conn.idle_ticks >= max_ticks:
                conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()
