"""TCP mode without sockets: its rule models, the per-connection plan, the delay and slicer."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from typing import Any

import pytest
from pydantic import ValidationError

from gameday.faults import kinds_for, protocol_problems
from gameday.injector.proxy.metrics import ProxyMetrics
from gameday.injector.rules import RuleInput
from gameday.injector.tcp.plan import EMPTY, Rolls, covers, plan_of
from gameday.injector.tcp.rules import TCP_FAULT_KINDS, TcpRule, TcpRuleInput
from gameday.injector.tcp.stages import Delay, Slicer
from tests.injector.conftest import LABELS

NOW = 1_800_000_000.0


def make(kind: str, rule_id: str | None = None, **fields: Any) -> TcpRule:
    """A stored TCP rule expiring a minute after ``NOW``."""
    return TcpRule.model_validate({"id": rule_id or f"r-{kind}", "fault": {"kind": kind, **fields},
                                   "labels": LABELS, "expires_at": NOW + 60})


def tcp_input(fault: dict[str, Any]) -> TcpRuleInput:
    return TcpRuleInput.model_validate({"fault": fault, "labels": LABELS, "ttl": 10})


# -- the rule models ----------------------------------------------------------------------------


def test_a_stored_tcp_rule_names_its_direction() -> None:
    """Left out, ``direction`` is stored as downstream, so the listing says what happens."""
    assert make("latency", ms=10).fault.direction == "downstream"
    assert make("blackhole", direction="both").fault.direction == "both"


@pytest.mark.parametrize("fault, field", [
    ({"kind": "abort", "status": 503}, "kind"),
    ({"kind": "latency", "ms": 10, "match": {"path_prefix": "/x"}}, "match"),
    ({"kind": "latency", "ms": 600_001}, "ms"),
    ({"kind": "latency", "ms": math.nan}, "ms"),
    ({"kind": "latency", "ms": math.inf}, "ms"),
    ({"kind": "latency", "ms": 1, "direction": "sideways"}, "direction"),
    ({"kind": "bandwidth", "kbps": 0.5}, "kbps"),
    ({"kind": "bandwidth", "kbps": 10_000_001}, "kbps"),
    ({"kind": "reset", "after_ms": 10, "after_bytes": 10}, "after_ms"),
    ({"kind": "reset", "after_ms": -1}, "after_ms"),
    ({"kind": "timeout", "ms": 600_001}, "ms"),
    ({"kind": "slicer", "size_bytes": 10, "size_variation": 10}, "size_variation"),
    ({"kind": "slicer", "size_bytes": 0}, "size_bytes"),
    ({"kind": "slicer", "size_bytes": 10, "delay_ms": math.inf}, "delay_ms"),
    ({"kind": "limit_data", "bytes": -1}, "bytes"),
    ({"kind": "limit_data", "bytes": 2**60}, "bytes"),
    ({"kind": "limit_data", "bytes": 10, "probability": 2}, "probability"),
])
def test_bad_tcp_faults_are_refused(fault: dict[str, Any], field: str) -> None:
    """Out-of-range, non-finite, HTTP-only and contradictory values never become a rule."""
    with pytest.raises(ValidationError) as caught:
        tcp_input(fault)
    assert field in str(caught.value)


def test_an_http_rule_refuses_tcp_fields() -> None:
    """An HTTP injector acts on no ``direction`` or ``after_bytes``: it refuses them."""
    for fault in ({"kind": "latency", "ms": 5, "direction": "upstream"},
                  {"kind": "reset", "after_bytes": 10}):
        with pytest.raises(ValidationError, match="TCP proxies only"):
            RuleInput.model_validate({"fault": fault, "labels": LABELS, "ttl": 10})


def test_kinds_per_protocol() -> None:
    """abort is HTTP's alone; timeout, slicer and limit_data TCP's; the rest both."""
    assert TCP_FAULT_KINDS == ("latency", "reset", "blackhole", "bandwidth", "timeout",
                               "slicer", "limit_data")
    assert kinds_for("http") == ["latency", "abort", "reset", "blackhole", "bandwidth"]
    abort = RuleInput.model_validate({"fault": {"kind": "abort"}, "labels": LABELS,
                                      "ttl": 1}).fault
    [(field, message)] = protocol_problems(abort, "tcp")
    assert field == "kind" and "allowed: latency, reset, blackhole" in message
    assert protocol_problems(make("slicer", size_bytes=3).fault, "tcp") == []
    assert protocol_problems(make("slicer", size_bytes=3).fault, "http")[0][0] == "kind"


# -- the plan -----------------------------------------------------------------------------------


def test_direction_picks_the_streams() -> None:
    """downstream is the responses, upstream the requests, both is both."""
    down, up, both = (make("latency", direction=d, ms=1) for d in
                      ("downstream", "upstream", "both"))
    assert (covers(down, "downstream"), covers(down, "upstream")) == (True, False)
    assert (covers(up, "downstream"), covers(up, "upstream")) == (False, True)
    assert covers(both, "downstream") and covers(both, "upstream")
    plan = plan_of([up], Rolls(), random.Random(1), NOW)
    assert plan.upstream.latency == up and plan.downstream.latency is None


def test_newest_rule_per_stream_and_kind_wins() -> None:
    """An escalation step replaces the one before on the streams it covers."""
    old = make("latency", "r-old", ms=20, direction="both")
    new = make("latency", "r-new", ms=50)
    plan = plan_of([old, new], Rolls(), random.Random(1), NOW)
    assert plan.downstream.latency == new
    assert plan.upstream.latency == old
    assert plan.rules == (old, new)


def test_connection_ending_kinds_take_the_newest_whatever_the_direction() -> None:
    """reset, timeout and limit_data end the whole connection: one of each counts."""
    first = make("limit_data", "r-1", bytes=10, direction="upstream")
    second = make("limit_data", "r-2", bytes=20)
    plan = plan_of([first, second], Rolls(), random.Random(1), NOW)
    assert plan.downstream.counts == (second,) and plan.upstream.counts == ()
    reset = make("reset", after_ms=100)
    counted = make("reset", "r-bytes", after_bytes=5, direction="both")
    assert plan_of([reset], Rolls(), random.Random(1), NOW).timed == (reset,)
    plan = plan_of([counted], Rolls(), random.Random(1), NOW)
    assert plan.timed == () and plan.upstream.counts == plan.downstream.counts == (counted,)
    timeout = make("timeout", ms=100)
    plan = plan_of([timeout], Rolls(), random.Random(1), NOW)
    assert plan.timed == (timeout,) and plan.downstream.holds == (timeout,)


def test_expired_rules_do_nothing() -> None:
    """A rule past its expiry is not in the plan even before its timer removed it."""
    rule = make("blackhole")
    assert plan_of([rule], Rolls(), random.Random(1), rule.expires_at) is EMPTY


def test_probability_is_rolled_once_per_connection_and_rule() -> None:
    """A connection keeps its roll across rule changes; a rule changed in place rolls again."""
    rng = random.Random(3)
    rule = make("blackhole", probability=0.5)
    outcomes = []
    for _ in range(400):
        rolls = Rolls()
        first = bool(plan_of([rule], rolls, rng, NOW).downstream.holds)
        other = make("latency", ms=1)
        again = bool(plan_of([rule, other], rolls, rng, NOW).downstream.holds)
        assert first == again
        outcomes.append(first)
    share = sum(outcomes) / len(outcomes)
    half = 2.5758 * math.sqrt(0.25 / len(outcomes))  # 99 % binomial interval
    assert 0.5 - half <= share <= 0.5 + half
    rolls = Rolls()
    seen = {bool(plan_of([make("blackhole", probability=p)], rolls, rng, NOW).downstream.holds)
            for p in (0.0, 1.0)}
    assert seen == {False, True}


def test_same_seed_same_plans() -> None:
    """Rolls are drawn in the rules' order: a seed reproduces a game day's connections."""
    rules = [make("reset", probability=0.3), make("latency", ms=5, probability=0.6)]

    def plans(seed: int) -> list[tuple[int, int]]:
        rng = random.Random(seed)
        out = []
        for _ in range(50):
            plan = plan_of(rules, Rolls(), rng, NOW)
            out.append((len(plan.timed), len(plan.rules)))
        return out

    assert plans(11) == plans(11)


# -- the stages ---------------------------------------------------------------------------------


async def _collect_delay(fault: dict[str, Any], chunks: int, gap: float
                         ) -> list[tuple[float, bytes]]:
    loop = asyncio.get_running_loop()
    got: list[tuple[float, bytes]] = []
    rule = make("latency", **fault)
    delay = Delay(loop, random.Random(5), rule.fault,  # type: ignore[arg-type]
                  lambda data: got.append((loop.time(), data)), ProxyMetrics(http=False))
    sent = []
    for index in range(chunks):
        sent.append(loop.time())
        delay.push(index.to_bytes(4, "big"))
        await asyncio.sleep(gap)
    while len(got) < chunks:
        await asyncio.sleep(0.01)
    return [(at - start, data) for (at, data), start in zip(got, sent, strict=True)]


def test_delay_counts_from_each_chunks_arrival() -> None:
    """Twenty chunks 10 ms apart under 100 ms: each is late by ~100 ms, none by the sum."""
    late = asyncio.run(_collect_delay({"ms": 100}, 20, 0.01))
    lateness = [seconds for seconds, _ in late]
    assert min(lateness) >= 0.095
    assert max(lateness) < 0.3, lateness


def test_jitter_never_reorders() -> None:
    """Jitter wider than the gap between chunks changes their times, never their order."""
    late = asyncio.run(_collect_delay({"ms": 40, "jitter_ms": 35}, 60, 0.002))
    order = [int.from_bytes(data, "big") for _, data in late]
    assert order == sorted(order)
    assert max(seconds for seconds, _ in late) < 0.5


def test_slicer_cuts_pieces_apart() -> None:
    """100 bytes in pieces of 10 ± 3, 20 ms apart; flush hands on the rest at once."""

    async def run() -> tuple[list[tuple[float, bytes]], float]:
        loop = asyncio.get_running_loop()
        got: list[tuple[float, bytes]] = []
        rule = make("slicer", size_bytes=10, size_variation=3, delay_ms=20)
        slicer = Slicer(loop, random.Random(2), rule.fault,  # type: ignore[arg-type]
                        lambda data: got.append((loop.time(), data)))
        start = loop.time()
        slicer.push(bytes(range(100)))
        await asyncio.sleep(0.1)
        slicer.flush()
        return [(at - start, data) for at, data in got], time.monotonic()

    got, _ = asyncio.run(run())
    assert b"".join(data for _, data in got) == bytes(range(100))
    pieces = got[:-1]  # the last is what the flush handed on
    assert len(pieces) >= 4
    assert all(7 <= len(data) <= 13 for _, data in pieces)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(pieces)]
    assert min(gaps) >= 0.015
