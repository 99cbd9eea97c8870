"""Silences and the incident guard against a real Alertmanager: created with the safety
matcher, renewed as a lease, deleted (after their alerts resolve), swept only when gameday's
and dead; the incident guard sees a page, ignores what the scenario expects, fails closed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from gameday.alert_events import SilenceCreatedEvent, SilenceDeletedEvent
from gameday.guards.alertmanager import AlertReader, AlertSampler, incident_guard
from gameday.guards.rules import judge
from gameday.models.alerts import AlertmanagerSettings, ExpectedAlert, parse_matchers
from gameday.protocol.silences import (
    SilenceClient,
    SilenceKeeper,
    delete_run_silences,
    keep,
    silence_matchers,
    sweep_silences,
    tag,
)
from tests.alertmanager_server import RunningAlertmanager, unique, wait_until

pytestmark = pytest.mark.integration


def settings(am: RunningAlertmanager, **changes: Any) -> AlertmanagerSettings:
    return AlertmanagerSettings.model_validate(
        {"url": am.url, "labels": {"environment": "test"}, "silence_lease": "5m"} | changes)


def state_of(am: RunningAlertmanager, id: str) -> str:
    (found,) = [s for s in am.silences() if s["id"] == id]
    return str(found["status"]["state"])


def test_an_expected_alert_is_silenced_and_the_kits_own_alert_is_not(
        alertmanager: RunningAlertmanager) -> None:
    """The silence holds back the expected alert's notification; an alert of the same name
    carrying gameday_safety="true" still reaches the receiver."""
    name = unique("Expected")
    config = settings(alertmanager)
    events: list[Any] = []
    keeper = SilenceKeeper(SilenceClient(config), events.append)
    (matchers,) = silence_matchers(config, [ExpectedAlert(alertname=name)])
    id = keeper.create(matchers, f"{tag('run-1', 'test')} expected alerts")
    try:
        assert state_of(alertmanager, id) == "active"
        alertmanager.post_alert({"alertname": name, "environment": "test"})
        alertmanager.post_alert({"alertname": name, "environment": "test",
                                 "gameday_safety": "true"})
        wait_until(lambda: name in alertmanager.receiver.alertnames(), 20,
                   "the safety alert notified")
        time.sleep(3)  # several group intervals: the silenced one would have come by now
        notified = [a["labels"] for n in alertmanager.receiver.notifications
                    for a in n["alerts"]]
        assert notified and all(n.get("gameday_safety") == "true" for n in notified), notified
    finally:
        keeper.stop()
    assert [type(e) for e in events] == [SilenceCreatedEvent]
    assert events[0].matchers == (f'{{alertname="{name}", environment="test", '
                                  'gameday_safety!="true"}')


def test_renewal_extends_the_end_and_deletion_expires_it(
        alertmanager: RunningAlertmanager) -> None:
    config = settings(alertmanager, silence_lease="5s")
    events: list[Any] = []
    keeper = SilenceKeeper(SilenceClient(config), events.append)
    (matchers,) = silence_matchers(config, [ExpectedAlert(alertname=unique("Renewed"))])
    id = keeper.create(matchers, f"{tag('run-2', 'test')} renewed")
    keep("run-2", keeper)
    first = next(s for s in alertmanager.silences() if s["id"] == id)["endsAt"]
    time.sleep(3)  # past two renewals (every fifth of the lease)
    ids = keeper.ids
    later = next(s for s in alertmanager.silences() if s["id"] in ids)["endsAt"]
    assert later > first
    result = delete_run_silences("run-2", config, events, events.append)
    assert result.deleted == tuple(ids) and not result.failed
    assert all(state_of(alertmanager, i) == "expired" for i in ids)
    assert isinstance(events[-1], SilenceDeletedEvent) and events[-1].deleted
    time.sleep(2)  # the keeper was stopped first: no renewal brings it back
    assert all(state_of(alertmanager, i) == "expired" for i in ids)


def test_an_unrenewed_silence_ends_by_itself(alertmanager: RunningAlertmanager) -> None:
    """A run that dies stops renewing: its silence lapses at its short end."""
    config = settings(alertmanager, silence_lease="5s")
    client = SilenceClient(config)
    now = time.time()
    (matchers,) = silence_matchers(config, [ExpectedAlert(alertname=unique("Lapsed"))])
    id = client.put(matchers, f"{tag('dead', 'test')} lapses", now, now + 5)
    assert state_of(alertmanager, id) == "active"
    wait_until(lambda: state_of(alertmanager, id) == "expired", 20, "the silence lapsed")


def test_deletion_waits_for_the_silenced_alert_to_resolve(
        alertmanager: RunningAlertmanager) -> None:
    """Rollback's settle: the silence is deleted once its alert stopped firing, not before."""
    name = unique("Settling")
    config = settings(alertmanager)
    events: list[Any] = []
    keeper = SilenceKeeper(SilenceClient(config), events.append)
    (matchers,) = silence_matchers(config, [ExpectedAlert(alertname=name)])
    id = keeper.create(matchers, f"{tag('run-3', 'test')} settle")
    keep("run-3", keeper)
    labels = {"alertname": name, "environment": "test"}
    alertmanager.post_alert(labels)
    reader = AlertReader(config)
    wait_until(lambda: any(id in a.silenced_by for a in reader.firing(config.scope)), 20,
               "the alert silenced")

    def resolve_later() -> None:
        time.sleep(3)
        alertmanager.post_alert(labels, ends_in=0)

    started = time.monotonic()
    resolver = asyncio.new_event_loop()
    try:
        resolver.run_in_executor(None, resolve_later)
        result = delete_run_silences("run-3", config, events, events.append, settle=30)
    finally:
        resolver.close()
    took = time.monotonic() - started
    assert result.deleted == (id,) and took >= 2.5, took
    assert name not in alertmanager.receiver.alertnames(), alertmanager.receiver.notifications
    reader.close()


def test_the_sweep_deletes_only_gameday_silences_of_dead_runs_here(
        alertmanager: RunningAlertmanager) -> None:
    config = settings(alertmanager)
    client = SilenceClient(config)
    now = time.time()
    matchers = parse_matchers(f'{{alertname="{unique("Swept")}"}}')
    dead = client.put(matchers, f"{tag('dead-run', 'test')} left over", now, now + 60)
    live = client.put(matchers, f"{tag('live-run', 'test')} in use", now, now + 60)
    mine = client.put(matchers, f"{tag('this-run', 'test')} ours", now, now + 60)
    elsewhere = client.put(matchers, f"{tag('dead-run', 'prod')} other env", now, now + 60)
    # A person's silence whose comment happens to look like ours is not gameday's.
    body = {"matchers": [{"name": "alertname", "value": "x", "isRegex": False,
                          "isEqual": True}],
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "alice", "comment": tag("dead-run", "test")}
    person = client._call("POST", "/api/v2/silences", json=body)["silenceID"]
    swept = sweep_silences("this-run", config, "test", lambda run: run == "live-run",
                           lambda _e: None)
    assert swept == [dead]
    states = {i: state_of(alertmanager, i) for i in (dead, live, mine, elsewhere, person)}
    assert states == {dead: "expired", live: "active", mine: "active", elsewhere: "active",
                      person: "active"}


def test_the_incident_guard_breaches_on_a_page_it_does_not_expect(
        alertmanager: RunningAlertmanager) -> None:
    config = settings(alertmanager)
    expected_name, page = unique("Expected"), unique("Page")
    guard = incident_guard(config)

    async def sample() -> Any:
        sampler = AlertSampler(AlertReader(config), [ExpectedAlert(alertname=expected_name)],
                               fallback=None)
        return await sampler.sample(guard)

    quiet = asyncio.run(sample())
    assert quiet.value == 0 and quiet.error is None
    alertmanager.post_alert({"alertname": expected_name, "environment": "test",
                             "severity": "page"})
    alertmanager.post_alert({"alertname": unique("Warn"), "environment": "test",
                             "severity": "warning"})
    alertmanager.post_alert({"alertname": page, "environment": "other", "severity": "page"})
    wait_until(lambda: len(alertmanager.active()) == 3, 10, "three alerts held")
    assert asyncio.run(sample()).value == 0  # expected, a warning, another environment's
    alertmanager.post_alert({"alertname": page, "environment": "test", "severity": "page"})
    breach = asyncio.run(sample())
    assert breach.value == 1
    verdict = judge(guard.name, guard.guard, [breach], stale_after=3)
    assert verdict.state == "breached" and "an incident began: " + page in verdict.summary


def test_an_alertmanager_that_does_not_answer_is_an_error_sample() -> None:
    config = AlertmanagerSettings(url="http://127.0.0.1:9", timeout=0.5)
    guard = incident_guard(config)

    async def sample() -> Any:
        return await AlertSampler(AlertReader(config), [], fallback=None).sample(guard)

    found = asyncio.run(sample())
    assert found.error is not None and "not reachable" in found.error
    assert judge(guard.name, guard.guard, [found], stale_after=3).stops


def test_the_crash_hooks_rollback_deletes_a_dead_runs_silences(
        alertmanager: RunningAlertmanager, tmp_path: Path) -> None:
    """revert_run in another process (the crash hook, chaosctl stop) works from the journal:
    the journaled silence goes, and so does one created just before the crash, never
    journaled, found by its tag; another run's stays."""
    from gameday.journal import Journal, read_journal
    from gameday.models import Environment
    from gameday.protocol.rollback import revert_run

    config = settings(alertmanager)
    environment = Environment.model_validate({
        "name": "test", "prometheus": {"url": "http://127.0.0.1:9"},
        "alertmanager": config.model_dump(mode="json")})
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        keeper = SilenceKeeper(SilenceClient(config), journal.write)
        (matchers,) = silence_matchers(config, [ExpectedAlert(alertname=unique("Crash"))])
        journaled = keeper.create(matchers, f"{tag('crashed', 'test')} journaled")
        keeper._stop.set()  # the process died: nothing renews, nothing deletes
    client = SilenceClient(config)
    now = time.time()
    unjournaled = client.put(matchers, f"{tag('crashed', 'test')} not journaled", now, now + 60)
    other = client.put(matchers, f"{tag('other-run', 'test')} someone else's", now, now + 60)
    result = revert_run("crashed", environment, path=path)
    assert result.clean and set(result.silences) == {journaled, unjournaled}, result
    states = {i: state_of(alertmanager, i) for i in (journaled, unjournaled, other)}
    assert states == {journaled: "expired", unjournaled: "expired", other: "active"}
    deleted = {e.id for e in read_journal(path) if isinstance(e, SilenceDeletedEvent)}
    assert deleted == {journaled, unjournaled}


def test_a_silence_that_cannot_be_deleted_makes_the_rollback_unclean(tmp_path: Path) -> None:
    from gameday.journal import Journal
    from gameday.models import Environment
    from gameday.protocol.rollback import revert_run

    environment = Environment.model_validate({
        "name": "test", "prometheus": {"url": "http://127.0.0.1:9"},
        "alertmanager": {"url": "http://127.0.0.1:9", "timeout": "0.5s"}})
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.write(SilenceCreatedEvent(id="s-1", url="http://127.0.0.1:9", matchers="{}",
                                          ends_at=time.time() + 300))
    result = revert_run("gone", environment, path=path)
    assert not result.clean
    assert any("silence s-1 could not be deleted" in f and "ends by itself" in f
               for f in result.failed), result.failed
