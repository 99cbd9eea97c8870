"""HTTP faults through the rules file that a service's httpx ``FaultTransport`` reads.

The file holds one document ``{"rules": [rule, ...], "leases": {run: deadline}}``, each rule a
``gameday.injector.rules.Rule`` with its absolute ``expires_at`` and the run's labels::

    {"rules": [{"id": "r-1f2e", "fault": {"kind": "latency", "ms": 100, ...},
                "labels": {"run": "r42", "scenario": "...", "environment": "...", "step": 1},
                "target": "checkout/payments", "expires_at": 1767225600.0, "lease": 6.0}],
     "leases": {"r42": 1767222006.0}}

The transport drops a rule at ``expires_at`` by its own clock, so a rule left behind by a killed
orchestrator stops by itself with no writer alive. ``active`` lists the live rules by their
``run`` label, so a driver that never saw the ``apply`` still finds and reverts them.

**Leases.** A rule applied with a ``lease`` also ends at its run's deadline in ``leases``
(:mod:`gameday.injector.rules_file`): the transport checks it on every request, by its own
clock, so a run that stops renewing leaves its faults at most ``lease`` seconds. ``renew`` is
one rewrite of the file for all the handles given: each live leased rule's run gets the
deadline ``now + lease``; a run whose deadline has passed keeps it, so its lapsed rules never
come back, and they are reported ``lease expired``. A lapsed rule stays in the file until its
own expiry (it injects nothing), so a run that wakes late is told why its fault ended, unless
the run applies a new leased rule first: its fresh deadline would revive them, so they go.
``lease``, ``leases`` and ``points`` are written only where set: a file without them reads as
before. A target with a ``point`` gets a rule with ``points``: the service's
:func:`~gameday.injector.points.fault_point` of that name acts on it, its httpx transport does
not.

Every write is a read-modify-replace under an exclusive ``flock`` on ``<file>.lock``, so two
processes applying or reverting at once never lose each other's rules; the new document is
written to a temporary file in the same folder, fsynced and renamed over the old one, so a
reader sees the old document or the new one, never half of one. The rename also gives the file
a new inode, which is what the transport's change check looks at besides mtime and size.

The file is one the kit can write on the service's machine (a local service, a shared volume).
A file mounted from a ConfigMap is read-only to everyone: that is the ``configmap`` driver's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gameday.drivers.base import LEASE_EXPIRED, Gone
from gameday.errors import DriverError, DriverUnreachable, InjectorError
from gameday.injector.rules import (
    HTTP_FAULT_KINDS,
    POINT_FAULT_KINDS,
    Rule,
    new_rule_id,
    target_name,
)
from gameday.injector.rules_file import RulesDocument, load_rules_document
from gameday.models import Endpoint
from gameday.records import FaultSpec, Handle

#: Mode of a rules file the driver creates: the service reading it often runs as another user.
FILE_MODE = 0o644
#: Why ``renew`` reports a handle gone when its rule is not in the file.
MISSING = "not in the rules file any more"
#: Why ``renew`` reports a handle gone when its rule's own expiry passed (the proxy's word).
TTL = "ttl"


class TransportDriver:
    """Writes transport rules into the file ``rules_file``.

    ``rules_file`` is kept as given for handles (it is how the environment names the place);
    a JSON file is written as JSON, any other suffix as JSON too, which YAML readers accept.
    """

    kind = "transport"
    #: The transport compares each leased rule's deadline with its clock on every request, so
    #: a lapsed lease acts on no request begun after it: no poll to wait for. (A request begun
    #: just before still ends its delay; and a file shared between machines also trusts their
    #: clocks to agree, as every ``expires_at`` already does.)
    lease_slack: float | None = 0.0

    def __init__(self, rules_file: str | Path) -> None:
        self.rules_file = str(rules_file)
        self.path = Path(rules_file).expanduser()
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint) -> TransportDriver:
        """The driver for a ``transport`` endpoint of an environment."""
        if not endpoint.rules_file:
            raise DriverError(f"endpoint {endpoint.service!r}: the transport driver needs "
                              "rules_file")
        return cls(endpoint.rules_file)

    # -- the driver contract --------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``DriverUnreachable`` unless the file's folder takes a new file; read the file.

        Writability is tried, not inferred from permission bits: those say nothing about a
        read-only mount, and root passes every ``os.access`` check.
        """
        folder = self.path.parent
        try:
            with tempfile.TemporaryFile(dir=folder, prefix=f".{self.path.name}.check."):
                pass
        except OSError as exc:
            raise DriverUnreachable(f"transport rules folder {folder} is not writable: "
                                    f"{exc.strerror or exc}") from exc
        self._read()

    def apply(self, spec: FaultSpec, ttl: float, lease: float | None = None) -> Handle:
        """Add a rule for ``spec`` that the transport drops after ``ttl`` seconds, or when
        ``lease`` is given, once ``lease`` seconds pass with no ``renew``."""
        point = spec.target.point
        kinds = POINT_FAULT_KINDS if point else HTTP_FAULT_KINDS
        if spec.fault.kind not in kinds:
            what = f"at fault point {point!r}" if point else "HTTP faults"
            raise DriverError(f"the transport driver injects {what} "
                              f"({', '.join(kinds)}), not {spec.fault.kind!r}")
        if not ttl > 0:
            raise DriverError(f"the ttl must be positive, not {ttl:g}s")
        if lease is not None and not (lease > 0 and math.isfinite(lease)):
            raise DriverError(f"the lease must be a positive number of seconds, not {lease:g}")
        run = spec.labels.run
        rule = Rule(id=new_rule_id(), fault=spec.fault, labels=spec.labels,
                    target=target_name(spec.target), expires_at=time.time() + ttl, lease=lease,
                    points=(point,) if point else ())

        def change(document: RulesDocument) -> tuple[list[Rule], dict[str, float]]:
            # Under the lock: a deadline that passed while this waited for it has lapsed.
            now, leases = time.time(), dict(document.leases)
            kept = _unexpired(document, now)
            if lease is not None:
                if leases.get(run, 0.0) <= now:
                    # The run's new deadline would bring its lapsed rules back: drop them.
                    kept = [r for r in kept if r.lease is None or r.labels.run != run]
                # Never sooner than it was: the run's other rules were promised that long.
                leases[run] = max(leases.get(run, 0.0), now + lease)
            return [*kept, rule], leases

        self._update(change)
        return self._handle(rule)

    def renew(self, handles: Sequence[Handle]) -> list[Gone]:
        """Push back the lease deadline of the handles' runs in one rewrite; the gone ones.

        A handle whose rule's lease lapsed is ``lease expired`` and stays lapsed; one whose rule
        is not in the file (or no file) is gone too. A handle without ``lease_s`` is only looked
        for.
        """
        for handle in handles:
            self._own(handle)
        if not handles:
            return []
        if not self.path.exists():  # and renewing must not create the file
            return [Gone(handle, MISSING) for handle in handles]
        gone: list[Gone] = []

        def change(document: RulesDocument) -> tuple[list[Rule], dict[str, float]]:
            now = time.time()  # under the lock: the deadlines compared are the file's now
            rules = {rule.id: rule for rule in document.rules}
            leases = dict(document.leases)
            for handle in handles:
                rule = rules.get(handle.id)
                if rule is None:
                    gone.append(Gone(handle, MISSING))
                elif document.deadline(rule) <= now:
                    lapsed = rule.lease is not None and document.deadline(rule) < rule.expires_at
                    gone.append(Gone(handle, LEASE_EXPIRED if lapsed else TTL))
                elif rule.lease is not None and handle.lease_s is not None:
                    run = rule.labels.run  # live and leased: the run has a deadline
                    leases[run] = max(leases[run], now + handle.lease_s)
            return _unexpired(document, now), leases

        self._update(change)
        return gone

    def revert(self, handle: Handle) -> None:
        """Remove the handle's rule (and expired ones); a rule or file already gone is fine."""
        self._own(handle)
        if not self.path.exists():
            return  # no file, no rule to remove; and reverting must not create the file
        now = time.time()
        self._update(lambda document: ([r for r in _unexpired(document, now)
                                        if r.id != handle.id], dict(document.leases)))

    def active(self, run: str | None = None) -> list[Handle]:
        """Rules in the file that still apply (only ``run``'s when given), as handles."""
        now, document = time.time(), self._read()
        return [self._handle(rule) for rule in document.rules
                if document.deadline(rule) > now and (run is None or rule.labels.run == run)]

    # -- helpers --------------------------------------------------------------------------------

    def _own(self, handle: Handle) -> None:
        """Raise ``DriverError`` unless ``handle`` is a rule of this driver's file."""
        if handle.driver != self.kind:
            raise DriverError(f"handle of driver {handle.driver!r} given to the transport "
                              "driver")
        if not self._same_file(handle.extra.get("rules_file", handle.endpoint)):
            raise DriverError(f"handle {handle.id} lives in {handle.endpoint}, this driver "
                              f"writes {self.rules_file}")

    def _read(self) -> RulesDocument:
        """The file as written, read the way the transport reads it; empty when missing."""
        if not self.path.exists():
            return RulesDocument()
        try:
            return load_rules_document(self.path)
        except InjectorError as exc:
            if not self.path.exists():  # removed between the two looks
                return RulesDocument()
            raise DriverError(f"transport rules file {self.rules_file} is not a rules "
                              f"document: {exc}") from exc

    def _update(self, change: Callable[[RulesDocument],
                                       tuple[list[Rule], dict[str, float]]]) -> None:
        """Rewrite the file with what ``change`` makes of it, under the lock; unchanged, not."""
        with self._locked():
            document = self._read()
            rules, leases = change(document)
            # A run's deadline is kept while it has a leased rule in the file, lapsed or not:
            # dropped with the last one, it cannot be mistaken for a lease still to renew.
            runs = {rule.labels.run for rule in rules if rule.lease is not None}
            leases = {run: until for run, until in leases.items() if run in runs}
            if list(document.rules) == rules and dict(document.leases) == leases:
                return
            self._replace(_document_text(rules, leases))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the exclusive lock of the rules file; the lock file itself is never removed.

        Removing it would let a process that opened the old lock file and one that created a
        new one both believe they hold the lock.
        """
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise DriverUnreachable(f"cannot open the lock file {self.lock_path}: "
                                    f"{exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _replace(self, text: str) -> None:
        """Write ``text`` to a temporary file beside the rules file, fsync, rename over it."""
        folder = self.path.parent
        try:
            before = self.path.stat()
            mode, last_mtime = before.st_mode & 0o777, before.st_mtime_ns
        except FileNotFoundError:
            mode, last_mtime = FILE_MODE, 0
        try:
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.",
                                             suffix=".tmp")
        except OSError as exc:
            raise DriverUnreachable(f"transport rules folder {folder} is not writable: "
                                    f"{exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fchmod(out.fileno(), mode)  # mkstemp makes it 0600: unreadable to others
                # The transport re-reads when (mtime, size, inode) changes. The kernel's file
                # clock is coarse and a freed inode is soon reused, so two quick writes of the
                # same size could look alike: each write's mtime is kept after the last one's.
                stamp = max(time.time_ns(), last_mtime + 1)
                os.utime(out.fileno(), ns=(stamp, stamp))
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise DriverError(f"cannot write transport rules file {self.rules_file}: "
                              f"{exc.strerror or exc}") from exc
        # The rename is durable only once the folder's entry is on disk too.
        with contextlib.suppress(OSError):
            folder_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(folder_fd)
            finally:
                os.close(folder_fd)

    def _same_file(self, other: str) -> bool:
        return os.path.abspath(Path(other).expanduser()) == os.path.abspath(self.path)

    def _handle(self, rule: Rule) -> Handle:
        return Handle(driver=self.kind, id=rule.id, endpoint=self.rules_file, labels=rule.labels,
                      fault=rule.fault.summary(), expires_at=rule.expires_at,
                      lease_s=rule.lease,
                      extra={"rules_file": self.rules_file, "target": rule.target,
                             **({"points": ",".join(rule.points)} if rule.points else {})})


def _unexpired(document: RulesDocument, now: float) -> list[Rule]:
    """The rules whose own expiry has not passed; the file does not grow with every game day."""
    return [rule for rule in document.rules if rule.active(now)]


def _document_text(rules: list[Rule], leases: Mapping[str, float]) -> str:
    """The file's JSON; ``lease`` and ``leases`` only where set, which older readers refuse."""
    items: list[dict[str, Any]] = []
    for rule in rules:
        item = rule.model_dump(mode="json")
        if item.get("lease") is None:
            item.pop("lease", None)
        if not item.get("points"):
            item.pop("points", None)
        items.append(item)
    data: dict[str, Any] = {"rules": items}
    if leases:
        data["leases"] = dict(leases)
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
