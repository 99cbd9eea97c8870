"""The learn phase outside Prefect: postmortem, charts, history and a journal note, once."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from gameday.journal import read_journal
from gameday.notes import PostmortemNote
from gameday.protocol.learn import write_postmortem
from gameday.report.history import read_findings
from tests.report.conftest import DATA

RUN = "dd75cb99-5491-4f6d-be28-69658ee3e683"  # the recorded failed rollback


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """State, reports, catalog and history in tmp, holding the recorded run's journal."""
    runs = tmp_path / "state" / "runs" / RUN
    runs.mkdir(parents=True)
    shutil.copy(DATA / "rollback_failed.journal.jsonl", runs / "journal.jsonl")
    (tmp_path / "catalog").mkdir()
    for name, value in {"GAMEDAY_STATE": "state", "GAMEDAY_REPORTS": "reports",
                        "GAMEDAY_CATALOG": "catalog", "GAMEDAY_HISTORY": "history"}.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    return tmp_path


def test_write_postmortem_works_inside_a_running_event_loop(folders: Path) -> None:
    """Called from a coroutine (the flow's exception path) it still writes everything."""
    async def in_a_flow() -> Path:
        return write_postmortem(RUN, runbook="docs/runbooks/auth-service.md")

    path = asyncio.run(in_a_flow())
    assert path == folders / "reports" / RUN / "postmortem.md"
    assert {p.name for p in path.parent.iterdir()} == {"postmortem.md", "latency.png",
                                                       "errors.png"}
    text = path.read_text()
    assert text.startswith("> [!CAUTION]")
    # The environment cannot be found here, and the report says so instead of failing.
    assert "environment 'demo' not found" in text


def test_learning_twice_records_the_run_once(folders: Path) -> None:
    """A retried learn phase leaves one finding and one journal note."""
    write_postmortem(RUN)
    write_postmortem(RUN)
    (entry,) = read_findings("auth-latency-ladder")
    assert (entry.run, entry.outcome, entry.highest_held) == (RUN, "rollback_failed", 1)
    events = read_journal(folders / "state" / "runs" / RUN / "journal.jsonl")
    notes = [e for e in events if isinstance(e, PostmortemNote)]
    assert len(notes) == 2  # the recorded one (another path) and this run's
    assert notes[-1].path == str(folders / "reports" / RUN / "postmortem.md")
