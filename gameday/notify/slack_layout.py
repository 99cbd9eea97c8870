"""Slack Block Kit messages for notices (pure: no I/O).

Each message is short enough to read on a phone's lock screen: a bold first line that says
what happened, at most a few two-column fields (they stack on narrow screens), and a small
context line with the run. The plain ``text`` is what push notifications and screen readers
show, so it always carries the point of the message — and the on-call mention, where there is
one, since a mention inside blocks alone does not notify anybody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, assert_never

from gameday.notes import NoticeKind
from gameday.notify.notices import (
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
from gameday.report.alerting import percent

# Slack's own limits, with room for the ellipsis.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
#: A suite's line per scenario keeps this much of its run's summary or skip reason.
SUITE_NOTE_LIMIT = 300

_ICON: dict[NoticeKind, str] = {
    "start": ":test_tube:", "step": ":arrow_forward:", "breach": ":rotating_light:",
    "vanished": ":warning:", "probe": ":mag:", "search": ":dart:",
    "rollback": ":white_check_mark:", "rollback_failed": ":sos:",
    "recovery": ":green_heart:", "summary": ":memo:", "sweep": ":broom:",
    "signoff_requested": ":raised_hand:", "signoff_granted": ":+1:", "suite": ":calendar:",
}
_LEVEL_ICON = {"info": ":information_source:", "warning": ":warning:",
               "critical": ":rotating_light:"}
_OUTCOME_ICON = {"passed": ":large_green_circle:", "aborted": ":large_orange_circle:",
                 "failed": ":red_circle:", "cancelled": ":white_circle:",
                 "rollback_failed": ":sos:", "skipped": ":fast_forward:"}

Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One Slack message: fallback text, blocks, and whether a reply is also shown in the
    channel (``reply_broadcast``), which is how a thread reply reaches everyone at once."""

    text: str
    blocks: list[Block]
    broadcast: bool = False


def escape(text: object) -> str:
    """``text`` with Slack's control characters escaped (``&``, ``<``, ``>``), so a value can
    never turn into a mention or a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(markdown: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(markdown, SECTION_LIMIT)}}


def _fields(pairs: Sequence[tuple[str, object]]) -> Block | None:
    shown = [(k, v) for k, v in pairs if v is not None and v != ""][:MAX_FIELDS]
    if not shown:
        return None
    return {"type": "section", "fields": [
        {"type": "mrkdwn", "text": _cut(f"*{k}*\n{v}", FIELD_LIMIT)} for k, v in shown]}


def _context(parts: Sequence[str]) -> Block:
    return {"type": "context", "elements": [
        {"type": "mrkdwn", "text": _cut(" · ".join(parts), SECTION_LIMIT)}]}


def _link(url: str | None, label: str) -> str | None:
    # Only web links become links; anything else (a file path) is shown as code.
    if url and url.startswith(("http://", "https://")) and "|" not in url:
        return f"<{escape(url)}|{label}>"
    return f"`{escape(url)}`" if url else None


def _number(value: float | None, unit: str = "", digits: str = ".4g") -> str | None:
    return None if value is None else f"{value:{digits}}{unit}"


def _trend(text: str | None, regression: bool) -> str | None:
    # A breaking point that fell is the one thing in the summary that needs acting on.
    if not text:
        return None
    return f":chart_with_downwards_trend: *Regression:* {escape(text)}" if regression \
        else escape(text)


def _lines(values: Sequence[str], numbered: bool = False) -> str | None:
    if not values:
        return None
    return "\n".join(f"{i}. {escape(v)}" if numbered else f"• {escape(v)}"
                     for i, v in enumerate(values, start=1))


@dataclass(frozen=True)
class Layout:
    """What every message of a run shares: who to page and where the run can be seen."""

    oncall: str | None = None
    run_url: str | None = None

    def message(self, notice: Notice) -> Message:
        """The message for ``notice``, laid out for its kind."""
        match notice:
            case StartNotice():
                return self._start(notice)
            case StepNotice():
                return self._step(notice)
            case BreachNotice():
                return self._breach(notice)
            case VanishedNotice():
                return self._simple(notice, f"*Fault vanished — stopping*\n{escape(notice.text)}")
            case ProbeNotice():
                return self._probe(notice)
            case SearchNotice():
                return self._search(notice)
            case RollbackNotice():
                return self._simple(notice, "*Rollback done* — nothing of this run is active",
                                    [("Time to clean", _number(notice.seconds, " s", ".2f")),
                                     ("Faults reverted", notice.reverted)])
            case RollbackFailedNotice():
                return self._rollback_failed(notice)
            case RecoveryNotice():
                return self._recovery(notice)
            case SummaryNotice():
                return self._summary(notice)
            case SweepNotice():
                return self._simple(notice, f"*Swept leftovers* — {escape(notice.text)}")
            case SignoffRequestedNotice():
                return self._signoff_requested(notice)
            case SignoffGrantedNotice():
                by = f" by *{escape(notice.approver)}*" if notice.approver else ""
                return self._simple(notice, f"*Sign-off granted*{by} — {escape(notice.text)}")
            case SignoffTimedOutNotice() | WaitingNotice() | WarningNotice():
                return self._simple(notice, escape(notice.text))
            case SuiteNotice():
                return self._suite(notice)
            case _:
                assert_never(notice)

    # --- shared pieces -------------------------------------------------------------------

    def _icon(self, notice: Notice) -> str:
        return _ICON.get(notice.kind, _LEVEL_ICON[notice.level])

    def _footer(self, notice: Notice) -> Block:
        parts = [f"run `{escape(notice.run)}`"]
        if self.run_url:
            parts.append(_link(self.run_url, "open in Prefect") or "")
        return _context(parts)

    def _page(self) -> str:
        # The group mention is configuration (``<!subteam^ID>``), so it is not escaped.
        return f"{self.oncall} " if self.oncall else ""

    def _simple(self, notice: Notice, headline: str, pairs: Sequence[tuple[str, object]] = (),
                page: bool = False, broadcast: bool = False) -> Message:
        mention = self._page() if page else ""
        blocks = [_section(f"{self._icon(notice)} {mention}{headline}")]
        fields = _fields(pairs)
        if fields:
            blocks.append(fields)
        blocks.append(self._footer(notice))
        return Message(f"{mention}{escape(notice.text)}", blocks, broadcast)

    # --- one method per notice kind ---------------------------------------------------------

    def _start(self, notice: StartNotice) -> Message:
        header = {"type": "header", "text": {
            "type": "plain_text", "emoji": True,
            "text": _cut(f"🧪 Game day: {notice.scenario or 'game day'}", HEADER_LIMIT)}}
        who = " · ".join(x for x in (
            f"*{escape(notice.environment)}*" if notice.environment else None,
            f"target {escape(notice.target)}" if notice.target else None,
            f"requested by *{escape(notice.requester)}*" if notice.requester else None) if x)
        blocks: list[Block] = [header, _section(who or escape(notice.text))]
        fields = _fields([("Ladder", _lines(notice.ladder, numbered=True)),
                          ("Guards", _lines(notice.guards))])
        if fields:
            blocks.append(fields)
        blocks.append(self._footer(notice))
        return Message(escape(notice.text), blocks)

    def _step(self, notice: StepNotice) -> Message:
        headline = (f"*Step {notice.severity}/{notice.total}* · "
                    f"{escape(notice.fault or notice.text)} for {notice.dwell:g}s\n"
                    f"_expires by itself after {notice.ttl:g}s_")
        return self._simple(notice, headline)

    def _breach(self, notice: BreachNotice) -> Message:
        return self._simple(
            notice, f"*Guard `{escape(notice.guard)}` breached — stopping at step "
            f"{notice.severity}*",
            [("Observed", _number(notice.observed) or "no data"),
             ("Threshold", escape(notice.threshold))], page=True)

    def _probe(self, notice: ProbeNotice) -> Message:
        by = f" by `{escape(notice.guard)}`" if notice.guard else ""
        return self._simple(notice, f"*Probe {notice.probe}/{notice.budget}* · "
                            f"{escape(notice.fault)} — {escape(notice.verdict)}{by}")

    def _search(self, notice: SearchNotice) -> Message:
        if notice.bracket is None:
            return self._simple(notice, f"*Breaking point not found* — {escape(notice.text)}")
        return self._simple(notice, f"*Breaking point:* {escape(notice.bracket)}",
                            [("Probes", notice.probes), ("Ended", escape(notice.stopped))])

    def _rollback_failed(self, notice: RollbackFailedNotice) -> Message:
        problems = _lines(notice.problems) or escape(notice.text)
        return self._simple(
            notice, f"*ROLLBACK FAILED — faults may remain.* Check the target now; each fault "
            f"still expires by itself at its TTL.\n{problems}", page=True, broadcast=True)

    def _recovery(self, notice: RecoveryNotice) -> Message:
        if not notice.recovered:
            return self._simple(notice, f"*Not recovered* — {escape(notice.text)}")
        seconds = _number(notice.seconds, " s", ".1f")
        return self._simple(notice, f"*Recovered*{f' in {seconds}' if seconds else ''}")

    def _summary(self, notice: SummaryNotice) -> Message:
        # The postmortem's own figures (one report model), so chat and postmortem agree.
        run = notice.digest
        icon = _OUTCOME_ICON.get(run.outcome, ":memo:")
        of = f" of {run.planned_steps}" if run.planned_steps else ""
        held = f"{run.highest_held}{of}" if run.highest_held else f"none{of}"
        blocks = [_section(f"{icon} *Outcome: {escape(run.outcome_text)}* · "
                           f"{escape(run.scenario)} in {escape(run.environment)}\n"
                           f"{escape(run.summary or notice.text)}")]
        fields = _fields([
            ("Highest severity held", held), ("First broken", run.first_broken),
            ("Stopped by", f"`{escape(run.stopped_by)}`" if run.stopped_by else None),
            ("Breaking point", escape(run.breaking_point) if run.breaking_point else None),
            ("Trend", _trend(run.trend, run.regression)),
            ("Error budget", escape(run.budget) if run.budget else None),
            ("Alerts not expected", _lines(run.unexpected_alerts)),
            ("Postmortem", _link(notice.postmortem, "postmortem")),
            ("Learnings", _lines(run.learnings))])
        if fields:
            blocks.append(fields)
        blocks.append(self._footer(notice))
        return Message(escape(notice.text), blocks)

    def _suite(self, notice: SuiteNotice) -> Message:
        # One line per scenario, in sections of at most Slack's length (a long suite spans
        # several); the header says how many ran.
        header = {"type": "header", "text": {
            "type": "plain_text", "emoji": True,
            "text": _cut(f"{notice.suite} suite in {notice.environment}: {notice.ran} ran, "
                         f"{notice.skipped} skipped", HEADER_LIMIT)}}
        blocks: list[Block] = [header]
        chunk = ""
        for line in (_suite_line(row) for row in notice.rows):
            if chunk and len(chunk) + 1 + len(line) > SECTION_LIMIT:
                blocks.append(_section(chunk))
                chunk = ""
            chunk = f"{chunk}\n{line}" if chunk else line
        if chunk:
            blocks.append(_section(chunk))
        if len(blocks) > MAX_BLOCKS - 1:
            blocks = [*blocks[:MAX_BLOCKS - 2], _section("… more scenarios in the Prefect UI")]
        blocks.append(self._footer(notice))
        return Message(escape(_cut(notice.text, SECTION_LIMIT)), blocks)

    def _signoff_requested(self, notice: SignoffRequestedNotice) -> Message:
        at = f" for step {notice.severity}" if notice.severity else ""
        link = _link(self.run_url, "approve or reject in Prefect")
        return self._simple(notice, f"*Sign-off needed{at}* — {escape(notice.text)}"
                            + (f"\n{link}" if link else ""))


def _suite_line(row: SuiteRow) -> str:
    """``:fast_forward: *auth-aborts* skipped — error budget spent: … · budget 0.0% left``."""
    icon = _OUTCOME_ICON.get(row.outcome, ":grey_question:")
    line = f"{icon} *{escape(row.scenario)}* {escape(row.outcome)}"
    if row.note:
        line += f" — {escape(_cut(row.note, SUITE_NOTE_LIMIT))}"
    if row.breaking_point:
        line += f" · {escape(row.breaking_point)}"
    if row.regression and row.trend:
        line += f" · :chart_with_downwards_trend: *Regression:* {escape(row.trend)}"
    if row.budget_left is not None:
        line += f" · budget {percent(row.budget_left)} left"
    return line
