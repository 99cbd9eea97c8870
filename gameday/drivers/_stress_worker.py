"""One stress worker process: burn CPU or hold memory until a deadline, then exit by itself.

Run by file path with the standard library only (``python -I -S _stress_worker.py ...``), so
it starts in milliseconds and imports nothing of the kit. It never waits for anyone to stop
it: at least every ``PERIOD`` seconds it checks its deadline and, when leased, its tether:

- the lease file's mtime is the lease's last renewal; once it is more than ``--lease`` seconds
  old, or the file is gone, the worker exits (and deletes the file, so the lapse is final);
- its parent must still be ``--parent``, the process that applied the fault: when that dies the
  worker is reparented (to init or a subreaper) and exits at once, not at the lease.

So it outlives a SIGKILLed orchestrator by at most ``PERIOD`` past the TTL, and a leased one
by at most ``PERIOD``.

    _stress_worker.py cpu    --fault ID --deadline EPOCH --load PERCENT [LEASE]
    _stress_worker.py memory --fault ID --deadline EPOCH --mb MEGABYTES [LEASE]

    LEASE: --lease-file PATH --lease SECONDS --parent PID
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

#: Duty-cycle period: busy for load% of it, asleep for the rest; also the longest time between
#: two checks of the deadline and the tether.
PERIOD = 0.1
#: A deadline further away than this is a mistake; refuse rather than run for days.
MAX_SECONDS = 6 * 3600
PAGE = 4096
#: Pages touched between two checks of the tether while filling memory (16 MB).
TOUCH_BATCH = 4096


class Tether:
    """What keeps a worker running besides its deadline: a live lease and its parent."""

    def __init__(self, lease_file: str | None, lease: float, parent: int | None) -> None:
        self.lease_file = lease_file
        self.lease = lease
        self.parent = parent

    def holds(self) -> bool:
        """Whether the worker may go on: one ``getppid`` and one ``stat``, cheap enough for
        every duty cycle."""
        # Our parent is the process that applied the fault (the driver starts us directly; a
        # new session does not change the parent). Once it dies we are reparented.
        if self.parent is not None and os.getppid() != self.parent:
            return False
        if self.lease_file is None:
            return True
        try:
            renewed = os.stat(self.lease_file).st_mtime
        except OSError:
            return False  # gone (reverted, or lapsed for a sibling worker) or unreadable
        if renewed + self.lease < time.time():
            # Deleted so that a renewal racing this check fails instead of reviving the lease
            # for the sibling workers: the driver never recreates a lease file.
            with contextlib.suppress(OSError):
                os.unlink(self.lease_file)
            return False
        return True


def burn(load_percent: float, deadline: float, tether: Tether) -> None:
    """Keep one core ``load_percent`` busy until ``deadline`` (epoch seconds) or the tether
    breaks."""
    busy = PERIOD * max(0.0, min(100.0, load_percent)) / 100
    while (left := deadline - time.time()) > 0:
        # The check counts as busy time of this cycle, so the duty cycle stays accurate.
        start = time.monotonic()
        if not tether.holds():
            return
        stop = start + min(busy, left)
        while time.monotonic() < stop:
            pass
        time.sleep(max(0.0, min(PERIOD - (time.monotonic() - start), deadline - time.time())))


def hold(megabytes: int, deadline: float, tether: Tether) -> None:
    """Allocate ``megabytes``, touch every page so it is resident, keep it until ``deadline``
    or the tether breaks."""
    block = bytearray(megabytes * 1024 * 1024)
    for offset in range(0, len(block), PAGE):
        block[offset] = 1
        # Filling gigabytes takes a while: keep checking meanwhile.
        if offset % (PAGE * TOUCH_BATCH) == 0 and not tether.holds():
            return
    while (left := deadline - time.time()) > 0 and tether.holds():
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
    parser.add_argument("--lease-file", help="exit once this file's mtime is --lease seconds "
                                             "old, or it is gone")
    parser.add_argument("--lease", type=float, default=0.0, help="seconds (with --lease-file)")
    parser.add_argument("--parent", type=int, help="exit once our parent is not this PID")
    args = parser.parse_args(argv)
    if args.deadline - time.time() > MAX_SECONDS:
        parser.error(f"deadline is more than {MAX_SECONDS}s away")
    if args.lease_file is not None and not 0 < args.lease <= MAX_SECONDS:
        parser.error(f"--lease-file needs --lease between 0 and {MAX_SECONDS}s")
    if args.cpus:
        # Pinned beside the process under test, so the pressure lands on its core and no other.
        os.sched_setaffinity(0, {int(core) for core in args.cpus.split(",")})
    tether = Tether(args.lease_file, args.lease, args.parent)
    if args.what == "cpu":
        burn(args.load, args.deadline, tether)
    else:
        hold(args.mb, args.deadline, tether)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
