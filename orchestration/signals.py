"""Stop signals: SIGINT and SIGTERM end a game day Cancelled, after its rollback.

Left to Prefect and asyncio, a signal lands wherever the process happens to be: Prefect raises
``TerminationSignal`` for SIGTERM (inside the event loop's ``select`` it escapes the loop), and
asyncio cancels the main task for SIGINT. Either way it surfaces inside Prefect's engine, which
ends the task and flow runs Crashed and prints "Crash detected!" with tracebacks.

So while a game day's flow body runs, :func:`stop_signals` takes both signals over. The first
one is recorded and stops the phase in progress, but only inside :func:`stoppable` — the part
of a phase that may be left at any await — never inside Prefect's engine. The phase then
returns a ``Cancelled`` state (its task run ends Cancelled); the flow rolls back, records the
end and returns ``Cancelled`` too. A signal outside a stoppable part is acted on when the flow
next looks (:attr:`Stop.requested`) or enters one. Later signals change nothing: the run is
already stopping, and rollback holds signals back while it reverts.

``chaosctl start`` also installs :func:`raise_termination` for SIGTERM around the whole
command, so a signal before or after the flow body ends it as one Prefect saw would.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from prefect.client.schemas.objects import State
from prefect.exceptions import TerminationSignal
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.states import Cancelled

T = TypeVar("T")

#: The signals that stop a game day.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _Part:
    """A stoppable part of a phase while it runs: its task and its own frame."""

    task: asyncio.Task[Any]
    frame: FrameType | None
    stopped: bool = False
    cancelled: bool = False


class Stop:
    """The stop signal a run received, if any, and the stoppable part it may end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.signum: int | None = None
        self._loop = loop
        self._part: _Part | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop signal came."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def cancelled(self) -> State[Any]:
        """The state a phase the signal stopped ends in."""
        return Cancelled(message=f"cancelled by signal {self.name}")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        global _received
        if self.signum is not None:
            return
        self.signum = _received = signum
        part = self._part
        if part is not None and frame is not part.frame and _runs_in(frame, part.frame):
            # The part is busy in plain code (waiting for a lock, say): leave it from here,
            # as an exception of its own would.
            part.stopped = True
            raise asyncio.CancelledError(f"stopped by {self.name}")
        # Elsewhere the loop is waiting, or another task runs: cancel the part between steps,
        # where a cancellation cannot land inside Prefect's engine.
        self._loop.call_soon_threadsafe(self._cancel_part)

    def _cancel_part(self) -> None:
        part = self._part
        if part is not None and not part.stopped:
            part.stopped = part.cancelled = True
            part.task.cancel()


#: The stop of the flow body running now (the innermost, for a suite's subflows).
_active: Stop | None = None
#: The last stop signal a run of this process received.
_received: int | None = None


def received() -> int | None:
    """The stop signal a game day of this process received last, if any."""
    return _received


@contextlib.contextmanager
def stop_signals() -> Iterator[Stop]:
    """Take SIGINT and SIGTERM over for a flow body (main thread only; elsewhere no signal
    reaches it and the stop is never requested)."""
    global _active
    stop = Stop(asyncio.get_running_loop())
    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, stop._on_signal)
    outer, _active = _active, stop
    try:
        yield stop
    finally:
        _active = outer
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def stoppable(work: Coroutine[Any, Any, T]) -> T | State[Any]:
    """Await ``work``, which a stop signal may cancel at any await: its result, or the
    ``Cancelled`` state once a stop signal came (before it started, or while it ran)."""
    stop = _active
    if stop is None:
        return await work
    if stop.requested:
        work.close()
        return stop.cancelled()
    task = asyncio.current_task()
    assert task is not None
    part = _Part(task, inspect.currentframe())
    try:
        stop._part = part
        result = await work
    except asyncio.CancelledError:
        if not part.stopped:
            raise
        work.close()
        return stop.cancelled()
    finally:
        stop._part = None
        if part.cancelled:
            task.uncancel()  # handled here: later awaits of the task must not see it
    return stop.cancelled() if stop.requested else result


def _runs_in(frame: FrameType | None, target: FrameType | None) -> bool:
    """Whether ``target`` is on the stack that ``frame`` belongs to."""
    while frame is not None:
        if frame is target:
            return True
        frame = frame.f_back
    return False


class _CleanStops(logging.Filter):
    """Drops the engine's "Finished in state Cancelled" of a stopped run from the terminal:
    Prefect logs it as an error, and the kit prints how the run ended itself. The run's logs
    in the Prefect API keep it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))
                    and record.getMessage().startswith("Finished in state Cancelled"))


def quiet_clean_stops() -> None:
    """Keep a stopped run's Prefect error lines off the terminal (see ``_CleanStops``)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.addFilter(_CleanStops())


def raise_termination(signum: int, frame: FrameType | None) -> None:
    """A signal handler that stops the process the way Prefect stops a flow run."""
    raise TerminationSignal(signum)


def termination_signal(exc: BaseException) -> int | None:
    """The signal number ``exc`` stands for, when it is Prefect's termination; else None."""
    return int(exc.signal) if isinstance(exc, TerminationSignal) else None
