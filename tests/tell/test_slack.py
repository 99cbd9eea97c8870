"""The Slack sink against the local fake: threads, webhooks, retries, deadlines, secrets."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from gameday.errors import ConfigError
from gameday.models import SlackSettings
from gameday.notify import (
    BreachNotice,
    Notice,
    Notifier,
    RecoveryNotice,
    RollbackFailedNotice,
    RollbackNotice,
    SlackConfig,
    SlackSink,
    StartNotice,
    StepNotice,
    SummaryNotice,
    SweepNotice,
)
from gameday.report.digest import digest
from tests.fakes.slack_api import FakeSlack
from tests.report.conftest import report

TOKEN = "xoxb-1234-very-secret-token"
ONCALL = "<!subteam^S0ONCALL>"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A fake Slack that expects ``TOKEN``."""
    with FakeSlack(token=TOKEN) as fake:
        yield fake


def bot(fake: FakeSlack, token: str = TOKEN, timeout: float = 5.0) -> SlackSink:
    return SlackSink(SlackConfig(channel="#gameday", token=token, oncall_group=ONCALL,
                                 api_url=fake.api_url, timeout=timeout),
                     run_url="http://127.0.0.1:4200/runs/flow-run/r1")


def story() -> list[Notice]:
    """The notices of a run aborted by a guard at its second step."""
    return [
        StartNotice(run="r1", text="game day auth-latency in demo", scenario="auth-latency",
                    environment="demo", requester="alice", service="user-service",
                    target="user-service → auth-service",
                    ladder=("latency 50ms · 20s", "latency 250ms · 20s"),
                    guards=("error_rate_percent > 5 for 2s",)),
        StepNotice(run="r1", text="step 1/2: latency 50ms", severity=1, total=2,
                   fault="latency 50ms", dwell=20, ttl=30),
        StepNotice(run="r1", text="step 2/2: latency 250ms", severity=2, total=2,
                   fault="latency 250ms", dwell=20, ttl=30),
        BreachNotice(run="r1", text="guard error_rate_percent stopped step 2",
                     guard="error_rate_percent", observed=12.5, threshold="> 5", severity=2),
        RollbackNotice(run="r1", text="rollback done in 0.04s", seconds=0.04, reverted=1),
        RecoveryNotice(run="r1", text="recovered in 3.0s", recovered=True, seconds=3.0),
        SummaryNotice(run="r1", text="aborted at severity 2", level="warning",
                      digest=digest(report("aborted")),
                      postmortem="reports/out/r1/postmortem.md"),
    ]


def deliver(sink: SlackSink, notices: list[Notice], **options: float) -> Notifier:
    notifier = Notifier([sink], **options)
    for notice in notices:
        notifier.post(notice)
    return notifier


def test_one_parent_and_the_run_in_its_thread(slack: FakeSlack) -> None:
    """The start is the parent; every later notice is a reply in its thread, in order."""
    notifier = deliver(bot(slack), story())
    assert notifier.flush(20)
    notifier.close()
    assert slack.problems == []
    (parent,) = slack.parents()
    assert "auth-latency" in parent.text and parent.blocks[0]["type"] == "header"
    texts = [reply.text for reply in slack.thread(parent)]
    expected = ["step 1/2", "step 2/2", f"{ONCALL} guard error_rate_percent", "rollback done",
                "recovered", "aborted"]
    assert len(texts) == len(expected), texts
    assert all(t.startswith(e) for t, e in zip(texts, expected, strict=True)), texts
    assert notifier.dropped == []


def test_sweep_before_the_start_goes_into_the_thread(slack: FakeSlack) -> None:
    """A sweep notice sent before the start waits, so the start still is the parent."""
    notices = [SweepNotice(run="r1", text="reverted 1 leftover fault(s)", count=1), *story()[:2]]
    notifier = deliver(bot(slack), notices)
    assert notifier.flush(20)
    notifier.close()
    (parent,) = slack.parents()
    assert parent.text.startswith("game day")
    assert [r.text.split(" ")[0] for r in slack.thread(parent)] == ["reverted", "step"]


def test_rollback_failed_pages_on_call_in_the_channel(slack: FakeSlack) -> None:
    """A failed rollback mentions the on-call group and is broadcast to the channel at once."""
    failed = RollbackFailedNotice(run="r1", text="ROLLBACK FAILED, faults may remain: x",
                                  seconds=1.0, problems=("latency at 127.0.0.1:1: refused",))
    notifier = deliver(bot(slack), [story()[0], failed])
    assert notifier.flush(20)
    notifier.close()
    reply = slack.thread(slack.parents()[0])[0]
    assert reply.reply_broadcast and reply.text.startswith(ONCALL)
    assert ONCALL in reply.blocks[0]["text"]["text"]


def test_rate_limit_is_retried_after_retry_after(slack: FakeSlack) -> None:
    """A 429 with Retry-After: 1 delays the message by a second, then it arrives."""
    slack.fail(429, retry_after=1)
    notifier = deliver(bot(slack), story()[:1], backoff=0.1)
    assert notifier.flush(20)
    notifier.close()
    (limited, accepted) = slack.attempts
    assert limited[2] == 429 and accepted[2] == 200
    assert accepted[0] - limited[0] >= 0.95
    assert len(slack.messages) == 1 and notifier.dropped == []


def test_server_errors_are_retried(slack: FakeSlack) -> None:
    """Two 500s in a row are retried with backoff; the message arrives once."""
    slack.fail(500, times=2)
    notifier = deliver(bot(slack), story()[:1], backoff=0.1)
    assert notifier.flush(20)
    notifier.close()
    assert [a[2] for a in slack.attempts] == [500, 500, 200]
    assert len(slack.messages) == 1


def test_a_hung_slack_costs_nothing_but_its_own_messages(slack: FakeSlack) -> None:
    """With Slack hanging, post() returns at once and undelivered messages are reported."""
    slack.hang()
    drops: list[tuple[str, str]] = []
    notifier = Notifier([bot(slack, timeout=1.0)], deadline=2.5, backoff=0.2,
                        on_drop=lambda sink, notice, reason: drops.append((notice.kind, reason)))
    started = time.monotonic()
    for notice in story():
        notifier.post(notice)
    # Blocking on the hung API would cost its 1 s timeout per message; queueing costs
    # microseconds. The bound leaves room for two busy cores.
    assert time.monotonic() - started < 0.75
    notifier.close(timeout=6.0, grace=0.5)
    slack.release()
    kinds = [kind for kind, _ in drops]
    assert kinds[0] == "start" and "deadline passed: slack: no answer" in drops[0][1]
    assert set(kinds) == {n.kind for n in story()}
    assert slack.messages == []


def test_a_refused_token_is_dropped_without_the_secret(slack: FakeSlack,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A wrong token is not retried; the drop names Slack's error, never the token."""
    caplog.set_level(logging.DEBUG)
    wrong = "xoxb-9999-another-secret"
    notifier = deliver(bot(slack, token=wrong), story()[:1])
    assert notifier.flush(10)
    notifier.close()
    ((sink, _notice, reason),) = notifier.dropped
    assert sink == "slack" and reason == "SinkError: slack refused the message (HTTP 200, " \
                                         "invalid_auth)"
    assert [a[2] for a in slack.attempts] == [200]
    assert wrong not in caplog.text and TOKEN not in caplog.text


def test_webhook_posts_each_notice_without_threads(slack: FakeSlack) -> None:
    """An incoming webhook cannot thread: each notice is its own message."""
    slack.fail(429, retry_after=0.2)
    sink = SlackSink(SlackConfig(webhook_url=slack.webhook_url, oncall_group=ONCALL))
    notifier = deliver(sink, story()[:4], backoff=0.1)
    assert notifier.flush(20)
    notifier.close()
    assert slack.problems == [] and notifier.dropped == []
    assert [m.via for m in slack.messages] == ["webhook"] * 4
    assert len(slack.parents()) == 4
    assert slack.messages[3].text.startswith(ONCALL)


def test_webhook_errors_never_show_its_url(slack: FakeSlack,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """The webhook URL is a secret: it appears in no drop reason and no log line."""
    caplog.set_level(logging.DEBUG)
    wrong = slack.webhook_url.replace("0001", "0002")  # answered 404 no_service
    notifier = Notifier([SlackSink(SlackConfig(webhook_url=wrong))])
    notifier.post(story()[0])
    assert notifier.flush(10)
    slack.stop()  # now nobody answers at all
    notifier.post(story()[1])
    notifier.close(timeout=3.0, grace=0.5)
    reasons = [reason for _, _, reason in notifier.dropped]
    assert reasons[0] == "SinkError: slack webhook refused the message (HTTP 404, no_service)"
    assert all("webhooksecretpart" not in r for r in reasons)
    assert "webhooksecretpart" not in caplog.text


def test_config_reads_secret_references(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings name an environment variable; the config resolves it and hides it in repr."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    settings = SlackSettings.model_validate(
        {"channel": "#gameday", "token": {"env": "SLACK_BOT_TOKEN"}, "oncall_group": ONCALL})
    config = SlackConfig.from_settings(settings)
    assert config.token == TOKEN and config.threads
    assert TOKEN not in repr(config)


def test_config_names_a_missing_reference_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset token variable is a ConfigError naming the variable."""
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    settings = SlackSettings.model_validate(
        {"channel": "#gameday", "token": {"env": "SLACK_BOT_TOKEN"}})
    with pytest.raises(ConfigError, match=r"notify\.slack\.token: env:SLACK_BOT_TOKEN is not set"):
        SlackConfig.from_settings(settings)


@pytest.mark.parametrize(("options", "message"), [
    ({}, "give a bot token"),
    ({"token": TOKEN}, "needs a channel"),
    ({"webhook_url": "http://127.0.0.1:1/x", "timeout": 0}, "timeout"),
])
def test_config_refuses_what_cannot_work(options: dict[str, object], message: str) -> None:
    """A config without credentials, a token without a channel or a bad timeout is refused."""
    with pytest.raises(ConfigError, match=message):
        SlackConfig(**options)  # type: ignore[arg-type]


def test_secret_values_in_a_notice_are_blanked(slack: FakeSlack,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A notice quoting a secret (a driver error, say) reaches Slack with it redacted."""
    monkeypatch.setenv("GAMEDAY_PROXY_TOKEN", "proxy-admin-secret-value")
    leaky = RollbackFailedNotice(run="r1", text="revert failed: bad token "
                                 "proxy-admin-secret-value", seconds=1.0,
                                 problems=(f"auth {TOKEN} proxy-admin-secret-value",))
    notifier = deliver(bot(slack), [story()[0], leaky])
    assert notifier.flush(20)
    notifier.close()
    assert len(slack.messages) == 2
    for body in slack.bodies:
        assert b"proxy-admin-secret-value" not in body and TOKEN.encode() not in body
    assert "[redacted]" in slack.messages[1].text
