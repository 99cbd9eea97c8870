"""One direction of a proxied TCP connection, and what the rules do to it.

Bytes read on ``source`` go out on ``sink``. While no rule acts on the stream and nothing is
queued, the source writes straight into the sink (no code of ours per chunk). While rules act,
each chunk goes ``feed`` → gate → counters → delay → slicer → throttle → sink:

* the **gate** holds everything while a blackhole or timeout rule holds the stream, once a
  counter ran out, and while the sink is not connected yet; what it holds is delivered, in
  order, when it opens;
* the **counters** (limit_data, reset with ``after_bytes``) let exactly their bytes through;
  the rest waits at the gate and the connection ends once what passed has been written;
* the **stages** (:mod:`~gameday.injector.tcp.stages`, and the HTTP mode's throttle) delay,
  slice and pace. A stage whose rule ends hands on what it holds at once.

Memory stays bounded: once more than :data:`QUEUE_HIGH` bytes are queued in the stream (held or
in its stages) reading from the source pauses, and resumes below :data:`QUEUE_LOW`; so a stream
holds at most ``QUEUE_HIGH`` plus one read (``READ_SIZE``), and the sink's send buffer its
``WRITE_HIGH``, whatever the peers do. A delayed stream thus moves at most ``QUEUE_HIGH`` per
delay, as a link with that window would: 10 MB/s under a 100 ms delay, so the delay of a large
result set stays the delay of its last chunk.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from gameday.faults import LimitDataFault, ResetFault
from gameday.injector.proxy.limits import BUFFER_LIMIT
from gameday.injector.proxy.throttle import Throttle
from gameday.injector.tcp.plan import StreamPlan
from gameday.injector.tcp.rules import TcpRule
from gameday.injector.tcp.side import PAUSE_QUEUED, Side
from gameday.injector.tcp.stages import Delay, Slicer

if TYPE_CHECKING:
    from gameday.injector.tcp.conn import Conn

#: Bytes queued in a stream before reading from its source pauses (1 MiB).
QUEUE_HIGH = 4 * BUFFER_LIMIT
#: Bytes queued below which reading resumes.
QUEUE_LOW = QUEUE_HIGH // 2
_NO_RULES = StreamPlan()


def _noop() -> None:
    """The throttle's drained callback: the stream notices from its own count."""


class _Count:
    """Bytes a counting rule lets through before the connection ends."""

    __slots__ = ("left", "rule")

    def __init__(self, rule: TcpRule) -> None:
        self.rule = rule
        fault = rule.fault
        if isinstance(fault, LimitDataFault):
            self.left = fault.bytes
        else:
            assert isinstance(fault, ResetFault) and fault.after_bytes is not None
            self.left = fault.after_bytes


class Stream:
    """One direction of a connection: ``upstream`` (client → upstream) or ``downstream``."""

    __slots__ = ("conn", "counts", "cut", "delay", "entered", "eof", "eof_sent", "gated",
                 "held", "held_bytes", "name", "over", "plan", "sink", "slicer", "source",
                 "throttle", "written")

    def __init__(self, conn: Conn, name: str, source: Side, sink: Side) -> None:
        self.conn = conn
        self.name = name
        self.source = source
        self.sink = sink
        self.plan = _NO_RULES
        self.held: deque[bytes] = deque()
        self.held_bytes = 0
        self.gated = True  # until the sink connects
        self.counts: dict[str, _Count] = {}
        #: The counting rule whose bytes ran out: the connection ends once the stream drained.
        self.cut: TcpRule | None = None
        self.delay: Delay | None = None
        self.slicer: Slicer | None = None
        self.throttle: Throttle | None = None
        #: Bytes into the stages and out to the sink: the difference is what the stages hold.
        self.entered = 0
        self.written = 0
        self.over = False
        self.eof = False
        self.eof_sent = False

    # -- bytes ----------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes read from the source, while rules act on the stream."""
        if self.gated:
            self._hold(data, front=False)
            return
        if self.counts:
            data = self._count(data, front=False)
        if data:
            self._enter(data)
        if self.cut is not None:
            self._settle()

    def _hold(self, data: bytes, front: bool) -> None:
        if front:
            self.held.appendleft(data)
        else:
            self.held.append(data)
        self.held_bytes += len(data)
        if not self.over and self.held_bytes + self.entered - self.written > QUEUE_HIGH:
            self._pause(True)

    def _count(self, data: bytes, front: bool) -> bytes:
        """The part of ``data`` the counters let through; the rest waits at the gate."""
        counts = self.counts.values()
        budget = min(count.left for count in counts)
        if len(data) < budget:
            for count in counts:
                count.left -= len(data)
            return data
        for count in counts:
            count.left -= budget
        self._cut()
        if len(data) > budget:
            self._hold(data[budget:], front)
        return data[:budget]

    def _cut(self) -> None:
        ran_out = [count.rule for count in self.counts.values() if count.left == 0]
        # A reset is the harsher end: it wins over a limit_data close reached by the same byte.
        self.cut = next((rule for rule in ran_out if rule.fault.kind == "reset"), ran_out[0])
        self.gated = True

    def _enter(self, data: bytes) -> None:
        self.entered += len(data)
        if self.delay is not None:
            self.delay.push(data)
        elif self.slicer is not None:
            self.slicer.push(data)
        elif self.throttle is not None:
            self.throttle.push(data)
        else:
            self._write(data)
        if not self.over and self.held_bytes + self.entered - self.written > QUEUE_HIGH:
            self._pause(True)

    def _after_delay(self, data: bytes) -> None:
        if self.slicer is not None:
            self.slicer.push(data)
        elif self.throttle is not None:
            self.throttle.push(data)
        else:
            self._write(data)

    def _after_slicer(self, data: bytes) -> None:
        if self.throttle is not None:
            self.throttle.push(data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        self.written += len(data)
        transport = self.sink.transport
        if transport is not None and not self.sink.closed:
            transport.write(data)
        if self.over and self.held_bytes + self.entered - self.written <= QUEUE_LOW:
            self._pause(False)
        if self.entered == self.written:
            self._settle()

    def _pause(self, on: bool) -> None:
        self.over = on
        self.source.pause(PAUSE_QUEUED, on)

    # -- state ----------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Once the stages are empty: end the connection at a cut, pass an EOF on, or go fast."""
        if self.entered != self.written or self.conn.closed:
            return
        if self.cut is not None:
            self.conn.cut(self.cut)
        elif self.held or self.gated:
            return  # a held stream holds its FIN too
        elif self.eof:
            if not self.eof_sent:
                self.eof_sent = True
                self.conn.stream_ended(self)
        elif self.plan.empty:
            self.route()

    def route(self) -> None:
        """Point the source at the sink directly when nothing acts here, else at ``feed``."""
        sink = self.sink.transport
        if self.plan.empty and not self.gated and not self.held and sink is not None and \
                self.entered == self.written:
            self.source.out = sink.write
        else:
            self.source.out = self.feed

    def end(self) -> None:
        """The source sent its FIN: pass it on after everything before it."""
        self.eof = True
        self._settle()

    def apply(self, plan: StreamPlan) -> None:
        """Act from now on as ``plan`` says; what an ended rule held goes on at once."""
        if self.conn.closed:
            return
        self.plan = plan
        if not plan.empty:
            self.source.out = self.feed
        self._apply_counts(plan.counts)
        self._apply_stages(plan)
        self.regate()

    def regate(self) -> None:
        """Open or close the gate as the rules and the sink now say, then route the source."""
        self.gated = bool(self.plan.holds) or self.cut is not None or \
            self.sink.transport is None
        if not self.gated and self.held:
            self._release()
        if self.conn.closed:
            return
        self._settle()
        self.route()

    def _apply_counts(self, rules: tuple[TcpRule, ...]) -> None:
        wanted = {rule.id: rule for rule in rules}
        for rule_id, count in list(self.counts.items()):
            if wanted.get(rule_id) != count.rule:
                del self.counts[rule_id]  # ended, or changed: a changed rule counts afresh
        for rule in rules:
            if rule.id not in self.counts:
                self.counts[rule.id] = _Count(rule)
        cut = self.cut
        if cut is not None and not any(count.rule is cut for count in self.counts.values()):
            self.cut = None  # its rule ended before the connection did: the stream goes on
        if self.cut is None and any(count.left == 0 for count in self.counts.values()):
            self._cut()

    def _apply_stages(self, plan: StreamPlan) -> None:
        plane = self.conn.plane
        latency, slicing, bandwidth = plan.faults()
        if latency is None:
            if self.delay is not None:
                delay, self.delay = self.delay, None
                delay.flush()
        elif self.delay is None:
            self.delay = Delay(plane.loop, plane.rng, latency, self._after_delay, plane.metrics)
        else:
            self.delay.fault = latency
        if slicing is None:
            if self.slicer is not None:
                slicer, self.slicer = self.slicer, None
                slicer.flush()
        elif self.slicer is None:
            self.slicer = Slicer(plane.loop, plane.rng, slicing, self._after_slicer)
        else:
            self.slicer.fault = slicing
        if bandwidth is None:
            if self.throttle is not None:
                throttle, self.throttle = self.throttle, None
                throttle.release()
        else:
            rate = bandwidth.kbps * 1000 / 8
            if self.throttle is None:
                self.throttle = Throttle(plane.loop, self._write, rate, _noop)
            else:
                self.throttle.set_rate(rate)

    def _release(self) -> None:
        """The gate opened: what it held goes on, in order (up to a new cut)."""
        held = self.held
        while held and not self.gated:
            data = held.popleft()
            self.held_bytes -= len(data)
            if self.counts:
                data = self._count(data, front=True)
            if data:
                self._enter(data)
        if self.over and self.held_bytes + self.entered - self.written <= QUEUE_LOW:
            self._pause(False)

    def cancel(self) -> None:
        """Drop everything (the connection closed)."""
        for stage in (self.delay, self.slicer, self.throttle):
            if stage is not None:
                stage.cancel()
        self.delay = self.slicer = self.throttle = None
        self.held.clear()
        self.held_bytes = 0
