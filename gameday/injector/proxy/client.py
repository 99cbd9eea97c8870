"""Client side of the data plane: one protocol object per client connection.

Per request: parse the head, ask the decision core (only when rules exist: the no-rule path
is a plain forward), then delay, abort, reset, blackhole or forward through a pooled upstream
connection. Bodies are streamed both ways with flow control (a full socket buffer on one side
pauses reading on the other); nothing buffers a whole body. Pipelined requests are read one at
a time: while a response is pending, reading from the client pauses.

The connection's state and shared moves are in ``client_state``, its deadlines in
``client_deadline``, what the upstream side calls with the answer in ``client_response``, the
faults in ``client_faults``. A WebSocket handshake that the upstream accepts (101) turns the
connection into a tunnel: bytes both ways, with the same flow control.
"""

from __future__ import annotations

import asyncio
import time

from gameday.injector.decide import PASS, Request, decide
from gameday.injector.proxy.client_deadline import (
    BODY_DEADLINE,
    HEAD_DEADLINE,
    NO_DEADLINE,
    UPSTREAM_DEADLINE,
)
from gameday.injector.proxy.client_faults import FaultSide
from gameday.injector.proxy.client_state import (
    AWAIT,
    BLACKHOLE,
    BODY,
    CLOSED,
    HEAD,
    PAUSE_PIPELINE,
    PAUSE_WAIT,
    TUNNEL,
    WAIT,
)
from gameday.injector.proxy.http1 import MAX_HEAD, ChunkedScanner, Head, ParseError, parse_request
from gameday.injector.proxy.limits import WRITE_HIGH
from gameday.injector.proxy.metrics import rule_labels
from gameday.injector.proxy.replies import fault_lines
from gameday.injector.proxy.screen import may_apply
from gameday.injector.proxy.upstream import PAUSE_CLIENT_FULL, UpstreamConn

__all__ = ["ClientConn"]

_UPGRADE_LINES = (b"Upgrade: websocket", b"Connection: Upgrade")
#: Last hex digits of a ``traceparent`` whose flags have the sampled bit (``…-01``, ``…-03``).
_SAMPLED_DIGITS = frozenset(b"13579bdfBDF")


class ClientConn(FaultSide, asyncio.Protocol):
    """One client connection, carrying requests one after another."""

    # -- asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        plane = self.plane
        if len(plane.clients) >= plane.limits.max_connections:
            self._refuse()
            return
        plane.clients.add(self)
        transport.set_write_buffer_limits(WRITE_HIGH)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        plane = self.plane
        if self in plane.clients:
            plane.clients.discard(self)
            plane.tunnels.discard(self)
        else:
            plane.refused_open -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._stop_deadlines()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            # The response has nowhere to go; the connection's framing is mid-message.
            upstream.client = None
            upstream.close()
        if self.throttle is not None:
            self.throttle.cancel()
        if self.span is not None:
            self.span.end(self.code or "client closed")
            self.span = None

    def eof_received(self) -> bool:
        self.eof = True
        if self.state == TUNNEL:
            # Half-closed: pass the FIN on and keep the way back open until the upstream closes.
            if self.upstream is not None:
                self.upstream.write_eof()
            return True
        # Keep the socket open to deliver a response still on its way; otherwise close.
        return self.state in (WAIT, AWAIT, BODY)

    def pause_writing(self) -> None:
        self.write_full = True
        if self.upstream is not None:
            self.upstream.pause(PAUSE_CLIENT_FULL, True)

    def resume_writing(self) -> None:
        self.write_full = False
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
        elif state == TUNNEL:
            if self.upstream is not None:
                self.upstream.write(data)
        elif state != CLOSED:
            # A pipelined request while a response is in flight: keep it, read no further
            # until this exchange is over (the next one may need every byte of flow control).
            self.buffer += data
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
                    elif self.deadline_kind != HEAD_DEADLINE:
                        # A head in pieces: it has this long from its first byte.
                        self.t0 = self.plane.loop.time()
                        self._arm(HEAD_DEADLINE, self.plane.limits.head_timeout)
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
        if self.deadline_kind != HEAD_DEADLINE:
            self.t0 = plane.loop.time()
        self.deadline_kind = NO_DEADLINE  # an injected delay is waited out with no deadline
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
        store = plane.store
        now = time.time()
        if store.snapshot and may_apply(store.screens, head, now):
            request = Request(head.method.decode("latin-1"),
                              head.target.decode("latin-1"), head.headers())
            self.decision = decision = decide(store.snapshot, request, plane.rng, now)
        else:
            self.decision = decision = PASS
        if plane.spans is not None:
            # After the decision, so that a faulted request is always recorded.
            self._trace(head)
        if decision.rules:
            for rule in decision.rules:
                plane.metrics.injected.labels(*rule_labels(rule)).inc()
            if decision.delay_ms > 0:
                self.state = WAIT
                self._pause(PAUSE_WAIT, True)
                plane.metrics.delay_requested.observe(decision.delay_ms / 1000)
                self.delay_start = plane.loop.time()
                self.timer = plane.loop.call_later(decision.delay_ms / 1000, self._delayed)
                return
        self._act()

    def _trace(self, head: Head) -> None:
        """Start the request's span when it is faulted or sampled; the upstream then gets a
        ``traceparent`` naming that span instead of the caller's."""
        spans = self.plane.spans
        assert spans is not None
        if self.span is not None:  # an exchange that never finished (the client went away)
            self.span.end("abandoned")
        self.span = None
        parent = head.header(b"traceparent")
        if parent is not None and len(parent) == 55 and parent[54] not in _SAMPLED_DIGITS \
                and not self.decision.rules:
            return  # the most common case, decided on the raw bytes: passed on untouched
        self.span = span = spans.request(
            parent.decode("latin-1") if parent else None, self.decision,
            head.method.decode("latin-1"), head.target.decode("latin-1").partition("?")[0],
            self.plane.upstream_url)
        if span is not None:
            head.drop(b"traceparent")

    def _forward(self) -> None:
        conn = self.plane.pool.take()
        if conn is None:
            self.state = WAIT
            self._pause(PAUSE_WAIT, True)
            self._arm(UPSTREAM_DEADLINE, self.plane.limits.upstream_timeout)
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
        conn.attach(self, head.method, head.websocket)
        if self.write_full:
            # The client is still behind on an earlier response: asyncio will not call
            # pause_writing again, so the new upstream connection must start paused.
            conn.pause(PAUSE_CLIENT_FULL, True)
        extra = fault_lines(self.decision)
        if self.span is not None:
            extra.append(b"traceparent: " + self.span.traceparent.encode())
        if head.header(b"host") is None:
            extra.append(self.plane.host_line)
        if head.websocket:
            extra.extend(_UPGRADE_LINES)  # the one upgrade passed on, as the handshake asked
        out = head.forward(extra)
        if self.req_done:
            self.state = AWAIT
            self._arm(UPSTREAM_DEADLINE, self.plane.limits.upstream_timeout)
        else:
            self.state = BODY
            self._arm(BODY_DEADLINE, self.plane.limits.body_timeout)
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
        """The part of ``data`` that may go on as request body; what follows goes to the buffer.

        ``ParseError`` when a chunked body is malformed (none of the bad bytes are returned).
        """
        scanner = self.req_scanner
        if scanner is not None:
            body = scanner.feed(data)
            if not scanner.done:
                return body
            self.req_scanner = None
            rest = scanner.rest
        else:
            if len(data) < self.req_remaining:
                self.req_remaining -= len(data)
                return data
            end = self.req_remaining
            self.req_remaining = 0
            body, rest = (data[:end], data[end:]) if end < len(data) else (data, b"")
        self.req_done = True
        if self.state == BODY:
            self.state = AWAIT
            upstream = self.upstream
            if upstream is None or not upstream.responding:
                self._arm(UPSTREAM_DEADLINE, self.plane.limits.upstream_timeout)
            else:
                self.deadline_kind = NO_DEADLINE  # answered before the body was all in
        if rest:
            self.buffer += rest
            self._pause(PAUSE_PIPELINE, True)
        return body

    def _body(self, data: bytes) -> None:
        if self.deadline_kind == BODY_DEADLINE:
            self.deadline = self.plane.loop.time() + self.plane.limits.body_timeout
        try:
            body = self._take_body(data)
        except ParseError as exc:
            if self.upstream is not None and self.upstream.responding:
                self.close()  # a response is under way: a close is all the client can be told
            else:
                self._error(exc.status, str(exc))
            return
        if self.upstream is not None and body:
            self.upstream.write(body)

    def _next(self) -> None:
        """Go on to the next request on this connection, or close it."""
        if self.close_after or self.eof or not self.req_done:
            self.linger()
            return
        self.state = HEAD
        self.decision = PASS
        self.req = None
        self.deadline_kind = NO_DEADLINE
        if self.paused & PAUSE_PIPELINE:
            self._pause(PAUSE_PIPELINE, False)
        if self.buffer:
            self._parse()
