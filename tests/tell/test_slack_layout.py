"""Block Kit layout of each notice: valid for Slack, short, escaped, paging only when due."""

from __future__ import annotations

import pytest

from gameday.notify import Notice
from gameday.notify.slack_layout import Layout, escape
from tests.fakes.slack_api import message_problems

ONCALL = "<!subteam^S0ONCALL>"
LAYOUT = Layout(oncall=ONCALL, run_url="https://prefect.example/runs/flow-run/r1")
KINDS = {
    "start": {"scenario": "auth-latency", "environment": "demo", "requester": "alice",
              "target": "user-service → auth-service", "ladder": ["latency 50ms · 20s"],
              "guards": ["error_rate_percent > 5 for 2s"]},
    "signoff_requested": {"severity": 3, "url": "https://prefect.example/runs/flow-run/r1"},
    "signoff_granted": {"severity": 3, "approver": "bob"},
    "step": {"severity": 1, "total": 3, "fault": "latency 50ms", "dwell": 20.0, "ttl": 30.0},
    "breach": {"guard": "error_rate_percent", "observed": 12.5, "threshold": "> 5",
               "severity": 2},
    "vanished": {"severity": 2},
    "rollback": {"seconds": 0.042, "reverted": 1},
    "rollback_failed": {"problems": ["latency at http://127.0.0.1:1: refused"]},
    "recovery": {"recovered": True, "seconds": 3.2},
    "summary": {"outcome": "aborted", "summary": "aborted at severity 2", "highest_held": 1,
                "first_broken": 2, "max_severity": 3, "postmortem": "reports/out/r1/pm.md"},
    "sweep": {"count": 1},
    "something_new": {},
}
PAGING = {"breach", "rollback_failed"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_a_valid_message(kind: str) -> None:
    """Each notice kind (and an unknown one) makes a message Slack accepts, with a footer."""
    message = LAYOUT.message(Notice(kind, "r1", f"text of {kind}", fields=KINDS[kind]))
    assert message_problems({"text": message.text, "blocks": message.blocks},
                            needs_channel=False) == []
    assert message.blocks[-1]["type"] == "context"
    assert "r1" in message.blocks[-1]["elements"][0]["text"]
    assert (ONCALL in message.text) == (kind in PAGING)
    assert message.broadcast == (kind == "rollback_failed")


def test_start_shows_the_plan() -> None:
    """The parent message names scenario, environment, requester, ladder, guards and the run."""
    message = LAYOUT.message(Notice("start", "r1", "starting", fields=KINDS["start"]))
    text = str(message.blocks)
    for part in ("auth-latency", "*demo*", "*alice*", "1. latency 50ms · 20s",
                 "• error_rate_percent &gt; 5 for 2s", "<https://prefect.example/runs/flow-run/r1|"):
        assert part in text, part


def test_breach_shows_guard_observed_and_threshold() -> None:
    """A breach says which guard, what it saw and the threshold, and pages on-call."""
    message = LAYOUT.message(Notice("breach", "r1", "guard tripped", "critical",
                                    fields=KINDS["breach"]))
    section, fields = message.blocks[0]["text"]["text"], str(message.blocks[1])
    assert ONCALL in section and "`error_rate_percent`" in section and "step 2" in section
    assert "*Observed*\\n12.5" in fields and "*Threshold*\\n&gt; 5" in fields


def test_summary_links_the_postmortem() -> None:
    """A postmortem URL becomes a link; a file path is shown as code."""
    as_path = LAYOUT.message(Notice("summary", "r1", "done", fields=KINDS["summary"]))
    assert "`reports/out/r1/pm.md`" in str(as_path.blocks)
    url = KINDS["summary"] | {"postmortem": "https://example.org/pm"}
    as_url = LAYOUT.message(Notice("summary", "r1", "done", fields=url))
    assert "<https://example.org/pm|postmortem>" in str(as_url.blocks)
    assert "Highest severity held*\\n1 of 3" in str(as_url.blocks)


def test_values_cannot_mention_or_link() -> None:
    """Text from a run is escaped: ``<!channel>`` in a value pages nobody."""
    message = LAYOUT.message(Notice("step", "r1", "<!channel> hi", fields={"fault": "<!here>"}))
    assert "<!" not in message.text and "<!" not in str(message.blocks)
    assert escape("a & <b>") == "a &amp; &lt;b&gt;"


def test_long_text_is_cut_to_slack_limits() -> None:
    """A huge notice still fits Slack's limits for sections and headers."""
    huge = "x" * 5000
    for kind in ("step", "summary", "start"):
        message = LAYOUT.message(Notice(kind, "r1", huge, fields={"scenario": huge}))
        assert message_problems({"text": message.text, "blocks": message.blocks},
                                needs_channel=False) == []
