"""Resolving guard and signal queries from the catalog, and their freshness queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameday.errors import GuardError
from gameday.guards.queries import freshness_query, guard_query, resolve_guards, selectors
from gameday.load import load_default
from gameday.models import Guard, Target

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("expr", "expected"), [
    ("up", ["up"]),
    ('sum(rate(x{a="}",b=~"[a-z]"}[5m] offset 1m)) by (le)', ['x{a="}",b=~"[a-z]"}']),
    ("histogram_quantile(0.9, sum by (le) (rate(a_bucket[1m])))", ["a_bucket"]),
    ("sum without (pod) (b) / on(instance) group_left(name) c", ["b", "c"]),
    ('count_values("v", d) > bool 1', ["d"]),
    ('rate({__name__=~"e.*"}[1m:10s] @ 100)', ['{__name__=~"e.*"}']),
    ("f and g unless f or vector(0)", ["f", "g"]),
    ("1000 * 2 + vector(1)", []),
    ('label_replace(h, "dst", "x", "src", "(.*)")', ["h"]),
])
def test_selectors_finds_the_series_an_expression_reads(expr: str, expected: list[str]) -> None:
    """Selectors skip functions, keywords, label lists, strings, ranges and numbers."""
    assert selectors(expr) == expected


def test_freshness_query_takes_the_oldest_of_each_inputs_newest_sample() -> None:
    """The freshness query is min over selectors of max(timestamp(selector))."""
    query = freshness_query("rate(a[5s]) / rate(b[5s])")
    assert query == ('min(label_replace(max(timestamp(a)), "gameday_input", "0", "", "") or '
                     'label_replace(max(timestamp(b)), "gameday_input", "1", "", ""))')
    assert freshness_query("vector(1)") is None


def test_guards_resolve_from_templates_with_the_environments_window() -> None:
    """A guard without a query takes its signal template, rendered with the rate window."""
    catalog = load_default(REPO / "catalog")
    scenario = catalog.scenario("auth-latency-ladder")
    environment = catalog.environments["demo"]
    found = {g.name: g for g in resolve_guards(scenario, catalog.signals, environment)}
    errors = found["error_rate_percent"]
    assert 'service="user-service"' in errors.query and "[4s]" in errors.query
    assert "{" + "window}" not in errors.query
    assert errors.freshness is not None and "timestamp(service_requests_total" in errors.freshness
    assert errors.guard.for_ == 2.0 and errors.guard.op == ">"


def test_own_query_wins_and_unknown_names_fail() -> None:
    """A guard's own query is used as written; no query and no template is a GuardError."""
    target = Target(service="s", dependency="d")
    own = Guard.model_validate({"query": 'x{service="{service}"}', "op": ">", "threshold": 1})
    assert guard_query("mine", own, target, "4s", {}).query == 'x{service="s"}'
    bare = Guard.model_validate({"op": ">", "threshold": 1})
    with pytest.raises(GuardError, match="no query and no signal template"):
        guard_query("nothing", bare, target, "4s", {})
