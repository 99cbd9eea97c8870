"""What a client connection keeps between callbacks, and the moves all of its parts share.

A client connection is one object, :class:`~gameday.injector.proxy.client.ClientConn`, built
in layers: this one holds the state and the shared moves (pausing reads, answering the client
ourselves, closing); :mod:`~gameday.injector.proxy.client_deadline` adds the deadlines,
:mod:`~gameday.injector.proxy.client_response` the calls the upstream side makes with the
answer; :mod:`~gameday.injector.proxy.client` reads requests and applies faults. One object
rather than four keeps the per-request path free of indirection.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gameday.injector.decide import PASS, Decision, Request
from gameday.injector.proxy.http1 import ChunkedScanner, Head
from gameday.injector.proxy.replies import json_reply
from gameday.injector.proxy.throttle import Throttle

if TYPE_CHECKING:
    from gameday.injector.proxy.dataplane import DataPlane
    from gameday.injector.proxy.upstream import UpstreamConn
    from gameday.tracing.faults import FaultSpan

# Why reading from the client is paused (bits of ``ConnState.paused``).
PAUSE_WAIT = 1  # delay, or connecting to the upstream
PAUSE_UPSTREAM_FULL = 2
PAUSE_PIPELINE = 4

# Where the connection is in its current exchange (``ConnState.state``).
HEAD, WAIT, BODY, AWAIT, BLACKHOLE, CLOSED, TUNNEL = range(7)

#: How long a connection closed after our answer goes on reading (and dropping) what the
#: client still sends: unread bytes would turn our FIN into a reset, and a reset can destroy
#: the answer before the client has read it.
LINGER_SECONDS = 2.0


class ConnState:
    """The state of one client connection and the moves every layer of it uses."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.state = HEAD
        self.paused = 0
        #: Whether the client's write buffer is over its limit (pause_writing was called).
        self.write_full = False
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
        #: The current request's span, when tracing records it (faulted, or sampled).
        self.span: FaultSpan | None = None
        self.delay_start = 0.0
        self.throttle: Throttle | None = None
        self.end_pending: UpstreamConn | None = None
        self.parsing = False
        self.eof = False
        self.quiet = 0
        self.connecting: asyncio.Task[None] | None = None
        #: The handshake of the WebSocket tunnel this connection has become, if it has.
        self.tunnel_request: Request | None = None
        # The deadline running (see client_deadline): its kind, when it is due, its timer and
        # when that timer fires (the timer may be set for earlier than the deadline).
        self.deadline_kind = 0
        self.deadline = 0.0
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.deadline_at = 0.0

    # -- what the request layer provides ------------------------------------------------------

    def _forward(self) -> None:
        """Send the current request on to the upstream."""
        raise NotImplementedError

    def _next(self) -> None:
        """Go on to the next request on this connection, or close it."""
        raise NotImplementedError

    # -- shared moves ---------------------------------------------------------------------------

    def _reply(self, status: int, data: object, extra: list[bytes] | None = None) -> None:
        """Answer the current request ourselves (abort, 502, 4xx) with a JSON body."""
        if not self.req_done:
            self.close_after = True  # the unread request body makes the stream unusable
        if self.transport is not None:
            head_only = self.req is not None and self.req.method == b"HEAD"
            self.transport.write(json_reply(status, data, extra, self.close_after, head_only))
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
        span = self.span
        if span is not None:
            self.span = None
            span.end(self.code)

    def _pause(self, reason: int, on: bool) -> None:
        before = self.paused
        self.paused = before | reason if on else before & ~reason
        transport = self.transport
        if transport is None or self.state == CLOSED:
            return
        if self.paused and not before:
            transport.pause_reading()
        elif before and not self.paused:
            transport.resume_reading()

    def pause_for_upstream(self, on: bool) -> None:
        """The upstream's send buffer is full (or drained again)."""
        self._pause(PAUSE_UPSTREAM_FULL, on)

    def tick(self, max_ticks: int) -> None:
        """One idle sweep: close a connection that has been quiet between requests too long."""
        if self.state != HEAD or self.buffer:
            return  # a half-sent head has its own deadline
        self.quiet += 1
        if self.quiet >= max_ticks:
            self.close()

    def close(self, *_: Any) -> None:
        """Close the connection after what was written is sent."""
        if self.state != CLOSED:
            self.state = CLOSED
            self._drop_upstream()
            if self.transport is not None:
                self.transport.close()

    def linger(self) -> None:
        """Close after our answer: send FIN, then drop what the client still sends for a while."""
        transport = self.transport
        if self.state == CLOSED or transport is None:
            return
        if self.eof or not transport.can_write_eof():
            self.close()
            return
        self.state = CLOSED  # from here on data_received drops what comes
        self._drop_upstream()
        self.buffer = b""
        transport.write_eof()
        if self.paused:
            self.paused = 0
            transport.resume_reading()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.plane.loop.call_later(LINGER_SECONDS, transport.close)

    def _drop_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.client = None
            upstream.close()
