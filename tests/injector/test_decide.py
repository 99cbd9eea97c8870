"""The pure decision core: every kind, matching, seeded probabilities, expiry."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gameday.faults import BandwidthFault, LatencyFault
from gameday.injector.decide import PASS, Decision, Request, decide, fault_headers, without
from gameday.injector.rules import Rule, RuleInput, RuleProblem, build_rule
from gameday.records import Labels

NOW = 1_800_000_000.0
LABELS = Labels(run="run-1", scenario="slow payments", environment="dev", step=1)
GET = Request("GET", "/api/pay", {"x-tenant": "a"})


def make(kind: str, rule_id: str = "r", expires_at: float = NOW + 60, target: str = "",
         **fields: Any) -> Rule:
    """A rule of ``kind`` with ``fields``."""
    return Rule.model_validate({"id": rule_id, "fault": {"kind": kind, **fields},
                                "labels": LABELS.model_dump(), "target": target,
                                "expires_at": expires_at})


def run(rules: list[Rule], request: Request = GET, seed: int = 1, now: float = NOW,
        target: str | None = None) -> Decision:
    """Decide once with a fresh RNG."""
    return decide(rules, request, random.Random(seed), now, target)


def test_no_rules_pass() -> None:
    """Without rules every request passes."""
    assert run([]) is PASS
    assert not PASS.faulted


def test_latency_delays() -> None:
    """A latency rule without jitter delays by exactly ``ms`` and forwards."""
    decision = run([make("latency", ms=120)])
    assert decision.action == "pass"
    assert decision.delay_ms == 120
    assert decision.kinds == ("latency",)


def test_abort_answers_status() -> None:
    """An abort rule ends the request with its status."""
    decision = run([make("abort", status=503)])
    assert (decision.action, decision.status) == ("abort", 503)


@pytest.mark.parametrize("kind", ["reset", "blackhole"])
def test_reset_and_blackhole(kind: str) -> None:
    """Reset and blackhole rules end the request with that action."""
    assert run([make(kind)]).action == kind


def test_bandwidth_throttles() -> None:
    """A bandwidth rule forwards with a throttle, without consuming a random draw."""
    rng = random.Random(3)
    decision = decide([make("bandwidth", kbps=64)], GET, rng, NOW)
    assert (decision.action, decision.kbps) == ("pass", 64)
    assert rng.random() == random.Random(3).random()


def test_delay_combines_with_abort() -> None:
    """A latency and an abort rule together: wait, then abort."""
    decision = run([make("latency", "a", ms=50), make("abort", "b", status=500)])
    assert (decision.action, decision.delay_ms, decision.status) == ("abort", 50, 500)
    assert decision.kinds == ("latency", "abort")


def test_newest_rule_of_a_kind_wins() -> None:
    """Two latency rules (an escalation overlap) do not add up: the later one counts."""
    decision = run([make("latency", "step1", ms=100), make("latency", "step2", ms=200)])
    assert decision.delay_ms == 200
    assert [r.id for r in decision.rules] == ["step2"]


def test_newest_terminal_wins_and_cancels_throttle() -> None:
    """Of two fired terminal faults the newer one acts; a throttle does not apply to it."""
    decision = run([make("blackhole", "old"), make("bandwidth", "bw", kbps=8),
                    make("abort", "new", status=502)])
    assert (decision.action, decision.kbps) == ("abort", None)
    assert [r.id for r in decision.rules] == ["new"]


@pytest.mark.parametrize(("match", "request_", "hit"), [
    ({"methods": ["POST"]}, GET, False),
    ({"methods": ["GET", "POST"]}, GET, True),
    ({"path_prefix": "/api"}, GET, True),
    ({"path_prefix": "/admin"}, GET, False),
    ({"headers": {"X-Tenant": "a"}}, GET, True),
    ({"headers": {"x-tenant": "b"}}, GET, False),
    ({"headers": {"x-other": "a"}}, GET, False),
    ({"methods": ["GET"], "path_prefix": "/api/p", "headers": {"x-tenant": "a"}}, GET, True),
])
def test_matching(match: dict[str, Any], request_: Request, hit: bool) -> None:
    """Every given part of ``match`` must fit: methods, path prefix, header values."""
    assert run([make("abort", match=match)], request_).faulted is hit


def test_expired_rules_do_not_apply() -> None:
    """A rule stops applying exactly at ``expires_at``."""
    rules = [make("abort", expires_at=NOW + 1)]
    assert run(rules, now=NOW + 0.999).faulted
    assert not run(rules, now=NOW + 1).faulted


def test_target_filter() -> None:
    """Rules for another target are skipped; untargeted rules apply everywhere."""
    aimed = [make("abort", target="checkout/payments")]
    assert run(aimed, target="checkout/payments").faulted
    assert not run(aimed, target="checkout/search").faulted
    assert run(aimed, target=None).faulted
    assert run([make("abort")], target="checkout/search").faulted


def test_same_seed_same_decisions() -> None:
    """The same seed and requests give the same decisions; another seed differs."""
    rules = [make("latency", "l", ms=100, jitter_ms=40, probability=0.5),
             make("abort", "a", probability=0.3)]

    def sequence(seed: int) -> list[tuple[str, float]]:
        rng = random.Random(seed)
        return [(d.action, d.delay_ms) for d in (decide(rules, GET, rng, NOW)
                                                 for _ in range(200))]

    assert sequence(42) == sequence(42)
    assert sequence(42) != sequence(43)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_probability_is_rolled_per_request(p: float) -> None:
    """Over 20 000 requests the abort share lies within 4.5 standard deviations of p."""
    rng = random.Random(2024)
    rules = [make("abort", probability=p)]
    n = 20_000
    hits = sum(decide(rules, GET, rng, NOW).faulted for _ in range(n))
    sd = math.sqrt(n * p * (1 - p))
    assert abs(hits - n * p) < 4.5 * sd, (hits, n * p)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_probability_extremes(p: float) -> None:
    """Probability 0 never fires, 1 always does."""
    rng = random.Random(5)
    rules = [make("reset", probability=p)]
    assert {decide(rules, GET, rng, NOW).faulted for _ in range(500)} == {bool(p)}


def test_uniform_jitter_stays_in_range() -> None:
    """Uniform jitter spreads delays over ms ± jitter, with mean about ms."""
    rng = random.Random(9)
    rules = [make("latency", ms=100, jitter_ms=20)]
    delays = [decide(rules, GET, rng, NOW).delay_ms for _ in range(5000)]
    assert 80 <= min(delays) < 82 and 118 < max(delays) <= 120
    assert abs(sum(delays) / len(delays) - 100) < 1


def test_normal_jitter_has_its_standard_deviation() -> None:
    """Normal jitter has sd ≈ jitter_ms and never makes a delay negative."""
    rng = random.Random(11)
    rules = [make("latency", ms=100, jitter_ms=10, distribution="normal")]
    delays = [decide(rules, GET, rng, NOW).delay_ms for _ in range(5000)]
    mean = sum(delays) / len(delays)
    sd = math.sqrt(sum((d - mean) ** 2 for d in delays) / len(delays))
    assert abs(mean - 100) < 1 and 9 < sd < 11
    wide = [make("latency", ms=5, jitter_ms=50, distribution="normal")]
    assert min(decide(wide, GET, rng, NOW).delay_ms for _ in range(2000)) == 0


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), ms=st.floats(0, 1000), jitter=st.floats(0, 500),
       normal=st.booleans(), p=st.floats(0, 1), path=st.text(max_size=20))
def test_decisions_are_well_formed(seed: int, ms: float, jitter: float, normal: bool, p: float,
                                   path: str) -> None:
    """Any latency rule yields a non-negative, bounded delay, reproducibly per seed."""
    rules = [make("latency", ms=ms, jitter_ms=jitter, probability=p,
                  distribution="normal" if normal else "uniform")]
    request = Request("GET", "/" + path)
    first = decide(rules, request, random.Random(seed), NOW)
    assert first == decide(rules, request, random.Random(seed), NOW)
    assert first.delay_ms >= 0
    if not normal:
        assert first.delay_ms <= ms + jitter


def test_fault_headers_mark_scenario_kind_and_run() -> None:
    """Fired rules give x-chaos-scenario, x-chaos-fault and a baggage entry, percent-encoded."""
    headers = dict(fault_headers(run([make("latency", "l", ms=1), make("abort", "a")])))
    assert headers["x-chaos-scenario"] == "slow%20payments"
    assert headers["x-chaos-fault"] == "latency,abort"
    assert headers["baggage"] == ("chaos.scenario=slow%2520payments,"
                                  "chaos.fault=latency%2Cabort,chaos.run=run-1")
    assert fault_headers(PASS) == []


def test_build_rule_from_ttl_and_limits() -> None:
    """Input with a ttl becomes an absolute expiry; over the maximum or in the past is refused."""
    data = {"fault": {"kind": "abort"}, "labels": LABELS.model_dump()}
    stored = build_rule(RuleInput.model_validate({**data, "ttl": 30}), NOW, max_ttl=60,
                        default_target="t")
    assert (stored.expires_at, stored.target) == (NOW + 30, "t")
    assert stored.id.startswith("r-")
    with pytest.raises(RuleProblem) as too_long:
        build_rule(RuleInput.model_validate({**data, "ttl": 61}), NOW, max_ttl=60)
    assert too_long.value.field == "ttl"
    with pytest.raises(RuleProblem) as past:
        build_rule(RuleInput.model_validate({**data, "expires_at": NOW - 1}), NOW)
    assert past.value.field == "expires_at"
    with pytest.raises(ValueError):
        RuleInput.model_validate({**data, "ttl": 5, "expires_at": NOW + 5})


def test_without_ended_rules() -> None:
    """An ended rule's delay, throttle or terminal action goes; the others' effects stay."""
    decision = run([make("latency", "slow", ms=50), make("abort", "stop", status=500)])
    assert without(decision, {"other"}) is decision
    rest = without(decision, {"slow"})
    assert (rest.action, rest.delay_ms, rest.status) == ("abort", 0.0, 500)
    rest = without(decision, {"stop"})
    assert (rest.action, rest.delay_ms, rest.status) == ("pass", 50, 0)
    assert without(decision, {"slow", "stop"}) is PASS
    throttled = run([make("bandwidth", "bw", kbps=8), make("latency", "slow", ms=5)])
    assert without(throttled, {"bw"}).kbps is None
    assert without(throttled, {"slow"}).kbps == 8


@pytest.mark.parametrize(("model", "data"), [
    (BandwidthFault, {"kbps": math.inf}),
    (BandwidthFault, {"kbps": math.nan}),
    (BandwidthFault, {"kbps": 1e-300}),
    (BandwidthFault, {"kbps": 10_000_001}),
    (LatencyFault, {"ms": math.inf}),
    (LatencyFault, {"ms": 600_001}),
    (LatencyFault, {"ms": 1, "jitter_ms": math.inf}),
    (LatencyFault, {"ms": 1, "probability": math.nan}),
])
def test_catalog_fault_values_are_finite_and_bounded(model: type[BandwidthFault | LatencyFault],
                                                     data: dict[str, float]) -> None:
    """The catalog's fault models refuse non-finite and out-of-range magnitudes."""
    with pytest.raises(ValidationError):
        model.model_validate(data)
