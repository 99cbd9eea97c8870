"""Fault points on sync and async calls, ``with`` and ``async with``: latency, errors,
probability, which rule acts, expiry, the process-wide set-up and the counters. Rules given
directly (the rules file is tests/injector/test_points_file.py; spans, test_points_tracing.py)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gameday.injector.point_errors import register_error, unregister_error
from gameday.injector.points import (
    RULES_VARIABLE,
    TARGET_VARIABLE,
    PointRules,
    fault_point,
    reset_points,
)
from gameday.injector.rules import Rule
from tests.injector.test_transport import errors_counted

LABELS = {"run": "run-p", "scenario": "cache-errors", "environment": "dev", "step": 1}
#: Lower bounds of sleeps allow for a coarse clock; upper bounds are for 2 busy cores.
SLACK = 0.005
SLOW = 10.0


def new_id(prefix: str = "r") -> str:
    """A rule id no other test uses (problems are counted once per rule id, process-wide)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def point_rule(kind: str, points: tuple[str, ...] = ("redis",), expires_in: float = 60.0, *,
               rule_id: str | None = None, target: str = "", expires_at: float | None = None,
               **fault: Any) -> Rule:
    """A stored rule for fault points, expiring ``expires_in`` seconds from now."""
    return Rule.model_validate({
        "id": rule_id or new_id(kind), "fault": {"kind": kind, **fault}, "labels": LABELS,
        "target": target, "points": list(points),
        "expires_at": expires_at if expires_at is not None else time.time() + expires_in})


def point_input(kind: str, points: tuple[str, ...] = ("redis",), *, ttl: float = 60.0,
                **fields: Any) -> dict[str, Any]:
    """A rule as a rules file holds it (``ttl``, or ``expires_at`` / ``lease`` in fields)."""
    fault = {key: fields.pop(key) for key in ("ms", "jitter_ms", "error", "probability")
             if key in fields}
    item: dict[str, Any] = {"id": fields.pop("id", new_id(kind)), "labels": LABELS,
                            "fault": {"kind": kind, **fault}, "points": list(points), **fields}
    if "expires_at" not in item:
        item["ttl"] = ttl
    return item


def injected(point: str, fault: str, target: str = "") -> float:
    """``chaos_faults_injected_total`` for this module's labels at ``point``."""
    return REGISTRY.get_sample_value("chaos_faults_injected_total", {
        **{key: str(value) for key, value in LABELS.items() if key != "step"},
        "fault": fault, "target": target, "point": point}) or 0.0


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``call()`` took, and what it returned."""
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


@pytest.fixture(autouse=True)
def no_process_rules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No process-wide rules before or after a test (nor rules named by the environment)."""
    monkeypatch.delenv(RULES_VARIABLE, raising=False)
    monkeypatch.delenv(TARGET_VARIABLE, raising=False)
    reset_points()
    yield
    reset_points()


@pytest.fixture
def make_rules() -> Iterator[Callable[..., PointRules]]:
    """``PointRules(...)``, closed (its watcher stopped) after the test."""
    made: list[PointRules] = []

    def make(*args: Any, **kwargs: Any) -> PointRules:
        made.append(PointRules(*args, **kwargs))
        return made[-1]

    yield make
    for rules in made:
        rules.close()


class PoolExhausted(Exception):
    """A service's own exception for an error name it registered."""


# -- latency -------------------------------------------------------------------------------------


def test_latency_delays_a_sync_call_and_passes_its_result_through() -> None:
    rules = PointRules([point_rule("latency", ms=200)])
    calls: list[tuple[Any, ...]] = []

    @fault_point("redis", rules=rules)
    def get(key: str, *, default: int = 0) -> tuple[str, int]:
        calls.append((key, default))
        return key, default

    took, result = timed(lambda: get("k", default=3))
    assert result == ("k", 3) and calls == [("k", 3)]
    assert 0.2 - SLACK <= took < SLOW


def test_jitter_varies_each_delay_around_ms_and_the_sleeps_follow_it() -> None:
    """Uniform jitter: every delay in [ms - jitter, ms + jitter], spread out; a point with the
    same seed sleeps those delays (lower bounds: a sleep may only run late)."""
    rule = point_rule("latency", ms=60, jitter_ms=40)
    decided = PointRules([rule], seed=21)
    delays = []
    for _ in range(300):
        decision = decided.decide("redis")
        assert decision is not None
        delays.append(decision.delay_ms)
    assert all(20 <= delay <= 100 for delay in delays)
    assert max(delays) - min(delays) > 50  # not one fixed value
    point = fault_point("redis", rules=PointRules([rule], seed=21))
    for expected in delays[:5]:
        took, _ = timed(point.check)
        assert expected / 1000 - SLACK <= took < SLOW


def test_async_latency_awaits_without_blocking_the_loop() -> None:
    rules = PointRules([point_rule("latency", ms=300)])

    @fault_point("redis", rules=rules)
    async def get(key: str) -> str:
        return key.upper()

    async def main() -> tuple[float, str, bool]:
        started = time.monotonic()
        task = asyncio.create_task(get("k"))
        await asyncio.sleep(0)  # the task runs up to its delay and yields the loop back
        waiting = not task.done()  # a blocking sleep would have finished it by now
        result = await task
        return time.monotonic() - started, result, waiting

    took, result, waiting = asyncio.run(main())
    assert result == "K"
    assert waiting  # the loop was free during the delay
    assert 0.3 - SLACK <= took < SLOW


def test_with_and_async_with_delay_the_block() -> None:
    point = fault_point("db.fetch", rules=PointRules([point_rule("latency", ("db.fetch",),
                                                                 ms=150)]))

    def block() -> str:
        with point:
            return "row"

    took, result = timed(block)
    assert result == "row" and 0.15 - SLACK <= took < SLOW

    async def ablock() -> str:
        async with point:
            return "row"

    took, result = timed(lambda: asyncio.run(ablock()))
    assert result == "row" and 0.15 - SLACK <= took < SLOW
    took, _ = timed(point.check)
    assert 0.15 - SLACK <= took < SLOW
    took, _ = timed(lambda: asyncio.run(point.acheck()))
    assert 0.15 - SLACK <= took < SLOW


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "raised"), [("timeout", TimeoutError),
                                              ("connection", ConnectionError)])
def test_an_error_fault_raises_instead_of_the_call(name: str, raised: type[Exception]) -> None:
    rule = point_rule("error", error=name)
    rules, calls = PointRules([rule]), []

    @fault_point("redis", rules=rules)
    def get() -> str:
        calls.append(1)
        return "value"

    @fault_point("redis", rules=rules)
    async def aget() -> str:
        calls.append(1)
        return "value"

    with pytest.raises(raised) as caught:
        get()
    assert type(caught.value) is raised
    message = str(caught.value)
    assert "redis" in message and rule.id in message and "cache-errors" in message
    with pytest.raises(raised):
        asyncio.run(aget())
    ran = []
    with pytest.raises(raised), fault_point("redis", rules=rules):
        ran.append(1)

    async def ablock() -> None:
        async with fault_point("redis", rules=rules):
            ran.append(1)

    with pytest.raises(raised):
        asyncio.run(ablock())
    assert calls == [] and ran == []  # the call is never made


def test_registered_names_and_overrides_pick_the_exception() -> None:
    """A point's own ``errors`` win, then its rules', then the process's, then the built-in."""

    class PointError(ConnectionError):
        pass

    class RulesError(ConnectionError):
        pass

    register_error("pool_exhausted", PoolExhausted)
    try:
        pool = PointRules([point_rule("error", error="pool_exhausted")])
        with pytest.raises(PoolExhausted, match="fault injected at redis: pool_exhausted"):
            fault_point("redis", rules=pool).check()
        connection = [point_rule("error", error="connection")]
        both = PointRules(connection, errors={"connection": RulesError})
        with pytest.raises(RulesError):
            fault_point("redis", rules=both).check()
        with pytest.raises(PointError):
            fault_point("redis", rules=both, errors={"connection": PointError}).check()
        with pytest.raises(PointError):  # a callable that builds the exception
            fault_point("redis", rules=PointRules(connection),
                        errors={"connection": lambda text: PointError(f"pool: {text}")}).check()
        plain = PointRules(connection)
        with pytest.raises(ConnectionError) as caught:
            fault_point("redis", rules=plain).check()
        assert type(caught.value) is ConnectionError
        register_error("connection", RulesError)  # the process's beats the built-in
        with pytest.raises(RulesError):
            fault_point("redis", rules=plain).check()
    finally:
        unregister_error("pool_exhausted")
        unregister_error("connection")


def test_register_error_checks_its_arguments() -> None:
    for bad in ("", "9lives", "has space", "x" * 65, "timeout\n"):
        with pytest.raises(ValueError, match="must match"):
            register_error(bad, PoolExhausted)
    with pytest.raises(TypeError):
        register_error("pool_exhausted", "PoolExhausted")  # type: ignore[arg-type]


def test_the_error_message_names_the_error_rule_whatever_the_order() -> None:
    """With a latency rule listed after it, the error still names its own rule."""
    error, latency = point_rule("error", error="timeout"), point_rule("latency", ms=1)
    with pytest.raises(TimeoutError) as caught:
        fault_point("redis", rules=PointRules([error, latency])).check()
    assert f"rule {error.id}" in str(caught.value)


def test_an_unknown_error_name_runs_the_call_and_is_counted_once() -> None:
    point = "errors.unknown"
    rules = PointRules([point_rule("error", (point,), error="no_such_error")])
    before, errors_before = errors_counted("unknown_error"), injected(point, "error")

    @fault_point(point, rules=rules)
    def get(value: int) -> int:
        return value + 1

    assert [get(n) for n in range(5)] == [1, 2, 3, 4, 5]
    assert errors_counted("unknown_error") == before + 1  # once per rule, not per call
    assert injected(point, "error") == errors_before  # nothing was raised: not a fault


@pytest.mark.parametrize("factory", [
    pytest.param(lambda text: 1 / 0, id="raises"),
    pytest.param(lambda text: f"not an exception: {text}", id="not-an-exception"),
    pytest.param(lambda: KeyError("takes no message"), id="takes-no-message"),
])
def test_an_exception_that_cannot_be_built_runs_the_call(factory: Any) -> None:
    point = "errors.bad"
    rules = PointRules([point_rule("error", (point,), error="broken")], errors={"broken": factory})
    before, errors_before = errors_counted("bad_error"), injected(point, "error")
    assert fault_point(point, rules=rules)(lambda: "made")() == "made"
    assert fault_point(point, rules=rules)(lambda: "made")() == "made"
    assert errors_counted("bad_error") == before + 1
    assert injected(point, "error") == errors_before


# -- what passes through -------------------------------------------------------------------------


def test_the_functions_own_results_and_exceptions_pass_through() -> None:
    for rules in (PointRules([]), PointRules([point_rule("latency", ms=1)])):
        @fault_point("redis", rules=rules)
        def fails() -> None:
            raise KeyError("own")

        @fault_point("redis", rules=rules)
        async def afails() -> None:
            raise LookupError("own")

        with pytest.raises(KeyError, match="own"):
            fails()
        with pytest.raises(LookupError, match="own"):
            asyncio.run(afails())
        with pytest.raises(ValueError, match="inside"), fault_point("redis", rules=rules):
            raise ValueError("inside")
        assert fault_point("redis", rules=rules)(lambda a, b=2: a * b)(3) == 6


def test_wrapping_keeps_the_functions_metadata() -> None:
    point = fault_point("redis", rules=PointRules([]))

    def get(key: str, ttl: int = 5) -> str:
        """Fetch one key."""
        return key

    async def aget(key: str) -> str:
        """Fetch one key, async."""
        return key

    for original in (get, aget):
        wrapped = point(original)
        assert wrapped.__name__ == original.__name__
        assert wrapped.__qualname__ == original.__qualname__
        assert wrapped.__doc__ == original.__doc__
        assert wrapped.__module__ == original.__module__
        assert getattr(wrapped, "__wrapped__", None) is original
        assert inspect.signature(wrapped) == inspect.signature(original)
    assert inspect.iscoroutinefunction(point(aget)) and not inspect.iscoroutinefunction(point(get))

    class Client:
        @fault_point("redis", rules=PointRules([]))
        def get(self, key: str) -> tuple[Client, str]:
            return self, key

    client = Client()
    assert client.get("k") == (client, "k")
    partial = functools.partial(aget, "k")
    assert asyncio.run(point(partial)()) == "k"  # a partial of a coroutine function is async


# -- probability ---------------------------------------------------------------------------------


def raised_pattern(rules: PointRules, calls: int, point: str = "redis") -> list[bool]:
    """Which of ``calls`` calls at ``point`` raised."""
    pattern = []
    for _ in range(calls):
        try:
            fault_point(point, rules=rules).check()
        except TimeoutError:
            pattern.append(True)
        else:
            pattern.append(False)
    return pattern


def test_probability_zero_never_fires() -> None:
    rules = PointRules([point_rule("error", error="timeout", probability=0.0),
                        point_rule("latency", ms=1000, probability=0.0)], seed=1)
    assert not any(raised_pattern(rules, 500))
    assert rules.decide("redis") is None


def test_half_probability_fires_on_about_half_the_calls() -> None:
    pattern = raised_pattern(PointRules([point_rule("error", error="timeout", probability=0.5)],
                                        seed=11), 2000)
    assert 850 <= sum(pattern) <= 1150


def test_the_same_seed_gives_the_same_faults() -> None:
    rule = point_rule("error", error="timeout", probability=0.5)
    first = raised_pattern(PointRules([rule], seed=3), 200)
    assert first == raised_pattern(PointRules([rule], seed=3), 200)
    assert first != raised_pattern(PointRules([rule], seed=4), 200)
