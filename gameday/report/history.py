"""The catalog's history of findings: one JSON line per run in ``history/<scenario>.jsonl``.

The folder is ``$GAMEDAY_HISTORY``, else the catalog's ``history/``. A run is recorded once:
the learn phase may be retried, and a retry must not count the run twice.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gameday.load import catalog_root
from gameday.report.model import GameDayReport
from gameday.search_events import Axis, Bracket


def history_dir(catalog: Path | None = None) -> Path:
    """``$GAMEDAY_HISTORY``, else ``history/`` in the catalog (see ``catalog_root``)."""
    env = os.environ.get("GAMEDAY_HISTORY")
    return Path(env) if env else catalog_root(catalog) / "history"


class FoundBracket(BaseModel):
    """The breaking point a run's search bracketed, with what it takes to compare it later."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    field: str = Field(description="the magnitude searched, e.g. ms, probability, kbps")
    unit: str
    worse_up: bool = Field(True, description="a larger value is more severe (not bandwidth)")
    integer: bool = False
    held: float
    broken: float
    text: str = Field(description="e.g. holds at 178 ms, breaks at 190 ms")
    monotone: bool = Field(True, description="no held value was as severe as a broken one")
    confirmed: bool = False
    #: Brackets found under different guards measure different things: they do not compare.
    guards_hash: str
    #: Where the service may break: the bracket widened to conflicting values when the search
    #: was not monotone (None: the bracket itself).
    span_held: float | None = None
    span_broken: float | None = None

    @property
    def span(self) -> Bracket:
        """The zone comparisons use: the bracket, widened where the probes disagreed."""
        return Bracket(self.held if self.span_held is None else self.span_held,
                       self.broken if self.span_broken is None else self.span_broken)

    @property
    def axis(self) -> Axis:
        """The magnitude and which way is worse."""
        return Axis(self.field, self.unit, self.worse_up, self.integer)

    @property
    def bracket(self) -> Bracket:
        """The held and the broken end."""
        return Bracket(self.held, self.broken)


class Finding(BaseModel):
    """What one run found, as the catalog keeps it."""

    # Lines written by later versions may carry more fields: keep reading them.
    model_config = ConfigDict(frozen=True, extra="ignore")
    date: str = Field(description="when the run started, ISO 8601 UTC")
    run: str
    scenario: str
    environment: str
    outcome: str
    highest_held: int | None = Field(description="highest severity that held")
    first_broken: int | None = None
    planned_steps: int = 0
    guard: str | None = Field(None, description="the guard that stopped the run, if any")
    requester: str = ""
    learnings: int = Field(0, description="how many learnings the postmortem suggests")
    postmortem: str = Field(description="path of the postmortem")
    #: Lines written before searches existed have none; so does a run whose search did not end.
    breaking_point: FoundBracket | None = None

    @property
    def line(self) -> str:
        """One line for people: when, where, how it ended, how far the ladder got."""
        reach = (f"held {self.highest_held}/{self.planned_steps}" if self.highest_held
                 else "none held")
        broke = f", broke at {self.first_broken}" if self.first_broken else ""
        guard = f", guard {self.guard}" if self.guard else ""
        return (f"{self.date[:16].replace('T', ' ')}  {self.environment}  {self.outcome}  "
                f"{reach}{broke}{guard}  {self.postmortem}")


def shown_path(path: Path) -> str:
    """The postmortem's path relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def found_bracket(report: GameDayReport) -> FoundBracket | None:
    """The bracket ``report``'s search ended with; None without a search or an end."""
    search = report.search
    if search is None or search.bracket is None:
        return None
    axis = search.axis
    return FoundBracket(field=axis.field, unit=axis.unit, worse_up=axis.worse_up,
                        integer=axis.integer, held=search.bracket.held,
                        broken=search.bracket.broken, text=search.text,
                        monotone=search.monotone, confirmed=search.confirmed,
                        guards_hash=search.guards_hash,
                        span_held=search.span.held if search.span else None,
                        span_broken=search.span.broken if search.span else None)


def finding(report: GameDayReport, postmortem: Path) -> Finding:
    """The finding of ``report``, whose markdown is at ``postmortem``."""
    started = report.started or report.ended or 0.0
    return Finding(
        date=datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        run=report.run, scenario=report.scenario, environment=report.environment,
        outcome=report.outcome, highest_held=report.highest_held,
        first_broken=report.first_broken, planned_steps=report.planned_steps,
        guard=report.guards_fired[0].guard if report.guards_fired else None,
        requester=report.requester, learnings=len(report.learnings),
        postmortem=shown_path(postmortem), breaking_point=found_bracket(report))


def read_findings(scenario: str, folder: Path | None = None) -> list[Finding]:
    """Every finding of ``scenario``, oldest first; unreadable lines are skipped."""
    path = (folder or history_dir()) / f"{scenario}.jsonl"
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            found.append(Finding.model_validate_json(line))
        except ValidationError:
            continue  # a torn or hand-edited line must not hide the others
    return found


def record(entry: Finding, folder: Path | None = None) -> Path | None:
    """Append ``entry`` to its scenario's history; None if the run is already there."""
    folder = folder or history_dir()
    if any(f.run == entry.run for f in read_findings(entry.scenario, folder)):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry.scenario}.jsonl"
    line = (json.dumps(entry.model_dump(mode="json"), ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)  # one write: lines of concurrent runs do not interleave
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
