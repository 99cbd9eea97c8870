"""The transport's rules file: read within limits, by a watcher thread, never by a request.

A service embeds the transport; a chaos config it cannot read must cost it nothing. So:

* **Limits.** At most :data:`MAX_BYTES` are read (a bigger file is refused from its size,
  unread); the text must be UTF-8; nesting stops at :data:`MAX_DEPTH` levels and YAML at
  :data:`MAX_NODES` nodes; YAML anchors and aliases are refused (a rules file has no use for
  them, and they are how a few hundred bytes expand to a billion nodes). JSON is tried first
  (the transport driver writes JSON whatever the suffix; a ``.json`` file is JSON only).
* **Off the request path.** Each :class:`RuleSource` with a file has one watcher thread. It
  re-reads the file when its ``(mtime, size, inode)`` changes, and publishes the parsed rule
  set as one immutable record. A request only looks at the file's ``stat``; when that changed it
  wakes the watcher and waits for it, at most :data:`SETTLE` once it has begun (a small JSON
  file, read in about a millisecond, gets :data:`WAKE`): a file written just before is seen by
  the very next request, and a slow or hostile file costs a request no more than that wait. A
  request that gives up injects nothing: the rules it had came from a file that is gone.
* **A refused file injects nothing.** Its rules, and those of the file before it, are dropped;
  ``last_error`` says why and ``gameday_transport_rules_errors_total{reason}`` (default
  prometheus_client registry) counts it, once per version of the file.
* **Leases.** The document may also hold ``"leases": {run: deadline, ...}``, the epoch second
  each run's lease ends. A rule with a ``lease`` is bound by its run's deadline: the reader
  folds it into the rule's ``expires_at`` (a leased rule whose run has none has lapsed), so a
  run that dies or freezes stops renewing and its faults end at the deadline, with no change
  to the file and nobody alive to make one. Rules without ``lease`` are not affected.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError

from gameday.errors import CatalogError, InjectorError, InputRefused, RulesFileError
from gameday.injector.rules import Rule, RuleInput, problems_of
from gameday.load.yaml_lines import Limits, limited_text, parse_yaml
from gameday.records import Labels

log = logging.getLogger("gameday.injector")
Clock = Callable[[], float]
Key = tuple[int, int, int]

#: Largest rules file read, in bytes: about 4000 rules as the transport driver writes them.
MAX_BYTES = 1024 * 1024
#: Deepest nesting of mappings and lists: a rules document nests 4 deep.
MAX_DEPTH = 16
#: Most YAML nodes (a rule has about 15): composing them takes the watcher a fraction of a
#: second, which it spends holding the GIL the service's requests need too.
MAX_NODES = 5_000
LIMITS = Limits(size=MAX_BYTES, depth=MAX_DEPTH, nodes=MAX_NODES, aliases=False)
#: Longest a request waits for the watcher to read a file it saw change, in seconds, once the
#: watcher has begun.
SETTLE = 0.005
#: Longest a request waits for an idle watcher to begin, and for it to read a small JSON file,
#: in seconds. Neither is work (JSON of QUICK_BYTES is parsed and validated in about 2 ms):
#: only a starved machine makes them long, and then a request is slow anyway.
WAKE = 0.05
#: A JSON file up to this size, in bytes, counts as quick to read (about 250 rules).
QUICK_BYTES = 64 * 1024
#: How often the watcher looks at the file when no request asks it to, in seconds.
POLL = 1.0

ERRORS = Counter("gameday_transport_rules_errors_total",
                 "Versions of a rules file the httpx fault transport refused, by reason",
                 ["reason"])


@dataclass(frozen=True)
class RulesDocument:
    """A rules file as written: each rule with its own expiry, and the runs' lease deadlines."""

    rules: tuple[Rule, ...] = ()
    leases: Mapping[str, float] = field(default_factory=dict)

    def deadline(self, rule: Rule) -> float:
        """When ``rule`` stops applying: its expiry, or sooner its run's lease deadline."""
        if rule.lease is None:
            return rule.expires_at
        # No deadline for the run is a lapsed lease, not a parse error: a writer that dropped
        # the entry, or a hand edit, must not make the rest of the file inject nothing.
        return min(rule.expires_at, self.leases.get(rule.labels.run, 0.0))

    def bound(self) -> list[Rule]:
        """The rules as the transport applies them: each ``expires_at`` is its deadline."""
        return [rule if rule.lease is None
                else rule.model_copy(update={"expires_at": self.deadline(rule)})
                for rule in self.rules]


def load_rules_file(path: Path) -> list[Rule]:
    """Rules from a JSON or YAML file as the transport applies them (leases folded into
    ``expires_at``); ``RulesFileError`` naming the file and field if invalid."""
    return load_rules_document(path).bound()


def load_rules_document(path: Path) -> RulesDocument:
    """The file as written (what a writer rewrites); ``RulesFileError`` if invalid."""
    try:
        with _open(path) as stream:
            mtime = os.fstat(stream.fileno()).st_mtime
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read: {exc}", "unreadable") from exc
    return _parse(raw, path, mtime)


def _open(path: Path) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file."""
    # O_NONBLOCK: a FIFO put in the file's place must not block its reader forever.
    stream = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
    if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
        stream.close()
        raise OSError("not a regular file")
    return stream


def _parse(raw: bytes, path: Path, mtime: float,
           before_yaml: Callable[[], None] | None = None) -> RulesDocument:
    """The rules in ``raw``; ``before_yaml`` is called when it is not JSON, before YAML."""
    kind = path.suffix.lstrip(".") or "YAML"
    try:
        text = limited_text(raw, str(path), LIMITS)
        data = _json(text, path)
        if data is _NOT_JSON:
            if before_yaml is not None:
                before_yaml()
            data = parse_yaml(text, str(path), LIMITS).data
    except InputRefused as exc:
        raise RulesFileError(str(exc.problems[0]), exc.reason) from exc
    except CatalogError as exc:
        raise RulesFileError(f"{path}: not valid {kind}: {exc.problems[0].message}",
                             "syntax") from exc
    return _rules(data, path, mtime)


_NOT_JSON = object()


def _json(text: str, path: Path) -> Any:
    """The JSON document in ``text``, or ``_NOT_JSON`` when a YAML file is not JSON."""
    if path.suffix != ".json" and text.lstrip()[:1] not in ("{", "["):
        return _NOT_JSON
    try:
        data = json.loads(text)
    except RecursionError as exc:  # the C decoder's own guard, far below the C stack's end
        raise RulesFileError(f"{path}: nested too deep (allowed: at most {MAX_DEPTH} levels)",
                             "too_deep") from exc
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        if path.suffix != ".json":
            return _NOT_JSON
        raise RulesFileError(f"{path}: not valid JSON: {exc}", "syntax") from exc
    if _depth(data) > MAX_DEPTH:
        raise RulesFileError(f"{path}: nested too deep (allowed: at most {MAX_DEPTH} levels)",
                             "too_deep")
    return data


def _depth(data: Any) -> int:
    """Levels of dicts and lists in ``data``, counted without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node \
            if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def _rules(data: Any, path: Path, mtime: float) -> RulesDocument:
    if data is None:
        return RulesDocument()
    if not isinstance(data, dict) or "rules" not in data or not set(data) <= {"rules", "leases"} \
            or not isinstance(data["rules"], list):
        raise RulesFileError(f'{path}: expected {{"rules": [rule, ...], "leases"?: {{...}}}}',
                             "invalid")
    leases = _leases(data.get("leases", {}), path)
    rules = []
    for index, item in enumerate(data["rules"]):
        try:
            parsed = RuleInput.model_validate(item)
        except ValidationError as exc:
            problem = problems_of(exc, ("rules", index))[0]
            raise RulesFileError(f"{path}: {problem}", "invalid") from exc
        # A ttl counts from the file's modification time, so re-reading does not extend it.
        expires_at = parsed.expires_at if parsed.expires_at is not None \
            else mtime + (parsed.ttl or 0.0)
        rules.append(Rule(id=parsed.id or f"rule-{index}", fault=parsed.fault,
                          labels=parsed.labels, target=parsed.target or "",
                          expires_at=expires_at, lease=parsed.lease, points=parsed.points))
    return RulesDocument(tuple(rules), leases)


#: A run id as the ``run`` label takes it: a key no rule's label could carry is a mistake.
_RUN_ID = TypeAdapter(Annotated[str, Labels.model_fields["run"]])


def _leases(data: Any, path: Path) -> dict[str, float]:
    """The ``leases`` mapping, each run's deadline a finite positive number of epoch seconds."""
    if not isinstance(data, dict):
        raise RulesFileError(f"{path}: leases: expected a mapping {{run: deadline, ...}}, "
                             f"not {type(data).__name__}", "invalid")
    leases = {}
    for run, value in data.items():
        try:
            _RUN_ID.validate_python(run, strict=True)
        except ValidationError:
            raise RulesFileError(f"{path}: leases: {run!r:.80} is not a run id",
                                 "invalid") from None
        deadline = _number(value)
        if deadline is None:
            raise RulesFileError(f"{path}: leases.{run}: expected a finite positive number of "
                                 f"epoch seconds, not {value!r:.40}", "invalid")
        leases[run] = deadline
    return leases


def _number(value: Any) -> float | None:
    # true is an int to Python; YAML has dates and strings that look like numbers.
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    number = float(value) if value < 1e300 else math.inf  # float(10**400) would raise
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Loaded:
    """One version of the file as the watcher read it; replaced whole, never changed."""

    key: Key | None  # (mtime_ns, size, inode); None when the file is missing
    rules: tuple[Rule, ...] = ()
    error: str | None = None


def _key(info: os.stat_result) -> Key:
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _stat(path: Path) -> Key | None:
    try:
        return _key(os.stat(path))
    except OSError:
        return None


class RuleSource:
    """Rules given directly, or read from a file by a watcher thread whenever it changes."""

    def __init__(self, rules: Sequence[Rule] | None = None, rules_file: str | Path | None = None,
                 clock: Clock = time.time, *, settle: float = SETTLE,
                 poll: float = POLL) -> None:
        if (rules is None) == (rules_file is None):
            raise InjectorError("give exactly one of rules= or rules_file=")
        self.path = Path(rules_file) if rules_file is not None else None
        self.clock = clock
        self.settle = settle
        self._rules: tuple[Rule, ...] = tuple(rules or ())
        self._loaded = Loaded(None)
        self._cycle = threading.Condition()
        self._started = self._finished = 0  # watcher cycles begun and completed
        self._begun = 0.0  # when the latest cycle began (time.monotonic)
        self._quick = 0  # the cycle reading a small JSON file, if one is under way
        self._wake = threading.Event()
        self._reading = threading.Lock()  # one read at a time, published in order
        self.closed = False
        if self.path is not None:
            self.reload()  # the first read happens at start-up, on the caller's thread
            threading.Thread(target=_watch, args=(weakref.ref(self), self._wake, poll),
                             name=f"gameday-rules-{self.path.name}", daemon=True).start()

    @property
    def last_error(self) -> str | None:
        """Why the file's current version was refused (None when it loaded or is missing)."""
        return self._loaded.error

    def rules(self) -> tuple[Rule, ...]:
        """Every rule, expired or not, of the file's current version (leases folded in)."""
        if self.path is None:
            return self._rules
        key, loaded = _stat(self.path), self._loaded
        if key == loaded.key:
            return loaded.rules
        return self._await(key)

    def _await(self, key: Key | None) -> tuple[Rule, ...]:
        """The rules once the watcher has read the file as ``key`` saw it, or none."""
        with self._cycle:
            # Only a cycle that begins after this point stats the file after this request did.
            wanted = self._started + 1
            idle, entered = self._started == self._finished, time.monotonic()
            self._wake.set()
            while not (self._finished >= wanted or self._loaded.key == key):
                quick = self._quick == self._started  # the cycle under way reads small JSON
                if self._started >= wanted:
                    deadline = self._begun + (WAKE if quick else self.settle)
                elif idle or quick:  # it begins within a scheduling delay
                    deadline = entered + WAKE
                else:  # still on a slow version: nothing to wait for
                    return ()
                left = deadline - time.monotonic()
                if left <= 0:
                    return ()
                self._cycle.wait(left)
            return self._loaded.rules

    def active(self) -> list[Rule]:
        """The rules that have not expired yet."""
        now = self.clock()
        return [rule for rule in self.rules() if rule.active(now)]

    def close(self) -> None:
        """Stop the watcher thread (it also stops by itself once the source is collected)."""
        self.closed = True
        self._wake.set()

    def reload(self) -> None:
        """Read the file now if it changed, and publish what it holds (the watcher's cycle)."""
        assert self.path is not None
        with self._reading:
            with self._cycle:
                self._started += 1
                cycle, self._begun = self._started, time.monotonic()
                self._cycle.notify_all()
            loaded = self._read(self.path, self._loaded, cycle)
            with self._cycle:
                self._loaded = loaded
                self._finished = cycle
                self._cycle.notify_all()

    def _quick_read(self, cycle: int) -> None:
        """Tell waiting requests whether this cycle reads a small JSON file (0: it does not)."""
        with self._cycle:
            self._quick = cycle
            self._cycle.notify_all()

    def _read(self, path: Path, current: Loaded, cycle: int) -> Loaded:
        try:
            stream = _open(path)
        except FileNotFoundError:
            return current if current.key is None else Loaded(None)
        except OSError as exc:
            return self._refused(_stat(path), current, RulesFileError(
                f"{path}: cannot read: {exc}", "unreadable"))
        with stream:
            # The version read is the one opened: a rename over the path cannot tear it.
            info = os.fstat(stream.fileno())
            key = _key(info)
            if key == current.key:
                return current
            try:
                if info.st_size > MAX_BYTES:  # refused unread: reading it is the cost
                    raise RulesFileError(f"{path}: file too large, {info.st_size} bytes "
                                         f"(allowed: at most {MAX_BYTES})", "too_large")
                raw = stream.read(MAX_BYTES + 1)
                if len(raw) <= QUICK_BYTES and (path.suffix == ".json"
                                                or raw.lstrip()[:1] in (b"{", b"[")):
                    self._quick_read(cycle)
                return Loaded(key, tuple(_parse(raw, path, info.st_mtime,
                                                lambda: self._quick_read(0)).bound()))
            except RulesFileError as exc:
                return self._refused(key, current, exc)
            except Exception as exc:  # a service must never see the transport's own bug
                log.exception("fault rules file %s could not be read", path)
                return self._refused(key, current, RulesFileError(f"{path}: {exc!r}",
                                                                  "internal"))

    @staticmethod
    def _refused(key: Key | None, current: Loaded, exc: RulesFileError) -> Loaded:
        if key is not None and key == current.key:
            return current
        ERRORS.labels(reason=exc.reason).inc()
        log.warning("ignoring fault rules: %s", exc)
        return Loaded(key, (), str(exc))


def _watch(ref: weakref.ref[RuleSource], wake: threading.Event, poll: float) -> None:
    """The watcher thread: re-read when woken or every ``poll`` s, until the source is gone."""
    while True:
        wake.wait(poll)
        wake.clear()
        source = ref()
        if source is None or source.closed:
            return
        try:
            source.reload()
        except Exception:  # keep watching: the next version of the file may be fine
            log.exception("fault rules watcher")
        del source
