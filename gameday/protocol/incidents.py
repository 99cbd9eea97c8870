"""The run and the environment's Alertmanager: the incident gate, the silences of expected
alerts, and the alerts the run saw.

Prepare refuses while an incident is on (or while Alertmanager cannot be asked: a gate that
cannot see is closed). The silences are created last in prepare, once nothing else can refuse,
and are deleted by rollback (``delete_run_silences``) on every path out of the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gameday.alert_events import AlertSeenEvent
from gameday.errors import GuardError, RefusedError
from gameday.guards.alertmanager import Alert, AlertReader, incident_text, incidents
from gameday.models import Environment
from gameday.models.alerts import AlertmanagerSettings, ExpectedAlert, matches_all
from gameday.protocol.context import RunContext
from gameday.protocol.silences import (
    SilenceClient,
    SilenceKeeper,
    keep,
    silence_matchers,
    sweep_silences,
    tag,
)

#: Tries of the gate's first question: one slow answer is no reason to refuse, three are.
REACH_TRIES = 3


async def check_incidents(ctx: RunContext) -> None:
    """Refuse (``RefusedError``) when Alertmanager cannot be asked or an incident is on."""
    settings = ctx.environment.alertmanager
    if settings is None:
        return
    reader = AlertReader(settings)
    try:
        alerts: list[Alert] = []
        for attempt in range(1, REACH_TRIES + 1):
            try:
                alerts = await asyncio.to_thread(reader.firing, settings.scope)
                break
            except GuardError as exc:
                if attempt == REACH_TRIES:
                    raise RefusedError(
                        f"alertmanager: cannot tell whether an incident is on ({exc}); a gate "
                        "that cannot see is closed: check alertmanager.url and its token"
                    ) from exc
                await asyncio.sleep(0.5)
    finally:
        reader.close()
    found = incidents(alerts, settings, [])
    if found:
        names = incident_text(found).replace("an incident began", "an incident is on", 1)
        raise RefusedError(f"{names} — no game day during an incident: start again once it "
                           "is resolved")


def watcher(ctx: RunContext, settings: AlertmanagerSettings,
            expected: list[ExpectedAlert]) -> Any:
    """A callback journaling the first sighting of each firing alert of the environment."""
    seen: set[str] = set()

    def watch(alerts: list[Alert]) -> None:
        for alert in alerts:
            key = alert.fingerprint or repr(sorted(alert.labels.items()))
            if key in seen:
                continue
            seen.add(key)
            is_expected = any(e.selects(alert.labels) for e in expected)
            ctx.journal.write(AlertSeenEvent(
                alertname=alert.name, labels=alert.labels, starts_at=alert.starts_at,
                expected=is_expected, silenced=bool(alert.silenced_by),
                incident=not is_expected and matches_all(settings.incident_matchers,
                                                         alert.labels)))

    return watch


def open_silences(ctx: RunContext, link: str | None) -> SilenceKeeper | None:
    """Create the run's silence(s) of its expected alerts; refuse if Alertmanager will not."""
    settings, expected = ctx.environment.alertmanager, ctx.scenario.expected_alerts
    if settings is None or not expected:
        return None
    keeper = SilenceKeeper(SilenceClient(settings), ctx.journal.write)
    comment = (f"{tag(ctx.run, ctx.environment.name)} game day {ctx.scenario.name} requested by "
               f"{ctx.requester}: alerts it is designed to raise. {link or 'run ' + ctx.run}. "
               f"Deleted when the run ends; ends by itself {settings.silence_lease:g}s after "
               "its run last renewed it.")
    try:
        for matchers in silence_matchers(settings, expected):
            keeper.create(matchers, comment)
    except GuardError as exc:
        keeper.stop()
        raise RefusedError(f"alertmanager: could not silence the expected alerts ({exc}); "
                           "nothing injected") from exc
    keep(ctx.run, keeper)
    return keeper


def sweep_dead_silences(ctx: RunContext) -> list[str]:
    """Delete gameday's silences of this environment left by runs that are gone.

    We hold the environment's lock, so no other run of it is alive: a silence of another run
    here outlived its run.
    """
    settings = ctx.environment.alertmanager
    if settings is None:
        return []
    try:
        return sweep_silences(ctx.run, settings, ctx.environment.name, lambda _run: False,
                              ctx.journal.write)
    except GuardError:
        return []  # the incident gate asks next, and refuses if Alertmanager is away


def sweep_environment_silences(environment: Environment) -> tuple[list[str], list[str]]:
    """Delete every gameday silence of ``environment`` (no run of it may be alive):
    (deleted ids, problems)."""
    settings = environment.alertmanager
    if settings is None:
        return [], []
    try:
        return sweep_silences("", settings, environment.name, lambda _run: False,
                              lambda _event: None), []
    except GuardError as exc:
        return [], [f"silences in {environment.name!r} could not be checked: {exc}"]


def settle_time(ctx: RunContext) -> float:
    """How long rollback may wait for the expected alerts to resolve before deleting their
    silences: the recovery timeout, within half a silence lease."""
    settings = ctx.environment.alertmanager
    if settings is None or not ctx.scenario.expected_alerts:
        return 0.0
    return min(ctx.scenario.rollback.recovery.timeout, settings.silence_lease / 2)
