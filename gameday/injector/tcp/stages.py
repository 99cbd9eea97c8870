"""The timed stages of a TCP stream: a per-chunk delay and a slicer.

Each stage takes bytes with ``push`` and hands them on, in order, to ``out``; ``flush`` hands
on at once what it still holds (its rule ended) and ``cancel`` drops it (the connection
closed). One timer per stage, never one per chunk. Bandwidth is the HTTP mode's
:class:`~gameday.injector.proxy.throttle.Throttle`, which keeps the same three moves.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable

from gameday.faults import LatencyFault, SlicerFault
from gameday.injector.decide import delay_of
from gameday.injector.proxy.metrics import ProxyMetrics

#: A chunk due this close to now is written now: a timer set for it would only add a tick of
#: the loop's millisecond clock to the delay.
_DUE_SLACK = 0.001
#: Most pieces a slicer without a delay writes in one go before it lets the loop run.
_PIECES_PER_TURN = 64


class Delay:
    """Holds each chunk until its arrival plus its delay, and never reorders chunks.

    The delay is drawn per chunk (``ms`` plus jitter) and counted from when the chunk arrived,
    so a stream of chunks is late by the delay once, not by the delay per chunk. A chunk whose
    draw would make it due before the one ahead of it waits for that one: jitter changes when
    bytes arrive, never their order.
    """

    __slots__ = ("_last_due", "_loop", "_metrics", "_out", "_queue", "_rng", "_timer", "fault")

    def __init__(self, loop: asyncio.AbstractEventLoop, rng: random.Random, fault: LatencyFault,
                 out: Callable[[bytes], None], metrics: ProxyMetrics) -> None:
        self._loop = loop
        self._rng = rng
        self.fault = fault
        self._out = out
        self._metrics = metrics
        self._queue: deque[tuple[float, float, bytes]] = deque()  # (due, arrived, data)
        self._timer: asyncio.TimerHandle | None = None
        self._last_due = 0.0

    def push(self, data: bytes) -> None:
        """Take one chunk that arrived now."""
        now = self._loop.time()
        seconds = delay_of(self.fault, self._rng) / 1000
        self._metrics.delay_requested.observe(seconds)
        due = max(now + seconds, self._last_due)
        self._last_due = due
        if not self._queue and due <= now:
            self._metrics.delay_applied.observe(0.0)
            self._out(data)
            return
        self._queue.append((due, now, data))
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop, queue, applied = self._loop, self._queue, self._metrics.delay_applied
        now = loop.time()
        while queue and queue[0][0] <= now + _DUE_SLACK:
            _, arrived, data = queue.popleft()
            applied.observe(now - arrived)
            self._out(data)  # may close the connection, which empties the queue
        if queue and self._timer is None:
            self._timer = loop.call_at(queue[0][0], self._fire)

    def flush(self) -> None:
        """Hand on everything held, at once."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queue = self._queue
        while queue:
            self._out(queue.popleft()[2])

    def cancel(self) -> None:
        """Drop everything held."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()


class Slicer:
    """Hands bytes on in pieces of about ``size_bytes``, ``delay_ms`` apart."""

    __slots__ = ("_loop", "_next_at", "_out", "_queue", "_rng", "_timer", "fault")

    def __init__(self, loop: asyncio.AbstractEventLoop, rng: random.Random, fault: SlicerFault,
                 out: Callable[[bytes], None]) -> None:
        self._loop = loop
        self._rng = rng
        self.fault = fault
        self._out = out
        self._queue: deque[bytes] = deque()
        self._timer: asyncio.Handle | None = None
        self._next_at = 0.0

    def push(self, data: bytes) -> None:
        """Take bytes to slice."""
        self._queue.append(data)
        if self._timer is None:
            self._pump()

    def _size(self) -> int:
        fault = self.fault
        variation = fault.size_variation
        if not variation:
            return fault.size_bytes
        return max(1, fault.size_bytes + self._rng.randint(-variation, variation))

    def _pump(self) -> None:
        self._timer = None
        loop, queue = self._loop, self._queue
        gap = self.fault.delay_ms / 1000
        for _ in range(_PIECES_PER_TURN):
            if not queue:
                return
            now = loop.time()
            if self._next_at > now + _DUE_SLACK:
                self._timer = loop.call_at(self._next_at, self._pump)
                return
            chunk, size = queue[0], self._size()
            if len(chunk) > size:
                queue[0] = chunk[size:]
                chunk = chunk[:size]
            else:
                queue.popleft()
            self._next_at = now + gap
            self._out(chunk)  # may close the connection, which empties the queue
        if queue:
            self._timer = loop.call_soon(self._pump)

    def flush(self) -> None:
        """Hand on everything held, at once, in one piece."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue:
            data = b"".join(self._queue)
            self._queue.clear()
            self._out(data)

    def cancel(self) -> None:
        """Drop everything held."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
