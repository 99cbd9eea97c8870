"""Notices: one typed record per kind, no free-form payload, journaled by the journal sink."""

from __future__ import annotations

import io
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from gameday.journal import Journal, read_journal
from gameday.notes import NoticeKind, NoticeNote
from gameday.notify import (
    NOTICE_TYPES,
    BreachNotice,
    ConsoleSink,
    JournalSink,
    RollbackFailedNotice,
    StepNotice,
)


def kind_of(cls: type[BaseModel]) -> str:
    """The ``kind`` a notice class is told apart by."""
    return str(cls.model_fields["kind"].default)


def loose_types(annotation: Any, seen: set[type]) -> list[str]:
    """The ``dict`` or ``Any`` parts of ``annotation``, through nested models."""
    if annotation is Any:
        return ["Any"]
    origin = get_origin(annotation)
    if origin is dict or annotation is dict:
        return [str(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return []
        seen.add(annotation)
        return [part for field in annotation.model_fields.values()
                for part in loose_types(field.annotation, seen)]
    if origin in (Union, types.UnionType, tuple):
        return [part for arg in get_args(annotation) if arg is not Ellipsis
                for part in loose_types(arg, seen)]
    return []


def test_each_kind_has_its_own_class() -> None:
    """Every notice kind the journal knows has exactly one class, and no class is extra."""
    kinds = [kind_of(cls) for cls in NOTICE_TYPES]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == set(get_args(NoticeKind))


@pytest.mark.parametrize("cls", NOTICE_TYPES, ids=kind_of)
def test_no_notice_carries_a_free_form_payload(cls: type[BaseModel]) -> None:
    """No field of any notice (nor of the records inside it) is a dict or ``Any``."""
    assert loose_types(cls, set()) == []
    assert cls.model_config.get("extra") == "forbid" and cls.model_config.get("frozen")


def test_a_misspelt_field_is_refused() -> None:
    """A field the kind does not have is an error, not silently carried along."""
    with pytest.raises(ValidationError, match="extra"):
        StepNotice(run="r1", text="step 1", severity=1, total=2, fault="latency", dwell=1,
                   ttl=2, sevrity=3)  # type: ignore[call-arg]


def test_kinds_default_to_their_urgency() -> None:
    """A breach and a failed rollback are critical without the sender saying so."""
    breach = BreachNotice(run="r1", text="guard", guard="errors", severity=2, threshold="> 5")
    failed = RollbackFailedNotice(run="r1", text="failed", seconds=1.0, problems=("x",))
    assert (breach.level, failed.level) == ("critical", "critical")


def test_the_journal_sink_records_kind_level_and_text(tmp_path: Path) -> None:
    """A notice reaches the journal as a notice note that reads back typed."""
    path = tmp_path / "journal.jsonl"
    notice = RollbackFailedNotice(run="r1", text="ROLLBACK FAILED: proxy down", seconds=0.5,
                                  problems=("proxy down",))
    with Journal(path) as journal:
        JournalSink(journal.write).send(notice)
    [note] = read_journal(path)
    assert isinstance(note, NoticeNote)
    assert (note.notice, note.level, note.message) == (
        "rollback_failed", "critical", "ROLLBACK FAILED: proxy down")


def test_the_console_shows_kind_and_text() -> None:
    """The console line names the kind and carries the text."""
    out = io.StringIO()
    ConsoleSink(out).send(StepNotice(run="r1", text="step 1/2: latency 50ms", severity=1,
                                     total=2, fault="latency 50ms", dwell=20, ttl=30))
    assert "[step] step 1/2: latency 50ms" in out.getvalue()
