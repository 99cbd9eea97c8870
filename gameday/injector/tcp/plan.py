"""What the rules do to one TCP connection: a pure plan, recomputed whenever the rules change.

``plan_of(rules, rolls, rng, now)`` says, for one connection, what each of its two streams does
(``upstream``: client → upstream, the requests; ``downstream``: upstream → client, the
responses) and which rules end the connection at a time:

* a rule acts on the streams its ``direction`` covers (``both`` covers the two);
* per stream and kind only the **newest** rule counts (later in the sequence is newer), as in
  the HTTP mode, so an escalation step that overlaps the one before replaces it; ``reset``,
  ``timeout`` and ``limit_data`` end the whole connection, so for them the newest rule of the
  kind counts, whatever its direction;
* ``probability`` is rolled once per connection and rule (:class:`Rolls`), when the rule first
  meets the connection: at connect, or when the rule starts while the connection is open. A
  rule changed in place rolls again;
* ``latency``, ``bandwidth`` and ``slicer`` shape a stream, ``blackhole`` and ``timeout`` hold
  it (pass nothing), ``limit_data`` and ``reset`` with ``after_bytes`` count its bytes; a
  ``reset`` without ``after_bytes`` and a ``timeout`` act on a timer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gameday.faults import (
    DEFAULT_DIRECTION,
    BandwidthFault,
    LatencyFault,
    ResetFault,
    SlicerFault,
)
from gameday.injector.tcp.rules import TcpRule

STREAMS = ("upstream", "downstream")
#: Kinds that end the whole connection: the newest rule of the kind counts, not per stream.
_CONNECTION_KINDS = ("reset", "timeout", "limit_data")


def covers(rule: TcpRule, stream: str) -> bool:
    """Whether ``rule`` acts on ``stream`` (``upstream`` or ``downstream``)."""
    direction = rule.fault.direction or DEFAULT_DIRECTION
    return direction in ("both", stream)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What one stream of a connection does under the rules that fired on it."""

    latency: TcpRule | None = None
    bandwidth: TcpRule | None = None
    slicer: TcpRule | None = None
    #: Blackhole and timeout rules: the stream passes nothing while one holds it.
    holds: tuple[TcpRule, ...] = ()
    #: limit_data, and reset with ``after_bytes``: the connection ends after so many bytes.
    counts: tuple[TcpRule, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether no rule acts on this stream (its bytes go straight through)."""
        return not (self.latency or self.bandwidth or self.slicer or self.holds or self.counts)

    def faults(self) -> tuple[LatencyFault | None, SlicerFault | None, BandwidthFault | None]:
        """The faults of the shaping rules: latency, slicer, bandwidth (``None``: no rule)."""
        latency = self.latency.fault if self.latency else None
        slicer = self.slicer.fault if self.slicer else None
        bandwidth = self.bandwidth.fault if self.bandwidth else None
        assert isinstance(latency, LatencyFault | None)
        assert isinstance(slicer, SlicerFault | None)
        assert isinstance(bandwidth, BandwidthFault | None)
        return latency, slicer, bandwidth


@dataclass(frozen=True, slots=True)
class Plan:
    """What one connection does under the rules: its two streams and its timed ends."""

    upstream: StreamPlan = StreamPlan()
    downstream: StreamPlan = StreamPlan()
    #: reset (at once, or ``after_ms``) and timeout (close after ``ms``) rules.
    timed: tuple[TcpRule, ...] = ()
    #: Every rule that fired on the connection, oldest first.
    rules: tuple[TcpRule, ...] = ()


EMPTY = Plan()


class Rolls:
    """One connection's probability rolls: one per rule, kept while the rule is unchanged."""

    __slots__ = ("_rolled",)

    def __init__(self) -> None:
        self._rolled: dict[str, tuple[TcpRule, bool]] = {}

    def fired(self, rule: TcpRule, rng: random.Random) -> bool:
        """Whether ``rule`` fired on this connection (rolled the first time it is asked)."""
        seen = self._rolled.get(rule.id)
        if seen is not None and seen[0] == rule:
            return seen[1]
        probability = getattr(rule.fault, "probability", 1.0)
        hit = probability >= 1.0 or rng.random() < probability
        self._rolled[rule.id] = (rule, hit)
        return hit

    def keep(self, ids: Iterable[str]) -> None:
        """Forget the rolls of rules other than ``ids`` (they ended)."""
        wanted = set(ids)
        for rule_id in [key for key in self._rolled if key not in wanted]:
            del self._rolled[rule_id]


def plan_of(rules: Sequence[TcpRule], rolls: Rolls, rng: random.Random, now: float) -> Plan:
    """The plan of one connection under ``rules`` at ``now`` (epoch seconds)."""
    per_stream: dict[tuple[str, str], TcpRule] = {}
    per_connection: dict[str, TcpRule] = {}
    for rule in rules:
        if not rule.active(now):
            continue
        kind = rule.fault.kind
        if kind in _CONNECTION_KINDS:
            per_connection[kind] = rule
            continue
        for stream in STREAMS:
            if covers(rule, stream):
                per_stream[(stream, kind)] = rule
    if not per_stream and not per_connection:
        return EMPTY
    # Rolled in the rules' order, so the same seed and the same rule changes roll alike.
    winners = {id(rule) for rule in (*per_stream.values(), *per_connection.values())}
    fired = {rule.id for rule in rules if id(rule) in winners and rolls.fired(rule, rng)}

    def pick(rule: TcpRule | None) -> TcpRule | None:
        return rule if rule is not None and rule.id in fired else None

    reset = pick(per_connection.get("reset"))
    timeout = pick(per_connection.get("timeout"))
    limit = pick(per_connection.get("limit_data"))
    counting = reset if reset and isinstance(reset.fault, ResetFault) \
        and reset.fault.after_bytes is not None else None
    streams = {}
    for stream in STREAMS:
        holds = (pick(per_stream.get((stream, "blackhole"))),
                 timeout if timeout and covers(timeout, stream) else None)
        counts = (limit if limit and covers(limit, stream) else None,
                  counting if counting and covers(counting, stream) else None)
        streams[stream] = StreamPlan(
            latency=pick(per_stream.get((stream, "latency"))),
            bandwidth=pick(per_stream.get((stream, "bandwidth"))),
            slicer=pick(per_stream.get((stream, "slicer"))),
            holds=tuple(rule for rule in holds if rule is not None),
            counts=tuple(rule for rule in counts if rule is not None))
    timed = tuple(rule for rule in (reset if counting is None else None, timeout)
                  if rule is not None)
    in_force = tuple(rule for rule in rules if id(rule) in winners and rule.id in fired)
    return Plan(streams["upstream"], streams["downstream"], timed, in_force)
