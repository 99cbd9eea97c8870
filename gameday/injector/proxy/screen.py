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


def may_apply(screens: tuple[Screen, ...], head: Head, now: float) -> bool:
    """Whether any rule could apply to the request ``head`` at ``now``."""
    method = head.method.upper()
    target = head.target
    # The path is a prefix of an origin-form target, so a path that starts with the rule's
    # prefix means the target does; an absolute-form target is left to the decision core.
    origin_form = target.startswith(b"/")
    lower = head.lower
    for s in screens:
        if now >= s.expires_at:
            continue
        if s.methods is not None and method not in s.methods:
            continue
        if origin_form and not target.startswith(s.prefix):
            continue
        if s.headers and not all(name in lower for name in s.headers):
            continue
        return True
    return False
