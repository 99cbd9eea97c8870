"""The journal: typed events on disk, durable across SIGKILL, free of secrets."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import get_args

import pytest

from gameday.guards.hold import HoldResult
from gameday.guards.queries import GuardQuery, SignalQuery
from gameday.guards.rules import Sample, judge
from gameday.guards.signals import Measured, Window, judge_signal, summarize
from gameday.journal import (
    BaselineEvent,
    Event,
    FaultAppliedEvent,
    FaultIntentEvent,
    FaultRevertedEvent,
    GuardSampleEvent,
    HoldEndedEvent,
    Journal,
    JournalError,
    NotificationDroppedEvent,
    PlanEvent,
    PlannedQuery,
    PlannedStep,
    RecoveryEvent,
    RunEndedEvent,
    SignalsJudgedEvent,
    StepStartedEvent,
    handles_to_revert,
    read_journal,
)
from gameday.models import Guard, Signal
from gameday.notes import (
    CancelledNote,
    ErrorNote,
    FaultVanishedNote,
    LockNote,
    Note,
    NoticeNote,
    ObserveFailedNote,
    PostmortemNote,
    PreflightFailedNote,
    PreflightNote,
    RefusedNote,
    SignoffGrantedNote,
    SignoffRefusedNote,
    SignoffRequestedNote,
    SlotNote,
    SweptNote,
    TraceNote,
    WaitingNote,
    WarningNote,
)
from gameday.records import Handle, Labels
from gameday.redact import REDACTED, redact

LABELS = Labels(run="run-1", scenario="auth-latency-ladder", environment="demo", step=1)
TOKEN = "tok-3c1f9a7e5b2d4e6f8a0b"
EXPIRES = time.time() + 300


def handle(step: int = 1, rule: str = "r1") -> Handle:
    """A proxy handle for ``step``."""
    return Handle(driver="proxy", id=rule, endpoint="http://127.0.0.1:18101",
                  labels=LABELS.model_copy(update={"step": step}), fault="latency 250ms",
                  expires_at=EXPIRES)


def intent(step: int = 1) -> FaultIntentEvent:
    """The intent journaled before applying the fault of ``step``."""
    h = handle(step)
    return FaultIntentEvent(driver=h.driver, endpoint=h.endpoint, labels=h.labels,
                            fault=h.fault, expires_at=h.expires_at)


def every_note() -> list[Event]:
    """One note of each kind, with every field set."""
    return [
        RefusedNote(message="requester mallory may not run in demo"),
        LockNote(message="holding 'demo'"),
        SweptNote(message="reverted latency 50ms left by run r0", run="r0"),
        PreflightNote(message="all guards, signals and the driver answered"),
        PreflightFailedNote(message="guard errors: no data"),
        FaultVanishedNote(message="the fault vanished", severity=2),
        ObserveFailedNote(message="Prometheus did not answer", severity=1),
        SignoffRequestedNote(message="plan abc needs a second person", plan_hash="abc",
                             severity=3, requester="alice"),
        SignoffGrantedNote(message="plan abc approved by bob", approver="bob", plan_hash="abc"),
        SignoffRefusedNote(message="no sign-off within 3s", approver=None, timed_out=True),
        ErrorNote(message="DriverError: proxy down"),
        CancelledNote(message="cancelled while the ladder ran; rolling back"),
        PostmortemNote(message="postmortem written", path="reports/out/r1/postmortem.md",
                       run_url="http://127.0.0.1:4200/runs/flow-run/r1"),
        WarningNote(message="heartbeats every 60s, not 30s"),
        WaitingNote(message="waiting for environment 'demo'", limit="gameday-env-demo"),
        SlotNote(message="holding gameday-env-demo", limit="gameday-env-demo", lease="l-1"),
        NoticeNote(message="ROLLBACK FAILED, faults may remain", notice="rollback_failed",
                   level="critical"),
        TraceNote(message="the game day is traced", trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                  destinations=["/var/lib/gameday/traces", "https://otel.example/v1/traces"]),
    ]


def every_kind() -> list[Event]:
    """One event of each kind, with nested samples, verdicts and statistics."""
    rule = Guard.model_validate({"op": ">", "threshold": 5, "for": "2s"})
    sample = Sample(query_time=100.0, value=math.inf, sample_time=99.5)
    verdict = judge("errors", rule, [sample], stale_after=3)
    stats = summarize([1.0, 2.0, 3.0])
    window = Window(start=0, end=10, signals=(Measured("p95", "q", "ms", stats),))
    query = SignalQuery("p95", Signal(op="<=", threshold=350), "q", "ms")
    return [
        PlanEvent(run="run-1", scenario="s", environment="demo", requester="alice",
                  max_severity=1, steps=[PlannedStep(severity=1, fault="latency 50ms",
                                                     dwell=20, ttl=30)],
                  guards=[PlannedQuery(name="token_errors", query="sum(x)")],
                  signals=[PlannedQuery(name="p95", query="q")]),
        BaselineEvent(window=window),
        StepStartedEvent(severity=1, fault="latency 50ms", dwell=20, ttl=30),
        intent(),
        FaultAppliedEvent(handle=handle()),
        GuardSampleEvent(severity=1, guard="errors", sample=sample, verdict=verdict),
        HoldEndedEvent(severity=1, result=HoldResult(started=1, ended=2, dwell=20, interval=1,
                                                     guard="errors", verdict=verdict,
                                                     breached_at=2, samples=3)),
        SignalsJudgedEvent(severity=1, window=window,
                           results=(judge_signal(query, stats, stats),)),
        FaultRevertedEvent(driver="proxy", endpoint=handle().endpoint, labels=LABELS,
                           handle=handle()),
        RecoveryEvent(recovered=True, seconds=4.2),
        NotificationDroppedEvent(sink="slack", message="step 1 started", reason="deadline"),
        RunEndedEvent(outcome="breached", highest_held=None, first_broken=1),
        *every_note(),
    ]


def test_every_note_kind_is_in_the_round_trip() -> None:
    """The round trip below covers each class of the journal's note union."""
    assert {type(n) for n in every_note()} == set(get_args(get_args(Note)[0]))


def test_every_event_kind_round_trips(tmp_path: Path) -> None:
    """Each event reads back equal to what was written, with its type."""
    path = tmp_path / "journal.jsonl"
    events = every_kind()
    with Journal(path) as journal:
        for event in events:
            journal.write(event)
    back = read_journal(path)
    assert [type(e) for e in back] == [type(e) for e in events]
    assert back == events
    plan = back[0]
    assert isinstance(plan, PlanEvent) and plan.guards[0].query == "sum(x)"
    sample_event = back[5]
    assert isinstance(sample_event, GuardSampleEvent) and sample_event.sample.value == math.inf
    assert len(path.read_text().splitlines()) == len(events)


def test_journal_file_is_private(tmp_path: Path) -> None:
    """The journal is readable by its owner only."""
    path = tmp_path / "j.jsonl"
    Journal(path).close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_closed_journal_refuses_writes(tmp_path: Path) -> None:
    """Writing to a closed journal is an error, not a silent loss."""
    journal = Journal(tmp_path / "j.jsonl")
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.write(RecoveryEvent(recovered=True))


def test_unknown_event_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    """A JSON line that is no known event raises JournalError with file and line."""
    path = tmp_path / "j.jsonl"
    path.write_text('{"event": "recovery", "at": 1, "recovered": true}\n{"event": "nope"}\n')
    with pytest.raises(JournalError, match=r"j\.jsonl:2"):
        read_journal(path)


def test_torn_last_line_is_skipped_and_closed_off_on_reopen(tmp_path: Path) -> None:
    """A half-written line is skipped; reopening starts on a fresh line."""
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.write(RecoveryEvent(recovered=False))
    with open(path, "a") as file:
        file.write('{"event": "recov')
    assert len(read_journal(path)) == 1
    with Journal(path) as journal:
        journal.write(RecoveryEvent(recovered=True))
    assert [e.recovered for e in read_journal(path)] == [False, True]  # type: ignore[union-attr]


def test_handles_to_revert_lists_intended_and_applied_without_revert() -> None:
    """Reverted faults drop out; applied ones keep their handle; intents have none."""
    events: list[Event] = [intent(1), FaultAppliedEvent(handle=handle(1)), intent(2)]
    left = handles_to_revert(events)
    assert [(x.labels.step, x.handle is not None) for x in left] == [(1, True), (2, False)]
    assert left[0].handle == handle(1)
    h1 = handle(1)
    events.append(FaultRevertedEvent(driver="proxy", endpoint=h1.endpoint, labels=h1.labels,
                                      handle=h1))
    assert [x.labels.step for x in handles_to_revert(events)] == [2]
    h2 = handle(2)
    # "Nothing active under these labels" clears an intent that never got a handle.
    events.append(FaultRevertedEvent(driver="proxy", endpoint=h2.endpoint, labels=h2.labels))
    assert handles_to_revert(events) == []


def test_redact_hides_secret_keys_and_known_values() -> None:
    """Secret-named keys and known secret values are replaced, other data is kept."""
    data = {"token": "abc", "Authorization": "Bearer x", "api_key": 1, "password": None,
            "note": f"url?t={TOKEN}", "nested": [{"client_secret": "s"}, "plain"]}
    out = redact(data, [TOKEN])
    assert out == {"token": REDACTED, "Authorization": REDACTED, "api_key": REDACTED,
                   "password": None, "note": f"url?t={REDACTED}",
                   "nested": [{"client_secret": REDACTED}, "plain"]}


def test_token_exported_after_opening_is_still_hidden(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Secret environment variables are read at each write, not only at opening."""
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        monkeypatch.setenv("LATE_API_TOKEN", TOKEN)
        journal.write(ErrorNote(message=f"Bearer {TOKEN}"))
    assert TOKEN not in path.read_text()
    [event] = read_journal(path)
    assert isinstance(event, ErrorNote) and event.message == f"Bearer {REDACTED}"


def test_old_style_notes_read_into_their_classes(tmp_path: Path) -> None:
    """Notes journaled with a free-form ``data`` mapping (and ``notice.*`` kinds) still read."""
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(json.dumps({"at": 1.0, "event": "note", **line}) for line in (
        {"kind": "swept", "message": "reverted x", "data": {"run": "r0"}},
        {"kind": "fault_vanished", "message": "gone", "data": {"severity": 2}},
        {"kind": "signoff_refused", "message": "late",
         "data": {"approver": None, "timed_out": True}},
        {"kind": "slot", "message": "holding l", "data": {"limit": "l", "lease": "abc"}},
        {"kind": "postmortem", "message": "/r/pm.md", "data": {"run_url": "http://p/r"}},
        {"kind": "notice.rollback", "message": "rollback done in 0.04s", "data": {}},
    )) + "\n")
    assert read_journal(path) == [
        SweptNote(at=1.0, message="reverted x", run="r0"),
        FaultVanishedNote(at=1.0, message="gone", severity=2),
        SignoffRefusedNote(at=1.0, message="late", approver=None, timed_out=True),
        SlotNote(at=1.0, message="holding l", limit="l", lease="abc"),
        PostmortemNote(at=1.0, message="/r/pm.md", path="/r/pm.md", run_url="http://p/r"),
        NoticeNote(at=1.0, message="rollback done in 0.04s", notice="rollback"),
    ]


def test_a_note_of_no_known_kind_is_an_error(tmp_path: Path) -> None:
    """An old note whose kind no class reads is refused, naming the line."""
    path = tmp_path / "j.jsonl"
    path.write_text('{"at": 1, "event": "note", "kind": "tick", "message": "m", "data": {}}\n')
    with pytest.raises(JournalError, match=r"j\.jsonl:1"):
        read_journal(path)


WRITER = textwrap.dedent("""
    import sys
    from gameday.journal import Journal
    from gameday.notes import ObserveFailedNote
    journal = Journal(sys.argv[1])
    n = 0
    while True:
        n += 1
        journal.write(ObserveFailedNote(message="sent with " + sys.argv[2], severity=n))
        print(n, flush=True)
""")


@pytest.mark.integration
def test_journal_survives_sigkill_of_its_writer_and_holds_no_token(tmp_path: Path) -> None:
    """Every line written before a SIGKILL reads back, and the token never reaches the file."""
    path = tmp_path / "run.jsonl"
    env = {**os.environ, "GAMEDAY_DEMO_TOKEN": TOKEN}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), TOKEN], env=env,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    confirmed = 0
    try:
        assert writer.stdout is not None
        while confirmed < 200:
            line = writer.stdout.readline()
            assert line, "the writer died before writing 200 events"
            confirmed = int(line)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    events = read_journal(path)
    numbers = [e.severity for e in events]  # type: ignore[union-attr]
    # Every write confirmed before the kill is there, in order, with nothing missing.
    assert numbers[:confirmed] == list(range(1, confirmed + 1))
    assert numbers == list(range(1, len(numbers) + 1))
    text = path.read_text()
    assert TOKEN not in text
    assert all(REDACTED in e.message for e in events)  # type: ignore[union-attr]
    assert json.loads(text.splitlines()[0])["event"] == "note"


def test_guard_recorder_journals_each_sample(tmp_path: Path) -> None:
    """The hold's recorder writes one guard_sample event per sample and verdict."""
    rule = Guard.model_validate({"op": ">", "threshold": 5})
    query = GuardQuery(name="errors", guard=rule, query="x", freshness=None)
    sample = Sample(query_time=1.0, error="boom")
    verdict = judge("errors", rule, [sample], stale_after=3)
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        record = journal.guard_recorder(severity=2)
        record(query, sample, verdict)
    [event] = read_journal(path)
    assert isinstance(event, GuardSampleEvent)
    assert event.severity == 2 and event.verdict.state == "error" and event.verdict.stops
