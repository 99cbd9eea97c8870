"""Incident-aware game days on the demo, with its real Alertmanager and the pager behind it:
a firing page refuses a start, an unexpected page aborts a run, the alert the catalog's
``auth-rejections-page`` scenario is designed to raise is silenced (its notification never
reaches the pager) and its silence is gone after rollback, after SIGKILL (by its short end and
by the next prepare's sweep), the kit's own orphan alert pages even under a game-day silence,
and the error budget gates and guards the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gameday.alert_events import (
    AlertSeenEvent,
    BudgetEvent,
    SilenceCreatedEvent,
    SilenceDeletedEvent,
)
from gameday.journal import Event, FaultAppliedEvent, FaultIntentEvent, GuardSampleEvent
from gameday.models.alerts import ExpectedAlert
from gameday.protocol.silences import SilenceClient, silence_matchers, tag
from tests.demo_stack import DemoStack
from tests.flows.conftest import Bench, dump, finished

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCENARIO = "auth-rejections-page"
EXPECTED = "AuthServiceRejecting"
#: The labels of the pages the tests raise (besides alertname and environment).
PAGE_LABELS = {"severity": "page", "service": "billing"}


@dataclass
class AlertBench(Bench):
    """A bench with the demo's Alertmanager and pager at hand."""

    #: Alerts the test raised, resolved after it.
    posted: list[str] = field(default_factory=list)

    @property
    def alertmanager(self) -> str:
        settings = self.stack.environment().alertmanager
        assert settings is not None, "the demo environment names no Alertmanager"
        return settings.url.rstrip("/")

    def post_alert(self, name: str, ends_in: float = 300.0, **labels: str) -> None:
        """Raise (or with ``ends_in`` <= 0 resolve) an alert, as another Prometheus would."""
        now = time.time()
        ends = now + ends_in if ends_in > 0 else now - 0.5
        body = [{"labels": {"alertname": name, "environment": "demo", **labels},
                 "startsAt": _iso(now - 1), "endsAt": _iso(ends)}]
        httpx.post(f"{self.alertmanager}/api/v2/alerts", json=body,
                   timeout=5).raise_for_status()

    def firing(self, name: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.alertmanager}/api/v2/alerts",
                           params={"filter": f'alertname="{name}"'}, timeout=5)
        answer.raise_for_status()
        return [a for a in answer.json() if a["status"]["state"] != "resolved"]

    def silence_state(self, id: str) -> str:
        answer = httpx.get(f"{self.alertmanager}/api/v2/silence/{id}", timeout=5)
        answer.raise_for_status()
        return str(answer.json()["status"]["state"])

    def paged(self, name: str, since: float, status: str = "firing") -> list[dict[str, Any]]:
        """Alerts called ``name`` the pager was notified of since ``since``."""
        from gameday.demo.pager import read_pages

        return [{"alertname": a.alertname, "labels": a.labels} for page in
                read_pages(self.stack.state_dir) if page.at >= since
                for a in page.alerts if a.alertname == name and a.status == status]

    def wait_quiet(self, timeout: float = 90.0) -> None:
        """Until no page or critical alert of the demo fires (a later run's gate must open)."""
        deadline = time.monotonic() + timeout
        loud: list[str] = []
        while time.monotonic() < deadline:
            answer = httpx.get(f"{self.alertmanager}/api/v2/alerts",
                               params={"filter": 'severity=~"page|critical"'}, timeout=5)
            loud = [a["labels"]["alertname"] for a in answer.json()]
            if not loud:
                return
            time.sleep(1)
        raise AssertionError(f"still firing after {timeout:g}s: {loud}")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _catalog_item(**changes: Any) -> dict[str, Any]:
    items = yaml.safe_load((REPO / "catalog" / "scenarios" / "user-service.yaml").read_text())
    (item,) = [i for i in items if i["name"] == SCENARIO]
    item["runbook"] = str(REPO / item["runbook"])
    return dict(item | changes)


@pytest.fixture
def alerts(demo_stack: DemoStack, tmp_path: Path) -> Iterator[AlertBench]:
    """The catalog's scenario, and variants of it, on the session stack; every alert the test
    raised is resolved afterwards and the demo is quiet again."""
    catalog = tmp_path / "catalog"
    (catalog / "scenarios").mkdir(parents=True)
    shutil.copy(REPO / "catalog" / "signals.yaml", catalog / "signals.yaml")
    # Every run here spends some of the session stack's budget (and so do other tests' faults):
    # a low floor keeps the runs not about the budget from being refused for it.
    slo = _catalog_item()["slo"] | {"min_budget_left": 0.05}
    items = [
        _catalog_item(slo=slo),
        _catalog_item(name="long-rejections",
                      steps=[{"probability": 0.4, "dwell": "60s"}], max_duration="5m"),
        _catalog_item(name="fast-burn", slo=slo | {"max_burn_rate": 0.2}),
        # Requests faster than 2.5 ms are "good": the demo misses that by far.
        _catalog_item(name="spent-budget", slo=slo | {
            "good": 'sum(increase(service_request_duration_seconds_bucket{service='
                    '"user-service", le="0.0025"}[{range}]))',
            "total": 'sum(increase(service_request_duration_seconds_count{service='
                     '"user-service"}[{range}]))'}),
        _catalog_item(name="unknown-budget", slo=slo | {
            "good": "sum(increase(no_such_metric_total[{range}]))"}),
    ]
    (catalog / "scenarios" / "alerts.yaml").write_text(yaml.safe_dump(items))
    bench = AlertBench(demo_stack, tmp_path)
    demo_stack.clear_faults()
    demo_stack.wait_calm()
    yield bench
    for name in bench.posted:
        bench.post_alert(name, ends_in=0, **PAGE_LABELS)
    demo_stack.clear_faults()
    bench.wait_quiet()
    demo_stack.wait_calm()  # the next test's preflight must not find its guards breached


def _raise_page(bench: AlertBench) -> str:
    name = f"GamedayTestPage{uuid.uuid4().hex[:6]}"
    bench.post_alert(name, **PAGE_LABELS)
    bench.posted.append(name)
    return name


def _journal(bench: Bench) -> list[Event]:
    (events,) = bench.journals().values()
    return events


def _wait_journal(bench: Bench, kind: type, timeout: float = 90.0) -> list[Event]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journals = bench.journals()
        if journals and any(isinstance(e, kind) for e in next(iter(journals.values()))):
            return next(iter(journals.values()))
        time.sleep(0.2)
    raise AssertionError(f"no {kind.__name__} in the journal within {timeout:g}s")


def test_a_firing_page_refuses_a_start(alerts: AlertBench) -> None:
    page = _raise_page(alerts)
    code, out = alerts.run(SCENARIO)
    assert code == 3, out
    assert f"an incident is on: {page}" in out and "Traceback" not in out, out
    events = _journal(alerts)
    assert not [e for e in events if isinstance(e, FaultIntentEvent | SilenceCreatedEvent)]


def test_an_alertmanager_that_cannot_be_reached_refuses_a_start(alerts: AlertBench) -> None:
    """A gate that cannot see is closed."""
    from gameday.procs import free_port

    settings = alerts.stack.environment().alertmanager
    assert settings is not None
    away = alerts.environment_file(alertmanager=settings.model_dump(mode="json") | {
        "url": f"http://127.0.0.1:{free_port()}", "timeout": "1s"})
    code, out = alerts.run(SCENARIO, env_file=away)
    assert code == 3, out
    assert "cannot tell whether an incident is on" in out and "Traceback" not in out, out
    assert not [e for e in _journal(alerts) if isinstance(e, FaultIntentEvent)]


def test_an_unexpected_page_during_a_run_aborts_it(alerts: AlertBench) -> None:
    proc = alerts.start("long-rejections")
    _wait_journal(alerts, FaultAppliedEvent)
    page = _raise_page(alerts)
    code, out = finished(proc, timeout=180)
    events = _journal(alerts)
    assert code == 4, out + dump(events)
    breaches = [e for e in events if isinstance(e, GuardSampleEvent)
                and e.guard == "incident" and e.verdict.state == "breached"]
    assert breaches and f"an incident began: {page}" in breaches[0].verdict.summary, dump(events)
    seen = [e for e in events if isinstance(e, AlertSeenEvent) and e.alertname == page]
    assert seen and seen[0].incident and not seen[0].expected
    (created,) = [e for e in events if isinstance(e, SilenceCreatedEvent)]
    assert alerts.silence_state(created.id) == "expired"


def test_the_expected_alert_is_silenced_and_its_silence_is_gone_after_rollback(
        alerts: AlertBench) -> None:
    started = time.time()
    code, out = alerts.run(SCENARIO, timeout=240)
    events = _journal(alerts)
    assert code == 0, out + dump(events)
    (created,) = [e for e in events if isinstance(e, SilenceCreatedEvent)]
    assert 'alertname="AuthServiceRejecting"' in created.matchers, created
    assert 'gameday_safety!="true"' in created.matchers and 'environment="demo"' in created.matchers
    assert created.ends_at - created.at <= 300 and tag(_run(events), "demo") in created.comment
    assert "requested by tester" in created.comment
    seen = [e for e in events if isinstance(e, AlertSeenEvent) and e.alertname == EXPECTED]
    assert seen and seen[0].expected and not seen[0].incident, dump(events)
    deleted = [e for e in events if isinstance(e, SilenceDeletedEvent)]
    assert [d.id for d in deleted if d.deleted] == [created.id]
    assert alerts.silence_state(created.id) == "expired"
    budgets = [e for e in events if isinstance(e, BudgetEvent) and e.moment == "before"]
    assert budgets and budgets[0].left is not None and budgets[0].left >= 0.25
    # The postmortem's timeline and section tell the same story.
    (postmortem,) = (alerts.root / "reports").glob("*/postmortem.md")
    text = postmortem.read_text()
    assert f"silence {created.id} created for" in text and f"silence {created.id} deleted" \
        in text, text
    assert f"alert {EXPECTED} (severity=page, service=user-service): expected, silenced" \
        in text, text
    assert "## Alerts and error budget" in text and "after recovery" in text, text
    time.sleep(5)  # beyond the pager's group interval after the deletion
    assert not alerts.paged(EXPECTED, since=started), alerts.paged(EXPECTED, since=started)


def _run(events: list[Event]) -> str:
    from gameday.journal import PlanEvent

    return next(e.run for e in events if isinstance(e, PlanEvent))


def test_a_killed_runs_silence_ends_by_itself_and_the_next_prepare_sweeps_it(
        alerts: AlertBench) -> None:
    settings = alerts.stack.environment().alertmanager
    assert settings is not None
    short = alerts.environment_file(alertmanager=settings.model_dump(mode="json")
                                    | {"silence_lease": "8s"})
    proc = alerts.start("long-rejections", env_file=short)
    events = _wait_journal(alerts, SilenceCreatedEvent)
    (first,) = [e for e in events if isinstance(e, SilenceCreatedEvent)]
    os.killpg(proc.pid, signal.SIGKILL)
    finished(proc, timeout=30)
    assert alerts.silence_state(first.id) == "active"
    deadline = time.monotonic() + 30
    while alerts.silence_state(first.id) != "expired":
        assert time.monotonic() < deadline, "the dead run's silence did not end by itself"
        time.sleep(0.5)

    shutil.rmtree(alerts.state / "runs")
    proc = alerts.start("long-rejections")  # the default 5 min lease: it would outlive us
    events = _wait_journal(alerts, SilenceCreatedEvent)
    (second,) = [e for e in events if isinstance(e, SilenceCreatedEvent)]
    os.killpg(proc.pid, signal.SIGKILL)
    finished(proc, timeout=30)
    shutil.rmtree(alerts.state / "runs")
    page = _raise_page(alerts)  # the next start sweeps, then its gate refuses: fast
    code, out = alerts.run(SCENARIO)
    assert code == 3 and page in out, out
    assert alerts.silence_state(second.id) == "expired"
    swept = [e for e in _journal(alerts) if isinstance(e, SilenceDeletedEvent)]
    assert [e.id for e in swept] == [second.id]


def test_the_kits_orphan_alert_reaches_the_pager_under_a_game_day_silence(
        alerts: AlertBench) -> None:
    """A silence the kit made for ChaosFaultOrphaned itself still lets the kit's own
    orphan alert (gameday_safety="true") through to the pager."""
    settings = alerts.stack.environment().alertmanager
    assert settings is not None
    client = SilenceClient(settings)
    (matchers,) = silence_matchers(settings, [ExpectedAlert(alertname="ChaosFaultOrphaned")])
    now = time.time()
    id = client.put(matchers, f"{tag('orphan-test', 'demo')} a silence over the kit's alert",
                    now, now + 300)
    started = time.time()
    try:
        # A fault no run pushes metrics for: an orphan after the rule's 30 s.
        alerts.stack.add_fault("auth-service", {"kind": "latency", "ms": 1}, run="orphan-test",
                               ttl=120)
        deadline = time.monotonic() + 120
        while not alerts.paged("ChaosFaultOrphaned", since=started):
            assert time.monotonic() < deadline, "the orphan alert never reached the pager"
            time.sleep(1)
        (paged,) = alerts.paged("ChaosFaultOrphaned", since=started)[:1]
        assert paged["labels"].get("gameday_safety") == "true"
        assert alerts.silence_state(id) == "active"
    finally:
        alerts.stack.clear_faults()
        client.expire(id)
        client.close()


def test_a_spent_or_unknown_budget_refuses_and_a_fast_burn_stops_the_run(
        alerts: AlertBench) -> None:
    code, out = alerts.run("spent-budget")
    assert code == 3 and "error budget spent" in out, out
    shutil.rmtree(alerts.state / "runs")
    code, out = alerts.run("unknown-budget")
    assert code == 3 and "error budget unknown" in out, out
    shutil.rmtree(alerts.state / "runs")
    code, out = alerts.run("fast-burn", timeout=240)
    events = _journal(alerts)
    assert code == 4, out + dump(events)
    burns = [e for e in events if isinstance(e, GuardSampleEvent)
             and e.guard == "error_budget_burn_rate" and e.verdict.state == "breached"]
    assert burns, dump(events)
