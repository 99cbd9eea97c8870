"""Client side of the data plane: one protocol object per client connection.

Per request: parse the head, ask the decision core (only when rules exist: the no-rule path
is a plain forward), then delay, abort, reset, blackhole or forward through a pooled upstream
connection. Bodies are streamed both ways with flow control (a full socket buffer on one side
pauses reading on the other); nothing buffers a whole body. Pipelined requests are read one at
a time: while a response is pending, reading from the client pauses.

The connection's state and shared moves are in ``client_state``; what the upstream side calls
with the answer is in ``client_response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

from gameday.injector.decide import PASS, Request, decide
from gameday.injector.proxy.client_response import ResponseSide
from gameday.injector.proxy.client_state import (
    AWAIT,
    BLACKHOLE,
    BODY,
    CLOSED,
    HEAD,
    PAUSE_PIPELINE,
    PAUSE_WAIT,
    WAIT,
)
from gameday.injector.proxy.http1 import MAX_HEAD, ChunkedScanner, Head, ParseError, parse_request
from gameday.injector.proxy.metrics import rule_labels
from gameday.injector.proxy.replies import abort_body, fault_lines
from gameday.injector.proxy.upstream import PAUSE_CLIENT_FULL, UpstreamConn

__all__ = ["ClientConn"]

_LINGER_RESET = struct.pack("ii", 1, 0)


class ClientConn(ResponseSide, asyncio.Protocol):
    """One client connection, carrying requests one after another."""

    # -- asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.plane.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        self.plane.clients.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            # The response has nowhere to go; the connection's framing is mid-message.
            upstream.client = None
            upstream.close()
        if self.throttle is not None:
            self.throttle.cancel()

    def eof_received(self) -> bool:
        self.eof = True
        # Keep the socket open to deliver a response still on its way; otherwise close.
        return self.state in (WAIT, AWAIT, BODY)

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause(PAUSE_CLIENT_FULL, True)

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause(PAUSE_CLIENT_FULL, False)

    def data_received(self, data: bytes) -> None:
        self.quiet = 0
        state = self.state
        if state == HEAD:
            self.buffer = self.buffer + data if self.buffer else data
            self._parse()
        elif state == BODY:
            self._body(data)
        elif state == BLACKHOLE:
            return
        elif state != CLOSED:
            self.buffer += data
            if len(self.buffer) > MAX_HEAD:
                self._pause(PAUSE_PIPELINE, True)

    # -- requests -------------------------------------------------------------------------------

    def _parse(self) -> None:
        if self.parsing:
            return
        self.parsing = True
        try:
            while self.state == HEAD and self.buffer:
                buf = self.buffer
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        self._error(431, "request head too large")
                    return
                self.buffer = buf[end + 4:]
                try:
                    head = parse_request(buf[:end + 4])
                except ParseError as exc:
                    self._error(exc.status, str(exc))
                    return
                self._start(head)
        finally:
            self.parsing = False

    def _start(self, head: Head) -> None:
        plane = self.plane
        self.req = head
        self.t0 = plane.loop.time()
        self.retried = False
        self.code = 0
        self.close_after = not head.keep_alive
        if head.chunked:
            self.req_scanner = ChunkedScanner()
            self.req_done = False
        elif head.length:
            self.req_remaining = head.length
            self.req_done = False
        else:
            self.req_done = True
        if head.method == b"CONNECT":
            self._error(405, "CONNECT is not supported")
            return
        rules = plane.store.snapshot
        if rules:
            request = Request(head.method.decode("latin-1"),
                              head.target.decode("latin-1"), head.headers())
            self.decision = decision = decide(rules, request, plane.rng, time.time())
            if decision.rules:
                for rule in decision.rules:
                    plane.metrics.injected.labels(*rule_labels(rule)).inc()
                if decision.delay_ms > 0:
                    self.state = WAIT
                    self._pause(PAUSE_WAIT, True)
                    self.delay_start = plane.loop.time()
                    self.timer = plane.loop.call_later(decision.delay_ms / 1000, self._delayed)
                    return
        else:
            self.decision = PASS
        self._act()

    def _delayed(self) -> None:
        self.timer = None
        if self.state == CLOSED:
            return
        metrics = self.plane.metrics
        metrics.delay_requested.observe(self.decision.delay_ms / 1000)
        metrics.delay_applied.observe(self.plane.loop.time() - self.delay_start)
        self._pause(PAUSE_WAIT, False)
        self._act()

    def _act(self) -> None:
        action = self.decision.action
        if action == "pass":
            self._forward()
        elif action == "abort":
            self._abort()
        elif action == "reset":
            self._reset()
        else:
            self._blackhole()

    def _forward(self) -> None:
        conn = self.plane.pool.take()
        if conn is None:
            self.state = WAIT
            self._pause(PAUSE_WAIT, True)
            # Keep a reference: the loop holds tasks weakly.
            self.connecting = self.plane.loop.create_task(self._connect())
            return
        self._send(conn)

    async def _connect(self) -> None:
        try:
            conn = await self.plane.pool.open()
        except OSError as exc:
            if self.state != CLOSED:
                self._pause(PAUSE_WAIT, False)
                self._unreachable(str(exc) or type(exc).__name__)
            return
        if self.state == CLOSED:
            conn.close()
            return
        self._pause(PAUSE_WAIT, False)
        self._send(conn)

    def _send(self, conn: UpstreamConn) -> None:
        head = self.req
        assert head is not None
        self.upstream = conn
        conn.attach(self, head.method)
        extra = fault_lines(self.decision)
        if head.header(b"host") is None:
            extra.append(self.plane.host_line)
        out = head.forward(extra)
        if self.req_done:
            self.state = AWAIT
        else:
            self.state = BODY
            # Body bytes that arrived while waiting go first; what follows them is the next
            # request and waits in the buffer (_take_body pauses reading for it).
            data, self.buffer = self.buffer, b""
            try:
                out += self._take_body(data)
            except ParseError as exc:
                self._error(exc.status, str(exc))
                return
            if self.state == BODY:
                self._pause(PAUSE_PIPELINE, False)
        conn.write(out)
        if self.buffer:
            self._pause(PAUSE_PIPELINE, True)

    def _take_body(self, data: bytes) -> bytes:
        """The part of ``data`` that belongs to the request body; the rest goes to the buffer."""
        if self.req_scanner is not None:
            end = self.req_scanner.feed(data)
            if end < 0:
                return data
            self.req_scanner = None
        else:
            if len(data) < self.req_remaining:
                self.req_remaining -= len(data)
                return data
            end = self.req_remaining
            self.req_remaining = 0
        self.req_done = True
        if self.state == BODY:
            self.state = AWAIT
        if end < len(data):
            self.buffer += data[end:]
            self._pause(PAUSE_PIPELINE, True)
        return data[:end]

    def _body(self, data: bytes) -> None:
        try:
            body = self._take_body(data)
        except ParseError as exc:
            self._error(exc.status, str(exc))
            return
        if self.upstream is not None and body:
            self.upstream.write(body)

    # -- faults ---------------------------------------------------------------------------------

    def _abort(self) -> None:
        decision = self.decision
        self._reply(decision.status, abort_body(decision), fault_lines(decision))

    def _reset(self) -> None:
        self.code = "reset"
        self._finish_metrics()
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST instead of FIN, which is what "reset" means.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self.state = CLOSED
        transport.abort()

    def _blackhole(self) -> None:
        self.code = "blackhole"
        self._finish_metrics()
        self.state = BLACKHOLE
        self._pause(self.paused, False)
        # Held until the client gives up, or at the latest until the rule itself expires.
        rule = self.decision.rules[-1]
        self.timer = self.plane.loop.call_later(max(0.0, rule.expires_at - time.time()),
                                                self.close)

    def _next(self) -> None:
        """Go on to the next request on this connection, or close it."""
        if self.close_after or self.eof or not self.req_done:
            self.close()
            return
        self.state = HEAD
        self.decision = PASS
        self.req = None
        if self.paused & PAUSE_PIPELINE:
            self._pause(PAUSE_PIPELINE, False)
        if self.buffer:
            self._parse()
