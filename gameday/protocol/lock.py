"""One game day per environment, by a lock a dead holder cannot keep.

The lock is an ``flock`` on a file: the kernel drops it when the holding process dies, however it
dies (SIGKILL included), so a crashed run never blocks its environment. The file also records
the holder's PID and run, for ``chaosctl status`` and for error messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gameday.errors import LockError
from gameday.paths import lock_path


@dataclass(frozen=True)
class Holder:
    """Who holds an environment's lock."""

    pid: int
    run: str
    since: float


class EnvironmentLock:
    """Exclusive lock on one environment, held by this process until released."""

    def __init__(self, environment: str, path: Path | None = None) -> None:
        self.environment = environment
        self.path = path or lock_path(environment)
        self._file: IO[str] | None = None

    def acquire(self, run: str, wait: float = 0.0, poll: float = 0.2) -> None:
        """Take the lock for ``run``; wait up to ``wait`` seconds, then raise ``LockError``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    holder = self.holder()
                    who = f"run {holder.run} (pid {holder.pid})" if holder else "another run"
                    raise LockError(
                        f"environment {self.environment!r} is busy: {who} holds it; "
                        "one game day per environment"
                    ) from None
                time.sleep(poll)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "run": run, "since": time.time()}))
        handle.flush()
        os.fsync(handle.fileno())
        self._file = handle

    def release(self) -> None:
        """Give the lock up (safe to call twice)."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def holder(self) -> Holder | None:
        """The live holder, or None when the environment is free."""
        try:
            with open(self.path) as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    data: dict[str, Any] = json.loads(probe.read() or "{}")
                    return Holder(int(data.get("pid", 0)), str(data.get("run", "?")),
                                  float(data.get("since", 0)))
                fcntl.flock(probe, fcntl.LOCK_UN)
                return None
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def __enter__(self) -> EnvironmentLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
