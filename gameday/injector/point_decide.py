"""What a fault point does with one call (pure), how it is counted, and how it is traced.

Per fault kind only the newest active rule counts (later in the file is newer), as in the
proxy's decision, so an escalation step that overlaps the previous one replaces it. Latency is
rolled first, then the error, one draw each, so the same seed and calls give the same faults.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from gameday.faults import ErrorFault, LatencyFault
from gameday.injector.decide import delay_of
from gameday.injector.rules import Rule
from gameday.injector.rules_file import ERRORS

#: The same family the proxies export, with the point's name: a run's faults add up across
#: injectors (``sum(chaos_faults_injected_total{run=...})``).
INJECTED = Counter("chaos_faults_injected_total",
                   "Calls a fault rule fired on at a fault point of this service",
                   ["run", "scenario", "environment", "fault", "target", "point"])


@dataclass(frozen=True, slots=True)
class PointDecision:
    """What to do with one call: wait ``delay_ms``, then raise ``error`` (None: make it)."""

    delay_ms: float = 0.0
    error: str | None = None
    #: The rules that fired, oldest first.
    rules: tuple[Rule, ...] = ()
    #: When the rule that asked for the delay ends (a delay never outlives it; another rule's
    #: end does not cut it).
    ends_at: float = float("inf")

    def delay_s(self, now: float) -> float:
        """Seconds to wait from ``now``: the delay, cut short where its rule ends."""
        return max(0.0, min(self.delay_ms / 1000, self.ends_at - now))

    @property
    def kinds(self) -> tuple[str, ...]:
        """The fault kinds that fired."""
        return tuple(rule.fault.kind for rule in self.rules)

    @property
    def latency_rule(self) -> Rule | None:
        """The rule that asked for the delay, if one did."""
        return next((rule for rule in self.rules if isinstance(rule.fault, LatencyFault)), None)

    @property
    def error_rule(self) -> Rule | None:
        """The rule that asked for the error, if one did (whatever the order in the file)."""
        return next((rule for rule in self.rules if isinstance(rule.fault, ErrorFault)), None)


def decide_point(rules: Sequence[Rule], now: float, rng: random.Random) -> PointDecision | None:
    """The decision for one call under ``rules`` (those naming the point) at ``now``."""
    latency: tuple[Rule, LatencyFault] | None = None
    error: tuple[Rule, ErrorFault] | None = None
    for rule in rules:
        if now < rule.expires_at:
            if isinstance(rule.fault, LatencyFault):
                latency = (rule, rule.fault)
            elif isinstance(rule.fault, ErrorFault):
                error = (rule, rule.fault)
    fired: list[Rule] = []
    delay_ms, ends_at = 0.0, float("inf")
    if latency is not None and rng.random() < latency[1].probability:
        delay_ms, ends_at = delay_of(latency[1], rng), latency[0].expires_at
        fired.append(latency[0])
    name = None
    if error is not None and rng.random() < error[1].probability:
        name = error[1].error
        fired.append(error[0])
    if not fired:
        return None
    order = {id(rule): index for index, rule in enumerate(rules)}
    fired.sort(key=lambda rule: order[id(rule)])
    return PointDecision(delay_ms, name, tuple(fired), ends_at)


class _Count:
    """The point's counters, behind one name so the wrappers share them."""

    @staticmethod
    def injected(decision: PointDecision, point: str, raised: bool) -> None:
        """Count the rules that acted on a call (an error that could not be raised did not)."""
        for rule in decision.rules:
            if not raised and isinstance(rule.fault, ErrorFault):
                continue
            labels = rule.labels
            INJECTED.labels(labels.run, labels.scenario, labels.environment, rule.fault.kind,
                            rule.target, point).inc()

    @staticmethod
    def problem(reason: str) -> None:
        ERRORS.labels(reason=reason).inc()

    def internal(self) -> None:
        self.problem("internal")


count = _Count()


def trace(decision: PointDecision, point: str, waited: float, error: BaseException | None,
          *, injector: str = "point", error_text: str | None = None) -> None:
    """Mark the current span with the fault, in a service that traces with the OpenTelemetry
    SDK (an untraced service never imports it). Called once the fault is over: it began
    ``waited`` seconds ago. An error that could not be raised is not marked. ``injector``
    names what acted (``point``, ``grpc``); ``error_text`` what the call ended with, when
    that is not the rule's error name (a gRPC status)."""
    if "opentelemetry.trace" not in sys.modules:
        return
    try:
        from gameday.tracing.faults import transport_spans

        spans = transport_spans()
        if spans is not None:
            acted = decision.rules if error is not None else tuple(
                rule for rule in decision.rules if not isinstance(rule.fault, ErrorFault))
            spans.point(acted, point, decision.delay_ms, waited,
                        (error_text or decision.error) if error is not None else None,
                        type(error).__name__ if error is not None else None,
                        at=time.time_ns() - int(waited * 1e9), injector=injector)
    except Exception:  # tracing must not break the call
        count.internal()
