"""The game day's own trace, drawn from real journals: a root, prepare, one span per step,
observe, rollback and learn, with breaches and reverts as events; written as OTLP JSON and
read back by the same reader the postmortem uses."""

from __future__ import annotations

from pathlib import Path

from gameday.journal import HoldEndedEvent, StepStartedEvent
from gameday.notes import TraceNote
from gameday.tracing import read, run_trace
from tests.report.conftest import journal

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_the_aborted_run_is_a_trace_of_its_phases_and_steps(tmp_path: Path) -> None:
    events = journal("aborted")
    note = TraceNote(message="traced", trace_id=TRACE_ID, destinations=[str(tmp_path)])
    assert run_trace.export("r-aborted", [*events[:1], note, *events[1:]]) == TRACE_ID
    spans = read.trace(tmp_path, TRACE_ID)
    [root] = [span for span in spans if not span.parent_id]
    assert root.service == "gameday" and root.name.startswith("game day ")
    assert root.error  # the run did not complete
    assert all(span.parent_id == root.span_id for span in spans if span is not root)
    names = [span.name for span in spans]
    steps = [e.severity for e in events if isinstance(e, StepStartedEvent)]
    assert names[:2] == ["game day " + str(root.attributes["chaos.scenario"]), "prepare"]
    assert [n for n in names if n.startswith("step ")] == [f"step {s}" for s in steps]
    assert "rollback" in names and names[-1] == "learn"
    broken = [e.severity for e in events if isinstance(e, HoldEndedEvent)
              and e.result.guard is not None]
    assert broken, "the aborted journal has a breached step"
    [step] = [span for span in spans if span.name == f"step {broken[0]}"]
    assert step.error and "guard breached" in [event.name for event in step.events]
    [rollback] = [span for span in spans if span.name == "rollback"]
    assert "fault reverted" in [event.name for event in rollback.events]
    for span in spans:
        assert root.start_ns <= span.start_ns <= span.end_ns


def test_a_run_without_a_trace_note_is_not_traced(tmp_path: Path) -> None:
    assert run_trace.export("r-passed", journal("passed")) is None
    assert list(tmp_path.iterdir()) == []


def test_learning_twice_replaces_the_runs_trace_file(tmp_path: Path) -> None:
    events = journal("passed")
    note = TraceNote(message="traced", trace_id=TRACE_ID, destinations=[str(tmp_path)])
    run_trace.export("r-passed", [note, *events])
    first = len(read.trace(tmp_path, TRACE_ID))
    run_trace.export("r-passed", [note, *events])
    assert len(read.trace(tmp_path, TRACE_ID)) == first
    assert [p.name for p in tmp_path.iterdir()] == ["gameday-r-passed.otlp.jsonl"]
