"""The proxy's rule set: atomic changes, one timer per rule that removes it at its expiry.

The timer is what keeps "no fault outlives its run" true with no traffic at all: the rule
leaves the list, the gauges and the data plane's snapshot when it expires, and a JSON
``expired`` line is logged. The data plane also checks ``expires_at`` per request, so a rule
never fires after its expiry even if the timer is a millisecond late.

A rule with a ``lease`` also ends when its run stops renewing it (``renew``): its timer is
set to the earlier of its expiry and its lease deadline, and a lapse is logged as
``lease_expired`` and counted in ``chaos_lease_expired_total``. A lapsed rule stays gone:
renewing it is refused, and :meth:`RuleStore.ended` says why it went (the last
:data:`ENDED_KEPT` endings are remembered, so a run that wakes up is told "lease expired"
rather than "unknown").

Whatever removes a rule (expiry, ``DELETE``, a ``PUT`` that leaves it out or changes it) calls
``on_ended`` with the ids that ended, so the data plane lets go at once of what they hold;
adding one calls ``on_started``, so open WebSocket tunnels (and, in TCP mode, every open
connection) meet the new rule.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

from gameday.injector.proxy.metrics import ProxyMetrics, rule_labels
from gameday.injector.proxy.screen import Screens
from gameday.injector.rules import Rule, StoredRule, rule_json

#: How many ended rules' reasons are remembered for renewals that come late (bounded memory).
ENDED_KEPT = 4096
LEASE_EXPIRED = "lease expired"


@dataclass(frozen=True)
class Renewal:
    """What one renewal did: the rules renewed (with their new deadlines) and those gone."""

    renewed: dict[str, float]
    gone: dict[str, str]


def log_event(event: str, **fields: Any) -> None:
    """Write one JSON log line to stdout."""
    line = json.dumps({"ts": round(time.time(), 6), "event": event, **fields}, default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class RuleStore(Generic[StoredRule]):
    """Rules by id, in the order they were added (later is newer); expiry by timers.

    One store serves either proxy mode: it holds that mode's rule model.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: ProxyMetrics,
                 log: Callable[..., None] = log_event) -> None:
        self._loop = loop
        self._metrics = metrics
        self._log = log
        self._rules: dict[str, StoredRule] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        #: Lease deadlines (epoch seconds) of the rules that have a lease, by id.
        self._leases: dict[str, float] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()
        #: The current rules as a tuple, replaced (never mutated) on every change.
        self.snapshot: tuple[StoredRule, ...] = ()
        #: Called with the ids of rules that ended (gone, or replaced by a different rule).
        self.on_ended: Callable[[set[str]], None] | None = None
        #: Called when a rule started (new, or replacing a different one).
        self.on_started: Callable[[], None] | None = None

    def rules(self, run: str | None = None) -> list[StoredRule]:
        """The stored rules, optionally only ``run``'s."""
        return [rule for rule in self._rules.values() if run is None or rule.labels.run == run]

    def get(self, rule_id: str) -> StoredRule | None:
        """The rule with ``rule_id``, if stored."""
        return self._rules.get(rule_id)

    def add(self, rule: StoredRule) -> None:
        """Store ``rule`` (its id must be new) and start its timer."""
        before = list(self._rules.values())
        self._rules[rule.id] = rule
        self._lease(rule, time.time())
        self._schedule(rule)
        self._changed(before)
        self._log("started", rule=rule_json(rule))

    def replace(self, rules: Iterable[StoredRule]) -> None:
        """Replace every rule at once (ids must be unique)."""
        before = list(self._rules.values())
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        old_rules = self._rules
        self._rules = {rule.id: rule for rule in rules}
        now = time.time()
        for rule in self._rules.values():
            # An unchanged rule keeps its deadline: a replace is not a renewal.
            if old_rules.get(rule.id) != rule:
                self._lease(rule, now)
        self._leases = {rule_id: until for rule_id, until in self._leases.items()
                        if rule_id in self._rules}
        for rule in self._rules.values():
            self._schedule(rule)
        self._changed(before)
        kept = set(self._rules)
        for rule in before:
            if rule.id not in kept or self._rules[rule.id] != rule:
                self._log("removed", rule=rule_json(rule), reason="replaced")
        old = {rule.id: rule for rule in before}
        for rule in self._rules.values():
            if old.get(rule.id) != rule:
                self._log("started", rule=rule_json(rule))

    def remove(self, rule_id: str, reason: str = "deleted") -> bool:
        """Remove one rule; False when it is not stored."""
        return self._drop([rule_id], "removed", reason) == 1

    def remove_run(self, run: str) -> int:
        """Remove every rule of ``run``; how many went."""
        return self._drop([rule.id for rule in self.rules(run)], "removed", "deleted")

    def lease_until(self, rule_id: str) -> float | None:
        """The lease deadline of a stored rule; None when it has no lease."""
        return self._leases.get(rule_id)

    def ended(self, rule_id: str) -> str | None:
        """Why a rule that is no longer stored ended, if it is still remembered."""
        return self._ended.get(rule_id)

    def renew(self, run: str, ids: Sequence[str] | None = None) -> Renewal:
        """Renew the leases of ``run``'s rules (only ``ids``, when given); report the gone.

        A listed rule that is not stored (lapsed, deleted, never there) is reported gone with
        its reason and never comes back; a stored rule without a lease is kept as it is.
        """
        now = time.time()
        wanted = list(ids) if ids is not None else [rule.id for rule in self.rules(run)]
        renewed: dict[str, float] = {}
        gone: dict[str, str] = {}
        for rule_id in wanted:
            rule = self._rules.get(rule_id)
            if rule is None or rule.labels.run != run:
                gone[rule_id] = self._ended.get(rule_id, "unknown") if rule is None \
                    else "belongs to another run"
                continue
            if rule.lease is None:
                continue
            until = self._leases.get(rule_id, 0.0)
            if until <= now:
                # Due but its timer has not run yet (a busy loop): it lapsed all the same.
                self._drop([rule_id], "lease_expired", LEASE_EXPIRED)
                gone[rule_id] = LEASE_EXPIRED
                continue
            self._leases[rule_id] = renewed[rule_id] = now + rule.lease
            self._reschedule(rule)
        return Renewal(renewed, gone)

    def close(self) -> None:
        """Cancel every timer (the process is stopping)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _drop(self, ids: list[str], event: str, reason: str) -> int:
        before = list(self._rules.values())
        gone = []
        for rule_id in ids:
            rule = self._rules.pop(rule_id, None)
            if rule is None:
                continue
            handle = self._timers.pop(rule_id, None)
            if handle is not None:
                handle.cancel()
            gone.append((rule, self._leases.pop(rule_id, None)))
            self._ended[rule_id] = reason
            self._ended.move_to_end(rule_id)
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
        if gone:
            self._changed(before)
            now = time.time()
            for rule, until in gone:
                extra: dict[str, Any] = {"reason": reason}
                if event == "expired":
                    extra = {"lateness_ms": round((now - rule.expires_at) * 1000, 3)}
                elif event == "lease_expired" and until is not None:
                    extra = {"lateness_ms": round((now - until) * 1000, 3)}
                    self._metrics.lease_expired.labels(*rule_labels(rule)).inc()
                self._log(event, rule=rule_json(rule), **extra)
        return len(gone)

    def _lease(self, rule: StoredRule, now: float) -> None:
        if rule.lease is not None:
            self._leases[rule.id] = now + rule.lease

    def _end_of(self, rule: StoredRule) -> float:
        return min(rule.expires_at, self._leases.get(rule.id, rule.expires_at))

    def _schedule(self, rule: StoredRule) -> None:
        delay = max(0.0, self._end_of(rule) - time.time())
        self._timers[rule.id] = self._loop.call_later(delay, self._expire, rule.id)

    def _reschedule(self, rule: StoredRule) -> None:
        handle = self._timers.pop(rule.id, None)
        if handle is not None:
            handle.cancel()
        self._schedule(rule)

    def _expire(self, rule_id: str) -> None:
        rule = self._rules.get(rule_id)
        if rule is None:
            return
        now = time.time()
        if self._end_of(rule) > now:
            # Timers round to the millisecond and may fire a hair early: never remove early.
            self._schedule(rule)
            return
        self._timers.pop(rule_id, None)
        if rule.expires_at <= now:
            self._drop([rule_id], "expired", "ttl")
        else:
            self._drop([rule_id], "lease_expired", LEASE_EXPIRED)

    def _indexed(self) -> None:
        """Derive from a new snapshot what the data plane reads on its hot path (nothing here)."""

    def _changed(self, before: list[StoredRule]) -> None:
        self.snapshot = tuple(self._rules.values())
        self._indexed()
        self._metrics.rules_changed(before, list(self.snapshot))
        rules = self._rules
        ended = {rule.id for rule in before if rules.get(rule.id) != rule}
        if ended and self.on_ended is not None:
            self.on_ended(ended)
        if self.on_started is not None and len(rules) > len(before) - len(ended):
            self.on_started()  # more rules now than survived the change: some are new


class HttpRuleStore(RuleStore[Rule]):
    """The HTTP mode's store: it also keeps the snapshot's screens (see ``screen.py``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: ProxyMetrics,
                 log: Callable[..., None] = log_event) -> None:
        super().__init__(loop, metrics, log)
        self.screens = Screens()

    def _indexed(self) -> None:
        self.screens = Screens.of(self.snapshot)
