"""The proxy's screen is a necessary condition: a request any rule applies to always passes it."""

from __future__ import annotations

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from gameday.injector.decide import Request, decide
from gameday.injector.proxy.http1 import parse_request
from gameday.injector.proxy.screen import Screens, may_apply
from gameday.injector.rules import Rule

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD")
PATHS = ("/", "/api", "/api/users", "/api/users/7?x=1", "/health", "/never/3")
HEADERS = ("x-game-day", "X-Tenant", "accept")
NOW = time.time()


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    """A latency rule with a random match, live or already expired."""
    match: dict[str, object] = {}
    if draw(st.booleans()):
        match["methods"] = draw(st.lists(st.sampled_from(METHODS[:4]), max_size=2, unique=True))
    if draw(st.booleans()):
        match["path_prefix"] = draw(st.sampled_from((*PATHS[:3], "/never")))
    if draw(st.booleans()):
        match["headers"] = {draw(st.sampled_from(HEADERS)): draw(st.sampled_from(("a", "b")))}
    return Rule.model_validate({
        "id": f"r-{draw(st.integers(0, 10**6))}",
        "fault": {"kind": "latency", "ms": 10, "match": match},
        "labels": {"run": "r", "scenario": "s", "environment": "e", "step": 1},
        "expires_at": NOW + draw(st.sampled_from((-5.0, 60.0)))})


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    """A request head with a random method, target and headers."""
    lines = [f"{draw(st.sampled_from(METHODS))} {draw(st.sampled_from(PATHS))} HTTP/1.1",
             "Host: svc"]
    for name in draw(st.lists(st.sampled_from(HEADERS), max_size=3, unique=True)):
        lines.append(f"{name}: {draw(st.sampled_from(('a', 'b')))}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@settings(derandomize=True, max_examples=400)
@given(st.lists(rules(), max_size=6), heads())
def test_a_request_a_rule_applies_to_passes_the_screen(ruleset: list[Rule], raw: bytes) -> None:
    """Whenever the decision core fires a rule, the screen let the request through."""
    head = parse_request(raw)
    request = Request(head.method.decode(), head.target.decode(), head.headers())
    fired = decide(tuple(ruleset), request, random.Random(1), NOW).rules
    if fired:
        assert may_apply(Screens.of(tuple(ruleset)), head, NOW)


def test_requests_no_rule_can_match_are_screened_out() -> None:
    """Expired rules, other methods, paths and missing headers all keep a request out."""
    def rule(match: dict[str, object], expires: float = 60.0) -> Rule:
        return Rule.model_validate({
            "id": "r-1", "fault": {"kind": "latency", "ms": 10, "match": match},
            "labels": {"run": "r", "scenario": "s", "environment": "e", "step": 1},
            "expires_at": NOW + expires})

    head = parse_request(b"GET /api/users HTTP/1.1\r\nHost: svc\r\nAccept: a\r\n\r\n")
    out = [rule({}, expires=-1), rule({"methods": ["POST"]}), rule({"path_prefix": "/never"}),
           rule({"headers": {"x-game-day": "1"}})]
    assert not may_apply(Screens.of(tuple(out)), head, NOW)
    assert may_apply(Screens.of((rule({"headers": {"Accept": "zzz"}}),)), head, NOW)
    assert may_apply(Screens.of((rule({"methods": ["GET"], "path_prefix": "/api"}),)), head, NOW)
    assert not may_apply(Screens.of((rule({"methods": ["POST"]}), rule({}, expires=-1))),
                         head, NOW)
