"""The weekly suite's notice: its Slack layout, and its one delivery through the environment's
sinks to the fake Slack, skip reasons and budgets included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gameday.models import Environment
from gameday.notify import SuiteNotice, SuiteRow
from gameday.notify.slack_layout import MAX_BLOCKS, SECTION_LIMIT, Layout, Message
from gameday.protocol.suite import SuiteResult, SuiteSummary, tell_suite
from tests.fakes.slack_api import FakeSlack, message_problems

TOKEN = "xoxb-suite-very-secret-token"
SPENT = "error budget spent: 0.0% left of the 0.99 objective, needs at least 25%"


def summary() -> SuiteSummary:
    """A weekly suite in demo: three ran (one aborted, its breaking point fell), one skipped
    for its error budget."""
    return SuiteSummary(environment="demo", suite="weekly", results=(
        SuiteResult(scenario="auth-latency", outcome="passed", note="held 2 of 2",
                    highest_held=2, budget_left=0.875, run="r1"),
        SuiteResult(scenario="auth-breaking-point", outcome="aborted",
                    note="aborted at severity 3: error_rate_percent breached",
                    breaking_point="holds at 110 ms, breaks at 120 ms",
                    trend="breaking point fell from 178–190 ms to 110–120 ms", regression=True,
                    budget_left=0.8012, run="r2"),
        SuiteResult(scenario="cache-spike", outcome="passed", note="held 1 of 1", run="r3"),
        SuiteResult(scenario="auth-aborts", outcome="skipped", note=SPENT, budget_left=0.0,
                    budget_skip=True)))


def laid_out(notice: SuiteNotice, layout: Layout | None = None) -> Message:
    """The notice's message, checked valid for Slack."""
    message = (layout or Layout()).message(notice)
    assert message_problems({"text": message.text, "blocks": message.blocks},
                            needs_channel=False) == []
    return message


def test_the_layout_has_the_count_and_a_line_per_scenario() -> None:
    """Header with how many ran and were skipped; one line per scenario with its outcome or
    skip reason and its budget left; the run in the footer."""
    notice = summary().notice("suite-run")
    assert notice.level == "warning"  # one aborted, one breaking point fell
    message = laid_out(notice, Layout(run_url="https://prefect.example/runs/flow-run/suite-run"))
    header, body, footer = message.blocks
    assert header == {"type": "header", "text": {
        "type": "plain_text", "emoji": True, "text": "weekly suite in demo: 3 ran, 1 skipped"}}
    assert body["text"]["text"].split("\n") == [
        ":large_green_circle: *auth-latency* passed — held 2 of 2 · budget 87.5% left",
        ":large_orange_circle: *auth-breaking-point* aborted — aborted at severity 3: "
        "error_rate_percent breached · holds at 110 ms, breaks at 120 ms · "
        ":chart_with_downwards_trend: *Regression:* breaking point fell from 178–190 ms to "
        "110–120 ms · budget 80.1% left",
        ":large_green_circle: *cache-spike* passed — held 1 of 1",
        f":fast_forward: *auth-aborts* skipped — {SPENT} · budget 0.0% left"]
    assert footer["elements"][0]["text"] == (
        "run `suite-run` · <https://prefect.example/runs/flow-run/suite-run|open in Prefect>")
    assert message.text == summary().summary
    assert f"auth-aborts skipped: {SPENT}" in message.text


def test_a_long_suite_stays_within_slack_limits() -> None:
    """Five hundred scenarios with long notes: sections within Slack's length, at most 50
    blocks, the last saying there is more."""
    rows = tuple(SuiteRow(scenario=f"scenario-{i}", outcome="skipped", note="x" * 500,
                          budget_left=0.5) for i in range(500))
    notice = SuiteNotice(run="suite-run", text="weekly suite in demo: 0 ran, 500 skipped",
                         suite="weekly", environment="demo", ran=0, skipped=500, rows=rows)
    message = laid_out(notice)
    assert len(message.blocks) == MAX_BLOCKS
    sections = [b["text"]["text"] for b in message.blocks[1:-1]]
    assert all(len(text) <= SECTION_LIMIT for text in sections)
    assert sections[-1] == "… more scenarios in the Prefect UI"
    assert "x" * 300 not in sections[0] and "x" * 299 + "…" in sections[0]


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    """A fake Slack expecting ``TOKEN``, which the environment reads from its variable."""
    monkeypatch.setenv("GAMEDAY_TEST_SLACK_TOKEN", TOKEN)
    monkeypatch.setenv("PREFECT_UI_URL", "http://127.0.0.1:4200")
    with FakeSlack(token=TOKEN) as fake:
        yield fake


def environment(slack: FakeSlack | None, **slack_settings: Any) -> Environment:
    data: dict[str, Any] = {
        "name": "demo", "prometheus": {"url": "http://127.0.0.1:9"},
        "allowed_targets": ["user-service"],
        "endpoints": [{"service": "user-service", "dependency": "auth-service",
                       "driver": "proxy", "admin_url": "http://127.0.0.1:9"}]}
    if slack is not None:
        data["notify"] = {"slack": {"channel": "#gameday", "api_url": slack.api_url,
                                    "token": {"env": "GAMEDAY_TEST_SLACK_TOKEN"}}
                          | slack_settings}
    return Environment.model_validate(data)


def test_the_suite_notice_reaches_slack_once_with_the_skip_reason(slack: FakeSlack) -> None:
    """Sent through the environment's sinks from the suite's own run: one channel message
    with the count, the skip reason and the budget left, linked to the suite's run."""
    assert tell_suite(summary(), environment(slack), "suite-run", drain=10) == []
    assert slack.problems == []
    (posted,) = slack.messages
    assert posted.thread_ts is None and posted.channel
    assert posted.blocks[0]["text"]["text"] == "weekly suite in demo: 3 ran, 1 skipped"
    body = posted.blocks[1]["text"]["text"]
    assert f"*auth-aborts* skipped — {SPENT} · budget 0.0% left" in body
    assert "*auth-latency* passed — held 2 of 2 · budget 87.5% left" in body
    assert posted.text.startswith("weekly suite in demo: 3 ran, 1 skipped; ")
    assert "http://127.0.0.1:4200/runs/flow-run/suite-run" in str(posted.blocks[-1])
    assert not any(TOKEN.encode() in body for body in slack.bodies)


def test_an_environment_without_slack_sends_nothing() -> None:
    """No sink, nothing to wait for, nothing wrong."""
    assert tell_suite(summary(), environment(None), "suite-run") == []


def test_a_slack_that_refuses_is_reported_not_raised(slack: FakeSlack) -> None:
    """Slack refusing the token: the notice is dropped, and the suite hears why."""
    refused = environment(slack)
    slack.token = "xoxb-some-other-token"
    problems = tell_suite(summary(), refused, "suite-run", drain=5)
    assert len(problems) == 1 and problems[0].startswith("dropped by slack: ")
    assert "invalid_auth" in problems[0] and slack.messages == []


def test_a_token_that_is_not_set_is_reported_not_raised(slack: FakeSlack,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """A Slack token referenced but not set: nothing sent, the reason in words."""
    monkeypatch.delenv("GAMEDAY_TEST_SLACK_TOKEN")
    (problem,) = tell_suite(summary(), environment(slack), "suite-run")
    assert problem.startswith("not sent: ") and "GAMEDAY_TEST_SLACK_TOKEN" in problem
    assert slack.messages == [] and slack.bodies == []
