"""Sign-off decisions that need no server: when it is needed, the plan hash, the review."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gameday.protocol.signoff import SignOff, describe, needs_sign_off, plan_hash, review
from tests.protocol.test_checks import environment, scenario


def context(severities: list[int] | None = None, **changes: Any) -> Any:
    """The parts of a run context the sign-off reads."""
    place = environment(**({"sign_off_severity": 2} | changes))
    return SimpleNamespace(scenario=scenario(), environment=place, endpoint=place.endpoints[0],
                           severities=severities or [1, 2], requester="alice")


def test_needed_only_when_the_ladder_reaches_the_sign_off_severity() -> None:
    """Severity 2 needs a second person when it is planned, not when the run stops at 1."""
    assert needs_sign_off(context([1, 2]))
    assert not needs_sign_off(context([1]))
    assert not needs_sign_off(context([1, 2], sign_off_severity=None))


def test_plan_hash_is_stable_and_follows_the_plan() -> None:
    """The same plan hashes alike; another ladder or endpoint hashes differently."""
    digest = plan_hash(context())
    assert len(digest) == 12 and digest == plan_hash(context())
    assert plan_hash(context([1])) != digest
    moved = context()
    moved.endpoint = moved.endpoint.model_copy(update={"admin_url": "http://127.0.0.1:10"})
    assert plan_hash(moved) != digest


@pytest.mark.parametrize(("approver", "typed", "problem"), [
    ("alice", "HASH", "second person"),
    (" Alice ", "HASH", "second person"),
    ("  ", "HASH", "type your name"),
    ("bob", "0" * 12, "does not match"),
])
def test_review_refuses_self_approval_and_a_wrong_hash(approver: str, typed: str,
                                                       problem: str) -> None:
    """Each refused answer names why."""
    digest = plan_hash(context())
    answer = SignOff(approver=approver, plan_hash=typed.replace("HASH", digest))
    (found,) = review(answer, "alice", digest)
    assert problem in found


def test_review_accepts_a_second_person_with_the_hash() -> None:
    """Bob, with the hash typed in capitals and spaced, approves."""
    digest = plan_hash(context())
    spaced = " ".join([digest[:6], digest[6:]]).upper()
    assert review(SignOff(approver="bob", plan_hash=spaced), "alice", digest) == []


def test_form_shows_every_step_the_hash_and_the_last_refusal() -> None:
    """The form's text lists the steps with their TTLs, the hash and why it was refused."""
    ctx = context()
    text = describe(ctx, "abc123def456", ["the plan hash does not match the plan"])
    assert "`abc123def456`" in text and "does not match" in text
    assert "| 2 | latency 100ms | 10 s | 20 s |" in text
    assert "not a determined insider" in text
