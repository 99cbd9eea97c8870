"""Scenario, environment and unit rules that the models enforce by themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gameday.models import Environment, Scenario, Target, Window, render_query
from gameday.units import format_duration, parse_comparison, parse_duration
from tests.catalog.cases import GOOD_SCENARIO


def scenario(**changes: Any) -> Scenario:
    return Scenario.model_validate(yaml.safe_load(GOOD_SCENARIO) | changes)


@pytest.mark.parametrize(("text", "seconds"), [("100ms", 0.1), ("30s", 30), ("5m", 300),
                                               ("1h", 3600), (2, 2.0), ("1.5s", 1.5)])
def test_durations_parse(text: str | int, seconds: float) -> None:
    """Durations accept ms, s, m, h and plain seconds."""
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(format_duration(parse_duration(text))) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-1s", "10 parsecs", "", True, "5"])
def test_bad_durations_are_refused(text: Any) -> None:
    """Negative, unit-less strings and booleans are not durations."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_comparison_shorthand() -> None:
    """``"<= 350"`` splits into operator and threshold."""
    assert parse_comparison("<= 350") == ("<=", 350.0)
    with pytest.raises(ValueError, match="comparison"):
        parse_comparison("about 3")


def test_ladder_resolves_each_step_and_its_ttl() -> None:
    """Step N applies the fault with its overrides and expires at dwell + margin."""
    s = scenario(ttl_margin="5s")
    assert s.max_severity == 2
    assert s.step_fault(2).ms == 100
    assert s.ttl(1) == 15


def test_bandwidth_ladder_must_shrink() -> None:
    """For bandwidth, fewer kbps is more severe: a growing ladder is refused."""
    with pytest.raises(ValidationError, match="higher than step 1"):
        scenario(fault={"kind": "bandwidth", "kbps": 100},
                 steps=[{"kbps": 100, "dwell": "5s"}, {"kbps": 200, "dwell": "5s"}])
    ok = scenario(fault={"kind": "bandwidth", "kbps": 100},
                  steps=[{"kbps": 100, "dwell": "5s"}, {"kbps": 50, "dwell": "5s"}])
    assert ok.step_fault(2).kbps == 50


def test_step_field_must_fit_the_fault_kind() -> None:
    """A step may only override fields of its fault's kind."""
    with pytest.raises(ValidationError, match="does not apply to fault kind 'latency'"):
        scenario(steps=[{"kbps": 5, "dwell": "5s"}])


def test_http_fault_needs_a_dependency() -> None:
    """Faults on calls need to know which dependency's calls."""
    with pytest.raises(ValidationError, match="name the dependency"):
        scenario(target={"service": "user-service"})


def test_pod_kill_takes_count_or_percent() -> None:
    """pod_kill needs exactly one of count and percent."""
    with pytest.raises(ValidationError, match="exactly one"):
        scenario(fault={"kind": "pod_kill", "count": 1, "percent": 10}, steps=[{"dwell": "5s"}])


def test_guards_are_required() -> None:
    """A scenario without a guard has no safety stop and is refused."""
    with pytest.raises(ValidationError, match="guards"):
        scenario(guards={})


def test_guard_shorthand_reads_for() -> None:
    """``"> 5 for 2s"`` is a guard with operator, threshold and ``for``."""
    guard = scenario().guards["error_rate_percent"]
    assert (guard.op, guard.threshold, guard.for_, guard.on_no_data) == (">", 5, 2, "breach")


def test_window_contains() -> None:
    """A window is judged in its own time zone."""
    window = Window(days=["fri"], hours="09:00-17:00", timezone="Europe/Berlin")
    assert window.contains(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))  # 11:00 in Berlin
    assert not window.contains(datetime(2026, 11, 27, 16, 30, tzinfo=UTC))  # 17:30
    assert not window.contains(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))  # Saturday


def test_render_query_keeps_promql_braces() -> None:
    """Placeholders are filled; PromQL label matchers are left alone."""
    query = 'rate(x{service="{service}", dependency="{dependency}"}[{window}])'
    assert render_query(query, Target(service="a", dependency="b"), "4s") == (
        'rate(x{service="a", dependency="b"}[4s])')


def test_environment_never_allows_kube_system() -> None:
    """kube-system can never be listed as a chaos namespace."""
    with pytest.raises(ValidationError, match="kube-system"):
        Environment.model_validate({"name": "e", "prometheus": {"url": "http://x"},
                                    "allowed_namespaces": ["kube-system"]})
