"""Alertmanager, read only: which alerts fire, and the incident guard built on them.

The incident guard is a guard like the PromQL ones, sampled from Alertmanager instead of
Prometheus: its value is the number of firing alerts of the environment (those carrying its
``labels``) that match its ``incident_matchers`` and that the scenario does not expect, and it
breaches above 0 at once.
An Alertmanager that does not answer is an ``error`` sample, so the guard fails closed as every
guard does. Writing (silences) is the protocol's business, never a guard's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from gameday.errors import ConfigError, GuardError
from gameday.guards.queries import GuardQuery
from gameday.guards.rules import Sample
from gameday.models import Guard
from gameday.models.alerts import (
    INCIDENT_GUARD,
    AlertmanagerSettings,
    ExpectedAlert,
    Matcher,
    matches_all,
    show,
)

#: Largest answer read from Alertmanager: a flood of alerts must not grow the run's memory.
MAX_ANSWER = 8 * 1024 * 1024


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager holds it."""

    labels: dict[str, str]
    starts_at: float | None
    #: "active", "suppressed" (silenced or inhibited) or "unprocessed".
    state: str
    silenced_by: tuple[str, ...] = ()
    fingerprint: str = ""

    @property
    def name(self) -> str:
        """Its ``alertname``."""
        return self.labels.get("alertname", "?")

    def describe(self) -> str:
        """Its name and labels, as people read them."""
        rest = {k: v for k, v in sorted(self.labels.items()) if k != "alertname"}
        shown = ", ".join(f'{k}="{v}"' for k, v in rest.items())
        return f"{self.name} {{{shown}}}" if shown else self.name


def headers(settings: AlertmanagerSettings) -> dict[str, str]:
    """The request headers (the bearer token, when set). Secrets: never log them."""
    if settings.token is None:
        return {}
    token = settings.token.resolve()
    if not token:
        raise ConfigError(f"alertmanager.token: {settings.token.describe()} is not set")
    return {"Authorization": f"Bearer {token}"}


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _alert(item: Any) -> Alert | None:
    if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
        return None
    status: dict[str, Any] = item["status"] if isinstance(item.get("status"), dict) else {}
    return Alert(labels={str(k): str(v) for k, v in item["labels"].items()},
                 starts_at=_epoch(item.get("startsAt")), state=str(status.get("state", "")),
                 silenced_by=tuple(str(s) for s in status.get("silencedBy") or ()),
                 fingerprint=str(item.get("fingerprint", "")))


class AlertReader:
    """Reads the alerts of one Alertmanager (API v2)."""

    def __init__(self, settings: AlertmanagerSettings, timeout: float | None = None) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._client = httpx.Client(headers=headers(settings), trust_env=False,
                                    timeout=timeout or settings.timeout)

    def firing(self, matchers: list[Matcher] | None = None) -> list[Alert]:
        """Alerts now firing (silenced and inhibited ones included) that pass ``matchers``.

        Raises ``GuardError`` when Alertmanager does not answer as expected.
        """
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("active", "true"), ("silenced", "true"), ("inhibited", "true"),
            ("unprocessed", "true")]
        params += [("filter", str(m)) for m in matchers or []]
        try:
            with self._client.stream("GET", f"{self.url}/api/v2/alerts", params=params) as answer:
                if answer.status_code != 200:
                    raise GuardError(f"Alertmanager {self.url} answered {answer.status_code} "
                                     "to GET /api/v2/alerts")
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        raise GuardError(f"Alertmanager {self.url}: answer over "
                                         f"{MAX_ANSWER // 2**20} MiB")
            data = httpx.Response(200, content=bytes(body)).json()
        except httpx.HTTPError as exc:
            raise GuardError(f"Alertmanager {self.url} is not reachable: "
                             f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise GuardError(f"Alertmanager {self.url}: not JSON: {exc}") from exc
        if not isinstance(data, list):
            raise GuardError(f"Alertmanager {self.url}: expected a list of alerts")
        alerts = [a for a in (_alert(item) for item in data) if a is not None]
        # Filtered here too: the server's filter is a convenience, the verdict is ours.
        return [a for a in alerts if matches_all(matchers or [], a.labels)]

    def ready(self) -> None:
        """Raise ``GuardError`` unless Alertmanager answers its status."""
        try:
            answer = self._client.get(f"{self.url}/api/v2/status")
        except httpx.HTTPError as exc:
            raise GuardError(f"Alertmanager {self.url} is not reachable: "
                             f"{type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            raise GuardError(f"Alertmanager {self.url} answered {answer.status_code} to "
                             "GET /api/v2/status")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def incidents(alerts: list[Alert], settings: AlertmanagerSettings,
              expected: list[ExpectedAlert]) -> list[Alert]:
    """The alerts that are incidents: matching ``incident_matchers``, and not expected."""
    return [a for a in alerts if matches_all(settings.incident_matchers, a.labels)
            and not any(e.selects(a.labels) for e in expected)]


def incident_text(found: list[Alert]) -> str:
    """The reason in words, naming the alerts."""
    names = "; ".join(a.describe() for a in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f"an incident began: {names}{more}"


def incident_guard(settings: AlertmanagerSettings) -> GuardQuery:
    """The incident guard: breached by one matching alert, at once."""
    return GuardQuery(name=INCIDENT_GUARD, guard=Guard(op=">", threshold=0),
                      query=f"alertmanager {settings.url} {show(settings.incident_matchers)}",
                      freshness=None)


#: Sees every firing alert of the environment the incident guard read (the run journals the
#: first sighting of each).
Watcher = Callable[[list[Alert]], None]


@dataclass
class AlertSampler:
    """Samples the incident guard from Alertmanager and every other guard from ``fallback``."""

    reader: AlertReader
    expected: list[ExpectedAlert]
    fallback: Any  # the Prometheus shell: anything with ``async sample(guard)``
    watch: Watcher | None = None

    async def sample(self, guard: GuardQuery) -> Sample:
        """One sample; never raises."""
        if guard.name != INCIDENT_GUARD:
            return await self.fallback.sample(guard)  # type: ignore[no-any-return]
        asked = _now()
        try:
            scope = self.reader.settings.scope
            alerts = await asyncio.to_thread(self.reader.firing, scope)
        except GuardError as exc:
            return Sample(query_time=_now(), error=str(exc))
        if self.watch is not None:
            self.watch(alerts)
        found = incidents(alerts, self.reader.settings, self.expected)
        # Alertmanager answers with what it holds now: the sample is as fresh as the answer.
        return Sample(query_time=asked, value=float(len(found)), sample_time=asked,
                      note=incident_text(found) if found else None)


def _now() -> float:
    return time.time()
