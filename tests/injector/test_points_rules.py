"""Which rules act at a fault point (newest per kind, the points they name, the target), when
they stop (expiry by the clock, a delay cut where its rule ends), the process-wide set-up
(configure_points, reset_points, GAMEDAY_FAULT_RULES), the counters and the point's name."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from gameday.injector import points as points_module
from gameday.injector.point_decide import PointDecision
from gameday.injector.points import (
    RULES_VARIABLE,
    TARGET_VARIABLE,
    PointRules,
    configure_points,
    fault_point,
    point_rules,
    reset_points,
)
from gameday.models.targets import POINT_NAME
from tests.injector.test_points import (
    SLACK,
    SLOW,
    injected,
    make_rules,
    no_process_rules,
    point_input,
    point_rule,
    raised_pattern,
    timed,
)
from tests.injector.test_transport import errors_counted, write_rules

__all__ = ["make_rules", "no_process_rules"]  # fixtures, shared with test_points

# -- which rule acts -----------------------------------------------------------------------------


def test_the_newest_rule_per_kind_wins() -> None:
    """Later in the list is newer: it alone counts for its kind, larger or smaller."""
    slow, fast = point_rule("latency", ms=300), point_rule("latency", ms=20)
    for older, newer, ms in ((slow, fast, 20), (fast, slow, 300)):
        decision = PointRules([older, newer]).decide("redis")
        assert decision is not None
        assert decision.delay_ms == ms and decision.rules == (newer,)
    timeout, connection = (point_rule("error", error=name) for name in ("timeout", "connection"))
    with pytest.raises(ConnectionError):
        fault_point("redis", rules=PointRules([timeout, connection])).check()
    with pytest.raises(TimeoutError):
        fault_point("redis", rules=PointRules([connection, timeout])).check()
    both = PointRules([timeout, point_rule("latency", ms=5)]).decide("redis")
    assert both is not None and both.kinds == ("error", "latency")  # one of each kind acts


def test_an_expired_newer_rule_leaves_the_older_one_acting() -> None:
    now = [1000.0]
    older = point_rule("error", error="timeout", expires_at=2000.0)
    newer = point_rule("error", error="connection", expires_at=1010.0)
    point = fault_point("redis", rules=PointRules([older, newer], clock=lambda: now[0]))
    with pytest.raises(ConnectionError):
        point.check()
    now[0] = 1010.0
    with pytest.raises(TimeoutError):
        point.check()


@pytest.mark.parametrize(("pattern", "name", "covered"), [
    ("redis", "redis", True),
    ("redis", "redis.get", False),
    ("redis", "redis2", False),
    ("db*", "db", True),
    ("db*", "db.fetch", True),
    ("db*", "cache.db", False),
    ("grpc:*", "grpc:/shop.Payments/Charge", True),
    ("grpc:/shop.Payments/*", "grpc:/shop.Orders/Get", False),
])
def test_a_rule_acts_at_the_points_it_names(pattern: str, name: str, covered: bool) -> None:
    rules = PointRules([point_rule("error", ("elsewhere", pattern), error="timeout")])
    assert raised_pattern(rules, 3, name) == [covered] * 3
    assert [r.id for r in rules.active_rules(name)] == ([rules.source.rules()[0].id]
                                                        if covered else [])


def test_a_rule_without_points_never_acts_at_a_point() -> None:
    """An HTTP rule (no ``points``) in the same file is the transport's, not the point's."""
    http = point_rule("latency", (), ms=5000)
    rules = PointRules([http])
    took, _ = timed(fault_point("redis", rules=rules).check)
    assert took < 2.5 and rules.decide("redis") is None and rules.active_rules() == []


def test_target_filters_the_rules() -> None:
    """A rule aimed at another target is skipped; one with no target applies to every one."""
    mine = point_rule("error", error="timeout", target="checkout/redis")
    other = point_rule("error", error="connection", target="checkout/postgres")
    anyone = point_rule("latency", ms=1)
    aimed = PointRules([mine, other, anyone], target="checkout/redis")
    assert [r.id for r in aimed.active_rules("redis")] == [mine.id, anyone.id]
    with pytest.raises(TimeoutError):
        fault_point("redis", rules=aimed).check()
    elsewhere = PointRules([other], target="checkout/redis")
    fault_point("redis", rules=elsewhere).check()  # nothing raised
    with pytest.raises(ConnectionError):  # no target of its own: every rule applies
        fault_point("redis", rules=PointRules([other])).check()


# -- a rule's end --------------------------------------------------------------------------------


def test_a_rule_stops_at_its_expiry_by_the_clock() -> None:
    now = [1000.0]
    rules = PointRules([point_rule("error", error="timeout", expires_at=1010.0)],
                       clock=lambda: now[0])
    point = fault_point("redis", rules=rules)
    now[0] = 1009.999
    with pytest.raises(TimeoutError):
        point.check()
    now[0] = 1010.0  # at once: the next call, no reload, no wait
    point.check()
    assert rules.active_rules("redis") == []


def test_a_rule_stops_at_a_real_short_expiry() -> None:
    rule = point_rule("error", error="timeout", expires_in=1.0)
    rules = PointRules([rule])

    @fault_point("redis", rules=rules)
    async def get() -> str:
        return "value"

    with pytest.raises(TimeoutError):
        asyncio.run(get())
    time.sleep(max(0.0, rule.expires_at - time.time()) + 0.05)
    assert asyncio.run(get()) == "value"


def test_a_delay_is_cut_short_where_its_rule_ends() -> None:
    """A 30 s delay whose rule ends in 0.5 s lasts what is left of the 0.5 s, sync and async."""
    for call in ("sync", "async"):
        rule = point_rule("latency", ms=30_000, expires_in=0.5)
        point = fault_point("redis", rules=PointRules([rule]))
        started, left = time.monotonic(), rule.expires_at - time.time()
        if call == "sync":
            point.check()
        else:
            asyncio.run(point.acheck())
        took = time.monotonic() - started
        assert left - SLACK <= took < SLOW, call
    decision = PointDecision(delay_ms=30_000, ends_at=1000.5)
    assert decision.delay_s(1000.0) == 0.5
    assert decision.delay_s(1001.0) == 0.0
    assert PointDecision(delay_ms=200, ends_at=1000.5).delay_s(1000.0) == 0.2


def test_a_delay_is_not_cut_by_the_end_of_another_rule() -> None:
    """The error rule ending during the delay neither shortens it nor raises after it."""
    latency = point_rule("latency", ms=1200)
    error = point_rule("error", error="timeout", expires_in=0.3)
    took, _ = timed(fault_point("redis", rules=PointRules([latency, error])).check)
    assert 1.2 - SLACK <= took < SLOW


# -- the process's rules -------------------------------------------------------------------------


def test_a_process_that_configured_nothing_has_no_rules() -> None:
    assert point_rules() is None
    assert fault_point("redis")(lambda: "made")() == "made"


def test_configure_points_sets_the_rules_of_every_point_and_reset_forgets_them(
        tmp_path: Path) -> None:
    @fault_point("redis")
    def get() -> str:
        return "value"

    configured = configure_points(rules=[point_rule("error", error="timeout")])
    assert point_rules() is configured
    with pytest.raises(TimeoutError):
        get()
    own = fault_point("redis", rules=PointRules([]))  # a point bound to its own rules
    assert own(lambda: "own")() == "own"
    path = tmp_path / "rules.json"
    write_rules(path, [point_input("error", error="connection")], 0)
    from_file = configure_points(path, target="checkout/redis", seed=5)
    assert point_rules() is from_file and from_file.target == "checkout/redis"
    with pytest.raises(ConnectionError):
        get()
    configure_points(rules=[])  # replacing the set-up stops the old one's watcher
    assert from_file.source.closed
    assert get() == "value"
    reset_points()
    assert point_rules() is None and get() == "value"


def test_the_environment_names_the_rules_file_and_the_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rules.json"
    write_rules(path, [point_input("error", error="timeout", target="checkout/redis"),
                       point_input("error", ("pg",), error="timeout", target="checkout/pg")], 0)
    assert point_rules() is None  # the environment is read once ...
    monkeypatch.setenv(RULES_VARIABLE, str(path))
    monkeypatch.setenv(TARGET_VARIABLE, "checkout/redis")
    assert point_rules() is None
    reset_points()  # ... and again after a reset
    rules = point_rules()
    assert rules is not None and rules.source.path == path and rules.target == "checkout/redis"
    assert point_rules() is rules
    with pytest.raises(TimeoutError):
        fault_point("redis").check()
    fault_point("pg").check()  # the other target's rule: skipped
    monkeypatch.delenv(RULES_VARIABLE)
    reset_points()
    assert point_rules() is None
    fault_point("redis").check()


def test_a_set_up_from_the_environment_that_fails_never_breaks_a_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> PointRules:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(points_module, "PointRules", broken)
    monkeypatch.setenv(RULES_VARIABLE, str(tmp_path / "rules.json"))
    before = errors_counted("internal")
    assert fault_point("redis")(lambda: "made")() == "made"
    assert point_rules() is None
    assert errors_counted("internal") == before + 1


# -- counters ------------------------------------------------------------------------------------


def test_each_faulted_call_is_counted_with_its_point() -> None:
    lat, err = "count.latency", "count.error"
    rules = PointRules([point_rule("latency", (lat,), ms=1, target="checkout/redis"),
                        point_rule("error", (err,), error="timeout", probability=0.5),
                        point_rule("latency", ("count.never",), ms=1, probability=0.0)],
                       seed=9)
    before = {(lat, "latency"): injected(lat, "latency", "checkout/redis"),
              (err, "error"): injected(err, "error")}
    for _ in range(4):
        fault_point(lat, rules=rules).check()
    raised = sum(raised_pattern(rules, 40, err))
    for _ in range(5):
        fault_point("count.never", rules=rules).check()
        fault_point("count.unnamed", rules=rules).check()
    assert injected(lat, "latency", "checkout/redis") == before[lat, "latency"] + 4
    assert 0 < raised < 40 and injected(err, "error") == before[err, "error"] + raised
    assert injected("count.never", "latency") == 0.0
    assert injected("count.unnamed", "latency") == injected("count.unnamed", "error") == 0.0


def test_a_delay_with_an_error_that_cannot_be_raised_counts_the_delay_only() -> None:
    point = "count.mixed"
    rules = PointRules([point_rule("latency", (point,), ms=1),
                        point_rule("error", (point,), error="no_such_error")])
    before = injected(point, "latency"), injected(point, "error")
    assert fault_point(point, rules=rules)(lambda: 7)() == 7
    assert (injected(point, "latency"), injected(point, "error")) == (before[0] + 1, before[1])


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "-redis", ".db", "has space", "redis*", "caf\u00e9",
                                  "x" * 128, "redis\n", "a\nb"])
def test_a_bad_point_name_is_refused_naming_the_pattern(name: str) -> None:
    with pytest.raises(ValueError) as caught:
        fault_point(name)
    assert POINT_NAME in str(caught.value)


@pytest.mark.parametrize("name", ["redis", "db.fetch", "grpc:/shop.Payments/Charge",
                                  "cache-v2_read", "x" * 127])
def test_good_point_names_are_taken(name: str) -> None:
    assert fault_point(name).name == name


def test_the_names_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service that makes point names per call does not grow the per-version map."""
    monkeypatch.setattr(points_module, "MAX_NAMES", 8)
    rules = PointRules([point_rule("error", ("user:*",))])
    for index in range(50):
        assert rules.for_point(f"user:{index}")
    assert len(rules._found[1]) == 8
    assert rules.for_point("user:49") and not rules.for_point("other")
