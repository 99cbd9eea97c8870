"""Guard and signal queries, resolved from the catalog: pure text, no I/O.

A guard's value is often computed (``rate``, ``histogram_quantile``), and Prometheus stamps
computed samples with the evaluation time, which is always "now". To judge staleness by the
samples' *own* timestamps, each guard also gets a freshness query: the newest raw sample
time of every series selector its expression reads, and the oldest of those.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gameday.errors import GuardError
from gameday.models import (
    Environment,
    Guard,
    Scenario,
    Signal,
    SignalTemplate,
    Target,
    render_query,
)

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9.]+(?:[eE][+-]?[0-9]+)?)[A-Za-z0-9]*")
# Words that are never series names when not followed by "(".
_KEYWORDS = frozenset({"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"})
# Modifiers followed by a parenthesised list of label names, not of expressions.
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# ``sum by (le) (…)``: an aggregation whose grouping comes before its argument.
_AGGREGATE_MODIFIER = re.compile(r"(?i)(by|without)\s*\(")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class GuardQuery:
    """One guard of a scenario, ready to evaluate: its rendered PromQL and freshness query."""

    name: str
    guard: Guard
    query: str
    #: PromQL giving the oldest "newest sample time" among the inputs; None for constants.
    freshness: str | None


@dataclass(frozen=True)
class SignalQuery:
    """One expected signal of a scenario, ready to measure."""

    name: str
    signal: Signal
    query: str
    unit: str | None


def guard_query(name: str, guard: Guard, target: Target, window: str,
                templates: Mapping[str, SignalTemplate]) -> GuardQuery:
    """Render one guard: its own ``query`` or the signal template of the same name."""
    query = render_query(_text(name, guard.query, templates), target, window)
    return GuardQuery(name=name, guard=guard, query=query, freshness=freshness_query(query))


def resolve_guards(scenario: Scenario, templates: Mapping[str, SignalTemplate],
                   environment: Environment) -> list[GuardQuery]:
    """Every guard of ``scenario``, rendered with the environment's rate window."""
    window = environment.prometheus.window
    return [guard_query(name, guard, scenario.target, window, templates)
            for name, guard in scenario.guards.items()]


def resolve_signals(scenario: Scenario, templates: Mapping[str, SignalTemplate],
                    environment: Environment) -> list[SignalQuery]:
    """Every expected signal of ``scenario``, rendered with the environment's rate window."""
    window = environment.prometheus.window
    found = []
    for name, signal in scenario.signals.items():
        query = render_query(_text(name, signal.query, templates), scenario.target, window)
        template = templates.get(name)
        unit = signal.unit or (template.unit if template else None)
        found.append(SignalQuery(name=name, signal=signal, query=query, unit=unit))
    return found


def _text(name: str, query: str | None, templates: Mapping[str, SignalTemplate]) -> str:
    if query:
        return query
    if name not in templates:
        known = ", ".join(sorted(templates)) or "none"
        raise GuardError(f"{name!r} has no query and no signal template of that name "
                         f"(known: {known})")
    return templates[name].query


# --- series selectors ---------------------------------------------------------------------


def selectors(expr: str) -> list[str]:
    """The series selectors (``name{matchers}``) an expression reads, without ranges/offsets."""
    found: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        char = expr[i]
        if char in "\"'`":
            i = _skip_string(expr, i)
        elif char == "#":
            end = expr.find("\n", i)
            i = n if end < 0 else end
        elif char == "[":
            i = _skip_group(expr, i)
        elif char == "{":
            end = _skip_group(expr, i)
            found.append(expr[i:end])
            i = end
        elif number := _NUMBER.match(expr, i):
            i = number.end()
        elif ident := _IDENT.match(expr, i):
            word, i = ident.group(), ident.end()
            after = _skip_space(expr, i)
            if word.lower() in _LABEL_LISTS:
                i = _skip_group(expr, after) if after < n and expr[after] == "(" else i
            elif ((after < n and expr[after] == "(") or word.lower() in _KEYWORDS
                  or _AGGREGATE_MODIFIER.match(expr, after)):
                continue  # a function or aggregation name, or a keyword
            elif after < n and expr[after] == "{":
                i = _skip_group(expr, after)
                found.append(word + expr[after:i])
            else:
                found.append(word)
        else:
            i += 1
    return list(dict.fromkeys(found))


def freshness_query(expr: str) -> str | None:
    """PromQL for the oldest of the newest raw sample times of ``expr``'s inputs.

    Each selector contributes ``max(timestamp(selector))`` (a selector with several series is
    fresh while any of them is); a selector with no series contributes nothing, as ``or
    vector(0)`` style expressions expect absent series. An empty answer means no input has a
    current sample. ``None`` when the expression reads no series at all.
    """
    found = selectors(expr)
    if not found:
        return None
    # Distinct labels keep ``or`` from dropping all but the first label-less result.
    parts = [f'label_replace(max(timestamp({sel})), "gameday_input", "{index}", "", "")'
             for index, sel in enumerate(found)]
    return "min(" + " or ".join(parts) + ")"


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _skip_string(expr: str, i: int) -> int:
    quote, i = expr[i], i + 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    return i


def _skip_group(expr: str, i: int) -> int:
    """Index just after the bracket group opening at ``i`` (strings inside skipped)."""
    close, depth, opening = _CLOSE[expr[i]], 0, expr[i]
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _skip_string(expr, i)
            continue
        if char == opening:
            depth += 1
        elif char == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


# --- how far back a query looks ----------------------------------------------------------

_RANGE = re.compile(r"\[\s*((?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))+)\s*(?::[^\]]*)?\]")
_RANGE_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_RANGE_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
                "y": 31536000.0}


def longest_range(expr: str) -> float:
    """Seconds of the longest range (``[4s]``, ``[1m30s]``, a subquery's ``[5m:1m]``) that
    ``expr`` reads; 0 for an instant query. A value moves only once that long has passed."""
    longest = 0.0
    for match in _RANGE.finditer(expr):
        seconds = sum(float(n) * _RANGE_SCALE[unit]
                      for n, unit in _RANGE_PART.findall(match.group(1)))
        longest = max(longest, seconds)
    return longest


def guard_window(guard: GuardQuery) -> float:
    """How long a guard needs to see a change: its longest range and its ``for``."""
    return longest_range(guard.query) + guard.guard.for_


def guards_hash(guards: list[GuardQuery]) -> str:
    """A short hash of a guard set (queries, rules, ``for``, no-data policy): two findings
    are compared only when they were judged by the same guards."""
    parts = sorted((g.name, g.query, g.guard.op, g.guard.threshold, g.guard.for_,
                    g.guard.on_no_data) for g in guards)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
