"""SIGTERM as Prefect knows it, for ``chaosctl start``.

While a flow runs, Prefect turns SIGTERM into its ``TerminationSignal`` (so ``finally`` blocks
and rollback run) and afterwards passes the signal on to the handler it found. Raising the same
exception from that handler gives a SIGTERM before, during or after the flow one exit path.
"""

from __future__ import annotations

from types import FrameType

from prefect.exceptions import TerminationSignal


def raise_termination(signum: int, frame: FrameType | None) -> None:
    """A signal handler that stops the process the way Prefect stops a flow run."""
    raise TerminationSignal(signum)


def termination_signal(exc: BaseException) -> int | None:
    """The signal number ``exc`` stands for, when it is Prefect's termination; else None."""
    return int(exc.signal) if isinstance(exc, TerminationSignal) else None
