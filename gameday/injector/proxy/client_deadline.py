"""The deadlines of a client connection: one timer, re-armed lazily, for whichever wait is on.

At most one deadline runs at a time: the head's (from its first byte to its end, then 408),
the body's (from its latest byte, then 408) or the upstream's (from the request going on to
the response head, then 504). An injected delay runs with none: each deadline starts when the
proxy waits for a peer again. Moving a deadline on is two attribute stores; the timer behind it,
a ``loop.call_at`` handle, is made once and, when it fires before the current deadline,
re-armed at it. A busy keep-alive connection so costs one timer wake-up per deadline period,
not a timer per request.
"""

from __future__ import annotations

from gameday.injector.proxy.client_state import CLOSED, PAUSE_WAIT, ConnState

NO_DEADLINE, HEAD_DEADLINE, BODY_DEADLINE, UPSTREAM_DEADLINE = range(4)


class Deadlines(ConnState):
    """The deadline layer of a client connection."""

    def _arm(self, kind: int, seconds: float) -> None:
        """Start deadline ``kind`` ``seconds`` from now (replacing the one running)."""
        loop = self.plane.loop
        at = loop.time() + seconds
        self.deadline_kind = kind
        self.deadline = at
        timer = self.deadline_timer
        if timer is None or at < self.deadline_at:
            if timer is not None:
                timer.cancel()
            self.deadline_at = at
            self.deadline_timer = loop.call_at(at, self._deadline_passed)

    def _deadline_passed(self) -> None:
        self.deadline_timer = None
        kind = self.deadline_kind
        if kind == NO_DEADLINE or self.state == CLOSED:
            return
        loop = self.plane.loop
        if loop.time() < self.deadline:
            # The deadline moved on since the timer was set: wait for where it is now.
            self.deadline_at = self.deadline
            self.deadline_timer = loop.call_at(self.deadline, self._deadline_passed)
            return
        self.deadline_kind = NO_DEADLINE
        metrics = self.plane.metrics
        if kind == HEAD_DEADLINE:
            metrics.head_timeouts.inc()
            self._error(408, "request head not complete in time")
        elif kind == BODY_DEADLINE:
            metrics.body_timeouts.inc()
            if self.upstream is not None and self.upstream.responding:
                self.close()  # a response is under way: a close is all the client can be told
            else:
                self._error(408, "request body stalled")
        elif self.upstream is None or not self.upstream.responding:
            metrics.upstream_timeouts.inc()
            self._upstream_late()

    def _upstream_late(self) -> None:
        """No response head in time: give up on the upstream, answer 504, go on."""
        connecting, self.connecting = self.connecting, None
        if connecting is not None:
            connecting.cancel()
        self._drop_upstream()
        if self.paused & PAUSE_WAIT:
            self._pause(PAUSE_WAIT, False)
        self._reply(504, {"error": "upstream did not answer in time",
                          "upstream": self.plane.upstream_url,
                          "timeout_s": self.plane.limits.upstream_timeout})

    def _stop_deadlines(self) -> None:
        """The connection closed: drop its timer."""
        self.deadline_kind = NO_DEADLINE
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None
