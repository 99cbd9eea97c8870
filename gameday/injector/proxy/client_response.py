"""The upstream's answer on its way to the client: the calls ``UpstreamConn`` makes.

Fault headers go on the response head; a ``bandwidth`` decision paces the body through a
``Throttle``, and reading from the upstream pauses while the throttle has bytes queued.
"""

from __future__ import annotations

from gameday.injector.proxy.client_state import CLOSED, ConnState
from gameday.injector.proxy.http1 import Head
from gameday.injector.proxy.replies import fault_lines
from gameday.injector.proxy.throttle import Throttle
from gameday.injector.proxy.upstream import PAUSE_THROTTLE, UpstreamConn


class ResponseSide(ConnState):
    """The responses layer of a client connection (called by ``UpstreamConn``)."""

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
        if self.state == CLOSED:
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

    def _drained(self) -> None:
        """The throttle wrote everything queued: read on, or finish the response."""
        if self.upstream is not None:
            self.upstream.pause(PAUSE_THROTTLE, False)
        if self.end_pending is not None:
            conn, self.end_pending = self.end_pending, None
            self.response_end(conn)
