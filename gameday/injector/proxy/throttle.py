"""Pacing of a response body to a bandwidth limit (the ``bandwidth`` fault)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

#: Each write carries this much time's worth of bytes: smooth enough, few timer wake-ups.
SLICE_SECONDS = 0.05


class Throttle:
    """Writes queued bytes at ``rate`` bytes per second, then calls ``on_drained``.

    The first slice goes at once; each later one waits until the bytes before it would have
    taken their time on a link of that rate.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, write: Callable[[bytes], None],
                 rate: float, on_drained: Callable[[], None]) -> None:
        self._loop = loop
        self._write = write
        self.rate = rate
        self._on_drained = on_drained
        self._queue: deque[bytes] = deque()
        self._next_at = loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._slice = max(256, int(rate * SLICE_SECONDS))

    @property
    def busy(self) -> bool:
        """Whether bytes are still waiting."""
        return bool(self._queue)

    def push(self, data: bytes) -> None:
        """Queue ``data`` for paced writing."""
        self._queue.append(data)
        if self._timer is None:
            self._pump()

    def set_rate(self, rate: float) -> None:
        """Pace what follows at ``rate`` bytes per second (the rule was replaced)."""
        self.rate = rate
        self._slice = max(256, int(rate * SLICE_SECONDS))

    def cancel(self) -> None:
        """Drop what is queued (the connection closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()

    def release(self) -> None:
        """Write what is queued at once, unpaced (the rule ended); ``on_drained`` is not called."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queue = self._queue
        if queue:
            data = b"".join(queue)
            queue.clear()
            self._write(data)

    def _pump(self) -> None:
        self._timer = None
        now = self._loop.time()
        if self._next_at > now:
            self._timer = self._loop.call_at(self._next_at, self._pump)
            return
        chunk = self._queue.popleft()
        if len(chunk) > self._slice:
            self._queue.appendleft(chunk[self._slice:])
            chunk = chunk[:self._slice]
        self._write(chunk)
        self._next_at = max(self._next_at, now) + len(chunk) / self.rate
        if self._queue:
            self._timer = self._loop.call_at(self._next_at, self._pump)
        else:
            self._on_drained()
