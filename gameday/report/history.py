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


def history_dir(catalog: Path | None = None) -> Path:
    """``$GAMEDAY_HISTORY``, else ``history/`` in the catalog (see ``catalog_root``)."""
    env = os.environ.get("GAMEDAY_HISTORY")
    return Path(env) if env else catalog_root(catalog) / "history"


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
        postmortem=shown_path(postmortem))


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
