"""One proxied TCP connection: its two sockets, its two streams, its plan and its end.

The client's socket is accepted and paused until the upstream's connects (an upstream that
does not answer within :data:`CONNECT_TIMEOUT` closes the client). From then on each stream
carries its bytes (:mod:`~gameday.injector.tcp.stream`). ``replan`` runs at connect and on
every rule change, so a rule acts on open connections as well as new ones, and a rule that
ends lets go of what it held here at once.

How a connection ends: both FINs passed on (``closed``); a ``reset`` rule (RST, through
``SO_LINGER`` 0, to the side or sides its ``direction`` names, FIN to the other); a ``timeout``
rule's timer, or a ``limit_data`` rule's last byte (FIN both ways); a side that failed
(``peer_reset``: the other side gets an RST too); the upstream unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import TYPE_CHECKING

from gameday.faults import DEFAULT_DIRECTION, ResetFault, TimeoutFault
from gameday.injector.proxy.metrics import rule_labels
from gameday.injector.tcp.plan import EMPTY, Plan, Rolls, plan_of
from gameday.injector.tcp.rules import TcpRule
from gameday.injector.tcp.side import PAUSE_CONNECTING, PAUSE_SINK_FULL, Side
from gameday.injector.tcp.stream import Stream

if TYPE_CHECKING:
    from gameday.injector.tcp.plane import TcpPlane
    from gameday.tracing.faults import FaultSpan

#: Longest wait for the upstream to accept a connection, in seconds.
CONNECT_TIMEOUT = 10.0
_LINGER_RESET = struct.pack("ii", 1, 0)


def reset(transport: asyncio.Transport | None) -> None:
    """Close ``transport`` with an RST: linger 0 makes the kernel reset instead of FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class Conn:
    """One client connection and its upstream connection."""

    __slots__ = ("client", "closed", "connecting", "down", "plan", "plane", "rolls", "server",
                 "span", "timers", "up")

    def __init__(self, plane: TcpPlane) -> None:
        self.plane = plane
        self.client = Side(self, client=True)
        self.server = Side(self, client=False)
        self.up = Stream(self, "upstream", self.client, self.server)
        self.down = Stream(self, "downstream", self.server, self.client)
        # Until the upstream connects, what the client sends waits at the stream's gate.
        self.client.out = self.up.feed
        self.server.out = self.down.feed
        self.plan: Plan = EMPTY
        self.rolls: Rolls | None = None
        self.timers: dict[str, tuple[TcpRule, asyncio.TimerHandle]] = {}
        self.closed = False
        self.connecting: asyncio.Task[None] | None = None
        #: The connection's span, from the first rule that fires on it to its end.
        self.span: FaultSpan | None = None

    # -- life -----------------------------------------------------------------------------------

    def accepted(self) -> None:
        """The client connected: connect upstream, and meet the rules in force."""
        plane = self.plane
        if len(plane.conns) >= plane.max_connections:
            self.closed = True
            plane.metrics.refused.inc()
            plane.stats.ended("refused")
            assert self.client.transport is not None
            self.client.transport.abort()
            return
        plane.conns.add(self)
        plane.stats.opened += 1
        self.client.pause(PAUSE_CONNECTING, True)
        if plane.store.snapshot:
            self.replan()  # a reset or timeout at connect ends it here, before any upstream
        if not self.closed:
            # Keep a reference: the loop holds tasks weakly.
            self.connecting = plane.loop.create_task(self._connect())

    async def _connect(self) -> None:
        plane = self.plane
        try:
            await asyncio.wait_for(plane.loop.create_connection(lambda: self.server,
                                                                *plane.upstream),
                                   CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            if not self.closed:
                plane.metrics.upstream_errors.inc()
                self.end("upstream_unreachable")
            return
        finally:
            self.connecting = None
        if self.closed:
            if self.server.transport is not None:
                self.server.transport.close()
            return
        self.up.regate()
        self.down.regate()
        self.client.pause(PAUSE_CONNECTING, False)

    def replan(self) -> None:
        """Recompute what the rules do here and act on the difference."""
        if self.closed:
            return
        plane = self.plane
        rules = plane.store.snapshot
        if not rules and self.plan is EMPTY:
            return
        if self.rolls is None:
            self.rolls = Rolls()
        plan = plan_of(rules, self.rolls, plane.rng, time.time())
        self.rolls.keep(rule.id for rule in rules)
        old = self.plan
        if plan == old:
            return
        self.plan = plan
        before = {rule.id: rule for rule in old.rules}
        fired = [rule for rule in plan.rules if before.get(rule.id) != rule]
        for rule in fired:
            plane.metrics.injected.labels(*rule_labels(rule)).inc()
        if fired and plane.spans is not None:
            self._trace(fired)
        self.up.apply(plan.upstream)
        self.down.apply(plan.downstream)
        self._time(plan.timed)

    def _trace(self, fired: list[TcpRule]) -> None:
        """A span for the connection once a rule fires on it; later rules are its events."""
        spans = self.plane.spans
        assert spans is not None
        if self.span is None:
            transport = self.client.transport
            peer = transport.get_extra_info("peername") if transport is not None else None
            host, port = self.plane.upstream
            self.span = spans.connection(fired, f"{peer[0]}:{peer[1]}" if peer else "",
                                         f"{host}:{port}")
        else:
            self.span.injected(",".join(rule.fault.kind for rule in fired),
                               **{"chaos.rule": ",".join(rule.id for rule in fired)})

    def _time(self, rules: tuple[TcpRule, ...]) -> None:
        """Start the timers of timed rules that are new here; cancel those of ended ones."""
        wanted = {rule.id: rule for rule in rules}
        for rule_id, (rule, handle) in list(self.timers.items()):
            if wanted.get(rule_id) != rule:
                handle.cancel()
                del self.timers[rule_id]
        for rule in rules:
            if self.closed:
                return
            if rule.id in self.timers:
                continue
            fault = rule.fault
            if isinstance(fault, ResetFault):
                seconds = (fault.after_ms or 0.0) / 1000
            else:
                assert isinstance(fault, TimeoutFault)
                seconds = fault.ms / 1000
            if seconds <= 0:
                self._timed_end(rule)
            else:
                handle = self.plane.loop.call_later(seconds, self._timed_end, rule)
                self.timers[rule.id] = (rule, handle)

    def _timed_end(self, rule: TcpRule) -> None:
        self.timers.pop(rule.id, None)
        if isinstance(rule.fault, ResetFault):
            self.reset_by(rule)
        else:
            self.end("timeout")

    # -- what the sides and streams report ------------------------------------------------------

    def eof_from(self, side: Side) -> bool:
        """``side`` sent its FIN: its stream passes it on after what it still carries."""
        if self.closed:
            return False
        (self.up if side is self.client else self.down).end()
        return True  # keep the other way open: a half-closed connection still answers

    def stream_ended(self, stream: Stream) -> None:
        """``stream`` passed its FIN on; once both have, the connection is over."""
        sink = stream.sink.transport
        if sink is None or not sink.can_write_eof():
            self.end("closed")
            return
        sink.write_eof()
        if self.up.eof_sent and self.down.eof_sent:
            self.end("closed")

    def sink_full(self, side: Side, on: bool) -> None:
        """``side``'s send buffer filled (or drained): pause (or resume) what feeds it."""
        (self.up if side is self.server else self.down).source.pause(PAUSE_SINK_FULL, on)

    def lost(self, side: Side, exc: Exception | None) -> None:
        """``side``'s socket is gone; an error there resets the other side too."""
        if self.closed:
            return
        if exc is None:
            self.end("closed")
        else:
            self.end("peer_reset", rst_client=not side.client, rst_server=side.client)

    def cut(self, rule: TcpRule) -> None:
        """A counting rule's bytes ran out and were written: end the connection its way."""
        if isinstance(rule.fault, ResetFault):
            self.reset_by(rule)
        else:
            self.end("limit_data")

    # -- ends -----------------------------------------------------------------------------------

    def reset_by(self, rule: TcpRule) -> None:
        """RST to the sides ``rule``'s direction names, FIN to the other."""
        direction = rule.fault.direction or DEFAULT_DIRECTION
        self.end("reset", rst_client=direction in ("downstream", "both"),
                 rst_server=direction in ("upstream", "both"))

    def end(self, how: str, *, rst_client: bool = False, rst_server: bool = False) -> None:
        """Close both sockets (what was written still goes out unless reset); count ``how``."""
        if self.closed:
            return
        self.closed = True
        plane = self.plane
        plane.conns.discard(self)
        plane.stats.ended(how)
        if self.span is not None:
            self.span.end(how, error=how != "closed")
            self.span = None
        for _, handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        self.up.cancel()
        self.down.cancel()
        for side, rst in ((self.client, rst_client), (self.server, rst_server)):
            if side.transport is None or side.closed:
                continue
            if rst:
                reset(side.transport)
            else:
                side.transport.close()
