"""The postmortem's alerts and error budget: timeline lines, the section, the digest and the
Slack summary, from a journal written with the events a run with Alertmanager and an SLO keeps.

The journal is the recorded guard-aborted run with those events spliced in where the protocol
writes them: a silence of a dead run swept and the budget measured in prepare, the run's
silence created before the first step and renewed under a new id, the alerts first seen while
the guards watched, the silence deleted at rollback and the budget measured after recovery.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from gameday.alert_events import (
    AlertSeenEvent,
    BudgetEvent,
    SilenceCreatedEvent,
    SilenceDeletedEvent,
    SilenceRenewedEvent,
)
from gameday.journal import (
    Event,
    FaultRevertedEvent,
    Journal,
    PlanEvent,
    RunEndedEvent,
    StepStartedEvent,
    read_journal,
)
from gameday.notify import SummaryNotice
from gameday.notify.slack_layout import Layout
from gameday.report import GameDayReport, render_markdown
from gameday.report.alerting import clock
from gameday.report.digest import digest
from gameday.report.render import templates_dir
from tests.fakes.slack_api import message_problems
from tests.report.conftest import journal, report

MATCHERS = '{alertname=~"HighErrorRate|AuthSlow", environment="demo", gameday_run="r"}'
QUERY = "1 - (1 - (sum(increase(ok[2419200s]))) / (sum(increase(all[2419200s])))) / 0.01"
LEASE = 600.0


def _at(events: Sequence[Event]) -> dict[str, float]:
    """Moments of the recorded run the alert events are placed by."""
    plan = next(e for e in events if isinstance(e, PlanEvent))
    first = next(e for e in events if isinstance(e, StepStartedEvent))
    last_revert = [e for e in events if isinstance(e, FaultRevertedEvent)][-1]
    ended = next(e for e in events if isinstance(e, RunEndedEvent))
    return {"plan": plan.at, "first": first.at, "revert": last_revert.at, "end": ended.at}


def alert_events(events: Sequence[Event], delete_error: str | None = None,
                 after: float | None = 0.801) -> list[Event]:
    """The run's dealings with Alertmanager and its SLO, timed against the recorded run."""
    t = _at(events)
    budget = {"objective": 0.99, "min_left": 0.25, "query": QUERY}
    return [
        SilenceDeletedEvent(at=t["plan"] + 0.1, id="dead-run-silence"),
        BudgetEvent(at=t["first"] - 0.03, moment="before", left=0.875, **budget),
        SilenceCreatedEvent(at=t["first"] - 0.02, id="sil-1", url="http://127.0.0.1:9093",
                            matchers=MATCHERS, ends_at=t["first"] - 0.02 + LEASE,
                            comment="gameday run r: alerts it is designed to raise"),
        SilenceRenewedEvent(at=t["first"] + 20.2, old_id="sil-1", id="sil-2",
                            ends_at=t["first"] + 20.2 + LEASE),
        AlertSeenEvent(at=t["first"] + 41.0, alertname="HighErrorRate",
                       labels={"alertname": "HighErrorRate", "severity": "page",
                               "service": "user-service", "instance": "10.0.0.7:8000"},
                       starts_at=t["first"] + 40.0, expected=True, silenced=True),
        AlertSeenEvent(at=t["first"] + 42.0, alertname="PostgresDown",
                       labels={"alertname": "PostgresDown", "severity": "critical",
                               "service": "postgres"},
                       starts_at=t["first"] + 41.5, incident=True),
        AlertSeenEvent(at=t["first"] + 43.0, alertname="NodeLoadHigh",
                       labels={"alertname": "NodeLoadHigh", "severity": "info"}),
        SilenceDeletedEvent(at=t["revert"] + 0.05, id="sil-2", error=delete_error,
                            ends_at=None if delete_error is None
                            else t["revert"] + 0.05 + LEASE),
        BudgetEvent(at=t["end"] - 0.05, moment="after", left=after,
                    error=None if after is not None else "HTTP 503 from Prometheus", **budget),
    ]


def written(tmp_path: Path, **options: object) -> list[Event]:
    """The recorded run's journal with the alert events, written to disk and read back."""
    events = journal("aborted")
    spliced = sorted([*events, *alert_events(events, **options)],  # type: ignore[arg-type]
                     key=lambda e: e.at)
    path = tmp_path / "journal.jsonl"
    with Journal(path, fsync=False) as out:
        for event in spliced:
            out.write(event)
    return read_journal(path)


@pytest.fixture
def built(tmp_path: Path) -> GameDayReport:
    """The report of the run with alerts, silences and the budget."""
    return report("aborted", events=written(tmp_path))


def texts(made: GameDayReport) -> list[str]:
    return [entry.text for entry in made.timeline]


def test_the_timeline_has_a_line_for_each_silence_alert_and_budget(built: GameDayReport
                                                                   ) -> None:
    """Created (matchers, end), renewed with its new id, deleted, each alert with the labels
    that matter and its state, and the budget before and after, in the run's order."""
    t = _at(journal("aborted"))
    lines = texts(built)
    wanted = [
        "silence of an earlier run dead-run-silence deleted (it outlived its run)",
        "error budget left: 87.5% (objective 0.99, needs 25%), before the first fault",
        f"silence sil-1 created for {MATCHERS}, ends by itself at "
        f"{clock(t['first'] - 0.02 + LEASE)} unless renewed",
        "step 1: latency 50ms ±5ms for 20s",
        f"silence sil-1 renewed with a new id sil-2, ends by itself at "
        f"{clock(t['first'] + 20.2 + LEASE)} unless renewed",
        "alert HighErrorRate (severity=page, service=user-service): expected, silenced",
        "alert PostgresDown (severity=critical, service=postgres): INCIDENT, not expected",
        "alert NodeLoadHigh (severity=info): firing",
        "silence sil-2 deleted",
        "error budget left: 80.1% (objective 0.99, needs 25%), after recovery",
        "run ended: Aborted by a guard",
    ]
    assert [line for line in lines if line in wanted] == wanted
    assert not any("instance" in line for line in lines)


def test_a_silence_that_could_not_be_deleted_says_when_it_ends(tmp_path: Path) -> None:
    """A failed deletion names the error and when the silence ends by itself; the section
    shows it too."""
    made = report("aborted", events=written(tmp_path, delete_error="HTTP 500: boom"))
    ends = clock(_at(journal("aborted"))["revert"] + 0.05 + LEASE)
    assert (f"silence sil-2 could not be deleted (HTTP 500: boom): it ends by itself at {ends}"
            in texts(made))
    assert made.alerting is not None
    (silence,) = made.alerting.silences
    assert silence.deleted is False
    assert f"could not be deleted (HTTP 500: boom): ends by itself at {ends}" in \
        render_markdown(made)


def test_the_section_lists_silences_alerts_and_the_budget(built: GameDayReport) -> None:
    """The section has the silence with its ids and matchers, the sweep, every alert with
    its state, and the budget before → after with what the run spent."""
    text = render_markdown(built)
    section = text[text.index("## Alerts and error budget"):text.index("## Rollback")]
    t = _at(journal("aborted"))
    assert ("Error budget left: **87.5% → 80.1%**; the run spent 7.4% of the error budget "
            "(objective 0.99, needs 25%).") in section
    assert f"| before the first fault ({clock(t['first'] - 0.03)[:8]}) | 87.5% |  |" in section
    assert f"| after recovery ({clock(t['end'] - 0.05)[:8]}) | 80.1% |  |" in section
    assert f"SLO query: `{QUERY}`" in section
    escaped = MATCHERS.replace("|", "\\|")
    assert (f"| `sil-2` (renewed from `sil-1`) | `{escaped}` | "
            f"{clock(t['first'] - 0.02)[:8]} | deleted at {clock(t['revert'] + 0.05)} |"
            in section)
    assert "(they outlived their run): `dead-run-silence`." in section
    assert "Alerts that fired while the guards watched (1 expected, 2 not):" in section
    assert ("| `HighErrorRate` | severity=page, service=user-service | "
            f"{clock(t['first'] + 40.0)[:8]} | {clock(t['first'] + 41.0)[:8]} | "
            "expected, silenced |") in section
    assert "| `PostgresDown` | severity=critical, service=postgres |" in section
    assert "| **INCIDENT, not expected** |" in section
    assert "| `NodeLoadHigh` | severity=info | — |" in section
    assert section.rstrip().endswith("| firing |")


def test_an_unknown_budget_after_is_said_so(tmp_path: Path) -> None:
    """A budget that could not be measured after the run is unknown, with why; what the run
    spent is not guessed."""
    made = report("aborted", events=written(tmp_path, after=None))
    assert ("error budget unknown (the query failed: HTTP 503 from Prometheus; objective "
            "0.99, needs 25%), after recovery") in texts(made)
    text = render_markdown(made)
    assert ("Error budget left: **87.5% → unknown**; the run spent not known (the budget was "
            "not measured both before and after)") in text
    assert "| unknown | the query failed: HTTP 503 from Prometheus |" in text
    assert digest(made).budget == "87.5% → unknown"


def test_a_run_without_alerts_or_budget_has_no_section() -> None:
    """The recorded runs kept no SLO and had no Alertmanager: no section, no digest figure."""
    made = report("aborted")
    assert made.alerting is None
    assert "Alerts and error budget" not in render_markdown(made)
    assert digest(made).budget is None and digest(made).unexpected_alerts == ()


def test_the_digest_and_slack_carry_the_budget_and_the_unexpected_alerts(
        built: GameDayReport) -> None:
    """Chat says budget before → after, and names the alerts nobody expected."""
    cut = digest(built)
    assert cut.budget == "87.5% → 80.1%"
    assert cut.unexpected_alerts == (
        "PostgresDown (severity=critical, service=postgres): INCIDENT, not expected",
        "NodeLoadHigh (severity=info): firing")
    message = Layout().message(SummaryNotice(run="r", text="aborted", digest=cut,
                                             postmortem="reports/out/r/postmortem.md"))
    assert message_problems({"text": message.text, "blocks": message.blocks},
                            needs_channel=False) == []
    fields = [f["text"] for f in message.blocks[1]["fields"]]
    assert "*Error budget*\n87.5% → 80.1%" in fields
    assert ("*Alerts not expected*\n• PostgresDown (severity=critical, service=postgres): "
            "INCIDENT, not expected\n• NodeLoadHigh (severity=info): firing") in fields


def test_a_misspelled_field_of_the_section_fails_rendering(built: GameDayReport,
                                                           tmp_path: Path) -> None:
    """Every field the section reads exists: misspelling any of them is an error."""
    source = (templates_dir() / "postmortem.md.j2").read_text(encoding="utf-8")
    section = source[source.index("{% if al %}"):source.index("## Rollback")]
    tags = re.findall(r"\{\{.*?\}\}|\{%.*?%\}", section, flags=re.S)
    fields = {(m.group(1), m.group(2)) for tag in tags
              for m in re.finditer(r"\b(al|si|a|b|slo)\.([a-z_0-9]+)", tag)}
    assert len(fields) > 20, sorted(fields)
    silent = []
    for name, attribute in sorted(fields):
        folder = tmp_path / f"{name}-{attribute}"
        folder.mkdir()
        (folder / "postmortem.md.j2").write_text(
            re.sub(rf"\b{name}\.{attribute}\b", f"{name}.{attribute}_typo", source))
        try:
            render_markdown(built, folder=folder)
        except UndefinedError:
            continue
        silent.append(f"{name}.{attribute}")
    assert silent == []
