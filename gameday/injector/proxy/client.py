"""Client side of the data plane: one protocol object per client connection.

Per request: parse the head, ask the decision core (only when rules exist: the no-rule path
is a plain forward), then delay, abort, reset, blackhole or forward through a pooled upstream
connection. Bodies are streamed both ways with flow control (a full socket buffer on one side
pauses reading on the other); nothing buffers a whole body. Pipelined requests are read one at
a time: while a response is pending, reading from the client pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from gameday.injector.decide import PASS, Decision, Request, decide
from gameday.injector.proxy.http1 import MAX_HEAD, ChunkedScanner, Head, ParseError, parse_request
from gameday.injector.proxy.metrics import rule_labels
from gameday.injector.proxy.replies import abort_body, fault_lines, json_reply
from gameday.injector.proxy.throttle import Throttle
from gameday.injector.proxy.upstream import PAUSE_CLIENT_FULL, PAUSE_THROTTLE, UpstreamConn

if TYPE_CHECKING:
    from gameday.injector.proxy.dataplane import DataPlane

# Why reading from the client is paused.
_PAUSE_WAIT = 1  # delay, or connecting to the upstream
_PAUSE_UPSTREAM_FULL = 2
_PAUSE_PIPELINE = 4

_HEAD, _WAIT, _BODY, _AWAIT, _BLACKHOLE, _CLOSED = range(6)
_LINGER_RESET = struct.pack("ii", 1, 0)


class ClientConn(asyncio.Protocol):
    """One client connection, carrying requests one after another."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.state = _HEAD
        self.paused = 0
        self.req: Head | None = None
        self.req_done = True
        self.req_remaining = 0
        self.req_scanner: ChunkedScanner | None = None
        self.decision: Decision = PASS
        self.upstream: UpstreamConn | None = None
        self.code: int | str = 0
        self.close_after = False
        self.t0 = 0.0
        self.retried = False
        self.timer: asyncio.TimerHandle | None = None
        self.delay_start = 0.0
        self.throttle: Throttle | None = None
        self.end_pending: UpstreamConn | None = None
        self.parsing = False
        self.eof = False
        self.quiet = 0
        self.connecting: asyncio.Task[None] | None = None

    # -- asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.plane.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = _CLOSED
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
        return self.state in (_WAIT, _AWAIT, _BODY)

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause(PAUSE_CLIENT_FULL, True)

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause(PAUSE_CLIENT_FULL, False)

    def data_received(self, data: bytes) -> None:
        self.quiet = 0
        state = self.state
        if state == _HEAD:
            self.buffer = self.buffer + data if self.buffer else data
            self._parse()
        elif state == _BODY:
            self._body(data)
        elif state == _BLACKHOLE:
            return
        elif state != _CLOSED:
            self.buffer += data
            if len(self.buffer) > MAX_HEAD:
                self._pause(_PAUSE_PIPELINE, True)

    # -- requests -------------------------------------------------------------------------------

    def _parse(self) -> None:
        if self.parsing:
            return
        self.parsing = True
        try:
            while self.state == _HEAD and self.buffer:
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
                    self.state = _WAIT
                    self._pause(_PAUSE_WAIT, True)
                    self.delay_start = plane.loop.time()
                    self.timer = plane.loop.call_later(decision.delay_ms / 1000, self._delayed)
                    return
        else:
            self.decision = PASS
        self._act()

    def _delayed(self) -> None:
        self.timer = None
        if self.state == _CLOSED:
            return
        metrics = self.plane.metrics
        metrics.delay_requested.observe(self.decision.delay_ms / 1000)
        metrics.delay_applied.observe(self.plane.loop.time() - self.delay_start)
        self._pause(_PAUSE_WAIT, False)
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
            self.state = _WAIT
            self._pause(_PAUSE_WAIT, True)
            # Keep a reference: the loop holds tasks weakly.
            self.connecting = self.plane.loop.create_task(self._connect())
            return
        self._send(conn)

    async def _connect(self) -> None:
        try:
            conn = await self.plane.pool.open()
        except OSError as exc:
            if self.state != _CLOSED:
                self._pause(_PAUSE_WAIT, False)
                self._unreachable(str(exc) or type(exc).__name__)
            return
        if self.state == _CLOSED:
            conn.close()
            return
        self._pause(_PAUSE_WAIT, False)
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
            self.state = _AWAIT
        else:
            self.state = _BODY
            # Body bytes that arrived while waiting go first; what follows them is the next
            # request and waits in the buffer (_take_body pauses reading for it).
            data, self.buffer = self.buffer, b""
            try:
                out += self._take_body(data)
            except ParseError as exc:
                self._error(exc.status, str(exc))
                return
            if self.state == _BODY:
                self._pause(_PAUSE_PIPELINE, False)
        conn.write(out)
        if self.buffer:
            self._pause(_PAUSE_PIPELINE, True)

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
        if self.state == _BODY:
            self.state = _AWAIT
        if end < len(data):
            self.buffer += data[end:]
            self._pause(_PAUSE_PIPELINE, True)
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
        self.state = _CLOSED
        transport.abort()

    def _blackhole(self) -> None:
        self.code = "blackhole"
        self._finish_metrics()
        self.state = _BLACKHOLE
        self._pause(self.paused, False)
        # Held until the client gives up, or at the latest until the rule itself expires.
        rule = self.decision.rules[-1]
        self.timer = self.plane.loop.call_later(max(0.0, rule.expires_at - time.time()),
                                                self.close)

    # -- responses (called by UpstreamConn) ------------------------------------------------------

    def interim(self, data: bytes) -> None:
        """Pass a 1xx response on."""
        if self.transport is not None:
            self.transport.write(data)

    def response_head(self, head: Head) -> bytes:
        """The response head to send on, with fault headers and our own keep-alive decision."""
        self.code = head.status
        decision = self.decision
        extra = fault_lines(decision)
        if not head.chunked and head.length is None:
            self.close_after = True
        if self.close_after:
            extra.append(b"Connection: close")
        elif self.req is not None and self.req.version == 10:
            extra.append(b"Connection: keep-alive")
        if decision.kbps and self.transport is not None:
            self.throttle = Throttle(self.plane.loop, self.transport.write,
                                     decision.kbps * 125.0, self._drained)  # kbit/s → B/s
        return head.forward(extra)

    def response_body(self, data: bytes, head: bytes = b"") -> None:
        """Send body bytes on (paced when throttled), after ``head`` if given."""
        transport = self.transport
        if transport is None:
            return
        throttle = self.throttle
        if throttle is None:
            # One write (one send call) for head and body when both are at hand.
            transport.write(head + data if head else data)
            return
        if head:
            transport.write(head)
        if data:
            if self.upstream is not None:
                self.upstream.pause(PAUSE_THROTTLE, True)
            throttle.push(data)

    def response_end(self, conn: UpstreamConn) -> None:
        """The response is complete; give the connection back and go on to the next request."""
        if self.throttle is not None:
            if self.throttle.busy:
                self.end_pending = conn
                return
            self.throttle = None
        self.upstream = None
        if self.req_done and conn.reusable:
            self.plane.pool.put(conn)
        else:
            conn.close()
        self._finish_metrics()
        self._next()

    def upstream_failed(self, conn: UpstreamConn, exc: Exception | None,
                        bad: bool = False) -> None:
        """The upstream closed or failed before a response head arrived."""
        self.upstream = None
        if self.state == _CLOSED:
            return
        stale = conn.used > 1 and not conn.got_bytes and not bad
        if stale and not self.retried and self.req is not None and not self.req.chunked \
                and not self.req.length:
            # A pooled connection the server had just closed: try once on a fresh one.
            self.retried = True
            self._forward()
            return
        reason = "invalid response from upstream" if bad else "upstream closed the connection"
        self._unreachable(f"{reason}: {exc}" if exc else reason)

    def upstream_truncated(self) -> None:
        """The upstream broke off mid-response: the client can only be told by a close."""
        self.upstream = None
        self.code = "truncated"
        self._finish_metrics()
        self.close()

    # -- helpers --------------------------------------------------------------------------------

    def _drained(self) -> None:
        """The throttle wrote everything queued: read on, or finish the response."""
        if self.upstream is not None:
            self.upstream.pause(PAUSE_THROTTLE, False)
        if self.end_pending is not None:
            conn, self.end_pending = self.end_pending, None
            self.response_end(conn)

    def _reply(self, status: int, data: object, extra: list[bytes] | None = None) -> None:
        """Answer the current request ourselves (abort, 502, 4xx) with a JSON body."""
        if not self.req_done:
            self.close_after = True  # the unread request body makes the stream unusable
        if self.transport is not None:
            self.transport.write(json_reply(status, data, extra, self.close_after))
        self.code = status
        self._finish_metrics()
        self._next()

    def _unreachable(self, detail: str) -> None:
        self.plane.metrics.upstream_errors.inc()
        self._reply(502, {"error": "upstream unreachable", "upstream": self.plane.upstream_url,
                          "detail": detail})

    def _error(self, status: int, message: str) -> None:
        self.close_after = True
        self.req_done = True
        self._reply(status, {"error": message})

    def _finish_metrics(self) -> None:
        self.plane.metrics.count(self.code, self.plane.loop.time() - self.t0)

    def _next(self) -> None:
        """Go on to the next request on this connection, or close it."""
        if self.close_after or self.eof or not self.req_done:
            self.close()
            return
        self.state = _HEAD
        self.decision = PASS
        self.req = None
        if self.paused & _PAUSE_PIPELINE:
            self._pause(_PAUSE_PIPELINE, False)
        if self.buffer:
            self._parse()

    def _pause(self, reason: int, on: bool) -> None:
        before = self.paused
        self.paused = before | reason if on else before & ~reason
        transport = self.transport
        if transport is None or self.state == _CLOSED:
            return
        if self.paused and not before:
            transport.pause_reading()
        elif before and not self.paused:
            transport.resume_reading()

    def pause_for_upstream(self, on: bool) -> None:
        """The upstream's send buffer is full (or drained again)."""
        self._pause(_PAUSE_UPSTREAM_FULL, on)

    def tick(self, max_ticks: int) -> None:
        """One idle sweep: close a connection that has been quiet between requests too long."""
        if self.state not in (_HEAD,):
            return
        self.quiet += 1
        # A half-sent head gets less patience than an idle keep-alive connection.
        if self.quiet >= (2 if self.buffer else max_ticks):
            self.close()

    def close(self, *_: Any) -> None:
        """Close the connection after what was written is sent."""
        if self.state != _CLOSED:
            self.state = _CLOSED
            upstream, self.upstream = self.upstream, None
            if upstream is not None:
                upstream.client = None
                upstream.close()
            if self.transport is not None:
                self.transport.close()
