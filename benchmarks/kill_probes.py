"""Where each driver's fault acts, probed every 50 ms from a thread of its own.

Not the admin API's rule list: a request through the fault's own path, or the processes that
are the fault. Each probe is dispatched on a fixed 50 ms grid (a slowed request does not
stretch the period: probes overlap, a few threads each) and recorded with its start time and
whether it met the fault:

* ``HttpProbe``: ``GET /health`` of auth-service through the auth-proxy's data plane; faulted
  when the answer carries ``x-chaos-fault`` (the proxy marks every request a rule fired on);
* ``TcpProbe``: a Redis ``PING`` through the cache-proxy on a fresh connection; faulted when the
  ``+PONG`` took 50 ms or more (the fault adds 100 ms to the replies; a normal one takes about
  one);
* ``TransportProbe``: ``GET /health`` of auth-service directly, through the bench's own
  ``httpx.Client`` on ``FaultTransport(rules_file=...)``, the real reader of the rules file
  (which enforces the file's lease deadlines); faulted when the answer carries
  ``x-chaos-fault``, which the transport adds to what it faulted;
* ``StressProbe``: the worker processes the stress driver's records
  (``$GAMEDAY_STATE/stress/*.json``) name; faulted while one of them is alive (a zombie is
  dead: ``gameday.procs.alive``) and is still the process recorded (same kernel start time).

A probe that failed (refused, timed out) says nothing either way and is left out.
"""

from __future__ import annotations

import bisect
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from gameday import procs
from gameday.drivers.stress import Record
from gameday.injector.transport import FaultTransport
from gameday.procs import alive

PERIOD = 0.05
#: A Redis PING reply this slow (or slower) met the 100 ms latency fault.
SLOW_PING = 0.05
#: Seconds a probe may take before it counts as failed (a 100 ms fault is far below).
PROBE_TIMEOUT = 2.0
#: Consecutive faulted probes that make a timed fault "applied" (one slow PING on a loaded
#: machine is not the fault); a marked answer is proof on its own.
TIMED_CONFIRM = 3
FAULT_HEADER = "x-chaos-fault"


@dataclass
class _Slot:
    """One probe: when it was sent, and once answered, when and whether it met the fault."""

    started: float
    ended: float | None = None
    faulted: bool | None = None  # None: failed (or not answered yet)
    done: bool = False


@dataclass
class Prober:
    """Probes one place every ``period`` seconds from its own thread, until closed."""

    name: str
    period: float = PERIOD
    workers: int = 6
    confirm: int = 1
    errors: int = 0
    _slots: list[_Slot] = field(default_factory=list)
    _starts: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Prober:
        self.open()
        if self.workers > 1:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"probe-{self.name}")
        self._thread = threading.Thread(target=self._run, name=f"probe-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.close()

    def open(self) -> None:
        """Make what the probe needs (clients), before the thread starts."""

    def close(self) -> None:
        """Release what the probe holds (clients)."""

    def probe(self) -> bool:
        """One look: whether the fault acts now; raises ``OSError``/``httpx.HTTPError`` when
        the look failed."""
        raise NotImplementedError

    # --- what the trials ask --------------------------------------------------------------

    def applied(self, after: float, timeout: float, stop: threading.Event,
                ended: Callable[[], bool] = lambda: False) -> float | None:
        """Start of the first probe sent at or after ``after`` that met the fault (of the first
        of ``confirm`` in a row); None after ``timeout``, once ``stop`` is set, or once
        ``ended()`` says the run that would apply it is over."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            found = self._first_run(after, faulted=True, length=self.confirm)
            if found is not None:
                return found
            if ended():
                # It may have acted just before the end: the probes sent meanwhile decide.
                time.sleep(PROBE_TIMEOUT)
                return self._first_run(after, faulted=True, length=self.confirm)
            stop.wait(self.period / 2)
        return None

    def gone(self, after: float, timeout: float, stop: threading.Event) -> float | None:
        """Start of the first probe sent at or after ``after`` that did not meet the fault,
        once every probe sent before it has answered; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            found = self._first_run(after, faulted=False, length=1)
            if found is not None:
                return found
            stop.wait(self.period / 2)
        return None

    def clean_between(self, start: float, end: float) -> int:
        """How many probes sent in ``[start, end)`` answered without the fault."""
        with self._lock:
            low = bisect.bisect_left(self._starts, start)
            high = bisect.bisect_left(self._starts, end)
            return sum(1 for slot in self._slots[low:high] if slot.faulted is False)

    def last_before(self, end: float) -> bool | None:
        """Whether the last answered probe sent before ``end`` met the fault (None: none)."""
        with self._lock:
            high = bisect.bisect_left(self._starts, end)
            for slot in reversed(self._slots[:high]):
                if slot.faulted is not None:
                    return slot.faulted
        return None

    def acting(self) -> bool | None:
        """Whether the newest answered probe met the fault (None before any answered)."""
        with self._lock:
            for slot in reversed(self._slots):
                if slot.faulted is not None:
                    return slot.faulted
        return None

    def _first_run(self, after: float, faulted: bool, length: int) -> float | None:
        with self._lock:
            low = bisect.bisect_left(self._starts, after)
            streak: list[_Slot] = []
            for slot in self._slots[low:]:
                if not slot.done:
                    return None  # an earlier probe may still turn out to be the first
                if slot.faulted is None:
                    continue
                streak = [*streak, slot] if slot.faulted is faulted else []
                if len(streak) >= length:
                    return streak[0].started
        return None

    # --- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        origin = time.monotonic()
        ticks = 0
        while not self._stop.is_set():
            slot = _Slot(started=time.time())
            with self._lock:
                self._slots.append(slot)
                self._starts.append(slot.started)
            if self._pool is not None:
                try:
                    self._pool.submit(self._one, slot)
                except RuntimeError:  # shut down meanwhile
                    return
            else:
                self._one(slot)
            ticks = max(ticks + 1, int((time.monotonic() - origin) / self.period))
            self._stop.wait(max(0.0, origin + ticks * self.period - time.monotonic()))

    def _one(self, slot: _Slot) -> None:
        try:
            faulted: bool | None = self.probe()
        except (OSError, httpx.HTTPError):
            faulted = None
        ended = time.time()
        with self._lock:
            slot.ended, slot.faulted, slot.done = ended, faulted, True
            if faulted is None:
                self.errors += 1


@dataclass
class HttpProbe(Prober):
    """``GET url`` through a fault proxy: faulted when the answer is marked."""

    url: str = ""
    _client: httpx.Client | None = None

    def open(self) -> None:
        self._client = httpx.Client(trust_env=False, timeout=PROBE_TIMEOUT,
                                    limits=httpx.Limits(max_connections=self.workers))

    def probe(self) -> bool:
        assert self._client is not None
        return FAULT_HEADER in self._client.get(self.url).headers

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@dataclass
class TransportProbe(HttpProbe):
    """``GET url`` through ``FaultTransport(rules_file=...)``: faulted when marked."""

    rules_file: Path = Path()
    target: str = ""

    def open(self) -> None:
        # The service's side of the file, as a service embeds it: the reader under test.
        transport = FaultTransport(rules_file=self.rules_file, target=self.target)
        self._client = httpx.Client(transport=transport, trust_env=False,
                                    timeout=PROBE_TIMEOUT)


@dataclass
class TcpProbe(Prober):
    """A Redis ``PING`` through a TCP fault proxy: faulted when the reply is slow."""

    address: str = ""  # tcp://host:port
    confirm: int = TIMED_CONFIRM

    def probe(self) -> bool:
        where = urlsplit(self.address)
        with socket.create_connection((where.hostname or "127.0.0.1", where.port or 0),
                                      timeout=PROBE_TIMEOUT) as sock:
            sent = time.monotonic()
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    raise ConnectionError("the proxy closed the connection")
                reply += chunk
            took = time.monotonic() - sent
        if not reply.startswith(b"+PONG"):
            raise ConnectionError(f"unexpected reply {reply[:40]!r}")
        return took >= SLOW_PING


@dataclass
class StressProbe(Prober):
    """The stress driver's recorded workers: faulted while one of them is alive."""

    folder: Path = Path()
    workers: int = 1  # a few stat calls: done on the grid, no pool

    def probe(self) -> bool:
        return bool(self.live())

    def live(self) -> list[int]:
        """PIDs of recorded workers that still run (and are the processes recorded)."""
        found = []
        for path in sorted(self.folder.glob("*.json")):
            with contextlib.suppress(OSError, ValidationError):
                record = Record.model_validate_json(path.read_text())
                found += [w.pid for w in record.workers
                          if alive(w.pid) and procs.start_ticks(w.pid) == w.start_ticks]
        return found
