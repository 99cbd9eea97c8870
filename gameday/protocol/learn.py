"""Learn: the postmortem, rebuilt from the journal so a crashed run gets one too."""

from __future__ import annotations

from pathlib import Path

from gameday.journal import read_journal
from gameday.paths import journal_path, reports_dir
from gameday.report import build_report, write_report


def write_postmortem(run: str, *, runbook: str | None = None, description: str = "",
                     run_url: str | None = None) -> Path:
    """Render ``reports/out/<run>/postmortem.md`` from the run's journal."""
    report = build_report(read_journal(journal_path(run)), run_url=run_url, runbook=runbook,
                          description=description)
    return write_report(report, reports_dir() / run)
