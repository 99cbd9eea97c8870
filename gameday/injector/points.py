"""Fault points: faults injected into any call of a service's own code, sync or async.

::

    from gameday.injector.points import configure_points, fault_point

    configure_points(rules_file="/etc/chaos/rules.json", target="checkout/redis")

    @fault_point("redis")
    async def cached(key: str) -> bytes | None: ...

    with fault_point("db.fetch"):
        row = conn.execute(query).fetchone()

A point reads the rules file the ``transport`` driver writes (the one an httpx
:class:`~gameday.injector.transport.FaultTransport` reads: same watcher, limits, TTL and
lease), and acts on its rules whose ``points`` cover its name: ``latency`` (with jitter) waits
before the call, ``error`` raises the exception its name stands for instead of the call
(:mod:`gameday.injector.point_errors`), each rolled per call with its ``probability``.

Cost and safety:

* A process that never configured points (nor set ``GAMEDAY_FAULT_RULES``) pays a global
  lookup per call. With a rules file, a call looks at the rules that name its point, found
  once per version of the file (rules that name other points cost it nothing), and at the
  file's ``stat`` at most every :data:`RECHECK` (a rule deleted or added is seen within a
  millisecond; a rule's expiry and a lapsed lease are checked by the clock on every call).
  A delay ends where its rule does (a lease renewed meanwhile moves that end on), and an
  error after a delay is raised only if its own rule is still in force.
* A missing, invalid or hostile rules file, an unknown error name or an exception that cannot
  be built never breaks the wrapped call: nothing is injected and the problem is counted
  (``gameday_transport_rules_errors_total{reason}``).
* Every faulted call is counted in ``chaos_faults_injected_total`` (default registry) with the
  point's name, and marked on the current span when the service traces with OpenTelemetry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from gameday.injector.point_decide import PointDecision, count, decide_point, trace
from gameday.injector.point_errors import ErrorFactory, raise_for
from gameday.injector.rules import Rule
from gameday.injector.rules_file import Clock, RuleSource
from gameday.models.targets import POINT_NAME, point_covers

__all__ = ["FaultPoint", "PointRules", "configure_points", "fault_point", "point_rules"]

#: The environment variables a service's points are configured from when it never calls
#: :func:`configure_points`: the rules file, and the target name (``service/dependency``).
RULES_VARIABLE = "GAMEDAY_FAULT_RULES"
TARGET_VARIABLE = "GAMEDAY_FAULT_TARGET"

#: How often a point looks at the rules file's ``stat``, in seconds. A ``stat`` costs a
#: microsecond or more (several on a busy machine): per call it would be most of a point's
#: cost. A new version (a rule added, or deleted) is seen within this; a rule's expiry and
#: its lease's end are compared with the clock on every call.
RECHECK = 0.001
#: Point names whose rules are remembered per version of the rules (a service has a few; one
#: that makes names per call, say per gRPC method of a proxy, is looked up each time past it).
MAX_NAMES = 4096

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(POINT_NAME)


class PointRules:
    """The rules a service's fault points act on: given directly or read from a rules file.

    ``target`` skips rules aimed at another target (as the transport's does); ``errors`` maps
    error names to the exceptions this service raises for them (beside those registered
    process-wide with :func:`~gameday.injector.point_errors.register_error`).
    """

    def __init__(self, rules: Sequence[Rule] | None = None, rules_file: str | Path | None = None,
                 *, target: str | None = None, seed: int | None = None,
                 clock: Clock = time.time,
                 errors: Mapping[str, ErrorFactory] | None = None,
                 recheck: float = RECHECK) -> None:
        self.source = RuleSource(rules, rules_file, clock)
        self.target = target
        self.errors = dict(errors or {})
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        # A version of the rules, and the rules of it that name each point: one attribute,
        # replaced whole, so a thread never pairs one version's map with another's rules.
        self._found: tuple[tuple[Rule, ...] | None, dict[str, tuple[Rule, ...]]] = (None, {})
        self.recheck = recheck if self.source.path is not None else math.inf
        self._next_look = -math.inf

    def for_point(self, name: str) -> tuple[Rule, ...]:
        """The rules of the current version whose points cover ``name`` (expired ones too)."""
        if (now := time.monotonic()) >= self._next_look:
            self._next_look = now + self.recheck
            rules = self.source.rules()
            if rules is not self._found[0]:
                # A new version: a fresh map, published whole with it (another thread may
                # still read the old pair).
                self._found = (rules, {})
        version, by_point = self._found
        found = by_point.get(name)
        if found is None:
            found = tuple(rule for rule in version or () if rule.points
                          and (self.target is None or not rule.target
                               or rule.target == self.target)
                          and any(point_covers(pattern, name) for pattern in rule.points))
            if len(by_point) < MAX_NAMES:  # names made per call must not grow it for ever
                by_point[name] = found
        return found

    def decide(self, name: str) -> PointDecision | None:
        """What to do with one call at point ``name``; None: nothing."""
        rules = self.for_point(name)
        if not rules:
            return None
        with self._lock:  # one RNG, many threads: draws stay in a single sequence
            return decide_point(rules, self.source.clock(), self.rng)

    def end_of(self, rule: Rule, name: str) -> float:
        """When ``rule`` ends as the rules stand now: later than its ``expires_at`` once its
        run renewed its lease; -inf once it is gone from the rules."""
        try:
            current = self.for_point(name)
        except Exception:  # a service must never see the injector's own bug
            count.internal()
            return -math.inf
        return next((found.expires_at for found in current
                     if found.id == rule.id and found.fault.kind == rule.fault.kind), -math.inf)

    def active_rules(self, name: str | None = None) -> list[Rule]:
        """Point rules in force now (all points', or ``name``'s)."""
        now = self.source.clock()
        rules = self.for_point(name) if name is not None else \
            tuple(r for r in self.source.rules() if r.points)
        return [rule for rule in rules if rule.active(now)]

    def close(self) -> None:
        """Stop watching the rules file."""
        self.source.close()


_configured: PointRules | None = None
_from_environment = False
_setup = threading.Lock()


def configure_points(rules_file: str | Path | None = None, *,
                     rules: Sequence[Rule] | None = None, target: str | None = None,
                     seed: int | None = None,
                     errors: Mapping[str, ErrorFactory] | None = None) -> PointRules:
    """Set the rules every fault point of this process reads (replacing any set before)."""
    global _configured, _from_environment
    points = PointRules(rules, rules_file, target=target, seed=seed, errors=errors)
    with _setup:
        previous, _configured, _from_environment = _configured, points, True
    if previous is not None:
        previous.close()
    return points


def reset_points() -> None:
    """Forget the configured rules (the next call looks at the environment again)."""
    global _configured, _from_environment
    with _setup:
        previous, _configured, _from_environment = _configured, None, False
    if previous is not None:
        previous.close()


def point_rules() -> PointRules | None:
    """The rules of this process's points: configured, else from ``GAMEDAY_FAULT_RULES``."""
    global _configured, _from_environment
    if _from_environment:
        return _configured
    with _setup:
        if not _from_environment:
            path = os.environ.get(RULES_VARIABLE)
            if path:
                try:
                    _configured = PointRules(rules_file=path,
                                             target=os.environ.get(TARGET_VARIABLE) or None)
                except Exception:  # a set-up that cannot be made must not fail the call
                    count.internal()
            _from_environment = True
        return _configured


class FaultPoint:
    """One named fault point: a decorator, and a context manager (``with`` and ``async
    with``). Bound to ``rules``, or to the process's (:func:`configure_points`)."""

    __slots__ = ("errors", "name", "rules")

    def __init__(self, name: str, rules: PointRules | None = None,
                 errors: Mapping[str, ErrorFactory] | None = None) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"fault point name {name!r}: letters, digits and ._/:- only, "
                             f"at most 127 (pattern {POINT_NAME})")
        self.name = name
        self.rules = rules
        self.errors = dict(errors or {})

    def _decision(self, rules: PointRules) -> PointDecision | None:
        try:
            return rules.decide(self.name)
        except Exception:  # a service must never see the injector's own bug
            count.internal()
            return None

    def _rules(self) -> PointRules | None:
        """The rules, when some of them name this point (the fast path's one question)."""
        rules = self.rules if self.rules is not None else point_rules()
        if rules is None:
            return None
        try:
            return rules if rules.for_point(self.name) else None
        except Exception:
            count.internal()
            return None

    def check(self) -> None:
        """Apply the point's fault to a call about to be made (sync: sleeps the thread)."""
        rules = self._rules()
        if rules is not None:
            self._apply(rules)

    async def acheck(self) -> None:
        """Apply the point's fault to a call about to be made (async: awaits the delay)."""
        rules = self._rules()
        if rules is not None:
            await self._aapply(rules)

    def _apply(self, rules: PointRules) -> None:
        decision = self._decision(rules)
        if decision is None:
            return
        started = time.monotonic()
        if decision.delay_ms:
            for seconds in self._waits(rules, decision, started):
                time.sleep(seconds)
        self._finish(rules, decision, time.monotonic() - started)

    async def _aapply(self, rules: PointRules) -> None:
        decision = self._decision(rules)
        if decision is None:
            return
        started = time.monotonic()
        if decision.delay_ms:
            for seconds in self._waits(rules, decision, started):
                await asyncio.sleep(seconds)
        self._finish(rules, decision, time.monotonic() - started)

    def _waits(self, rules: PointRules, decision: PointDecision, started: float
               ) -> Iterator[float]:
        """The sleeps of a delay: the rest of it, up to where its rule ends. At that end the
        rule is looked up again: a run that renewed its lease in the meantime moved the end
        on, and the delay goes on to it."""
        total, end, rule = decision.delay_ms / 1000, decision.ends_at, decision.latency_rule
        while (rest := total - (time.monotonic() - started)) > 0:
            now = rules.source.clock()
            if now >= end and rule is not None:
                end = rules.end_of(rule, self.name)
            if now >= end:
                return
            yield min(rest, end - now)

    def _finish(self, rules: PointRules, decision: PointDecision, waited: float) -> None:
        rule = decision.error_rule
        if rule is not None and decision.delay_ms:
            # The error comes after the delay, if its rule has not ended in the meantime.
            now = rules.source.clock()
            if now >= rule.expires_at and now >= rules.end_of(rule, self.name):
                decision = dataclasses.replace(
                    decision, error=None,
                    rules=tuple(fired for fired in decision.rules if fired is not rule))
        error = raise_for(decision, self.name, self.errors, rules.errors)
        count.injected(decision, self.name, error is not None)
        if error is not None or decision.delay_ms:
            trace(decision, self.name, waited, error)
        if error is not None:
            raise error

    def __call__(self, function: F) -> F:
        """Wrap ``function`` (sync or async) so that each call passes the point first."""
        rules_of = self._rules
        if inspect.iscoroutinefunction(function):
            aapply = self._aapply

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                rules = rules_of()
                if rules is not None:
                    await aapply(rules)
                return await function(*args, **kwargs)

            return cast(F, async_wrapper)
        apply = self._apply

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            rules = rules_of()
            if rules is not None:
                apply(rules)
            return function(*args, **kwargs)

        return cast(F, wrapper)

    def __enter__(self) -> None:
        self.check()

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> None:
        await self.acheck()

    async def __aexit__(self, *exc: object) -> None:
        return None


def fault_point(name: str, *, rules: PointRules | None = None,
                errors: Mapping[str, ErrorFactory] | None = None) -> FaultPoint:
    """The fault point ``name``: ``@fault_point("redis")`` on a function (sync or async), or
    ``with fault_point("redis"):`` / ``async with`` around a call. ``errors`` maps error names
    to this point's own exceptions (``{"connection": redis.ConnectionError}``)."""
    return FaultPoint(name, rules, errors)
