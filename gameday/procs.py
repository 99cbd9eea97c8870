"""Child processes and ports: start in their own session, stop by PID, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """Whether something accepts connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def start(argv: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (so signals to our group do not reach it)."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    try:
        child = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    ticks = start_ticks(child.pid)
    if ticks is not None:
        _started[child.pid] = ticks
    return child


#: Kernel start times of the processes ``start`` started, by PID: ``stop`` signals a PID only
#: while it is still that process (or its session's group), never a stranger that reused it.
_started: dict[int, int] = {}


def start_ticks(pid: int) -> int | None:
    """The kernel start time of ``pid`` (field 22 of /proc/PID/stat); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _reused(pid: int) -> bool:
    """Whether ``pid``, which ``start`` started, now names another process. The kernel never
    hands out a PID still used as a group or session id, so while the old session has
    members a new process cannot hold it."""
    ticks = start_ticks(pid)
    return pid in _started and ticks is not None and ticks != _started[pid]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def stop(pid: int, grace: float = 5.0, group: bool = True) -> None:
    """SIGTERM ``pid`` (and its session's group), then SIGKILL after ``grace`` seconds.

    A PID that ``start`` started and that has since been reused by another process is left
    alone: stopping the same child twice (a test, then its fixture) must not kill a stranger.
    """
    def send(sig: int) -> None:
        if _reused(pid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    def running() -> bool:
        if _reused(pid):
            return False
        _reap(pid)
        if alive(pid):
            return True
        # The leader may be gone while children of its session live on.
        return group and _group_alive(pid)

    if not running():
        return
    send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not running():
            return
        time.sleep(0.05)
    send(signal.SIGKILL)
    for _ in range(100):
        if not running():
            return
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1,
               what: str = "condition") -> None:
    """Poll ``check`` until it is true; ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:g}s")
