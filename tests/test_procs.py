"""Stopping by PID never reaches a process that merely reused the PID."""

from __future__ import annotations

import sys

from gameday import procs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_stop_ends_the_process_it_started() -> None:
    child = procs.start(SLEEPER)
    procs.stop(child.pid, grace=2)
    assert not procs.alive(child.pid)


def test_stop_leaves_alone_a_pid_that_now_names_another_process() -> None:
    """The process under ``pid`` has another kernel start time than the one ``start``
    recorded for it: the PID was reused, and ``stop`` sends it nothing."""
    stranger = procs.start(SLEEPER)
    try:
        ticks = procs.start_ticks(stranger.pid)
        assert ticks is not None
        procs._started[stranger.pid] = ticks - 1  # as if an earlier child had held this PID
        procs.stop(stranger.pid, grace=2)
        assert procs.alive(stranger.pid)
    finally:
        procs._started[stranger.pid] = procs.start_ticks(stranger.pid) or 0
        procs.stop(stranger.pid, grace=2)
    assert not procs.alive(stranger.pid)
