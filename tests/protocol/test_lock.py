"""One game day per environment, by a lock that a dead holder cannot keep."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gameday.errors import LockError
from gameday.protocol.lock import EnvironmentLock

HOLDER = """
import sys, time
from pathlib import Path
from gameday.protocol.lock import EnvironmentLock
lock = EnvironmentLock("demo", Path(sys.argv[1]))
lock.acquire("holder-run")
print("held", flush=True)
time.sleep(120)
"""


def test_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    """While one run holds the lock, another is refused with the holder's run and PID."""
    first = EnvironmentLock("demo", tmp_path / "demo.lock")
    first.acquire("run-1")
    with pytest.raises(LockError, match="run-1"):
        EnvironmentLock("demo", tmp_path / "demo.lock").acquire("run-2")
    first.release()
    second = EnvironmentLock("demo", tmp_path / "demo.lock")
    second.acquire("run-2")
    assert second.holder() is not None and second.holder().run == "run-2"  # type: ignore[union-attr]
    second.release()


def test_sigkilled_holder_frees_the_environment(tmp_path: Path) -> None:
    """A holder killed with SIGKILL leaves the environment free at once."""
    path = tmp_path / "demo.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        lock = EnvironmentLock("demo", path)
        holder = lock.holder()
        assert holder is not None and holder.pid == proc.pid
        with pytest.raises(LockError):
            lock.acquire("mine")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        lock.acquire("mine", wait=5)
        assert lock.holder() is not None
        lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_waiting_for_the_lock_gets_it_when_freed(tmp_path: Path) -> None:
    """A run asked to wait gets the lock as soon as the holder lets go."""
    import threading

    first = EnvironmentLock("demo", tmp_path / "demo.lock")
    first.acquire("run-1")
    threading.Timer(0.5, first.release).start()
    started = time.monotonic()
    second = EnvironmentLock("demo", tmp_path / "demo.lock")
    second.acquire("run-2", wait=30)
    assert time.monotonic() - started < 25
    second.release()
