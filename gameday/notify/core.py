"""The notifier: one bounded queue and one worker thread per sink."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

# Re-exported: sinks and their callers import them from here.
from gameday.errors import SinkError as SinkError
from gameday.errors import SinkRetry as SinkRetry
from gameday.notes import Level
from gameday.notify.notices import Notice

__all__ = ["Level", "Notice", "Notifier", "OnDrop", "Sink", "SinkError", "SinkRetry"]


class Sink(Protocol):
    """Delivers notices somewhere (console, journal, Slack, a Pushgateway).

    A sink may also have a ``close()`` method: the notifier calls it once, from the sink's own
    worker, after the last notice (a run-metrics sink deletes its group there).
    """

    name: str

    def send(self, notice: Notice) -> None:
        """Deliver one notice; raise ``SinkRetry`` for a retryable failure."""


OnDrop = Callable[[str, Notice, str], None]


class _Lane:
    """One sink's queue and worker."""

    def __init__(self, sink: Sink, size: int, deadline: float, backoff: float,
                 on_drop: OnDrop) -> None:
        self.sink, self.deadline, self.backoff, self.on_drop = sink, deadline, backoff, on_drop
        self.queue: queue.Queue[Notice | None] = queue.Queue(maxsize=size)
        self.pending = 0  # queued or being delivered
        self.current: Notice | None = None  # being delivered now
        # Set when the run has ended: drops after that have nowhere to go (the journal is
        # closed), so the notifier reports what is still in flight itself.
        self.abandoned = False
        self.settled = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=f"notify-{sink.name}", daemon=True)
        self.thread.start()

    def post(self, notice: Notice) -> None:
        with self.settled:
            try:
                self.queue.put_nowait(notice)
                self.pending += 1
            except queue.Full:
                full = True
            else:
                full = False
        if full:
            self.on_drop(self.sink.name, notice, "queue full")

    def wait(self, timeout: float) -> bool:
        with self.settled:
            return self.settled.wait_for(lambda: self.pending == 0, timeout)

    def _run(self) -> None:
        while True:
            notice = self.queue.get()
            if notice is None:
                close = getattr(self.sink, "close", None)
                if callable(close):
                    with contextlib.suppress(Exception):  # a sink's bug must not escape
                        close()
                return
            with self.settled:
                self.current = notice
            try:
                self._deliver(notice)
            finally:
                with self.settled:
                    self.current = None
                    self.pending -= 1
                    self.settled.notify_all()

    def _dropped(self, notice: Notice, reason: str) -> None:
        if not self.abandoned:
            self.on_drop(self.sink.name, notice, reason)

    def _deliver(self, notice: Notice) -> None:
        give_up = notice.at + self.deadline
        wait = self.backoff
        while True:
            try:
                self.sink.send(notice)
                return
            except SinkRetry as exc:
                pause = exc.after if exc.after is not None else wait
                wait = min(wait * 2, 30.0)
                if time.time() + pause > give_up:
                    self._dropped(notice, f"deadline passed: {exc}")
                    return
                time.sleep(pause)
            except Exception as exc:  # a sink's bug must not stop the lane
                self._dropped(notice, f"{type(exc).__name__}: {exc}")
                return


class Notifier:
    """Fans notices out to sinks without ever blocking the caller."""

    def __init__(self, sinks: list[Sink], on_drop: OnDrop | None = None, size: int = 100,
                 deadline: float = 60.0, backoff: float = 1.0) -> None:
        self.dropped: list[tuple[str, Notice, str]] = []
        self._on_drop = on_drop
        self._lanes = [_Lane(s, size, deadline, backoff, self._drop) for s in sinks]

    def _drop(self, sink: str, notice: Notice, reason: str) -> None:
        self.dropped.append((sink, notice, reason))
        if self._on_drop is not None:
            with contextlib.suppress(Exception):
                self._on_drop(sink, notice, reason)

    def post(self, notice: Notice) -> None:
        """Queue ``notice`` for every sink; returns at once."""
        for lane in self._lanes:
            lane.post(notice)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every lane to drain; True if all did."""
        end = time.monotonic() + timeout
        return all(lane.wait(max(0.0, end - time.monotonic())) for lane in self._lanes)

    def close(self, timeout: float = 5.0, grace: float = 2.0) -> None:
        """Drain for up to ``timeout`` seconds; what is left is dropped and reported.

        Then each sink's ``close()`` runs in its worker; the notifier waits up to ``grace``
        seconds for them, and reports a notice still stuck in delivery as dropped.
        """
        self.flush(timeout)
        for lane in self._lanes:
            leftovers = []
            with contextlib.suppress(queue.Empty):
                while True:
                    item = lane.queue.get_nowait()
                    if item is not None:
                        leftovers.append(item)
                        with lane.settled:
                            lane.pending -= 1
            for notice in leftovers:
                self._drop(lane.sink.name, notice, "run ended before delivery")
            with contextlib.suppress(queue.Full):
                lane.queue.put_nowait(None)
        end = time.monotonic() + grace
        for lane in self._lanes:
            lane.thread.join(max(0.0, end - time.monotonic()))
            with lane.settled:
                lane.abandoned = True
                stuck = lane.current
            if stuck is not None:
                self._drop(lane.sink.name, stuck, "run ended while it was being delivered "
                           "(the sink did not answer in time)")
