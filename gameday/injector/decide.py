"""The pure decision core shared by the proxy and the httpx transport (no I/O here).

``decide(rules, request, rng, now)`` says what to do with one request:

* the rules that apply are those still active at ``now``, whose ``target`` is empty or the
  injector's own, and whose ``match`` fits the request;
* per fault kind only the **newest** applying rule counts (later in the sequence is newer), so
  an escalation step that overlaps the previous step's TTL replaces it instead of adding to it;
* its probability is rolled per request with ``rng`` (one draw per kind that has a rule, in a
  fixed kind order), so the same seed and the same requests give the same decisions;
* a fired latency rule delays the request (``ms`` plus jitter, uniform in ±jitter or normal
  with sd=jitter, never below 0); a fired abort, reset or blackhole ends it (the newest one
  of those that fired wins); a bandwidth rule throttles the response body.
"""

from __future__ import annotations

import random
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from gameday.faults import AbortFault, BandwidthFault, LatencyFault
from gameday.injector.rules import HTTP_FAULT_KINDS, Rule

Action = Literal["pass", "abort", "reset", "blackhole"]
_TERMINAL = ("abort", "reset", "blackhole")


@dataclass(frozen=True, slots=True)
class Request:
    """What the decision looks at: method, path and headers (names in lower case)."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request.

    ``delay_ms`` is waited first (0: none); then ``action`` happens: ``pass`` forwards the
    request (its response body throttled to ``kbps`` when set), ``abort`` answers ``status``
    without contacting the upstream, ``reset`` resets the connection, ``blackhole`` holds the
    request without an answer. ``rules`` are the rules that fired, oldest first.
    """

    action: Action = "pass"
    delay_ms: float = 0.0
    status: int = 0
    kbps: float | None = None
    rules: tuple[Rule, ...] = ()

    @property
    def faulted(self) -> bool:
        """Whether any rule fired."""
        return bool(self.rules)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Fault kinds of the rules that fired."""
        return tuple(rule.fault.kind for rule in self.rules)


PASS = Decision()


def matches(rule: Rule, request: Request) -> bool:
    """Whether ``rule``'s ``match`` fits ``request`` (every given part must match)."""
    match = rule.fault.match
    if match.methods and request.method.upper() not in match.methods:
        return False
    if not request.path.startswith(match.path_prefix):
        return False
    headers = request.headers
    return all(headers.get(name.lower()) == value for name, value in match.headers.items())


def applicable(rules: Sequence[Rule], request: Request, now: float,
               target: str | None = None) -> dict[str, Rule]:
    """The newest rule per fault kind that is active, aimed at ``target`` and matches."""
    newest: dict[str, Rule] = {}
    for rule in rules:
        if rule.points or not rule.active(now):  # a fault point's rule: not for requests
            continue
        if target is not None and rule.target and rule.target != target:
            continue
        if matches(rule, request):
            newest[rule.fault.kind] = rule
    return newest


def delay_of(fault: LatencyFault, rng: random.Random) -> float:
    """Milliseconds to wait for a latency fault: ``ms`` plus jitter, never negative."""
    if not fault.jitter_ms:
        return fault.ms
    if fault.distribution == "normal":
        value = fault.ms + rng.gauss(0.0, fault.jitter_ms)
    else:
        value = fault.ms + rng.uniform(-fault.jitter_ms, fault.jitter_ms)
    return max(0.0, value)


def decide(rules: Sequence[Rule], request: Request, rng: random.Random, now: float,
           target: str | None = None) -> Decision:
    """Decide what happens to ``request`` under ``rules`` at ``now`` (epoch seconds).

    ``target`` is the injector's own target name; rules aimed at another target are skipped
    (``None`` skips none).
    """
    if not rules:
        return PASS
    newest = applicable(rules, request, now, target)
    if not newest:
        return PASS
    order = {id(rule): index for index, rule in enumerate(rules)}
    fired: list[Rule] = []
    delay_ms = 0.0
    kbps: float | None = None
    for kind in HTTP_FAULT_KINDS:
        rule = newest.get(kind)
        if rule is None:
            continue
        fault = rule.fault
        if isinstance(fault, BandwidthFault):
            kbps = fault.kbps
            fired.append(rule)
        elif rng.random() < fault.probability:
            fired.append(rule)
            if isinstance(fault, LatencyFault):
                delay_ms = delay_of(fault, rng)
    if not fired:
        return PASS
    terminal = [rule for rule in fired if rule.fault.kind in _TERMINAL]
    action: Action = "pass"
    status = 0
    if terminal:
        winner = max(terminal, key=lambda rule: order[id(rule)])
        action = winner.fault.kind  # type: ignore[assignment]
        if isinstance(winner.fault, AbortFault):
            status = winner.fault.status
        # Losing terminal faults did not happen to this request; a throttle cannot either.
        fired = [rule for rule in fired if rule.fault.kind not in _TERMINAL or rule is winner]
        fired = [rule for rule in fired if rule.fault.kind != "bandwidth"]
        kbps = None
    fired.sort(key=lambda rule: order[id(rule)])
    return Decision(action=action, delay_ms=delay_ms, status=status, kbps=kbps,
                    rules=tuple(fired))


def without(decision: Decision, gone: Container[str]) -> Decision:
    """``decision`` once the rules with ids in ``gone`` have ended (removed or expired).

    What an ended rule caused stops, what the others caused stays: its delay is over, its
    throttle is lifted, and if it was the terminal action the request passes instead.
    Returns ``decision`` itself when none of its rules ended.
    """
    kept = tuple(rule for rule in decision.rules if rule.id not in gone)
    if len(kept) == len(decision.rules):
        return decision
    if not kept:
        return PASS
    kinds = {rule.fault.kind for rule in kept}
    action: Action = decision.action if decision.action in kinds else "pass"
    return Decision(action=action, delay_ms=decision.delay_ms if "latency" in kinds else 0.0,
                    status=decision.status if action == "abort" else 0,
                    kbps=decision.kbps if "bandwidth" in kinds else None, rules=kept)


def _quote(value: str) -> str:
    # Labels are free text; percent-encoding keeps header values to safe characters.
    return quote(value, safe="-._~")


def fault_headers(decision: Decision) -> list[tuple[str, str]]:
    """Headers that mark faulted traffic: ``x-chaos-scenario``, ``x-chaos-fault``, ``baggage``.

    Empty for a request no rule fired on. Several fired rules are listed comma-separated.
    """
    if not decision.rules:
        return []
    scenarios = ",".join(dict.fromkeys(_quote(r.labels.scenario) for r in decision.rules))
    runs = ",".join(dict.fromkeys(_quote(r.labels.run) for r in decision.rules))
    kinds = ",".join(dict.fromkeys(decision.kinds))
    baggage = ",".join(f"chaos.{key}={_quote(value)}" for key, value in
                       (("scenario", scenarios), ("fault", kinds), ("run", runs)))
    return [("x-chaos-scenario", scenarios), ("x-chaos-fault", kinds), ("baggage", baggage)]
