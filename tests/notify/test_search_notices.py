"""The breaking-point search's notices in Slack: each probe's verdict and the search's end."""

from __future__ import annotations

from gameday.notify import Notice, ProbeNotice, SearchNotice
from gameday.notify.slack_layout import Layout, Message
from tests.fakes.slack_api import message_problems

ONCALL = "<!subteam^S0ONCALL>"
LAYOUT = Layout(oncall=ONCALL, run_url="https://prefect.example/runs/flow-run/r1")
BRACKET = "holds at 176.9 ms, breaks at 185 ms"


def laid_out(notice: Notice) -> Message:
    """``notice``'s message, checked valid for Slack, ending with the run's footer."""
    message = LAYOUT.message(notice)
    assert message_problems({"text": message.text, "blocks": message.blocks},
                            needs_channel=False) == []
    footer = message.blocks[-1]
    assert footer["type"] == "context" and "`r1`" in footer["elements"][0]["text"]
    return message


def headline(message: Message) -> str:
    """The first section's text."""
    text: str = message.blocks[0]["text"]["text"]
    return text


def test_a_broken_probe_names_its_guard_without_paging() -> None:
    """A probe that broke says which of the budget it was, at what value, and which guard;
    the search is expected to break things, so nobody is paged."""
    notice = ProbeNotice(run="r1", text="probe 3/6: 185 ms broke (error_rate_percent breached)",
                         probe=3, budget=6, fault="185 ms", verdict="broke",
                         guard="error_rate_percent")
    message = laid_out(notice)
    assert headline(message) == (":mag: *Probe 3/6* · 185 ms — broke by "
                                 "`error_rate_percent`")
    assert message.text == notice.text
    assert ONCALL not in message.text and ONCALL not in str(message.blocks)
    assert not message.broadcast


def test_a_held_probe_names_no_guard() -> None:
    """A probe that held has no guard to name."""
    message = laid_out(ProbeNotice(run="r1", text="probe 2/6: 152.5 ms held", probe=2,
                                   budget=6, fault="152.5 ms", verdict="held"))
    assert headline(message) == ":mag: *Probe 2/6* · 152.5 ms — held"


def test_the_search_end_gives_the_bracket_probes_and_why() -> None:
    """The search's end leads with the bracket, then how many probes and why it stopped."""
    stopped = "resolution reached (8.125 ms wide, asked 10 ms)"
    message = laid_out(SearchNotice(run="r1", text=f"breaking point: {BRACKET}",
                                    bracket=BRACKET, probes=6, stopped=stopped))
    assert headline(message) == f":dart: *Breaking point:* {BRACKET}"
    fields = [f["text"] for f in message.blocks[1]["fields"]]
    assert fields == ["*Probes*\n6", f"*Ended*\n{stopped}"]
    assert message.text == f"breaking point: {BRACKET}"


def test_a_search_without_a_bracket_says_why() -> None:
    """A search that found no bracket (skipped, or no probe ran) says so with the reason."""
    reason = "every step held up to severity 3: no breaking point within the run's reach"
    message = laid_out(SearchNotice(run="r1", text=f"breaking point: not searched: {reason}",
                                    stopped=reason))
    assert headline(message) == (":dart: *Breaking point not found* — breaking point: not "
                                 f"searched: {reason}")
    assert [b["type"] for b in message.blocks] == ["section", "context"]


def test_search_notices_cannot_mention_or_link() -> None:
    """Values from the run are escaped in both kinds."""
    probe = laid_out(ProbeNotice(run="r1", text="probe <!channel>", probe=1, budget=3,
                                 fault="<!here> & 5 ms", verdict="broke", guard="<@U1>"))
    search = laid_out(SearchNotice(run="r1", text="end <!channel>", bracket="holds <!here>",
                                   probes=1, stopped="<https://evil.example|click>"))
    for message in (probe, search):
        assert "<!" not in message.text and "<!" not in str(message.blocks)
        assert "<@" not in str(message.blocks) and "<https://evil" not in str(message.blocks)
    assert "&lt;!here&gt; &amp; 5 ms" in headline(probe)
