"""HTTP faults through the rules file that a service's httpx ``FaultTransport`` reads.

The file holds one document ``{"rules": [rule, ...]}``, each a ``gameday.injector.rules.Rule``
with its absolute ``expires_at`` and the run's labels::

    {"rules": [{"id": "r-1f2e", "fault": {"kind": "latency", "ms": 100, ...},
                "labels": {"run": "r42", "scenario": "...", "environment": "...", "step": 1},
                "target": "checkout/payments", "expires_at": 1767225600.0}]}

The transport drops a rule at ``expires_at`` by its own clock, so a rule left behind by a killed
orchestrator stops by itself with no writer alive. ``active`` lists the unexpired rules by
their ``run`` label, so a driver that never saw the ``apply`` still finds and reverts them.

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
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gameday.errors import DriverError, DriverUnreachable, InjectorError
from gameday.injector.rules import HTTP_FAULT_KINDS, Rule, new_rule_id, target_name
from gameday.injector.transport import load_rules_file
from gameday.models import Endpoint
from gameday.records import FaultSpec, Handle

#: Mode of a rules file the driver creates: the service reading it often runs as another user.
FILE_MODE = 0o644


class TransportDriver:
    """Writes transport rules into the file ``rules_file``.

    ``rules_file`` is kept as given for handles (it is how the environment names the place);
    a JSON file is written as JSON, any other suffix as JSON too, which YAML readers accept.
    """

    kind = "transport"

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

    def apply(self, spec: FaultSpec, ttl: float) -> Handle:
        """Add a rule for ``spec`` that the transport drops after ``ttl`` seconds."""
        if spec.fault.kind not in HTTP_FAULT_KINDS:
            raise DriverError(f"the transport driver injects HTTP faults "
                              f"({', '.join(HTTP_FAULT_KINDS)}), not {spec.fault.kind!r}")
        if not ttl > 0:
            raise DriverError(f"the ttl must be positive, not {ttl:g}s")
        now = time.time()
        rule = Rule(id=new_rule_id(), fault=spec.fault, labels=spec.labels,
                    target=target_name(spec.target), expires_at=now + ttl)
        # Expired rules are dropped on the way: the file does not grow with every game day.
        self._update(lambda rules: [r for r in rules if r.active(now)] + [rule])
        return self._handle(rule)

    def revert(self, handle: Handle) -> None:
        """Remove the handle's rule (and expired ones); a rule or file already gone is fine."""
        if handle.driver != self.kind:
            raise DriverError(f"handle of driver {handle.driver!r} given to the transport "
                              "driver")
        if not self._same_file(handle.extra.get("rules_file", handle.endpoint)):
            raise DriverError(f"handle {handle.id} lives in {handle.endpoint}, this driver "
                              f"writes {self.rules_file}")
        if not self.path.exists():
            return  # no file, no rule to remove; and reverting must not create the file
        now = time.time()
        self._update(lambda rules: [r for r in rules if r.id != handle.id and r.active(now)])

    def active(self, run: str | None = None) -> list[Handle]:
        """Unexpired rules in the file (only ``run``'s when given), as handles."""
        now = time.time()
        return [self._handle(rule) for rule in self._read()
                if rule.active(now) and (run is None or rule.labels.run == run)]

    # -- helpers --------------------------------------------------------------------------------

    def _read(self) -> list[Rule]:
        """The file's rules, read the way the transport reads them; none when it is missing."""
        if not self.path.exists():
            return []
        try:
            return load_rules_file(self.path)
        except InjectorError as exc:
            if not self.path.exists():  # removed between the two looks
                return []
            raise DriverError(f"transport rules file {self.rules_file} is not a rules "
                              f"document: {exc}") from exc

    def _update(self, change: Callable[[list[Rule]], list[Rule]]) -> None:
        with self._locked():
            rules = change(self._read())
            text = json.dumps({"rules": [r.model_dump(mode="json") for r in rules]}, indent=1,
                              sort_keys=True)
            self._replace(text + "\n")

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
                      extra={"rules_file": self.rules_file, "target": rule.target})
