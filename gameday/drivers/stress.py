"""Local CPU and memory pressure: worker processes that end by themselves at the TTL, when
their lease is not renewed, and when their parent dies.

Each worker (``_stress_worker.py``) runs in its own session and checks its own deadline, so it
outlives a SIGKILLed orchestrator only until the TTL. A leased fault also has a lease file in
the state folder whose mtime is its last renewal (``renew`` touches it): its workers exit once
it is ``lease`` seconds old or gone, and as soon as the process that applied the fault (their
parent) dies, so a dead or frozen run leaves them a lease at most, not the TTL. Applied faults
are recorded as JSON files in a state folder (``$GAMEDAY_STATE/stress``): ``active`` works from
a fresh driver, and ``revert`` stops the workers by PID after checking that each PID is still
the worker it started (same start time, same command line), so a recycled PID is never killed.

Sized for small machines: the CPU the kit's workers may use at once is capped (by default every
core but one, at least one core), so Prometheus and the services keep a core to run on; memory
is capped at half of what is available.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from gameday import procs
from gameday.drivers._stress_worker import PERIOD
from gameday.drivers.base import LEASE_EXPIRED, Gone
from gameday.errors import DriverError
from gameday.faults import CpuFault, MemoryFault
from gameday.models import Endpoint
from gameday.paths import state_dir
from gameday.records import FaultSpec, Handle, Labels

WORKER = Path(__file__).with_name("_stress_worker.py")
#: Why ``renew`` reports a fault gone whose lease was still live (its TTL passed, or its workers
#: were killed).
WORKERS_GONE = "its workers are gone"
#: Seconds a started worker has to show its command line before it counts as not started.
EXEC_WAIT = 5.0


class Worker(BaseModel):
    """One worker process, identified by PID and kernel start time (clock ticks after boot)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    pid: int
    start_ticks: int


class Record(BaseModel):
    """What the state folder keeps about one applied fault."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    labels: Labels
    fault: str
    kind: str
    cpu_percent: float
    expires_at: float
    workers: list[Worker]
    lease_s: float | None = None


class StressDriver:
    """Applies CPU and memory pressure on this machine as self-expiring processes."""

    kind = "stress"
    #: A worker checks its lease file every duty cycle (``PERIOD``), so a lapsed lease keeps
    #: it running that long at most, besides the moment it takes to exit.
    lease_slack: float | None = PERIOD

    def __init__(self, state: Path | None = None, *, max_cpu_percent: float | None = None,
                 max_memory_mb: int | None = None, cpus: tuple[int, ...] = ()) -> None:
        self.state = Path(state) if state is not None else state_dir() / "stress"
        self.cpus = cpus
        cores = os.cpu_count() or 1
        self.max_cpu_percent = max_cpu_percent or 100.0 * max(1, cores - 1)
        self.max_memory_mb = max_memory_mb

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint) -> StressDriver:
        """The driver for a ``stress`` endpoint: pressure on this machine, state in the kit's."""
        return cls(cpus=tuple(endpoint.cpus))

    def check(self) -> None:
        """Raise unless worker processes can be started and tracked here (Linux /proc), on the
        cores the endpoint pins them to."""
        if not Path("/proc/self/stat").exists():
            raise DriverError("the stress driver needs Linux /proc to track its processes")
        usable = os.sched_getaffinity(0)
        missing = sorted(set(self.cpus) - usable)
        if missing:
            raise DriverError(f"the endpoint pins stress workers to cores {missing}, which this "
                              f"machine does not offer (usable: {sorted(usable)})")
        try:
            self.state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DriverError(f"cannot create the stress state folder {self.state}: {exc}") from exc

    def apply(self, spec: FaultSpec, ttl: float, lease: float | None = None) -> Handle:
        """Start the workers for a ``cpu`` or ``memory`` fault; they exit by themselves at TTL,
        and, when ``lease`` is given, once it is not renewed for ``lease`` seconds or this
        process dies."""
        self.check()
        fault = spec.fault
        if not isinstance(fault, CpuFault | MemoryFault):
            raise DriverError(f"the stress driver applies cpu and memory faults, "
                              f"not {fault.kind!r}")
        fault_id = f"stress-{spec.labels.run}-s{spec.labels.step}-{secrets.token_hex(4)}"
        expires_at = time.time() + ttl
        base = [sys.executable, "-I", "-S", str(WORKER), fault.kind, "--fault", fault_id,
                "--deadline", f"{expires_at:.3f}"]
        if self.cpus:
            base += ["--cpus", ",".join(str(core) for core in self.cpus)]
        if isinstance(fault, CpuFault):
            cpu = fault.workers * fault.load_percent
            self._check_cpu(cpu)
            argvs = [[*base, "--load", f"{fault.load_percent:g}"]] * fault.workers
        else:
            cpu = 0.0
            self._check_memory(fault.mb)
            argvs = [[*base, "--mb", str(fault.mb)]]
        lease_file = self._lease_file(fault_id)
        if lease is not None:
            # Our PID as the workers' parent: procs.start forks them from this very process
            # (start_new_session only makes them session leaders, their parent stays us), so
            # they see their parent change, and exit, when this process dies.
            argvs = [[*argv, "--lease-file", str(lease_file), "--lease", f"{lease:g}",
                      "--parent", str(os.getpid())] for argv in argvs]
        workers: list[Worker] = []
        try:
            if lease is not None:
                lease_file.touch(exist_ok=False)  # before the workers, who exit without it
            for argv in argvs:
                workers.append(_start_worker(argv, fault_id))
        except OSError as exc:
            for worker in workers:
                _stop(worker, fault_id)
            with contextlib.suppress(FileNotFoundError):
                lease_file.unlink()
            raise DriverError(f"could not start a stress worker: {exc}") from exc
        record = Record(id=fault_id, labels=spec.labels, fault=fault.summary(), kind=fault.kind,
                        cpu_percent=cpu, expires_at=expires_at, workers=workers, lease_s=lease)
        self._write(record)
        return self._handle(record)

    def revert(self, handle: Handle) -> None:
        """Stop the fault's workers that are still running; forget the fault."""
        record = self._read(self.state / f"{handle.id}.json")
        workers = record.workers if record else _workers_from(handle)
        # The lease file first: workers whose signals we cannot deliver still exit by themselves.
        with contextlib.suppress(FileNotFoundError):
            self._lease_file(handle.id, handle).unlink()
        for worker in workers:
            _stop(worker, handle.id)
        with contextlib.suppress(FileNotFoundError):
            (self.state / f"{handle.id}.json").unlink()

    def renew(self, handles: Sequence[Handle]) -> list[Gone]:
        """Renew the leases of the handles whose workers still run (touching their lease files);
        the others are gone, ``LEASE_EXPIRED`` when their lease had lapsed.

        A lease file is never recreated and a lapsed one never touched: a lapse is final, and
        its workers end within ``lease_slack`` by themselves. Handles without a lease are only
        checked for live workers.
        """
        gone: list[Gone] = []
        for handle in handles:
            running = any(_is_ours(worker, handle.id) for worker in _workers_from(handle))
            if handle.lease_s is None:
                if not running:
                    gone.append(Gone(handle, WORKERS_GONE))
                continue
            path = self._lease_file(handle.id, handle)
            if _lapsed(path, handle.lease_s):
                gone.append(Gone(handle, LEASE_EXPIRED))
            elif not running:
                gone.append(Gone(handle, WORKERS_GONE))
            else:
                try:
                    os.utime(path)  # never creates it: a lease a worker gave up on stays lapsed
                except FileNotFoundError:
                    gone.append(Gone(handle, LEASE_EXPIRED))
                except OSError as exc:
                    raise DriverError(f"could not renew the lease of {handle.id}: {exc}") from exc
        return gone

    def active(self, run: str | None = None) -> list[Handle]:
        """Faults whose workers still run here (only ``run``'s when given)."""
        found = []
        for record in self._records():
            if run is not None and record.labels.run != run:
                continue
            found.append(self._handle(record))
        return found

    # --- helpers ------------------------------------------------------------------------------

    def _records(self) -> list[Record]:
        """Recorded faults with a live worker; records whose workers all ended are removed."""
        records = []
        for path in sorted(self.state.glob("stress-*.json")):
            record = self._read(path)
            if record is None:
                continue
            if any(_is_ours(worker, record.id) for worker in record.workers):
                records.append(record)
            else:
                for stale in (path, self._lease_file(record.id)):
                    with contextlib.suppress(FileNotFoundError):
                        stale.unlink()
        return records

    def _lease_file(self, fault_id: str, handle: Handle | None = None) -> Path:
        """The file whose mtime is the fault's last renewal, beside its record; a handle names
        the state folder it was applied in, in case this driver's differs."""
        state = Path(handle.extra["state"]) if handle and handle.extra.get("state") else self.state
        return state / f"{fault_id}.lease"

    def _check_cpu(self, wanted: float) -> None:
        busy = sum(record.cpu_percent for record in self._records())
        if busy + wanted > self.max_cpu_percent:
            raise DriverError(
                f"CPU pressure of {wanted:g}% (workers × load_percent) on top of the "
                f"{busy:g}% already applied is more than this machine's cap of "
                f"{self.max_cpu_percent:g}% (one core is kept free for Prometheus and the "
                "services)")

    def _check_memory(self, megabytes: int) -> None:
        cap = self.max_memory_mb if self.max_memory_mb is not None else _available_mb() // 2
        if megabytes > cap:
            raise DriverError(f"memory pressure of {megabytes} MB is more than the cap of "
                              f"{cap} MB (half of the memory available)")

    def _write(self, record: Record) -> None:
        path = self.state / f"{record.id}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(record.model_dump_json())
        os.replace(temporary, path)

    def _read(self, path: Path) -> Record | None:
        try:
            return Record.model_validate_json(path.read_text())
        except (OSError, ValidationError):
            return None

    def _handle(self, record: Record) -> Handle:
        workers = ",".join(f"{w.pid}:{w.start_ticks}" for w in record.workers)
        return Handle(driver=self.kind, id=record.id,
                      endpoint=f"{socket.gethostname()}:{self.state}", labels=record.labels,
                      fault=record.fault, expires_at=record.expires_at, lease_s=record.lease_s,
                      extra={"state": str(self.state), "workers": workers})


def _workers_from(handle: Handle) -> list[Worker]:
    """Workers named in a handle, for when the state file is gone."""
    workers = []
    for item in filter(None, handle.extra.get("workers", "").split(",")):
        pid, _, ticks = item.partition(":")
        with contextlib.suppress(ValueError):
            workers.append(Worker(pid=int(pid), start_ticks=int(ticks or 0)))
    return workers


def _lapsed(lease_file: Path, lease: float) -> bool:
    """Whether the lease whose last renewal is ``lease_file``'s mtime has lapsed, or is gone."""
    try:
        renewed = lease_file.stat().st_mtime
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise DriverError(f"cannot read the lease file {lease_file}: {exc}") from exc
    return renewed + lease < time.time()


def _start_worker(argv: list[str], fault_id: str) -> Worker:
    """Start one worker and return once it is provably ours (``OSError`` if it never is).

    Popen returns when exec closes its pipe, a moment before the kernel fills the new
    program's /proc/PID/cmdline: read at once, a live worker would look like a stranger, so
    ``renew`` would call it gone and ``revert`` would leave it running."""
    child = procs.start(argv)
    worker = Worker(pid=child.pid, start_ticks=procs.start_ticks(child.pid) or 0)
    deadline = time.monotonic() + EXEC_WAIT
    while not _is_ours(worker, fault_id):
        code = child.poll()
        if code is not None:
            raise OSError(f"stress worker {worker.pid} did not start: it exited with code {code}")
        if time.monotonic() > deadline:
            procs.stop(worker.pid, grace=1.0)  # ours by its start time, whatever exec showed
            raise OSError(f"stress worker {worker.pid} did not start: it did not show its "
                          f"command line within {EXEC_WAIT:g}s")
        time.sleep(0.001)
    return worker


def _is_ours(worker: Worker, fault_id: str) -> bool:
    """Whether ``worker.pid`` is still the worker started for ``fault_id``."""
    if not procs.alive(worker.pid) or procs.start_ticks(worker.pid) != worker.start_ticks:
        return False
    try:
        argv = Path(f"/proc/{worker.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(WORKER).encode() in argv and fault_id.encode() in argv


def _stop(worker: Worker, fault_id: str) -> None:
    """SIGTERM, then SIGKILL, one worker, but only while it is provably ours."""
    deadline = time.monotonic() + 5.0
    sig = signal.SIGTERM
    while _is_ours(worker, fault_id):
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(worker.pid, sig)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(worker.pid, os.WNOHANG)
        time.sleep(0.05)


def _available_mb() -> int:
    """MemAvailable from /proc/meminfo, in megabytes."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0

