"""The catalog's history: one line per run, and ``catalog show`` printing the latest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gameday.cli import main
from gameday.report.history import finding, history_dir, read_findings, record
from tests.report.conftest import CASES, report

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty history folder, chosen by ``GAMEDAY_HISTORY``."""
    folder = tmp_path / "history"
    monkeypatch.setenv("GAMEDAY_HISTORY", str(folder))
    return folder


def test_each_run_appends_one_line(history: Path) -> None:
    """A run adds date, environment, outcome, highest held, guard and postmortem path."""
    built = report("aborted")
    path = record(finding(built, Path("reports/out/x/postmortem.md")))
    assert path == history / "auth-latency-ladder.jsonl"
    (line,) = path.read_text().splitlines()
    data = json.loads(line)
    assert data["date"] == "2026-11-27T21:43:01Z"
    assert (data["environment"], data["outcome"], data["highest_held"], data["guard"]) == (
        "demo", "aborted", 2, "error_rate_percent")
    assert data["postmortem"] == "reports/out/x/postmortem.md"


def test_a_run_is_recorded_once(history: Path) -> None:
    """Recording the same run again (a retried learn phase) adds nothing."""
    entry = finding(report("passed"), Path("p.md"))
    assert record(entry) is not None
    assert record(entry) is None
    assert len(read_findings("auth-latency-ladder")) == 1


def test_history_folder_defaults_to_the_catalog(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """Without GAMEDAY_HISTORY the history lives in the catalog's ``history/``."""
    monkeypatch.delenv("GAMEDAY_HISTORY", raising=False)
    monkeypatch.setenv("GAMEDAY_CATALOG", str(tmp_path))
    assert history_dir() == tmp_path / "history"


def test_unreadable_lines_are_skipped(history: Path) -> None:
    """A torn or hand-edited line does not hide the findings around it."""
    for case in CASES:
        record(finding(report(case), Path(f"{case}.md")))
    path = history / "auth-latency-ladder.jsonl"
    path.write_text(path.read_text() + '{"date": "torn\n')
    assert [f.outcome for f in read_findings("auth-latency-ladder")] == [
        "passed", "aborted", "rollback_failed"]


def test_catalog_show_prints_the_latest_findings(history: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``catalog show NAME`` ends with the latest findings, newest first, as YAML comments."""
    for case in CASES:
        record(finding(report(case), Path(f"reports/out/{case}/postmortem.md")))
    catalog = str(REPO / "catalog")
    assert main(["catalog", "--catalog", catalog, "show", "auth-latency-ladder",
                 "--findings", "2"]) == 0
    out = capsys.readouterr().out
    tail = out.split("# findings:", 1)[1].splitlines()
    assert tail[0].startswith(" the latest 2 of 3 run(s), newest first")
    assert "rollback_failed" in tail[1] and "reports/out/rollback_failed/postmortem.md" in tail[1]
    assert "aborted  held 2/3, broke at 3, guard error_rate_percent" in tail[2]


def test_catalog_show_says_when_there_is_no_history(history: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A scenario never run says so instead of printing nothing."""
    assert main(["catalog", "--catalog", str(REPO / "catalog"), "show", "auth-aborts"]) == 0
    assert "# findings: none yet" in capsys.readouterr().out
