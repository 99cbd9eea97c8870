"""The catalog's history: one line per run, the breaking point the learn phase compares with
the previous run's, and ``catalog show`` printing the latest findings and the breaking point
week by week."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from gameday.cli import main
from gameday.journal import Event, FaultRevertedEvent, Journal
from gameday.protocol.learn import learn
from gameday.report.breaking import Trend
from gameday.report.history import (
    Finding,
    FoundBracket,
    finding,
    history_dir,
    read_findings,
    record,
)
from gameday.search_events import SearchEndedEvent, SearchStartedEvent
from tests.report.conftest import CASES, journal, report

REPO = Path(__file__).resolve().parents[2]
RUN = "ddacbc80-5080-4117-9dc0-ed9fccc5f868"  # the recorded guard abort
GUARDS = "0123456789abcdef"


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


def searched(held: float, broken: float, *, conflict: str | None = None,
             span: tuple[float, float] | None = None) -> list[Event]:
    """The recorded guard abort with a search spliced in after its last revert, ending with
    the bracket ``held``–``broken`` ms."""
    recorded = journal("aborted")
    cut = 1 + max(i for i, e in enumerate(recorded) if isinstance(e, FaultRevertedEvent))
    at = recorded[cut - 1].at
    text = f"holds at {held:g} ms, breaks at {broken:g} ms"
    search: list[Event] = [
        SearchStartedEvent(at=at + 0.1, field="ms", unit="ms", held=120.0, broken=250.0,
                           held_severity=2, broken_severity=3, resolution=10.0,
                           resolution_text="10ms", budget=6, dwell=6.0, dwell_floor=4.0,
                           guards_hash=GUARDS),
        SearchEndedEvent(at=at + 0.2, held=held, broken=broken, text=text,
                         stopped="the bracket is 10 ms wide", confirmed=conflict is None,
                         conflict=conflict, probes=5,
                         span_held=span[0] if span else None,
                         span_broken=span[1] if span else None)]
    return [*recorded[:cut], *search, *recorded[cut:]]


def earlier(run: str, date: str, held: float, broken: float,
            environment: str = "demo") -> Finding:
    """A finding of an earlier run of the same scenario, with a bracket in ms."""
    return Finding(date=date, run=run, scenario="auth-latency-ladder", environment=environment,
                   outcome="aborted", highest_held=2, first_broken=3, planned_steps=3,
                   postmortem=f"reports/out/{run}/postmortem.md",
                   breaking_point=FoundBracket(field="ms", unit="ms", held=held, broken=broken,
                                               text=f"holds at {held:g} ms, breaks at "
                                               f"{broken:g} ms", confirmed=True,
                                               guards_hash=GUARDS))


def test_a_search_s_bracket_is_recorded_and_read_back(history: Path) -> None:
    """The bracket, its direction, trust and guards go into the line and come back equal."""
    built = report("aborted", events=searched(178, 190))
    path = record(finding(built, Path("p.md")))
    assert path is not None
    data = json.loads(path.read_text())["breaking_point"]
    assert data == {"field": "ms", "unit": "ms", "worse_up": True, "integer": False,
                    "held": 178.0, "broken": 190.0, "text": "holds at 178 ms, breaks at 190 ms",
                    "monotone": True, "confirmed": True, "guards_hash": GUARDS,
                    "span_held": 178.0, "span_broken": 190.0}
    (entry,) = read_findings("auth-latency-ladder")
    assert entry == finding(built, Path("p.md"))
    assert entry.breaking_point is not None and entry.breaking_point.bracket.width == 12


def test_a_run_without_a_search_records_no_bracket(history: Path) -> None:
    """The recorded runs asked for no search: their lines say null."""
    path = record(finding(report("aborted"), Path("p.md")))
    assert path is not None
    assert json.loads(path.read_text())["breaking_point"] is None


def test_lines_written_before_searches_still_read(history: Path) -> None:
    """An old line, without ``breaking_point``, reads as a finding without a bracket."""
    history.mkdir()
    old = {"date": "2026-11-27T21:51:40Z", "run": "old", "scenario": "auth-latency-ladder",
           "environment": "demo", "outcome": "aborted", "highest_held": 2, "first_broken": 3,
           "planned_steps": 3, "guard": "error_rate_percent", "requester": "alice",
           "learnings": 5, "postmortem": "reports/out/old/postmortem.md"}
    (history / "auth-latency-ladder.jsonl").write_text(json.dumps(old) + "\n")
    (entry,) = read_findings("auth-latency-ladder")
    assert (entry.run, entry.highest_held, entry.breaking_point) == ("old", 2, None)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """State, reports, an empty catalog and history in tmp."""
    (tmp_path / "catalog").mkdir()
    for name, value in {"GAMEDAY_STATE": "state", "GAMEDAY_REPORTS": "reports",
                        "GAMEDAY_CATALOG": "catalog", "GAMEDAY_HISTORY": "history"}.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    return tmp_path


def learned_with(state: Path, events: list[Event]) -> tuple[Trend, FoundBracket]:
    """Learn the recorded run from ``events`` (journal alone, no charts): the trend its report
    carries, and the bracket its new finding recorded."""
    with Journal(state / "state" / "runs" / RUN / "journal.jsonl") as written:
        for event in events:
            written.write(event)
    made = asyncio.run(learn(RUN, prometheus=False, charts=False)).report
    assert made.search is not None and made.search.trend is not None
    (entry,) = [f for f in read_findings("auth-latency-ladder") if f.run == RUN]
    assert entry.breaking_point is not None and entry.breaking_point.text == made.search.text
    return made.search.trend, entry.breaking_point


def test_learn_compares_the_breaking_point_with_the_previous_run(state: Path) -> None:
    """The report's search carries its trend against the latest earlier run in the same
    environment; a retried learn phase compares with that run again, not with itself."""
    record(earlier("week-before", "2026-11-13T10:00:00Z", 200, 210))
    record(earlier("before", "2026-11-20T10:00:00Z", 178, 190))
    record(earlier("staging", "2026-11-21T10:00:00Z", 60, 70, environment="staging"))
    trend, found = learned_with(state, searched(110, 120))
    assert (trend.kind, trend.previous_run) == ("regression", "before")
    assert trend.text == "breaking point fell from 178–190 ms to 110–120 ms since 2026-11-20"
    assert (found.held, found.broken) == (110, 120)
    again = asyncio.run(learn(RUN, prometheus=False, charts=False)).report.search
    assert again is not None and again.trend is not None
    assert (again.trend.kind, again.trend.previous_run) == ("regression", "before")
    assert len(read_findings("auth-latency-ladder")) == 4


def test_learn_compares_a_noisy_bracket_by_its_span(state: Path) -> None:
    """A bracket that is not monotone is compared by its span: one reaching into the previous
    bracket is no significant change, however low its own ends."""
    record(earlier("before", "2026-11-20T10:00:00Z", 178, 190))
    trend, found = learned_with(state, searched(110, 120, span=(110, 180),
                                                conflict="180 ms held after 110 ms broke"))
    assert trend.kind == "no_change"
    assert trend.text == ("no significant change since 2026-11-20 "
                          "(178–190 ms then, 110–120 ms now)")
    assert not found.monotone and (found.span_held, found.span_broken) == (110, 180)


def test_learn_without_history_leaves_the_breaking_point_uncompared(state: Path) -> None:
    """Rebuilding an old report (history=False) neither reads nor writes the history."""
    record(earlier("before", "2026-11-20T10:00:00Z", 178, 190))
    with Journal(state / "state" / "runs" / RUN / "journal.jsonl") as written:
        for event in searched(110, 120):
            written.write(event)
    made = asyncio.run(learn(RUN, prometheus=False, charts=False, history=False)).report
    assert made.search is not None and made.search.trend is None
    assert [f.run for f in read_findings("auth-latency-ladder")] == ["before"]


def test_catalog_show_prints_the_breaking_point_week_by_week(
        history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After the latest findings, one table per environment whose runs found a bracket: the
    week, its runs, the latest bracket, its highest held step and the change; the scenario's
    search settings are shown with the field resolved, and the output stays YAML."""
    name = "auth-latency-breaking-point"
    for entry in (earlier("a", "2026-11-17T10:00:00Z", 178, 190),
                  earlier("b", "2026-11-20T10:00:00Z", 180, 190),
                  earlier("c", "2026-11-24T10:00:00Z", 110, 120),
                  earlier("s", "2026-11-25T10:00:00Z", 60, 70, environment="staging")):
        record(entry.model_copy(update={"scenario": name}))
    assert main(["catalog", "--catalog", str(REPO / "catalog"), "show", name]) == 0
    out = capsys.readouterr().out
    data = yaml.safe_load(out)
    assert data["search"] == {"resolution": "10ms", "max_probes": None, "field": "ms",
                              "dwell": None}
    assert ("# breaking-point search: on ms after a guard breach, to 10ms, as many probes as "
            "the bracket needs") in out
    tail = out.split("# findings:", 1)[1]
    demo = tail.split("# Breaking point, week by week (demo, oldest first):\n", 1)[1]
    header, first, second = (line.split() for line in demo.splitlines()[:3])
    assert header == ["#", "WEEK", "RUNS", "BREAKING", "POINT", "HELD", "CHANGE"]
    assert first == ["#", "2026-W47", "2", "holds", "at", "180", "ms,", "breaks", "at", "190",
                     "ms", "2", "—"]
    assert second == ["#", "2026-W48", "1", "holds", "at", "110", "ms,", "breaks", "at", "120",
                      "ms", "2", "regression"]
    assert "# Breaking point, week by week (staging, oldest first):" in tail
    only = ["catalog", "--catalog", str(REPO / "catalog"), "show", name, "--env", "staging"]
    assert main(only) == 0
    out = capsys.readouterr().out
    assert "(staging, oldest first)" in out and "(demo, oldest first)" not in out


def test_catalog_show_prints_no_weekly_table_without_brackets(
        history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Findings without a breaking point print no week-by-week table."""
    record(finding(report("aborted"), Path("p.md")))
    assert main(["catalog", "--catalog", str(REPO / "catalog"), "show",
                 "auth-latency-ladder"]) == 0
    out = capsys.readouterr().out
    assert "# findings: the latest 1 of 1 run(s)" in out
    assert "week by week" not in out and "breaking-point search" not in out
