"""Faults on a client connection: delay, abort, reset, blackhole; and what a rule change does.

A rule that ends lets go at once of what it holds here (``rules_ended``): a blackholed
exchange is closed, a pending delay ends, a throttle lifts. A rule that starts reaches an open
WebSocket tunnel (``rules_started``): a reset resets it, a bandwidth fault throttles it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time

from gameday.injector.decide import decide, without
from gameday.injector.proxy.client_response import ResponseSide
from gameday.injector.proxy.client_state import BLACKHOLE, CLOSED, PAUSE_WAIT, TUNNEL, WAIT
from gameday.injector.proxy.metrics import rule_labels
from gameday.injector.proxy.replies import abort_body, fault_lines, json_reply

_LINGER_RESET = struct.pack("ii", 1, 0)
#: Refused connections answered and lingering at once, at most; beyond, they are just closed.
_MAX_REFUSED_LINGERING = 1024


class FaultSide(ResponseSide):
    """The fault layer of a client connection."""

    def _delayed(self) -> None:
        self.timer = None
        if self.state == CLOSED:
            return
        applied = self.plane.loop.time() - self.delay_start
        self.plane.metrics.delay_applied.observe(applied)
        if self.span is not None:
            self.span.delay_applied(applied)
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
        # Held until the client gives up or the rule ends (``rules_ended`` closes it then).

    def rules_ended(self, ended: set[str]) -> None:
        """Some rules ended: what they hold on this connection ends with them, at once."""
        decision = self.decision
        if not decision.rules:
            return
        after = without(decision, ended)
        if after is decision:
            return
        self.decision = after
        state = self.state
        if state == BLACKHOLE:
            if after.action != "blackhole":
                self.close()  # nothing went upstream; the client sees its connection close
        elif state == WAIT and self.timer is not None and not after.delay_ms:
            self.timer.cancel()
            self._delayed()  # the delay is over: the request goes on (or meets its abort)
        elif self.throttle is not None and not after.kbps:
            self._unthrottle()

    def _refuse(self) -> None:
        """Over the connection cap: answer 503 and close, without reading a request."""
        plane = self.plane
        plane.metrics.refused.inc()
        plane.refused_open += 1
        transport = self.transport
        assert transport is not None
        if plane.refused_open > _MAX_REFUSED_LINGERING:
            self.state = CLOSED
            transport.abort()  # a flood: no lingering, each would hold a descriptor
            return
        transport.write(json_reply(503, {"error": "too many connections",
                                         "max_connections": plane.limits.max_connections},
                                   close=True))
        self.linger()

    def rules_started(self) -> None:
        """Rules were added or changed: an open tunnel meets reset and bandwidth faults now."""
        request = self.tunnel_request
        if self.state != TUNNEL or request is None:
            return
        plane = self.plane
        decision = decide(plane.store.snapshot, request, plane.rng, time.time())
        if decision.action == "reset":
            plane.metrics.injected.labels(*rule_labels(decision.rules[-1])).inc()
            self._reset()
        elif decision.kbps and self.throttle is None:
            for rule in decision.rules:
                plane.metrics.injected.labels(*rule_labels(rule)).inc()
            self.decision = decision  # so that the rule's end lifts the throttle again
            self._throttle(decision.kbps)
