"""The breaking point in the postmortem, its chart, the chat digest and the Slack summary.

Journals are the recorded guard-aborted run (step 2 held at 120 ms, step 3 broke at 250 ms on
``error_rate_percent``) with a search spliced in after the broken step, as the protocol writes
it: the probes come from the real bisection, judged by a service that breaks from a threshold.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from gameday.guards.hold import HoldResult
from gameday.guards.rules import Verdict as GuardVerdict
from gameday.guards.signals import SignalResult, Window
from gameday.journal import Event, FaultRevertedEvent
from gameday.notify.slack_layout import Layout
from gameday.protocol.bisect import Judgement, Plan, Result, bisect
from gameday.protocol.learn import Learned, summary_notice
from gameday.report import GameDayReport, render_markdown, write_report
from gameday.report.breaking import BreakingPoint, SearchSkipped, Trend
from gameday.report.breaking_chart import breaking_figure
from gameday.report.digest import digest
from gameday.search_events import (
    Axis,
    Bracket,
    ProbeEndedEvent,
    ProbeJudgedEvent,
    ProbeStartedEvent,
    Purpose,
    SearchEndedEvent,
    SearchSkippedEvent,
    SearchStartedEvent,
)
from gameday.search_events import Verdict as ProbeVerdict
from tests.fakes.slack_api import message_problems
from tests.report.conftest import journal, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LATENCY = Axis("ms", "ms")
#: The recorded ladder's ends: step 2 held at 120 ms, step 3 broke at 250 ms.
LADDER = Bracket(120.0, 250.0)
GUARD = "error_rate_percent"
SIGNAL = "latency_p95_ms"
DWELL, FLOOR = 6.0, 4.0
#: A judge: the verdict of a probe at a value, for a purpose.
Judge = Callable[[float, Purpose], ProbeVerdict]


def breaks_from(threshold: float) -> Judge:
    """A service that breaks at ``threshold`` and above, every time."""
    return lambda value, purpose: "broken" if value >= threshold else "held"


def _probe_events(number: int, value: float, purpose: Purpose, verdict: ProbeVerdict,
                  detail: str, at: float, axis: Axis) -> list[Event]:
    started, ended = at, at + DWELL
    guard = GUARD if verdict == "broken" else None
    breach = GuardVerdict(guard=GUARD, state="breached", value=100.0, op=">", threshold=5.0,
                          for_=2.0, since=ended - 2, at=ended, summary=detail) if guard else None
    events: list[Event] = [
        ProbeStartedEvent(at=started, probe=number, value=value, purpose=purpose,
                          fault=f"latency {axis.text(value)}", dwell=DWELL, ttl=DWELL + 10,
                          label=3 + number),
        ProbeEndedEvent(at=ended, probe=number, value=value, purpose=purpose, verdict=verdict,
                        detail=detail, started=started, ended=ended,
                        result=None if verdict == "unjudged" else HoldResult(
                            started=started, ended=ended, dwell=DWELL, interval=1.0,
                            guard=guard, verdict=breach, breached_at=ended if guard else None,
                            samples=12))]
    if verdict != "unjudged":
        state = "broken" if verdict == "broken" else "held"
        events.append(ProbeJudgedEvent(at=ended + 0.1, probe=number,
                                       window=Window(started, ended, ()), results=(
            SignalResult(name=SIGNAL, state=state, op="<=", threshold=350.0, statistic="mean",
                         observed=400.0 if state == "broken" else 200.0, unit="ms", stats=None,
                         baseline=None, delta=None, delta_percent=None,
                         summary=f"{SIGNAL} {state}"),)))
    return events


def searched(judge: Judge, *, axis: Axis = LATENCY, start: Bracket = LADDER,
             held_severity: int | None = 2, resolution: float = 10.0,
             resolution_text: str = "10ms", unjudged_at: int | None = None) -> list[Event]:
    """The recorded aborted run with a search spliced in after its broken step: the plan, each
    probe the bisection asked for (``unjudged_at`` makes that probe unjudgeable) and the end."""
    plan = Plan(axis, start, resolution)
    clock = [0.0]
    events: list[Event] = []

    async def probe(number: int, value: float, purpose: Purpose) -> Judgement:
        verdict: ProbeVerdict = "unjudged" if number == unjudged_at else judge(value, purpose)
        detail = {"held": f"held {DWELL:g}s of {DWELL:g}s, 12 samples",
                  "broken": f"{GUARD} breached: 100 > 5 for 2.0s",
                  "unjudged": f"{GUARD} could not see (no_data)"}[verdict]
        events.extend(_probe_events(number, value, purpose, verdict, detail, clock[0], axis))
        clock[0] += DWELL + 1
        return Judgement(verdict, detail)

    recorded = journal("aborted")
    cut = 1 + max(i for i, e in enumerate(recorded) if isinstance(e, FaultRevertedEvent))
    begin = recorded[cut - 1].at + 0.5
    clock[0] = begin
    result: Result = asyncio.run(bisect(plan, probe, lambda: None))
    search: list[Event] = [
        SearchStartedEvent(at=begin - 0.1, field=axis.field, unit=axis.unit,
                           worse_up=axis.worse_up, integer=axis.integer, held=start.held,
                           broken=start.broken, held_severity=held_severity,
                           broken_severity=(held_severity or 0) + 1, resolution=resolution,
                           resolution_text=resolution_text, budget=plan.budget, dwell=DWELL,
                           dwell_floor=FLOOR, guards_hash="0123456789abcdef"),
        *events,
        SearchEndedEvent(at=clock[0], held=result.bracket.held, broken=result.bracket.broken,
                         text=result.text, stopped=result.stopped, confirmed=result.confirmed,
                         conflict=result.conflict, probes=len(result.probes))]
    # What the run did after the search happened later by as long as the search took.
    shift = clock[0] - begin + 1
    after = [e.model_copy(update={"at": e.at + shift}) for e in recorded[cut:]]
    return [*recorded[:cut], *search, *after]


def built(events: Sequence[Event]) -> GameDayReport:
    """The report of the spliced journal, as the learn phase builds it."""
    return report("aborted", events=events)


def section(text: str) -> str:
    """The postmortem's breaking-point section."""
    start = text.index("## Breaking point")
    return text[start:text.index("\n## ", start + 1)]


def with_trend(made: GameDayReport, trend: Trend) -> GameDayReport:
    """``made`` as the learn phase leaves it after comparing with the previous run."""
    assert made.search is not None
    return replace(made, breaking_point=replace(made.search, trend=trend))


REGRESSION = Trend("regression", "breaking point fell from 230–240 ms to 176.9–185 ms since "
                   "2026-05-01", previous_run="run-before", previous_date="2026-05-01")


def test_section_gives_a_bracket_between_guards_and_rollback() -> None:
    """The answer is a bracket, "holds at …, breaks at …", with its plan and what broke."""
    made = built(searched(breaks_from(184.0)))
    bp = made.search
    assert bp is not None and bp.text == "holds at 176.9 ms, breaks at 185 ms"
    text = render_markdown(made)
    assert text.index("## Guards") < text.index("## Breaking point") < text.index("## Rollback")
    part = section(text)
    assert "**holds at 176.9 ms, breaks at 185 ms**" in part
    for row in ("| Searched | `ms` (ms) |",
                "| Started between | step 2, held at 120 ms and step 3, broken at 250 ms |",
                "| Resolution | asked 10ms (10 ms), reached 8.125 ms |",
                "| Probes | 6 of 6 |",
                "| Probe dwell | 6 s each (at least 4 s: the longest guard window plus two "
                "scrapes) |",
                "| Stopped | resolution reached (8.125 ms wide, asked 10 ms) |",
                f"| Broke first | `{GUARD}` |",
                f"| Signals broken there | `{SIGNAL}` |"):
        assert row in part, row
    assert "Regression" not in part and "Trend" not in part


def test_probes_are_listed_in_order_with_their_outcome() -> None:
    """One row per probe: purpose, value, outcome, the guard that broke it, signals missed."""
    part = section(render_markdown(built(searched(breaks_from(184.0)))))
    rows = [line for line in part.splitlines() if re.match(r"\| \d+ \|", line)]
    assert rows == [
        f"| 1 | bisection | 185 ms | ❌ broke | `{GUARD}` | `{SIGNAL}` |",
        "| 2 | bisection | 152.5 ms | ✅ held | held 6s of 6s, 12 samples | none |",
        "| 3 | bisection | 168.8 ms | ✅ held | held 6s of 6s, 12 samples | none |",
        "| 4 | bisection | 176.9 ms | ✅ held | held 6s of 6s, 12 samples | none |",
        "| 5 | repeat of the held end | 176.9 ms | ✅ held | held 6s of 6s, 12 samples | none |",
        f"| 6 | repeat of the broken end | 185 ms | ❌ broke | `{GUARD}` | `{SIGNAL}` |"]


def test_an_unjudged_probe_leaves_the_bracket_unconfirmed() -> None:
    """A probe the guards could not judge ends the search; the bracket says so, and the row
    gives the reason instead of a guard."""
    made = built(searched(breaks_from(184.0), unjudged_at=2))
    part = section(render_markdown(made))
    assert (f"**holds at 120 ms, breaks at 185 ms (not confirmed: probe 2 could not be judged: "
            f"{GUARD} could not see (no_data))**") in part
    assert f"| 2 | bisection | 152.5 ms | ❔ not judged | {GUARD} could not see (no_data) | — |" \
        in part
    assert "| Probes | 2 of 6 |" in part


def test_a_service_that_is_not_monotone_is_flagged() -> None:
    """Held at a value where it broke before: the bracket carries "(not monotone: …)"."""
    def flaky(value: float, purpose: Purpose) -> ProbeVerdict:
        return "held" if purpose == "confirm_broken" else breaks_from(184.0)(value, purpose)

    made = built(searched(flaky))
    expected = ("holds at 176.9 ms, breaks at 185 ms (not monotone: held at 185 ms (probe 6) "
                "but broke at 185 ms (probe 1))")
    assert f"**{expected}**" in section(render_markdown(made))
    assert digest(made).breaking_point == expected


def test_a_probability_searched_from_no_fault_is_shown_in_percent() -> None:
    """A held end that injects nothing is "no fault"; a share reads as a percentage."""
    share = Axis("probability", "share")
    made = built(searched(breaks_from(0.07), axis=share, start=Bracket(0.0, 0.2),
                          held_severity=None, resolution=0.05, resolution_text="0.05"))
    part = section(render_markdown(made))
    assert "| Searched | `probability` (a probability, shown in %) |" in part
    assert "| Started between | no fault (0 %) and step 1, broken at 20 % |" in part
    assert "| 1 | bisection | 10 % | ❌ broke |" in part


def test_a_regression_stands_out() -> None:
    """A breaking point lower than last time is a warning with a bold "Regression:"."""
    made = with_trend(built(searched(breaks_from(184.0))), REGRESSION)
    part = section(render_markdown(made))
    assert (f"> [!WARNING]\n> **Regression:** {REGRESSION.text}\n"
            "> Previous run: `run-before`.") in part
    calm = with_trend(made, Trend("no_change", "no significant change since 2026-05-01",
                                  previous_run="run-before"))
    part = section(render_markdown(calm))
    assert "Trend: no significant change since 2026-05-01\nPrevious run: `run-before`." in part
    assert "Regression" not in part


def test_a_skipped_search_says_why_in_one_line() -> None:
    """A search asked for and not run: one line with the reason, no table, no chart."""
    reason = "guard error_rate_percent could not see (no_data): a safety stop, so no search"
    recorded = journal("aborted")
    made = built([*recorded[:-3], SearchSkippedEvent(at=recorded[-3].at, reason=reason),
                  *recorded[-3:]])
    assert made.breaking_point == SearchSkipped(reason)
    assert section(render_markdown(made)) == f"## Breaking point\n\nNot searched: {reason}.\n"


def test_a_run_without_a_search_has_no_section() -> None:
    """Nothing asked, nothing said."""
    made = report("aborted")
    assert made.breaking_point is None
    assert "Breaking point" not in render_markdown(made)
    assert digest(made).breaking_point is None and digest(made).trend is None


def test_write_report_draws_the_probes(tmp_path: Path) -> None:
    """write_report saves breaking-point.png and the postmortem shows it."""
    made = built(searched(breaks_from(184.0)))
    path = write_report(made, tmp_path)
    assert (tmp_path / "breaking-point.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "](breaking-point.png)" in section(path.read_text(encoding="utf-8"))


def test_chart_marks_each_outcome_the_bracket_and_the_start() -> None:
    """Green circles held, red crosses broke, grey not judged, in probe order; the final
    bracket shaded; the starting ends dashed; a share plotted in percent."""
    share = Axis("probability", "share")
    made = built(searched(breaks_from(0.07), axis=share, start=Bracket(0.0, 0.2),
                          held_severity=None, resolution=0.02, resolution_text="0.02",
                          unjudged_at=4))
    bp = made.search
    assert isinstance(bp, BreakingPoint)
    ax = breaking_figure(bp).axes[0]
    marks = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    for verdict, marker, colour in (("held", "o", "#2ca02c"), ("broken", "x", "#d62728"),
                                    ("unjudged", "s", "#7f7f7f")):
        picked = [p for p in bp.probes if p.verdict == verdict]
        assert list(marks[verdict].get_xdata()) == [p.number for p in picked]
        assert list(marks[verdict].get_ydata()) == [p.value * 100 for p in picked]
        assert (marks[verdict].get_marker(), marks[verdict].get_color()) == (marker, colour)
    assert [p.verdict for p in bp.probes] == ["broken", "held", "broken", "unjudged"]
    assert [p.value for p in bp.probes] == pytest.approx([0.1, 0.05, 0.075, 0.0625])
    assert bp.bracket is not None
    assert (bp.bracket.held, bp.bracket.broken) == pytest.approx((0.05, 0.075))
    (band,) = [p for p in ax.patches if p.get_gid() == "bracket"]
    assert band.get_extents().height > 0
    assert list(marks["start-held"].get_ydata()) == [0.0, 0.0]
    assert list(marks["start-broken"].get_ydata()) == [20.0, 20.0]
    assert marks["start-held"].get_linestyle() == "--"
    assert ax.get_ylabel() == "probability (%)"


def test_no_chart_without_a_probe(tmp_path: Path) -> None:
    """A search that ran no probe (the run ended first) draws nothing and names no chart."""
    recorded = journal("aborted")
    started = SearchStartedEvent(at=recorded[-3].at, field="ms", unit="ms", held=120.0,
                                 broken=250.0, held_severity=2, broken_severity=3,
                                 resolution=10.0, resolution_text="10ms", budget=6,
                                 dwell=DWELL, dwell_floor=FLOOR, guards_hash="0123456789abcdef")
    path = write_report(built([*recorded[:-3], started, *recorded[-3:]]), tmp_path)
    assert not (tmp_path / "breaking-point.png").exists()
    part = section(path.read_text(encoding="utf-8"))
    assert "**the search did not finish (the run was stopped)**" in part
    assert "No probe ran." in part and "breaking-point.png" not in part


def test_artifact_names_the_chart_file() -> None:
    """Where images cannot be shown (the Prefect artifact), the chart is named by file."""
    part = section(render_markdown(built(searched(breaks_from(184.0))),
                                   location="reports/out/run"))
    assert "![" not in part
    assert "Chart: `breaking-point.png` in `reports/out/run`" in part


def test_digest_carries_the_bracket_and_the_trend() -> None:
    """Chat gets the postmortem's own bracket text and trend, and whether it fell."""
    made = with_trend(built(searched(breaks_from(184.0))), REGRESSION)
    found = digest(made)
    assert found.breaking_point == "holds at 176.9 ms, breaks at 185 ms"
    assert (found.trend, found.regression) == (REGRESSION.text, True)
    calm = digest(with_trend(made, Trend("improvement", "breaks later than last time")))
    assert (calm.trend, calm.regression) == ("breaks later than last time", False)


def summary_blocks(made: GameDayReport) -> list[dict[str, object]]:
    """The Slack summary of ``made``, as the flow sends it; checked valid for Slack."""
    message = Layout().message(summary_notice(Learned(made, Path("reports/out/r1/pm.md"))))
    assert message_problems({"text": message.text, "blocks": message.blocks},
                            needs_channel=False) == []
    return message.blocks


def test_slack_summary_shows_the_breaking_point_and_a_regression() -> None:
    """The summary's fields name the bracket and, when it fell, say "Regression"."""
    made = built(searched(breaks_from(184.0)))
    plain = str(summary_blocks(made))
    assert "*Breaking point*\\nholds at 176.9 ms, breaks at 185 ms" in plain
    assert "*Trend*" not in plain
    fell = str(summary_blocks(with_trend(made, REGRESSION)))
    assert (f"*Trend*\\n:chart_with_downwards_trend: *Regression:* {REGRESSION.text}"
            in fell)
    calm = str(summary_blocks(with_trend(made, Trend("no_change", "same as last time"))))
    assert "*Trend*\\nsame as last time" in calm and "Regression" not in calm


def test_slack_summary_escapes_the_trend() -> None:
    """A trend's text cannot mention or link anybody."""
    made = with_trend(built(searched(breaks_from(184.0))),
                      Trend("regression", "fell since <!channel> & co ran it"))
    blocks = str(summary_blocks(made))
    assert "<!channel>" not in blocks and "fell since &lt;!channel&gt; &amp; co" in blocks


def test_slack_summary_without_a_search_has_no_breaking_point() -> None:
    """A run that searched nothing says nothing about it."""
    assert "Breaking point" not in str(summary_blocks(report("aborted")))
