"""``chaosctl report RUN``: rebuild a postmortem from the journal (and Prometheus)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gameday.cli import main
from gameday.journal import read_journal
from tests.report.conftest import DATA

RUN = "ddacbc80-5080-4117-9dc0-ed9fccc5f868"  # the recorded guard abort


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder holding the recorded aborted run; reports and history in tmp."""
    folder = tmp_path / "state"
    (folder / "runs" / RUN).mkdir(parents=True)
    shutil.copy(DATA / "aborted.journal.jsonl", folder / "runs" / RUN / "journal.jsonl")
    monkeypatch.setenv("GAMEDAY_STATE", str(folder))
    monkeypatch.setenv("GAMEDAY_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("GAMEDAY_HISTORY", str(tmp_path / "history"))
    return folder


def test_journal_only_rebuild_says_what_is_missing(
        state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --journal-only the postmortem and charts are written and the gap is named."""
    before = (state / "runs" / RUN / "journal.jsonl").read_bytes()
    assert main(["report", RUN[:8], "--journal-only"]) == 0
    captured = capsys.readouterr()
    out_dir = tmp_path / "reports" / RUN
    assert f"postmortem: {out_dir / 'postmortem.md'}" in captured.out
    assert "missing: Prometheus' view of the run (journal only)" in captured.err
    assert {p.name for p in out_dir.iterdir()} == {"postmortem.md", "latency.png", "errors.png"}
    # A rebuild neither journals nor records a finding.
    assert (state / "runs" / RUN / "journal.jsonl").read_bytes() == before
    assert not (tmp_path / "history").exists()


def test_rebuild_from_saved_observations(state: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--observed FILE rebuilds what Prometheus saw after its retention is gone."""
    out = tmp_path / "again"
    assert main(["report", "last", "--observed", str(DATA / "aborted.observed.json"),
                 "--out", str(out), "--print"]) == 0
    captured = capsys.readouterr()
    assert "The proxies fired the fault on **866** requests" in captured.out
    assert "missing:" not in captured.err
    assert (out / "postmortem.md").exists()


def test_unreachable_prometheus_is_named_not_fatal(
        state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Prometheus that does not answer leaves a journal-only report naming it."""
    env = tmp_path / "env.yaml"
    env.write_text("name: demo\nprometheus: {url: 'http://127.0.0.1:9', timeout: 1s}\n")
    assert main(["report", RUN, "--env", str(env), "--save-observed",
                 str(tmp_path / "seen.json")]) == 0
    err = capsys.readouterr().err
    assert "every query to Prometheus at http://127.0.0.1:9 failed" in err
    text = (tmp_path / "reports" / RUN / "postmortem.md").read_text()
    assert "Drawn from the guards' journaled samples" in text
    assert (tmp_path / "seen.json").exists()


def test_unknown_run_is_a_usage_error(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run that is not in the state folder exits 2 and says where it looked."""
    assert main(["report", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_recorded_journal_is_still_readable() -> None:
    """The recorded journals parse with the current journal model."""
    for path in DATA.glob("*.journal.jsonl"):
        assert read_journal(path)
