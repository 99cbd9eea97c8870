"""A process worker for the ``gameday`` pool, started in its own session and stopped by PID.

A worker started with ``nohup … &`` from a script ignores the first SIGTERM, so it gets a
session of its own. Its PID and kernel start time are recorded in ``worker.json`` of the state
folder, so ``stop_worker`` never signals a process that merely reuses the PID.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gameday import procs
from orchestration.provision import CHECKOUT, WORK_POOL

WORKER_FILE = "worker.json"
#: How often the worker asks for runs: a run starts about 4 s after its trigger, not 10.
QUERY_SECONDS = "1"


def _record(folder: Path) -> tuple[int, int, str] | None:
    try:
        data = json.loads((folder / WORKER_FILE).read_text())
        return int(data["pid"]), int(data["start_ticks"]), str(data["api"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_worker(folder: Path) -> tuple[int, str] | None:
    """The PID and Prefect API of the recorded worker, if it still runs."""
    record = _record(folder)
    if record and procs.alive(record[0]) and procs.start_ticks(record[0]) == record[1]:
        return record[0], record[2]
    return None


def start_worker(folder: Path, env: dict[str, str], pool: str = WORK_POOL) -> int:
    """Start a worker for ``pool`` on ``env``'s ``PREFECT_API_URL``; its PID. The recorded
    worker is kept if it serves that API, and stopped if it serves another (an old stack's)."""
    api = env["PREFECT_API_URL"]
    running = running_worker(folder)
    if running is not None and running[1] == api:
        return running[0]
    stop_worker(folder)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    prefect = Path(sys.executable).with_name("prefect")
    process = procs.start([str(prefect), "worker", "start", "--pool", pool, "--type", "process"],
                          log=folder / "logs" / "worker.log", cwd=CHECKOUT,
                          env={"DO_NOT_TRACK": "1", **env,
                               "PREFECT_WORKER_QUERY_SECONDS": QUERY_SECONDS})
    ticks = procs.start_ticks(process.pid)
    (folder / WORKER_FILE).write_text(json.dumps({"pid": process.pid, "start_ticks": ticks,
                                                  "api": api}))
    return process.pid


def stop_worker(folder: Path) -> int | None:
    """Stop the recorded worker (and its session); its PID, or None if none ran."""
    running = running_worker(folder)
    if running is not None:
        procs.stop(running[0], grace=10.0)
    (folder / WORKER_FILE).unlink(missing_ok=True)
    return running[0] if running else None
