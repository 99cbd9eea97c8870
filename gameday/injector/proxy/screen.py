"""A cheap first look at a request, in its raw head, before the decision core sees it.

A proxy in a game day holds rules for other steps, methods, paths and headers; most requests
match none. Building a ``Request`` (decoded strings, a header dict) and walking the rules'
models for each costs about a tenth of the proxy's time under load. A screen is what a request
must have for its rule to possibly apply — not expired, the method, the path prefix, the
header names — checked on bytes. It is only a necessary condition: a request that passes any
screen still goes to :func:`gameday.injector.decide.decide`, which decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gameday.injector.rules import Rule

if TYPE_CHECKING:
    from gameday.injector.proxy.http1 import Head


@dataclass(frozen=True, slots=True)
class Screen:
    """What a request needs, in bytes, for one rule to possibly apply."""

    expires_at: float
    methods: frozenset[bytes] | None
    prefix: bytes
    #: ``b"\r\n<name>:"`` per header the rule requires, to find in the lower-cased head.
    headers: tuple[bytes, ...]


def screen(rule: Rule) -> Screen:
    """The screen of ``rule``."""
    match = rule.fault.match
    methods = frozenset(m.encode("ascii") for m in match.methods) or None
    headers = tuple(b"\r\n" + name.lower().encode("latin-1") + b":" for name in match.headers)
    return Screen(rule.expires_at, methods, match.path_prefix.encode("latin-1"), headers)


@dataclass(frozen=True, slots=True)
class Screens:
    """A rule set's screens, sorted by method once so a request walks only its method's."""

    any_method: tuple[Screen, ...] = ()
    by_method: dict[bytes, tuple[Screen, ...]] | None = None

    @classmethod
    def of(cls, rules: tuple[Rule, ...]) -> Screens:
        """The screens of ``rules``."""
        screens = [screen(rule) for rule in rules]
        methods = {m for s in screens if s.methods is not None for m in s.methods}
        any_method = tuple(s for s in screens if s.methods is None)
        by_method = {m: tuple(s for s in screens if s.methods is None or m in s.methods)
                     for m in methods}
        return cls(any_method, by_method)

    def for_method(self, method: bytes) -> tuple[Screen, ...]:
        """The screens a request of ``method`` must pass one of."""
        if self.by_method is None:
            return self.any_method
        return self.by_method.get(method, self.any_method)


def may_apply(screens: Screens, head: Head, now: float) -> bool:
    """Whether any rule could apply to the request ``head`` at ``now``."""
    target = head.target
    # The path is a prefix of an origin-form target, so a path that starts with the rule's
    # prefix means the target does; an absolute-form target is left to the decision core.
    origin_form = target.startswith(b"/")
    lower = head.lower
    for s in screens.for_method(head.method.upper()):
        if now >= s.expires_at:
            continue
        if origin_form and not target.startswith(s.prefix):
            continue
        if s.headers and not all(name in lower for name in s.headers):
            continue
        return True
    return False
