"""The report model: built purely from the journal and what Prometheus saw, and frozen."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from gameday.journal import RunEndedEvent
from gameday.notes import CancelledNote, SignoffGrantedNote
from gameday.report import build_report, run_window
from gameday.report.digest import MAX_LEARNINGS, digest
from gameday.report.observed import BREAKER_STATE, FAULTS_PER_SECOND, Observed, Series
from tests.report.conftest import journal, observed, report

PURE = ("model", "parts", "sections", "observed", "learnings", "links", "digest", "alerting")
IO_LIBRARIES = {"httpx", "requests", "prometheus_api_client", "urllib3", "matplotlib",
                "prefect", "jinja2", "socket", "kubernetes", "slack_sdk", "subprocess"}
IO_MODULES = {"gameday.report.fetch", "gameday.report.render", "gameday.report.charts",
              "gameday.report.history", "gameday.guards.prometheus"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_model_imports_no_io_library() -> None:
    """The modules that build the model import no network, drawing or template library."""
    folder = Path(__file__).resolve().parents[2] / "gameday" / "report"
    for name in PURE:
        imports = _imports(folder / f"{name}.py")
        assert not {i for i in imports if i.split(".")[0] in IO_LIBRARIES}, name
        assert not imports & IO_MODULES, name


def test_the_report_is_frozen() -> None:
    """A report and its parts cannot be changed after they are built."""
    built = report("aborted")
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.outcome = "passed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.steps[0].held = False  # type: ignore[misc]


def test_building_twice_gives_the_same_report() -> None:
    """The same journal and observations always build an equal report."""
    assert report("aborted") == report("aborted")


def test_summary_names_outcome_and_how_far_the_ladder_got(case: str) -> None:
    """Outcome, highest severity held and first broken come from the run's end."""
    expected = {"passed": ("passed", 2, None), "aborted": ("aborted", 2, 3),
                "rollback_failed": ("rollback_failed", 1, 2)}[case]
    built = report(case)
    assert (built.outcome, built.highest_held, built.first_broken) == expected
    assert built.faults_may_remain == (case == "rollback_failed")
    assert built.requester in {"alice", "bob", "carol"}
    assert built.run_url is not None and built.run_url.endswith(built.run)


def test_approver_comes_from_the_sign_off() -> None:
    """A granted sign-off in the journal names the approver."""
    events = [*journal("aborted"), SignoffGrantedNote(message="approved", approver="dana",
                                                      plan_hash="abc123abc123")]
    assert report("aborted", events=events).approver == "dana"
    assert report("aborted").approver is None


def test_steps_carry_metrics_against_the_baseline_and_traffic() -> None:
    """Each step has p50/p95/p99/error rate with deltas, signal verdicts and faults per second."""
    built = report("aborted")
    assert [s.severity for s in built.steps] == [1, 2, 3]
    top = built.steps[2]
    p95 = top.metric("p95 latency")
    assert p95 is not None and p95.delta is not None and p95.delta > 300
    assert [s.state for s in top.signals] == ["broken", "broken"]
    assert all(s.faults_per_second and s.faults_per_second > 10 for s in built.steps)
    assert top.breaker_peak == 2 and built.faults_total and built.faults_total > 500


def test_guard_that_fired_has_value_threshold_and_times() -> None:
    """The guard that stopped the run carries observed value, threshold, detection, revert."""
    (fired,) = report("aborted").guards_fired
    assert (fired.guard, fired.severity, fired.op, fired.threshold) == (
        "error_rate_percent", 3, ">", 5)
    assert fired.observed == 100
    assert fired.detect_seconds is not None and 2 <= fired.detect_seconds <= 10
    assert fired.revert_seconds is not None and fired.revert_seconds < 1


def test_timeline_shows_the_circuit_breaker_from_prometheus() -> None:
    """Circuit breaker moves seen by Prometheus are merged into the timeline, in order."""
    built = report("aborted")
    texts = [t.text for t in built.timeline]
    assert "circuit breaker towards auth-service opened (Prometheus)" in texts
    assert [t.at for t in built.timeline] == sorted(t.at for t in built.timeline)


def test_rollback_separates_reverted_failed_and_recovery() -> None:
    """Rollback lists what it reverted, what failed, and whether recovery came back."""
    good, bad = report("aborted").rollback, report("rollback_failed").rollback
    assert len(good.reverted) == 1 and good.recovered is True and not good.failed
    assert bad.failed and bad.recovered is False and "not back after" in bad.recovery_detail


def test_learnings_come_from_the_data() -> None:
    """Retries, the circuit breaker, recovery and a full ladder each give a finding."""
    aborted = " ".join(report("aborted").learnings)
    assert "Retries multiplied the requests to auth-service" in aborted
    assert "circuit breaker towards auth-service opened at severity 3" in aborted
    assert "extending the ladder" in " ".join(report("passed").learnings)
    failed = report("rollback_failed").learnings
    assert failed[0].startswith("Rollback could not confirm")
    assert any("Recovery exceeded its tolerance" in line for line in failed)


def _replaced(case: str, name: str, value: float) -> Observed:
    base = observed(case)
    series = tuple(Series(s.name, s.query, tuple((t, value) for t, _ in s.points))
                   if s.name == name else s for s in base.series)
    return dataclasses.replace(base, series=series)


def test_a_breaker_that_never_opened_is_a_finding() -> None:
    """Errors rose and a guard fired while the breaker stayed closed: say so."""
    built = build_report(journal("aborted"), observed=_replaced("aborted", BREAKER_STATE, 0))
    assert any("never opened" in line for line in built.learnings)


def test_a_fault_that_fired_on_nothing_is_a_finding() -> None:
    """Steps whose fault the proxies never fired tested nothing: say so."""
    built = build_report(journal("passed"), observed=_replaced("passed", FAULTS_PER_SECOND, 0))
    assert any("fired on no request at severity 1, 2" in line for line in built.learnings)


def test_journal_alone_says_what_is_missing() -> None:
    """Without Prometheus the report still has charts from guard samples and names the gap."""
    built = report("aborted", with_prometheus=False)
    assert any("Prometheus" in m for m in built.missing)
    assert built.faults_total is None and built.steps[0].faults_per_second is None
    assert [c.source for c in built.charts] == ["journal", "journal"]
    assert [line.series for line in built.charts[0].lines] == ["latency_p99_ms"]


def test_step_table_has_one_row_per_step() -> None:
    """The table artifact's rows: one per step, with metrics, deltas and faults per second."""
    rows = report("aborted").step_table()
    assert [r["severity"] for r in rows] == [1, 2, 3]
    assert {"fault", "result", "p95_ms", "p95_delta_ms", "error_rate_pct",
            "faults_per_s"} <= set(rows[0])
    assert rows[2]["result"] == "stopped by error_rate_percent"


def test_run_window_spans_baseline_to_end() -> None:
    """The window charts and range queries cover starts at the baseline, ends at the run's end."""
    events = journal("passed")
    window = run_window(events)
    assert window is not None
    baseline = next(e for e in events if e.event == "baseline")
    assert window[0] == baseline.window.start  # type: ignore[union-attr]
    assert window[1] == next(e.at for e in events if e.event == "run_ended")


def test_a_cancellation_has_its_line_in_the_timeline() -> None:
    """The moment a run was cancelled shows in the timeline, before rollback and the end."""
    events = journal("aborted")
    ended = next(e for e in events if isinstance(e, RunEndedEvent))
    note = CancelledNote(at=ended.at - 1, message="cancelled while the ladder ran; rolling back")
    timeline = [t.text for t in report("aborted", events=[*events, note]).timeline]
    line = "cancelled: cancelled while the ladder ran; rolling back"
    assert line in timeline and timeline.index(line) < len(timeline) - 1


def test_the_digest_repeats_the_report(case: str) -> None:
    """The chat digest carries the report's own outcome, reach and first learnings."""
    built = report(case)
    cut = digest(built)
    assert (cut.run, cut.outcome, cut.outcome_text, cut.summary) == (
        built.run, built.outcome, built.outcome_text, built.summary)
    assert (cut.highest_held, cut.first_broken, cut.planned_steps) == (
        built.highest_held, built.first_broken, built.planned_steps)
    assert cut.learnings == built.learnings[:MAX_LEARNINGS]
    assert cut.faults_may_remain == built.faults_may_remain
    assert cut.stopped_by == {"passed": None, "aborted": "error_rate_percent",
                              "rollback_failed": "fault vanished"}[case]
