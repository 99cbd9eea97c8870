"""Planning a suite run without a second person: caps and reasons to skip (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from gameday.protocol.suite import plan_suite, suite_scenarios
from tests.protocol.test_checks import environment, scenario

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # a Friday


def test_ladders_reaching_sign_off_are_skipped_or_capped() -> None:
    """With sign-off from 2, a two-step ladder is skipped, or run to step 1 when asked."""
    two_steps = scenario()
    one_step = scenario(name="one-step", steps=[{"ms": 50, "dwell": "10s"}])
    place = environment(sign_off_severity=2)
    skipped, ran = plan_suite([two_steps, one_step], place, NOW)
    assert skipped.skip is not None and "second person" in skipped.skip
    assert ran.skip is None and ran.max_severity == 1
    (capped,) = plan_suite([two_steps], place, NOW, below_sign_off=True)
    assert capped.skip is None and capped.max_severity == 1


def test_sign_off_from_the_first_step_skips_everything() -> None:
    """Nothing runs when every step needs a second person."""
    (item,) = plan_suite([scenario()], environment(sign_off_severity=1), NOW, True)
    assert item.skip is not None and "every step" in item.skip


def test_out_of_window_and_other_environments_are_skipped_with_the_reason() -> None:
    """A Monday-only scenario on a Friday, or one not meant for the environment, is skipped."""
    monday = scenario(trigger={"window": {"days": ["mon"]}})
    elsewhere = scenario(environments=["staging"])
    first, second = plan_suite([monday, elsewhere], environment(), NOW)
    assert first.skip is not None and "outside its window" in first.skip
    assert second.skip is not None and "may not run in demo" in second.skip


def test_suite_members_keep_catalog_order() -> None:
    """Only scenarios in the suite, in the order given."""
    weekly = [scenario(name="b", suites=["weekly"]), scenario(name="a", suites=["weekly"])]
    chosen = suite_scenarios([*weekly, scenario(name="c")], "weekly")
    assert [s.name for s in chosen] == ["b", "a"]
