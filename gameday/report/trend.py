"""How a scenario's breaking point moves from run to run and from week to week (pure).

Two brackets say something only when one lies wholly below the other: overlapping brackets
are within what the search could tell apart. A bracket found under other guards (queries,
thresholds, ``for``) measures another thing. A search that was not monotone (a held value as
severe as a broken one: the service flaps near its limit) is compared by its span, the
bracket widened to every conflicting value, so a flap inside the zone is no change and a zone
that moved wholly is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gameday.report.breaking import Trend, TrendKind
from gameday.report.history import Finding, FoundBracket
from gameday.search_events import Axis, Bracket

CHANGE_TEXT: dict[TrendKind, str] = {"regression": "regression", "improvement": "improvement",
                                     "no_change": "no change",
                                     "not_comparable": "— (guards changed)"}


@dataclass(frozen=True)
class WeekRow:
    """One ISO week of a scenario's runs in one environment."""

    week: str
    runs: int
    #: The week's latest finding with a bracket; None if no run of the week found one.
    latest: Finding | None
    #: Against the previous row; None when either row has no bracket (or for the first).
    change: TrendKind | None = None

    @property
    def bracket_text(self) -> str:
        """``holds at 178 ms, breaks at 190 ms`` (flagged by the search when not monotone or
        not confirmed), or ``—``."""
        found = self.latest.breaking_point if self.latest else None
        return found.text if found else "—"

    @property
    def highest_held(self) -> int | None:
        """The highest ladder step that held in the run of the bracket."""
        return self.latest.highest_held if self.latest else None

    @property
    def change_text(self) -> str:
        """``regression``, ``improvement``, ``no change`` or ``—``."""
        return CHANGE_TEXT[self.change] if self.change else "—"


def previous(findings: Sequence[Finding], run: str, environment: str,
             field: str) -> Finding | None:
    """The latest finding before ``run`` in ``environment`` with a bracket on ``field``.

    ``findings`` are one scenario's, oldest first (``read_findings``). When ``run`` is among
    them (its report rebuilt), only the lines before its own count as earlier.
    """
    position = next((i for i, f in enumerate(findings) if f.run == run), len(findings))
    for candidate in reversed(findings[:position]):
        found = candidate.breaking_point
        if candidate.environment == environment and found is not None and found.field == field:
            return candidate
    return None


def compare(current: FoundBracket, previous: Finding | None) -> Trend | None:
    """``current`` against ``previous``' bracket; None when there is none to compare with."""
    then = previous.breaking_point if previous else None
    if previous is None or then is None:
        return None
    date = previous.date[:10]

    def trend(kind: TrendKind, text: str) -> Trend:
        return Trend(kind, text, previous_run=previous.run, previous_date=date)

    if then.guards_hash != current.guards_hash:
        return trend("not_comparable", f"not comparable: the guards changed since {date}")
    if then.field != current.field:
        return trend("not_comparable",
                     f"not comparable: {then.field} was searched on {date}, {current.field} now")
    axis = current.axis
    old, new = range_text(then.bracket, axis), range_text(current.bracket, axis)
    # Bracket.below minds the direction: for bandwidth, breaking at a higher rate is lower.
    if current.span.below(then.span, axis):
        return trend("regression", f"breaking point fell from {old} to {new} since {date}")
    if then.span.below(current.span, axis):
        return trend("improvement", f"breaking point rose from {old} to {new} since {date}")
    return trend("no_change", f"no significant change since {date} ({old} then, {new} now)")


def range_text(bracket: Bracket, axis: Axis) -> str:
    """``178–190 ms``: the bracket's ends, lower first, with the unit once."""
    low, high = (axis.text(v) for v in sorted((bracket.held, bracket.broken)))
    return f"{low.partition(' ')[0]}–{high}"


def weekly(findings: Sequence[Finding], environment: str) -> list[WeekRow]:
    """One row per ISO week with runs in ``environment``, oldest first, each compared with the
    row before it."""
    weeks: dict[str, list[Finding]] = {}
    for entry in findings:
        week = iso_week(entry.date)
        if entry.environment == environment and week is not None:
            weeks.setdefault(week, []).append(entry)
    rows: list[WeekRow] = []
    for week in sorted(weeks):
        runs = weeks[week]
        latest = next((f for f in reversed(runs) if f.breaking_point is not None), None)
        before = rows[-1].latest if rows else None
        found = latest.breaking_point if latest else None
        trend = compare(found, before) if found is not None else None
        rows.append(WeekRow(week, len(runs), latest, trend.kind if trend else None))
    return rows


def iso_week(date: str) -> str | None:
    """``2026-W48`` for an ISO 8601 date; None if it does not parse (a hand-edited line)."""
    try:
        year, week, _ = datetime.fromisoformat(date).isocalendar()
    except ValueError:
        return None
    return f"{year}-W{week:02d}"
