"""Slack Block Kit messages for notices (pure: no I/O).

Each message is short enough to read on a phone's lock screen: a bold first line that says
what happened, at most a few two-column fields (they stack on narrow screens), and a small
context line with the run. The plain ``text`` is what push notifications and screen readers
show, so it always carries the point of the message — and the on-call mention, where there is
one, since a mention inside blocks alone does not notify anybody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gameday.notify.core import Notice

# Slack's own limits, with room for the ellipsis.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10

_ICON = {
    "start": ":test_tube:", "step": ":arrow_forward:", "breach": ":rotating_light:",
    "vanished": ":warning:", "rollback": ":white_check_mark:", "rollback_failed": ":sos:",
    "recovery": ":green_heart:", "summary": ":memo:", "sweep": ":broom:",
    "signoff_requested": ":raised_hand:", "signoff_granted": ":+1:",
}
_LEVEL_ICON = {"info": ":information_source:", "warning": ":warning:",
               "critical": ":rotating_light:"}
_OUTCOME_ICON = {"passed": ":large_green_circle:", "aborted": ":large_orange_circle:",
                 "failed": ":red_circle:", "cancelled": ":white_circle:",
                 "rollback_failed": ":sos:"}

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


def _link(url: object, label: str) -> str | None:
    # Only web links become links; anything else (a file path) is shown as code.
    if isinstance(url, str) and url.startswith(("http://", "https://")) and "|" not in url:
        return f"<{escape(url)}|{label}>"
    return f"`{escape(url)}`" if url else None


def _number(value: object, unit: str = "", digits: str = ".4g") -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:{digits}}{unit}"
    return None


def _lines(values: object, numbered: bool = False) -> str | None:
    if not isinstance(values, list | tuple) or not values:
        return None
    return "\n".join(f"{i}. {escape(v)}" if numbered else f"• {escape(v)}"
                     for i, v in enumerate(values, start=1))


@dataclass(frozen=True)
class Layout:
    """What every message of a run shares: who to page and where the run can be seen."""

    oncall: str | None = None
    run_url: str | None = None

    def message(self, notice: Notice) -> Message:
        """The message for ``notice``; unknown kinds get a plain one with the notice text."""
        build = getattr(self, f"_{notice.kind}", None)
        message: Message = build(notice, notice.fields) if callable(build) else self._plain(
            notice, notice.fields)
        return message

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

    def _plain(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        return self._simple(notice, escape(notice.text))

    def _start(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        scenario = f.get("scenario") or "game day"
        header = {"type": "header", "text": {
            "type": "plain_text", "emoji": True,
            "text": _cut(f"🧪 Game day: {scenario}", HEADER_LIMIT)}}
        who = " · ".join(x for x in (
            f"*{escape(f['environment'])}*" if f.get("environment") else None,
            f"target {escape(f['target'])}" if f.get("target") else None,
            f"requested by *{escape(f['requester'])}*" if f.get("requester") else None) if x)
        blocks: list[Block] = [header, _section(who or escape(notice.text))]
        fields = _fields([("Ladder", _lines(f.get("ladder"), numbered=True)),
                          ("Guards", _lines(f.get("guards")))])
        if fields:
            blocks.append(fields)
        blocks.append(self._footer(notice))
        return Message(escape(notice.text), blocks)

    def _step(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        total = f"/{f['total']}" if f.get("total") else ""
        severity = f.get("severity", "?")
        fault = escape(f.get("fault") or notice.text)
        dwell = _number(f.get("dwell"), "s", "g")
        ttl = _number(f.get("ttl"), "s", "g")
        headline = f"*Step {severity}{total}* · {fault}" + (f" for {dwell}" if dwell else "")
        if ttl:
            headline += f"\n_expires by itself after {ttl}_"
        return self._simple(notice, headline)

    def _breach(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        guard = escape(f.get("guard") or "?")
        at = f" at step {f['severity']}" if f.get("severity") else ""
        observed = _number(f.get("observed")) or "no data"
        return self._simple(
            notice, f"*Guard `{guard}` breached — stopping{at}*",
            [("Observed", observed), ("Threshold", escape(f.get("threshold") or ""))],
            page=True)

    def _vanished(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        return self._simple(notice, f"*Fault vanished — stopping*\n{escape(notice.text)}")

    def _rollback(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        return self._simple(notice, "*Rollback done* — nothing of this run is active",
                            [("Time to clean", _number(f.get("seconds"), " s", ".2f")),
                             ("Faults reverted", f.get("reverted"))])

    def _rollback_failed(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        problems = _lines(f.get("problems")) or escape(notice.text)
        return self._simple(
            notice, f"*ROLLBACK FAILED — faults may remain.* Check the target now; each fault "
            f"still expires by itself at its TTL.\n{problems}", page=True, broadcast=True)

    def _recovery(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        if f.get("recovered") is False:
            return self._simple(notice, f"*Not recovered* — {escape(notice.text)}")
        seconds = _number(f.get("seconds"), " s", ".1f")
        return self._simple(notice, f"*Recovered*{f' in {seconds}' if seconds else ''}")

    def _summary(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        outcome = str(f.get("outcome") or "ended")
        icon = _OUTCOME_ICON.get(outcome, ":memo:")
        held = f.get("highest_held")
        of = f" of {f['max_severity']}" if f.get("max_severity") else ""
        blocks = [_section(f"{icon} *Outcome: {escape(outcome)}*\n"
                           f"{escape(f.get('summary') or notice.text)}")]
        fields = _fields([("Highest severity held", f"{held}{of}" if held else f"none{of}"),
                          ("First broken", f.get("first_broken")),
                          ("Postmortem", _link(f.get("postmortem"), "postmortem"))])
        if fields:
            blocks.append(fields)
        blocks.append(self._footer(notice))
        return Message(escape(notice.text), blocks)

    def _sweep(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        return self._simple(notice, f"*Swept leftovers* — {escape(notice.text)}")

    def _signoff_requested(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        at = f" for step {f['severity']}" if f.get("severity") else ""
        link = _link(f.get("url") or self.run_url, "approve or reject in Prefect")
        return self._simple(notice, f"*Sign-off needed{at}* — {escape(notice.text)}"
                            + (f"\n{link}" if link else ""))

    def _signoff_granted(self, notice: Notice, f: Mapping[str, Any]) -> Message:
        by = f" by *{escape(f['approver'])}*" if f.get("approver") else ""
        return self._simple(notice, f"*Sign-off granted*{by} — {escape(notice.text)}")
