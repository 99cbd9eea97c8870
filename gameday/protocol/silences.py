"""Silences of a run's expected alerts: created before the first fault, leased, deleted at
rollback.

A silence is leased as a fault is: its end is at most :data:`MAX_SILENCE_LEASE` ahead, and a
thread of the run renews it every fifth of the lease. A run that dies stops renewing, so its
silence ends by itself within the lease, and the next prepare's sweep deletes it at once.

Every silence the kit creates carries ``gameday_safety!="true"`` beside the environment's own
labels, so the kit's own alerts (orphaned fault, fault past expiry, rollback failed) always
reach on-call. Each one's comment starts with a tag naming the run and the environment, which
is how a sweep tells gameday's silences, and whose they are, from anyone else's.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from gameday.alert_events import (
    SilenceCreatedEvent,
    SilenceDeletedEvent,
    SilenceRenewedEvent,
    silences_to_delete,
)
from gameday.errors import GuardError
from gameday.guards.alertmanager import AlertReader, headers
from gameday.models.alerts import (
    SAFETY_LABEL,
    AlertmanagerSettings,
    ExpectedAlert,
    Matcher,
    show,
)

#: Who Alertmanager shows as a silence's creator.
CREATED_BY = "gameday"
_TAG = re.compile(r"^\[gameday run=(\S+) environment=(\S+)\]")
#: Attempts per deletion: expiring is idempotent, so asking again hides nothing.
DELETE_ATTEMPTS = 3


def tag(run: str, environment: str) -> str:
    """The comment's first words, by which a sweep knows the silence and its run."""
    return f"[gameday run={run} environment={environment}]"


def silence_matchers(settings: AlertmanagerSettings,
                     expected: list[ExpectedAlert]) -> list[list[Matcher]]:
    """The matchers of the run's silences: one silence per distinct set of extra matchers
    (one in the usual case), each naming its alerts, the environment's labels and the
    safety matcher."""
    groups: dict[str, tuple[list[Matcher], list[str]]] = {}
    for alert in expected:
        key = show(alert.matchers)
        names = groups.setdefault(key, (list(alert.matchers), []))[1]
        if alert.alertname not in names:
            names.append(alert.alertname)
    found = []
    for extra, names in groups.values():
        name = (Matcher(name="alertname", op="=", value=names[0]) if len(names) == 1
                else Matcher(name="alertname", op="=~",
                             value="|".join(re.escape(n) for n in sorted(names))))
        found.append([name, *extra, *settings.scope,
                      Matcher(name=SAFETY_LABEL, op="!=", value="true")])
    return found


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _api(matcher: Matcher) -> dict[str, Any]:
    return {"name": matcher.name, "value": matcher.value, "isRegex": matcher.regex,
            "isEqual": matcher.equal}


@dataclass(frozen=True)
class SilenceInfo:
    """A silence as Alertmanager lists it."""

    id: str
    state: str
    created_by: str
    comment: str
    ends_at: float | None

    @property
    def owner(self) -> tuple[str, str] | None:
        """(run, environment) of a gameday silence; None for anyone else's."""
        hit = _TAG.match(self.comment) if self.created_by == CREATED_BY else None
        return (hit.group(1), hit.group(2)) if hit else None


class SilenceClient:
    """Creates, extends, lists and expires silences at one Alertmanager (API v2)."""

    def __init__(self, settings: AlertmanagerSettings) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._client = httpx.Client(headers=headers(settings), trust_env=False,
                                    timeout=settings.timeout)

    def put(self, matchers: list[Matcher], comment: str, starts_at: float, ends_at: float,
            id: str | None = None) -> str:
        """Create a silence (or extend ``id``); its id, which Alertmanager may change."""
        body: dict[str, Any] = {
            "matchers": [_api(m) for m in matchers], "startsAt": _iso(starts_at),
            "endsAt": _iso(ends_at), "createdBy": CREATED_BY, "comment": comment}
        if id is not None:
            body["id"] = id
        data = self._call("POST", "/api/v2/silences", json=body)
        if not isinstance(data, dict) or not isinstance(data.get("silenceID"), str):
            raise GuardError(f"Alertmanager {self.url}: no silenceID in its answer")
        return str(data["silenceID"])

    def expire(self, id: str) -> None:
        """Expire silence ``id`` (Alertmanager's delete); one already gone is fine."""
        self._call("DELETE", f"/api/v2/silence/{id}", missing_ok=True)

    def listing(self) -> list[SilenceInfo]:
        """Every silence Alertmanager holds, expired ones included."""
        data = self._call("GET", "/api/v2/silences")
        found = []
        for item in data if isinstance(data, list) else []:
            if not isinstance(item, dict):
                continue
            status: dict[str, Any] = (item["status"] if isinstance(item.get("status"), dict)
                                      else {})
            ends = item.get("endsAt")
            found.append(SilenceInfo(
                id=str(item.get("id", "")), state=str(status.get("state", "")),
                created_by=str(item.get("createdBy", "")), comment=str(item.get("comment", "")),
                ends_at=(datetime.fromisoformat(ends.replace("Z", "+00:00")).timestamp()
                         if isinstance(ends, str) else None)))
        return found

    def _call(self, method: str, path: str, json: Any = None, missing_ok: bool = False) -> Any:
        try:
            answer = self._client.request(method, f"{self.url}{path}", json=json)
        except httpx.HTTPError as exc:
            raise GuardError(f"Alertmanager {self.url} is not reachable: "
                             f"{type(exc).__name__}: {exc}") from exc
        if missing_ok and (answer.status_code == 404 or "already expired" in answer.text):
            return None
        if answer.status_code != 200:
            raise GuardError(f"Alertmanager {self.url} answered {answer.status_code} to "
                             f"{method} {path}: {answer.text[:200]}")
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError as exc:
            raise GuardError(f"Alertmanager {self.url}: not JSON: {exc}") from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


@dataclass
class _Held:
    id: str
    matchers: list[Matcher]
    comment: str
    starts_at: float


class SilenceKeeper:
    """Creates a run's silences and renews them from a thread of its own until stopped."""

    def __init__(self, client: SilenceClient, write: Callable[[Any], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.lease = client.settings.silence_lease
        self.period = self.lease / 5
        self._write = write
        self._clock = clock
        self._held: list[_Held] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def create(self, matchers: list[Matcher], comment: str) -> str:
        """Create one silence, journal it and keep renewing it; raises ``GuardError``."""
        now = self._clock()
        id = self.client.put(matchers, comment, now, now + self.lease)
        self._write(SilenceCreatedEvent(id=id, url=self.client.url, matchers=show(matchers),
                                        ends_at=now + self.lease, comment=comment))
        with self._lock:
            self._held.append(_Held(id, matchers, comment, now))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gameday-silence",
                                                daemon=True)
                self._thread.start()
        return id

    @property
    def ids(self) -> list[str]:
        """The ids of the silences held now."""
        with self._lock:
            return [h.id for h in self._held]

    def renew(self) -> None:
        """Extend every held silence by a lease from now (the thread calls it)."""
        with self._lock:
            held = list(self._held)
        for silence in held:
            if self._stop.is_set():
                return
            ends = self._clock() + self.lease
            try:
                id = self.client.put(silence.matchers, silence.comment, silence.starts_at,
                                     ends, id=silence.id)
            except GuardError:
                # A lapsed silence pages on-call for what the run causes: noisy, never unsafe.
                self.failures += 1
                continue
            if id != silence.id:
                self._write(SilenceRenewedEvent(old_id=silence.id, id=id, ends_at=ends))
                silence.id = id

    def stop(self) -> None:
        """Stop renewing (rollback deletes the silences next); waits for the thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.client.settings.timeout + 2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.renew()


#: The keepers of this process's live runs: rollback stops a run's keeper before deleting its
#: silences, whichever path called it (a renewal after the deletion would make a new silence).
_KEEPERS: dict[str, SilenceKeeper] = {}
_KEEPERS_LOCK = threading.Lock()


def keep(run: str, keeper: SilenceKeeper) -> None:
    """Register ``run``'s keeper, for :func:`stop_keeper`."""
    with _KEEPERS_LOCK:
        _KEEPERS[run] = keeper


def stop_keeper(run: str) -> None:
    """Stop renewing ``run``'s silences, if this process renews any."""
    with _KEEPERS_LOCK:
        keeper = _KEEPERS.pop(run, None)
    if keeper is not None:
        keeper.stop()


@dataclass(frozen=True)
class SilenceCleanup:
    """What deleting a run's silences did: those deleted, and those that could not be."""

    deleted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


def delete_run_silences(run: str, settings: AlertmanagerSettings, events: list[Any] | None,
                        write: Callable[[Any], None], settle: float = 0.0) -> SilenceCleanup:
    """Expire every silence of ``run``: those its journal created and any Alertmanager lists
    under its tag (one created just before a crash, never journaled).

    With ``settle``, first wait up to that long for the alerts they silence to resolve: the
    faults are gone, but an alert computed over a window outlives them by that window, and
    deleting its silence while it still fires would page on-call for the game day after all.
    """
    stop_keeper(run)
    client = SilenceClient(settings)
    try:
        ids = dict.fromkeys(silences_to_delete(events or []))
        try:
            ids |= dict.fromkeys(s.id for s in client.listing()
                                 if s.state != "expired" and s.owner is not None
                                 and s.owner[0] == run)
        except GuardError as exc:
            if not ids and events is None:
                return SilenceCleanup(failed=(f"silences of run {run} could not be listed: "
                                              f"{exc}",))
        if settle > 0 and ids:
            _settle(settings, set(ids), settle)
        return _expire_all(client, list(ids), write)
    finally:
        client.close()


def _settle(settings: AlertmanagerSettings, ids: set[str], limit: float) -> None:
    """Wait until no firing alert is silenced by ``ids``, for at most ``limit`` seconds."""
    reader = AlertReader(settings)
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            try:
                if not any(ids & set(a.silenced_by) for a in reader.firing(settings.scope)):
                    return
            except GuardError:
                return  # cannot see: delete now rather than wait blind
            time.sleep(1.0)
    finally:
        reader.close()


def _expire_all(client: SilenceClient, ids: list[str], write: Callable[[Any], None]
                ) -> SilenceCleanup:
    deleted, failed = [], []
    lease_end = time.time() + client.settings.silence_lease
    for id in ids:
        error = None
        for attempt in range(DELETE_ATTEMPTS):
            try:
                client.expire(id)
                error = None
                break
            except GuardError as exc:
                error = str(exc)
                time.sleep(0.2 * (attempt + 1))
        write(SilenceDeletedEvent(id=id, error=error,
                                  ends_at=None if error is None else lease_end))
        if error is None:
            deleted.append(id)
        else:
            failed.append(f"silence {id} could not be deleted ({error}); it ends by itself "
                          f"by {_iso(lease_end)}")
    return SilenceCleanup(tuple(deleted), tuple(failed))


def sweep_silences(run: str, settings: AlertmanagerSettings, environment: str,
                   live: Callable[[str], bool], write: Callable[[Any], None]) -> list[str]:
    """Expire gameday's silences in ``environment`` whose run is not ``run`` and not
    ``live``; the ids expired. Anyone else's silences are never touched."""
    client = SilenceClient(settings)
    try:
        stale = [s.id for s in client.listing() if s.state != "expired"
                 and s.owner is not None and s.owner[1] == environment
                 and s.owner[0] != run and not live(s.owner[0])]
        return list(_expire_all(client, stale, write).deleted)
    finally:
        client.close()
