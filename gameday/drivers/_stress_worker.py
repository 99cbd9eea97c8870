"""One stress worker process: burn CPU or hold memory until a deadline, then exit by itself.

Run by file path with the standard library only (``python -I -S _stress_worker.py ...``), so
it starts in milliseconds and imports nothing of the kit. It never waits for anyone to stop
it: the deadline is checked at least every ``PERIOD`` seconds, so it outlives a SIGKILLed
orchestrator by at most that much past the TTL.

    _stress_worker.py cpu    --fault ID --deadline EPOCH --load PERCENT
    _stress_worker.py memory --fault ID --deadline EPOCH --mb MEGABYTES
"""

from __future__ import annotations

import argparse
import os
import time

#: Duty-cycle period: busy for load% of it, asleep for the rest.
PERIOD = 0.1
#: A deadline further away than this is a mistake; refuse rather than run for days.
MAX_SECONDS = 6 * 3600
PAGE = 4096


def burn(load_percent: float, deadline: float) -> None:
    """Keep one core ``load_percent`` busy until ``deadline`` (epoch seconds)."""
    busy = PERIOD * max(0.0, min(100.0, load_percent)) / 100
    while (left := deadline - time.time()) > 0:
        start = time.monotonic()
        stop = start + min(busy, left)
        while time.monotonic() < stop:
            pass
        time.sleep(max(0.0, min(PERIOD - (time.monotonic() - start), deadline - time.time())))


def hold(megabytes: int, deadline: float) -> None:
    """Allocate ``megabytes``, touch every page so it is resident, keep it until ``deadline``."""
    block = bytearray(megabytes * 1024 * 1024)
    for offset in range(0, len(block), PAGE):
        block[offset] = 1
    while (left := deadline - time.time()) > 0:
        time.sleep(min(left, PERIOD))
    del block


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one worker; returns the exit code."""
    parser = argparse.ArgumentParser(prog="gameday-stress-worker")
    parser.add_argument("what", choices=["cpu", "memory"])
    parser.add_argument("--fault", required=True, help="fault id (identifies this process)")
    parser.add_argument("--deadline", type=float, required=True, help="epoch seconds")
    parser.add_argument("--load", type=float, default=100.0, help="percent of one core")
    parser.add_argument("--mb", type=int, default=0, help="megabytes to hold")
    parser.add_argument("--cpus", default="", help="comma-separated cores to run on (any if empty)")
    args = parser.parse_args(argv)
    if args.deadline - time.time() > MAX_SECONDS:
        parser.error(f"deadline is more than {MAX_SECONDS}s away")
    if args.cpus:
        # Pinned beside the process under test, so the pressure lands on its core and no other.
        os.sched_setaffinity(0, {int(core) for core in args.cpus.split(",")})
    if args.what == "cpu":
        burn(args.load, args.deadline)
    else:
        hold(args.mb, args.deadline)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
