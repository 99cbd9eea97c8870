"""Stop signals in a game day's flow body (``orchestration.signals``), without a server: the
first signal stops the stoppable part in progress, or the next one, and nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from typing import Any

from prefect.client.schemas.objects import State

from gameday.protocol.rollback import signals_held
from orchestration.signals import _CleanStops, stop_signals, stoppable


def _kill_soon(sig: int, after: float = 0.1) -> None:
    """Send ``sig`` to this process from another thread, as ``chaosctl stop`` would."""
    threading.Timer(after, os.kill, (os.getpid(), sig)).start()


def _cancelled(value: Any) -> bool:
    return isinstance(value, State) and value.is_cancelled()


def test_a_signal_stops_the_part_at_its_await() -> None:
    """The part waiting at an await ends at once with a Cancelled state, and the task has no
    cancellation left over for the awaits after it."""

    async def main() -> tuple[Any, str, int]:
        with stop_signals() as stop:
            _kill_soon(signal.SIGTERM)
            result = await stoppable(asyncio.sleep(30, "slept"))
            task = asyncio.current_task()
            assert task is not None
            await asyncio.sleep(0.01)
            return result, stop.name, task.cancelling()

    started = time.monotonic()
    result, name, cancelling = asyncio.run(main())
    assert _cancelled(result) and result.message == "cancelled by signal SIGTERM"
    assert (name, cancelling) == ("SIGTERM", 0)
    assert time.monotonic() - started < 5


def test_a_signal_during_blocking_code_leaves_it() -> None:
    """A part busy in plain code (a lock wait's sleeps) is left from the signal handler."""

    async def blocking() -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.2)
        return "waited"

    async def main() -> Any:
        with stop_signals():
            _kill_soon(signal.SIGINT)
            return await stoppable(blocking())

    started = time.monotonic()
    assert _cancelled(asyncio.run(main()))
    assert time.monotonic() - started < 5


def test_a_signal_between_parts_stops_the_next() -> None:
    """Outside a stoppable part the signal is only recorded: the await in progress goes on,
    and the next part returns Cancelled without starting."""
    started: list[str] = []

    async def part() -> str:
        started.append("part")
        return "ran"

    async def main() -> tuple[str, bool, Any]:
        with stop_signals() as stop:
            _kill_soon(signal.SIGTERM, after=0.05)
            slept = await asyncio.sleep(0.5, "slept")
            return slept, stop.requested, await stoppable(part())

    slept, requested, result = asyncio.run(main())
    assert (slept, requested) == ("slept", True)
    assert _cancelled(result) and started == []


def test_only_the_first_signal_counts() -> None:
    """A second signal (Ctrl-C pressed again) changes nothing: the run is already stopping."""

    async def main() -> str:
        with stop_signals() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            return stop.name

    assert asyncio.run(main()) == "SIGINT"


def test_signals_held_by_the_rollback_reach_the_stop_after_it() -> None:
    """While rollback reverts, SIGTERM is held back; delivered once it is done, it stops the
    run."""

    async def main() -> tuple[bool, bool]:
        with stop_signals() as stop:
            with signals_held() as deferred:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                during = stop.requested
            for sig in deferred:
                signal.raise_signal(sig)
            return during, stop.requested

    assert asyncio.run(main()) == (False, True)


def test_the_handlers_before_are_put_back() -> None:
    """After the flow body, SIGINT and SIGTERM go where they went before it."""

    def mine(signum: int, frame: Any) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    before_int = signal.getsignal(signal.SIGINT)
    try:
        async def main() -> None:
            with stop_signals():
                assert signal.getsignal(signal.SIGTERM) is not mine

        asyncio.run(main())
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is before_int
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_stop_signals_a_part_just_runs() -> None:
    """Outside a flow body, ``stoppable`` is a plain await."""
    assert asyncio.run(stoppable(asyncio.sleep(0, "done"))) == "done"


def test_a_stopped_run_keeps_prefect_errors_off_the_terminal() -> None:
    """The engine's "Finished in state Cancelled" is dropped from the console; a failure's
    line is not."""

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, message,
                                 None, None)

    clean = _CleanStops()
    assert not clean.filter(record("Finished in state Cancelled('cancelled by signal')"))
    assert clean.filter(record("Finished in state Failed('boom')"))
