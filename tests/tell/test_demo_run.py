"""Game days on the demo stack tell on-call (the Slack fake), the Pushgateway and the cockpit.

Each test runs a real ``chaosctl start`` against the session's demo stack (see
``tests/flows/conftest.py``), with the environment file's ``notify.slack`` pointing at a local
fake of Slack's Web API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gameday.journal import FaultRevertedEvent, HoldEndedEvent, NotificationDroppedEvent
from gameday.procs import stop
from tests.fakes.slack_api import FakeSlack
from tests.flows.conftest import Bench, dump, outcome
from tests.tell.cockpit import queries
from tests.tell.conftest import group_of, value

pytestmark = pytest.mark.integration

TOKEN = "xoxb-4242-demo-run-secret-token"
ONCALL = "<!subteam^S0ONCALL>"
#: Generous for two shared cores: the safety engine reverts within tens of milliseconds.
ROLLBACK_BOUND = 1.0


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A fake Slack expecting ``TOKEN``."""
    with FakeSlack(token=TOKEN) as fake:
        yield fake


def slack_env(bench: Bench, slack: FakeSlack, **settings: Any) -> Path:
    """The demo environment with notify.slack pointing at the fake."""
    notify = {"console": True, "slack": {"channel": "#gameday", "token": {"env": "SLACK_BOT_TOKEN"},
                                         "oncall_group": ONCALL, "api_url": slack.api_url}}
    notify["slack"] |= settings
    return bench.environment_file(notify=notify)


def run(bench: Bench, scenario: str, env_file: Path, timeout: float = 180.0,
        **env: str) -> tuple[int, str]:
    """``chaosctl start`` to its end; exit code and output."""
    return bench.run(scenario, env_file=env_file, timeout=timeout, **env)


def assert_no_secret(secret: str, bench: Bench, slack: FakeSlack, out: str) -> None:
    """``secret`` is in no message, no log line, no journal and no report."""
    assert secret not in out, "in the output"
    assert not any(secret.encode() in body for body in slack.bodies), "in a message"
    written = [*(bench.state / "runs").rglob("*"), *(bench.root / "reports").rglob("*")]
    files = [p for p in written if p.is_file()]
    assert any(p.name == "journal.jsonl" for p in files)
    assert any(p.name == "postmortem.md" for p in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), f"in {path}"


def thread_texts(slack: FakeSlack) -> list[str]:
    """Texts of the one parent's replies (and no other parent exists)."""
    (parent,) = slack.parents()
    assert parent.text.startswith("game day")
    return [reply.text for reply in slack.thread(parent)]


def test_a_demo_run_tells_on_call_in_one_thread(bench: Bench, slack: FakeSlack) -> None:
    """A run that trips a guard posts one parent and its whole story in the thread, in order."""
    code, out = run(bench, "quick-trip", slack_env(bench, slack), SLACK_BOT_TOKEN=TOKEN)
    assert code == 4, out
    assert slack.problems == []
    assert all(h["authorization"] == f"Bearer {TOKEN}" for h in slack.headers)
    texts = thread_texts(slack)
    expected = ["step 1/2", "step 2/2", f"{ONCALL} guard error_rate_percent stopped step 2",
                "rollback done", ("recovered", "signals did not"), "aborted at severity 2"]
    assert len(texts) == len(expected), texts
    for text, start in zip(texts, expected, strict=True):
        assert text.startswith(start), texts
    assert_no_secret(TOKEN, bench, slack, out)


def test_rate_limited_messages_arrive_after_the_wait(bench: Bench, slack: FakeSlack) -> None:
    """A 429 with Retry-After: 2 delays the thread by two seconds; nothing is lost."""
    slack.fail(429, retry_after=2)
    code, out = run(bench, "quick-pass", slack_env(bench, slack), SLACK_BOT_TOKEN=TOKEN)
    assert code == 0, out
    limited, accepted = slack.attempts[0], slack.attempts[1]
    assert limited[2] == 429 and accepted[2] == 200
    assert accepted[0] - limited[0] >= 1.9
    texts = thread_texts(slack)
    expected = ["step 1/2", "step 2/2", "rollback done", "recovered", "every step held"]
    assert len(texts) == len(expected), texts
    for text, start in zip(texts, expected, strict=True):
        assert text.startswith(start), texts
    (events,) = bench.journals().values()
    assert not [e for e in events if isinstance(e, NotificationDroppedEvent)], dump(events)


def test_a_hung_slack_never_delays_rollback(bench: Bench, slack: FakeSlack) -> None:
    """With Slack never answering, the breach is reverted at once and the drops journaled."""
    slack.hang()
    code, out = run(bench, "quick-trip", slack_env(bench, slack), SLACK_BOT_TOKEN=TOKEN)
    assert code == 4, out
    (events,) = bench.journals().values()
    assert outcome(events) == "aborted", dump(events)
    breach = next(e for e in events if isinstance(e, HoldEndedEvent) and not e.result.held)
    revert = next(e for e in events if isinstance(e, FaultRevertedEvent) and e.at > breach.at)
    assert revert.at - breach.at <= ROLLBACK_BOUND, dump(events)
    drops = [e for e in events if isinstance(e, NotificationDroppedEvent)]
    assert {d.sink for d in drops} == {"slack"}, dump(events)
    assert any("start" in d.message or "game day" in d.message for d in drops)
    assert slack.messages == []
    slack.release()
    assert_no_secret(TOKEN, bench, slack, out)


def test_a_webhook_url_never_leaks(bench: Bench, slack: FakeSlack) -> None:
    """Through a webhook (a 500 first), messages arrive unthreaded; the URL appears nowhere."""
    slack.fail(500)
    notify = {"console": True, "slack": {"webhook_url": {"env": "SLACK_WEBHOOK_URL"},
                                         "oncall_group": ONCALL}}
    env_file = bench.environment_file(notify=notify)
    code, out = run(bench, "quick-pass", env_file, SLACK_WEBHOOK_URL=slack.webhook_url)
    assert code == 0, out
    assert slack.problems == []
    assert [m.via for m in slack.messages] == ["webhook"] * 6
    assert slack.messages[0].text.startswith("game day")
    assert_no_secret(slack.webhook_url.rsplit("/", 1)[1], bench, slack, out)


HOLD = {"name": "tell-hold", "description": "test", "owner": "tests",
        "target": {"service": "user-service", "dependency": "auth-service"},
        "environments": ["demo"], "max_duration": "5m", "ttl_margin": "5s",
        "fault": {"kind": "latency", "ms": 30}, "steps": [{"ms": 30, "dwell": "20s"}],
        "guards": {"error_rate_percent": "> 50 for 2s"},
        "rollback": {"recovery": {"timeout": "20s", "tolerance_percent": 100}}}


def prometheus_has(bench: Bench, promql: str) -> bool:
    """Whether an instant query returns at least one sample (a query error fails the test)."""
    response = httpx.get(f"{bench.stack.prometheus_url}/api/v1/query", params={"query": promql},
                         timeout=5, trust_env=False)
    body = response.json()
    assert body["status"] == "success", f"{promql}: {body.get('error')}"
    return bool(body["data"]["result"])


def test_run_metrics_reach_the_pushgateway_and_feed_the_cockpit(bench: Bench) -> None:
    """During a run its group is on the Pushgateway and every cockpit query answers; after the
    run the group is gone."""
    (bench.catalog / "scenarios" / "tell.yaml").write_text(yaml.safe_dump([HOLD]))
    gateway = bench.stack.state.pushgateway_url
    assert gateway is not None
    proc = bench.start("tell-hold")
    try:
        run_id = bench.wait_for_rule("tell-hold")["labels"]["run"]
        deadline = time.monotonic() + 10
        while (group := group_of(gateway, run_id)) is None or value(group, "chaos_run_step") != 1:
            assert time.monotonic() < deadline, f"no group with step 1 for run {run_id}"
            time.sleep(0.2)
        assert group["labels"] == {"job": "gameday", "environment": "demo", "run": run_id}
        assert value(group, "chaos_run_active", scenario="tell-hold") == 1
        assert value(group, "chaos_run_baseline", metric="latency_p95_ms") is not None
        empty = queries()
        deadline = time.monotonic() + 15  # within the step's 20 s dwell
        while empty and time.monotonic() < deadline:
            empty = [(title, q) for title, q in empty if not prometheus_has(bench, q)]
            time.sleep(0.5)
        assert empty == [], "cockpit queries without a result during the run"
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            stop(proc.pid)
    assert proc.returncode == 0, out
    assert group_of(gateway, run_id) is None
