"""Block Kit layout of each notice: valid for Slack, short, escaped, paging only when due."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameday.notify import (
    NOTICE_TYPES,
    BreachNotice,
    Notice,
    ProbeNotice,
    RecoveryNotice,
    RollbackFailedNotice,
    RollbackNotice,
    SearchNotice,
    SignoffGrantedNotice,
    SignoffRequestedNotice,
    SignoffTimedOutNotice,
    StartNotice,
    StepNotice,
    SuiteNotice,
    SuiteRow,
    SummaryNotice,
    SweepNotice,
    VanishedNotice,
    WaitingNotice,
    WarningNotice,
)
from gameday.notify.slack_layout import Layout, escape
from gameday.protocol.learn import Learned, summary_notice
from gameday.report.digest import digest
from tests.fakes.slack_api import message_problems
from tests.report.conftest import report

ONCALL = "<!subteam^S0ONCALL>"
LAYOUT = Layout(oncall=ONCALL, run_url="https://prefect.example/runs/flow-run/r1")
PAGING = {"breach", "rollback_failed"}


def summary(case: str = "aborted", postmortem: str = "reports/out/r1/pm.md") -> SummaryNotice:
    """The summary notice of a recorded run, cut from its report model as the flow does."""
    return summary_notice(Learned(report(case), Path(postmortem)))


def start(text: str = "starting", scenario: str = "auth-latency") -> StartNotice:
    """A start notice with the plan filled in."""
    return StartNotice(run="r1", text=text, scenario=scenario, environment="demo",
                       requester="alice", service="user-service",
                       target="user-service → auth-service", ladder=("latency 50ms · 20s",),
                       guards=("error_rate_percent > 5 for 2s",))


def step(text: str = "step 1/3", fault: str = "latency 50ms") -> StepNotice:
    """The first of three steps."""
    return StepNotice(run="r1", text=text, severity=1, total=3, fault=fault, dwell=20.0,
                      ttl=30.0)


def example(kind: str) -> Notice:
    """One notice of ``kind``, as a run sends it."""
    text = f"text of {kind}"
    examples: dict[str, Notice] = {
        "start": start(text), "step": step(text),
        "breach": BreachNotice(run="r1", text=text, guard="error_rate_percent", observed=12.5,
                               threshold="> 5", severity=2),
        "vanished": VanishedNotice(run="r1", text=text, severity=2),
        "probe": ProbeNotice(run="r1", text=text, probe=2, budget=6, fault="185 ms",
                             verdict="broke", guard="error_rate_percent"),
        "search": SearchNotice(run="r1", text=text, bracket="holds at 178 ms, breaks at 190 ms",
                               probes=6, stopped="resolution reached"),
        "rollback": RollbackNotice(run="r1", text=text, seconds=0.042, reverted=1),
        "rollback_failed": RollbackFailedNotice(
            run="r1", text=text, seconds=1.0,
            problems=("latency at http://127.0.0.1:1: refused",)),
        "recovery": RecoveryNotice(run="r1", text=text, recovered=True, seconds=3.2),
        "summary": summary(),
        "sweep": SweepNotice(run="r1", text=text, count=1),
        "signoff_requested": SignoffRequestedNotice(run="r1", text=text, severity=3,
                                                    plan_hash="abc123abc123"),
        "signoff_granted": SignoffGrantedNotice(run="r1", text=text, approver="bob",
                                                severity=3),
        "signoff_timed_out": SignoffTimedOutNotice(run="r1", text=text, timeout=3600),
        "waiting": WaitingNotice(run="r1", text=text, limit="gameday-env-demo"),
        "warning": WarningNotice(run="r1", text=text),
        "suite": SuiteNotice(run="r1", text=text, suite="weekly", environment="demo", ran=1,
                             skipped=1, rows=(
            SuiteRow(scenario="auth-latency", outcome="passed", note="held 2 of 2",
                     budget_left=0.875),
            SuiteRow(scenario="auth-aborts", outcome="skipped",
                     note="error budget spent: 0.0% left", budget_left=0.0))),
    }
    return examples[kind]


@pytest.mark.parametrize("kind", sorted(str(c.model_fields["kind"].default)
                                        for c in NOTICE_TYPES))
def test_every_kind_renders_a_valid_message(kind: str) -> None:
    """Each notice kind makes a message Slack accepts, with a footer naming the run."""
    message = LAYOUT.message(example(kind))
    assert message_problems({"text": message.text, "blocks": message.blocks},
                            needs_channel=False) == []
    assert message.blocks[-1]["type"] == "context"
    assert "r1" in message.blocks[-1]["elements"][0]["text"]
    assert (ONCALL in message.text) == (kind in PAGING)
    assert message.broadcast == (kind == "rollback_failed")


def test_start_shows_the_plan() -> None:
    """The parent message names scenario, environment, requester, ladder, guards and the run."""
    message = LAYOUT.message(start())
    text = str(message.blocks)
    for part in ("auth-latency", "*demo*", "*alice*", "1. latency 50ms · 20s",
                 "• error_rate_percent &gt; 5 for 2s", "<https://prefect.example/runs/flow-run/r1|"):
        assert part in text, part


def test_breach_shows_guard_observed_and_threshold() -> None:
    """A breach says which guard, what it saw and the threshold, and pages on-call."""
    message = LAYOUT.message(example("breach"))
    section, fields = message.blocks[0]["text"]["text"], str(message.blocks[1])
    assert ONCALL in section and "`error_rate_percent`" in section and "step 2" in section
    assert "*Observed*\\n12.5" in fields and "*Threshold*\\n&gt; 5" in fields


def test_summary_links_the_postmortem() -> None:
    """A postmortem URL becomes a link; a file path is shown as code."""
    as_path = LAYOUT.message(summary())
    assert "`reports/out/r1/pm.md`" in str(as_path.blocks)
    as_url = LAYOUT.message(SummaryNotice(run="r1", text="done", digest=digest(report("aborted")),
                                          postmortem="https://example.org/pm"))
    assert "<https://example.org/pm|postmortem>" in str(as_url.blocks)


@pytest.mark.parametrize("case", ["passed", "aborted", "rollback_failed"])
def test_summary_says_what_the_postmortem_says(case: str) -> None:
    """Outcome, reach, the guard that stopped the ladder and the first learning are the
    report model's own, so chat and postmortem cannot disagree."""
    built = report(case)
    blocks = str(LAYOUT.message(summary(case)).blocks)
    assert f"Outcome: {escape(built.outcome_text)}" in blocks
    assert escape(built.summary) in blocks
    assert f"Highest severity held*\\n{built.highest_held} of {built.planned_steps}" in blocks
    stopped = next((s.stopped_by for s in built.steps if s.held is False), None)
    assert (f"*Stopped by*\\n`{stopped}`" in blocks) == (stopped is not None)
    assert built.learnings and escape(built.learnings[0]) in blocks


def test_values_cannot_mention_or_link() -> None:
    """Text from a run is escaped: ``<!channel>`` in a value pages nobody."""
    message = LAYOUT.message(step("<!channel> hi", fault="<!here>"))
    assert "<!" not in message.text and "<!" not in str(message.blocks)
    assert escape("a & <b>") == "a &amp; &lt;b&gt;"


def test_long_text_is_cut_to_slack_limits() -> None:
    """A huge notice still fits Slack's limits for sections and headers."""
    huge = "x" * 5000
    for notice in (step(huge, fault=huge), start(huge, scenario=huge),
                   summary_notice(Learned(report("aborted"), Path(huge)))):
        message = LAYOUT.message(notice)
        assert message_problems({"text": message.text, "blocks": message.blocks},
                                needs_channel=False) == []
