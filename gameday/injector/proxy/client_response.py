"""The upstream's answer on its way to the client: the calls ``UpstreamConn`` makes.

Fault headers go on the response head; a ``bandwidth`` decision paces the body through a
``Throttle``, and reading from the upstream pauses while the throttle has bytes queued. A 101
to a WebSocket handshake turns the connection into a tunnel (``tunnel_head``/``tunnel_end``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from gameday.injector.decide import Request
from gameday.injector.proxy.client_deadline import NO_DEADLINE, UPSTREAM_DEADLINE, Deadlines
from gameday.injector.proxy.client_state import CLOSED, PAUSE_PIPELINE, TUNNEL
from gameday.injector.proxy.http1 import Head
from gameday.injector.proxy.replies import fault_lines
from gameday.injector.proxy.throttle import Throttle
from gameday.injector.proxy.upstream import PAUSE_THROTTLE, UpstreamConn

if TYPE_CHECKING:
    from gameday.injector.proxy.client import ClientConn

_UPGRADE_LINES = (b"Upgrade: websocket", b"Connection: Upgrade")


class ResponseSide(Deadlines):
    """The responses layer of a client connection (called by ``UpstreamConn``)."""

    def interim(self, data: bytes) -> None:
        """Pass a 1xx response on."""
        if self.transport is not None:
            self.transport.write(data)

    def response_head(self, head: Head) -> bytes:
        """The response head to send on, with fault headers and our own keep-alive decision."""
        self.code = head.status
        if self.deadline_kind == UPSTREAM_DEADLINE:
            self.deadline_kind = NO_DEADLINE  # (a body deadline still running stays)
        decision = self.decision
        extra = fault_lines(decision)
        if not head.chunked and head.length is None:
            self.close_after = True
        if self.close_after:
            extra.append(b"Connection: close")
        elif self.req is not None and self.req.version == 10:
            extra.append(b"Connection: keep-alive")
        if decision.kbps:
            self._throttle(decision.kbps)
        return head.forward(extra)

    def tunnel_head(self, head: Head) -> bytes:
        """The upstream accepted a WebSocket handshake: the 101 to send on; we are a tunnel now.

        From here bytes pass both ways untouched, with the same flow control; a bandwidth
        fault paces what comes back; the tunnel ends when either side closes.
        """
        self.code = 101
        self.deadline_kind = NO_DEADLINE
        self.state = TUNNEL
        self.close_after = True
        req = self.req
        assert req is not None
        self.tunnel_request = Request(req.method.decode("latin-1"), req.target.decode("latin-1"),
                                      req.headers())
        plane = self.plane
        plane.tunnels.add(cast("ClientConn", self))  # the only class built on this layer
        self._finish_metrics()  # the handshake is the request; the tunnel's life is not timed
        decision = self.decision
        if decision.kbps:
            self._throttle(decision.kbps)
        if self.buffer and self.upstream is not None:
            # Bytes the client sent right after its handshake belong to the tunnel.
            data, self.buffer = self.buffer, b""
            self.upstream.write(data)
        if self.paused & PAUSE_PIPELINE:
            self._pause(PAUSE_PIPELINE, False)
        return head.forward([*fault_lines(decision), *_UPGRADE_LINES])

    def tunnel_end(self) -> None:
        """The upstream closed the tunnel: close the client's side once what is queued is out."""
        self.upstream = None
        if self.throttle is not None:
            self.throttle.release()
            self.throttle = None
        self.close()

    def _throttle(self, kbps: float) -> None:
        if self.transport is not None:
            self.throttle = Throttle(self.plane.loop, self.transport.write, kbps * 125.0,
                                     self._drained)  # kbit/s → bytes/s

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
        """The upstream closed or failed before a response head went to the client."""
        self.upstream = None
        if self.state == CLOSED:
            return
        if self.throttle is not None:
            self.throttle.cancel()
            self.throttle = None
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

    def _unthrottle(self) -> None:
        """The bandwidth rule ended: what is queued goes now, the rest of the body unpaced."""
        throttle, self.throttle = self.throttle, None
        if throttle is not None:
            throttle.release()
            self._drained()

    def _drained(self) -> None:
        """The throttle wrote everything queued: read on, or finish the response."""
        if self.upstream is not None:
            self.upstream.pause(PAUSE_THROTTLE, False)
        if self.end_pending is not None:
            conn, self.end_pending = self.end_pending, None
            self.response_end(conn)
